"""Typed access to the ``DJANGO_JOBS`` setting.

Values are read from ``django.conf.settings`` on every access (never cached), so
``override_settings`` and pytest-django's ``settings`` fixture just work. Bad values are
reported by the system checks in :mod:`django_jobs.checks`, not here.
"""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any

from django.conf import settings as django_settings
from django.core.signals import setting_changed

DEFAULTS: dict[str, Any] = {
    "DEFAULT_QUEUE": "default",
    "DEFAULT_PRIORITY": 0,
    "DEFAULT_MAX_RETRIES": 3,
    "DEFAULT_RETRY_DELAY": 60.0,  # seconds
    "DEFAULT_RETRY_BACKOFF": 2.0,
    "DEFAULT_RETRY_JITTER": True,
    "MAX_RETRY_DELAY": 3600.0,  # seconds
    "DEFAULT_TIMEOUT": None,  # seconds, None = no limit
    "DEAD_LETTER_QUEUE": "dead-letter",
    "HEARTBEAT_INTERVAL": 5.0,  # seconds
    "WORKER_TIMEOUT": 30.0,  # seconds without heartbeat before a worker counts as dead
    "POLL_INTERVAL": 1.0,  # seconds between claims when idle (LISTEN wakes sooner on PostgreSQL)
    "RETENTION": timedelta(days=7),  # auto-prune age of finished jobs; None disables
    "NOTIFICATIONS": {},
    "API_PERMISSION_CLASSES": ["rest_framework.permissions.IsAdminUser"],
    "MAX_PAYLOAD_BYTES": 1_000_000,
    "EAGER": False,
    "DATABASE": None,  # database alias for the job tables; None = the router's choice
    "PROGRESS_THROTTLE": 0.5,  # seconds between progress writes of one job
    "SHUTDOWN_TIMEOUT": 30.0,
    "CLAIM_BATCH_SIZE": 1000,
    # A schedule's due time fired later than this counts as missed (see misfire_policy).
    "MISFIRE_GRACE": 60.0,  # seconds
}

DURATION_KEYS = (
    "DEFAULT_RETRY_DELAY",
    "MAX_RETRY_DELAY",
    "DEFAULT_TIMEOUT",
    "HEARTBEAT_INTERVAL",
    "WORKER_TIMEOUT",
    "POLL_INTERVAL",
    "PROGRESS_THROTTLE",
    "SHUTDOWN_TIMEOUT",
    "MISFIRE_GRACE",
)


def to_seconds(value: Any, name: str = "a duration") -> float | None:
    """Seconds as a float from a number or a ``timedelta`` (None stays None).

    ``TypeError`` for anything else, ``ValueError`` for NaN and infinity (a NaN timeout
    would never be enforced, an infinite delay never come); ``name`` says which value
    it was in the message.
    """
    if value is None:
        return None
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be seconds or a timedelta, got {value!r}.")
    return finite(value, name)


def finite(value: Any, name: str) -> float:
    """``value`` as a float; ``ValueError`` naming ``name`` for NaN and infinity."""
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"{name} must be a finite number, got {value!r}.")
    return number


class JobsSettings:
    """``jobs_settings.DEFAULT_QUEUE`` etc.; durations come back as float seconds."""

    def __init__(self):
        # Read on every enqueue and every job: cached, and forgotten whenever Django
        # reports DJANGO_JOBS changed (override_settings, the settings fixture).
        self._cache: dict[str, Any] = {}

    def raw(self) -> dict[str, Any]:
        return getattr(django_settings, "DJANGO_JOBS", None) or {}

    def clear_cache(self, **kwargs) -> None:
        if kwargs.get("setting") in (None, "DJANGO_JOBS"):
            self._cache.clear()

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            return self._cache[name]
        except KeyError:
            pass
        if name not in DEFAULTS:
            raise AttributeError(name)
        value = self.raw().get(name, DEFAULTS[name])
        if name in DURATION_KEYS:
            try:
                value = to_seconds(value, name)
            except (TypeError, ValueError):  # reported by the system checks
                value = to_seconds(DEFAULTS[name])
        self._cache[name] = value
        return value

    @property
    def RETENTION_SECONDS(self) -> float | None:  # noqa: N802
        value = self.raw().get("RETENTION", DEFAULTS["RETENTION"])
        try:
            return to_seconds(value, "RETENTION")
        except (TypeError, ValueError):
            return None


jobs_settings = JobsSettings()
setting_changed.connect(jobs_settings.clear_cache, dispatch_uid="django_jobs.settings_cache")
