"""The ``DJANGO_JOBS`` setting, as one typed object.

``jobs_settings.DEFAULT_QUEUE`` (a ``str``), ``jobs_settings.WORKER_TIMEOUT`` (float
seconds) ...: each key is one annotated attribute of :class:`JobsSettings`, a
:class:`Setting` that knows its default and how to read a raw value. The system checks
(:mod:`django_jobs.checks`) validate every key once with that same reader, so a value
that passed ``manage.py check`` reads the same at run time. A bad value never breaks a
worker or a request: it reads as the key's fallback (its default), and the checks report
it with the key's ``django_jobs.E0xx`` id.

Values are cached and forgotten whenever Django reports that ``DJANGO_JOBS`` changed
(``override_settings``, pytest-django's ``settings`` fixture).
"""

from __future__ import annotations

import base64
import binascii
import math
from collections.abc import Callable
from dataclasses import dataclass, fields
from datetime import timedelta
from typing import Any, Generic, TypeVar, overload

from django.conf import settings as django_settings
from django.core.exceptions import ValidationError
from django.core.signals import setting_changed
from django.core.validators import URLValidator

from .enums import Priority

T = TypeVar("T")


@overload
def to_seconds(value: None, name: str = ...) -> None: ...
@overload
def to_seconds(value: float | timedelta, name: str = ...) -> float: ...
@overload
def to_seconds(value: Any, name: str = ...) -> float | None: ...
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


# -- readers: a raw value in, a typed value out, ValueError saying what is wanted -------


def _name(value: Any) -> str:
    if isinstance(value, str) and value.strip() and len(value) <= 255:
        return value
    raise ValueError("must be a non-empty string of at most 255 characters.")


def _priority(value: Any) -> int:
    try:
        priority = Priority.coerce(value)
    except ValueError as exc:
        raise ValueError(f"is invalid: {exc}") from None
    if priority is None:
        raise ValueError("is invalid: None is not a priority.")
    return priority


def _integer(minimum: int, wanted: str) -> Callable[[Any], int]:
    def read(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ValueError(f"must be {wanted}.")
        return value

    return read


def _optional_integer(minimum: int, wanted: str) -> Callable[[Any], int | None]:
    required = _integer(minimum, wanted)
    return lambda value: None if value is None else required(value)


def _seconds(minimum: float, *, strict: bool, wanted: str) -> Callable[[Any], float]:
    """Seconds >= ``minimum`` (> it when ``strict``) from a number or a ``timedelta``."""

    def read(value: Any) -> float:
        try:
            seconds = to_seconds(value)
        except (TypeError, ValueError):
            seconds = None
        if seconds is None or seconds < minimum or (strict and seconds == minimum):
            raise ValueError(f"must be {wanted}.")
        return seconds

    return read


def _optional_seconds(minimum: float, *, wanted: str) -> Callable[[Any], float | None]:
    required = _seconds(minimum, strict=True, wanted=wanted)
    return lambda value: None if value is None else required(value)


def _factor(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError("must be a finite number >= 1.")
    if not math.isfinite(value) or value < 1:
        raise ValueError("must be a finite number >= 1.")
    return float(value)


def _flag(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError("must be True or False.")
    return value


@dataclass(frozen=True)
class HealthSettings:
    """``DJANGO_JOBS["HEALTH"]``: the thresholds of the health checks."""

    # The workers check fails with fewer live workers than this.
    MIN_WORKERS: int = 1
    # The scheduler check fails when an enabled schedule is later than this (seconds).
    SCHEDULE_LAG: float = 60.0
    # The queues check fails when a queue's oldest due job waited longer (seconds) than
    # this, or than the queue's own max_pending_age; None: only the queues' own limits.
    MAX_PENDING_AGE: float | None = 3600.0


def _health(value: Any) -> HealthSettings:
    if not isinstance(value, dict):
        raise ValueError("must be a dict with MIN_WORKERS, SCHEDULE_LAG and MAX_PENDING_AGE.")
    known = {f.name for f in fields(HealthSettings)}
    unknown = sorted(set(value) - known, key=str)
    if unknown:
        raise ValueError(
            f"has unknown key(s) {', '.join(map(str, unknown))}; known: {', '.join(sorted(known))}."
        )
    read: dict[str, Any] = {}
    if "MIN_WORKERS" in value:
        read["MIN_WORKERS"] = _integer(0, "an integer >= 0 in MIN_WORKERS")(value["MIN_WORKERS"])
    if "SCHEDULE_LAG" in value:
        read["SCHEDULE_LAG"] = _seconds(
            0, strict=True, wanted="a positive number of seconds or a timedelta in SCHEDULE_LAG"
        )(value["SCHEDULE_LAG"])
    if "MAX_PENDING_AGE" in value:
        read["MAX_PENDING_AGE"] = _optional_seconds(
            0, wanted="None or a positive number of seconds or a timedelta in MAX_PENDING_AGE"
        )(value["MAX_PENDING_AGE"])
    return HealthSettings(**read)


JOB_EVENTS = ("failed", "retrying", "cancelled", "completed")
SYSTEM_EVENTS = ("worker_lost", "schedule_missed", "queue_backlog")
EVENTS = JOB_EVENTS + SYSTEM_EVENTS
# The task that delivers notifications: its own jobs never notify (no loop of alerts
# about alerts).
DELIVERY_TASK = "django_jobs.notifications.deliver"
DIGEST_TASK = "django_jobs.notifications.send_digest"
NOTIFYING_TASKS = (DELIVERY_TASK, DIGEST_TASK)


class SettingError(ValueError):
    """A value that does not read, with the system check id that reports it."""

    def __init__(self, message: str, check_id: str):
        super().__init__(message)
        self.check_id = check_id


@dataclass(frozen=True)
class Channel:
    """Where notifications go and which: ``EVENTS``, and ``QUEUES``/``TASKS`` (None =
    all) filtering the job events."""

    events: frozenset[str]
    queues: frozenset[str] | None
    tasks: frozenset[str] | None

    def wants(self, event: str, queue: str | None = None, task: str | None = None) -> bool:
        if event not in self.events:
            return False
        if event in SYSTEM_EVENTS:
            return True
        if self.queues is not None and queue not in self.queues:
            return False
        return self.tasks is None or task in self.tasks


@dataclass(frozen=True)
class EmailChannel(Channel):
    to: tuple[str, ...] = ()
    from_email: str | None = None  # None: SERVER_EMAIL
    # Job events of one task within this many seconds share one email (0: one each).
    digest: float = 60.0


@dataclass(frozen=True)
class WebhookChannel(Channel):
    url: str = ""
    secret: str = ""


@dataclass(frozen=True)
class NotificationSettings:
    """``DJANGO_JOBS["NOTIFICATIONS"]`` (SPEC 10), read and checked."""

    email: EmailChannel | None = None
    webhooks: tuple[WebhookChannel, ...] = ()

    def __post_init__(self) -> None:
        # Asked once per outcome a worker writes: answer "no" without a loop when no
        # channel has the event at all.
        events = frozenset().union(*(c.events for c in self.channels()))
        object.__setattr__(self, "_events", events)

    def channels(self) -> list[Channel]:
        return ([self.email] if self.email else []) + list(self.webhooks)

    def listens_to(self, event: str) -> bool:
        """Whether some channel has ``event`` among its events (for any queue or task)."""
        return event in self._events  # type: ignore[attr-defined]

    def wants(self, event: str, queue: str | None = None, task: str | None = None) -> bool:
        """Whether any channel wants this event (of this queue and task). The delivery
        task's own jobs never notify."""
        if not self.listens_to(event) or task in NOTIFYING_TASKS:
            return False
        return any(channel.wants(event, queue, task) for channel in self.channels())


def _names(value: Any, where: str) -> frozenset[str] | None:
    if value is None:
        return None
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) and v for v in value):
        raise SettingError(f"{where} must be None or a list of names.", "E013")
    return frozenset(value)


def _channel_filters(value: dict, where: str, default_events: tuple[str, ...]) -> dict[str, Any]:
    events = value.get("EVENTS", list(default_events))
    if not isinstance(events, (list, tuple)) or not events:
        raise SettingError(f"{where}['EVENTS'] must be a non-empty list of events.", "E026")
    unknown = [e for e in events if e not in EVENTS]
    if unknown:
        raise SettingError(
            f"{where}['EVENTS'] has unknown event(s) {', '.join(map(repr, unknown))}; "
            f"known: {', '.join(EVENTS)}.",
            "E026",
        )
    return {
        "events": frozenset(events),
        "queues": _names(value.get("QUEUES"), f"{where}['QUEUES']"),
        "tasks": _names(value.get("TASKS"), f"{where}['TASKS']"),
    }


def _known_keys(value: Any, known: tuple[str, ...], where: str) -> None:
    if not isinstance(value, dict):
        raise SettingError(f"{where} must be a dict.", "E013")
    unknown = sorted(set(value) - set(known), key=str)
    if unknown:
        raise SettingError(
            f"{where} has unknown key(s) {', '.join(map(str, unknown))}; "
            f"known: {', '.join(known)}.",
            "E013",
        )


def _webhook_secret(secret: Any, where: str) -> str:
    """A Standard Webhooks secret: ``whsec_`` and base64 (the key is what it decodes
    to), or any other non-empty string (the key is its UTF-8 bytes)."""
    if not isinstance(secret, str) or not secret:
        raise SettingError(f"{where}['SECRET'] must be a non-empty string.", "E027")
    if secret.startswith("whsec_"):
        try:
            key = base64.b64decode(secret[len("whsec_") :], validate=True)
        except (binascii.Error, ValueError):
            key = b""
        if not key:
            raise SettingError(
                f"{where}['SECRET'] starts with 'whsec_' but what follows is not base64 "
                "of a non-empty key.",
                "E027",
            )
    return secret


def _notifications(value: Any) -> NotificationSettings:
    _known_keys(value, ("EMAIL", "WEBHOOKS"), "")
    email = None
    if value.get("EMAIL") is not None:
        raw = value["EMAIL"]
        where = "['EMAIL']"
        _known_keys(raw, ("TO", "FROM", "EVENTS", "QUEUES", "TASKS", "DIGEST"), where)
        to = raw.get("TO")
        if isinstance(to, str):
            to = [to]
        if (
            not isinstance(to, (list, tuple))
            or not to
            or not all(isinstance(a, str) and "@" in a for a in to)
        ):
            raise SettingError(f"{where}['TO'] must be a non-empty list of addresses.", "E013")
        sender = raw.get("FROM")
        if sender is not None and not (isinstance(sender, str) and sender):
            raise SettingError(f"{where}['FROM'] must be None or an address.", "E013")
        try:
            digest = _seconds(
                0, strict=False, wanted="a number of seconds >= 0 or a timedelta in DIGEST"
            )(raw.get("DIGEST", 60))
        except ValueError as exc:
            raise SettingError(f"{where}['DIGEST'] {exc}", "E013") from None
        email = EmailChannel(
            **_channel_filters(raw, where, ("failed",)),
            to=tuple(to),
            from_email=sender,
            digest=digest,
        )
    hooks = value.get("WEBHOOKS") or []
    if not isinstance(hooks, (list, tuple)):
        raise SettingError("['WEBHOOKS'] must be a list of dicts.", "E013")
    webhooks: list[WebhookChannel] = []
    for i, raw in enumerate(hooks):
        where = f"['WEBHOOKS'][{i}]"
        _known_keys(raw, ("URL", "SECRET", "EVENTS", "QUEUES", "TASKS"), where)
        url = raw.get("URL")
        try:
            URLValidator(schemes=["http", "https"])(url)
        except ValidationError:
            raise SettingError(
                f"{where}['URL'] must be an http:// or https:// URL, got {url!r}.", "E025"
            ) from None
        if any(hook.url == url for hook in webhooks):
            raise SettingError(
                f"{where}['URL'] {url!r} is configured twice: a delivery would not know "
                "which secret signs it. Merge the two (EVENTS, QUEUES, TASKS).",
                "E025",
            )
        webhooks.append(
            WebhookChannel(
                **_channel_filters(raw, where, ("failed",)),
                url=url,
                secret=_webhook_secret(raw.get("SECRET"), where),
            )
        )
    return NotificationSettings(email=email, webhooks=tuple(webhooks))


def _dotted_paths(value: Any) -> list[str]:
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise ValueError("must be a list of dotted paths.")
    return list(value)


def _base_url(value: Any) -> str | None:
    if value is None:
        return None
    try:
        URLValidator(schemes=["http", "https"])(value)
    except ValidationError:
        raise ValueError(
            f"must be None or the site's http:// or https:// address, got {value!r}."
        ) from None
    return str(value).rstrip("/")


def _alias(value: Any) -> str | None:
    if value is None or (isinstance(value, str) and value):
        return value
    raise ValueError("must be None or a database alias from DATABASES.")


_DEFAULT: Any = object()


class Setting(Generic[T]):
    """One key of ``DJANGO_JOBS``: its default, its reader, its check id and hint.

    A bad value reads as ``fallback`` (the default's value unless given).
    """

    name: str

    def __init__(
        self,
        default: Any,
        read: Callable[[Any], T],
        check_id: str,
        hint: str,
        *,
        fallback: Any = _DEFAULT,
    ):
        self.default = default
        self.read = read
        self.check_id = check_id
        self.hint = hint
        self.default_value: T = read(default)
        self.fallback: T = self.default_value if fallback is _DEFAULT else fallback

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, instance: None, owner: type) -> Setting[T]: ...
    @overload
    def __get__(self, instance: JobsSettings, owner: type) -> T: ...
    def __get__(self, instance: JobsSettings | None, owner: type) -> Setting[T] | T:
        if instance is None:
            return self
        return instance.value(self)

    def problem(self, raw: Any) -> str | None:
        """What is wrong with ``raw`` as this key's value ("DJANGO_JOBS['X'] must be
        ..."), or None when it reads."""
        found = self.problem_and_id(raw)
        return found[0] if found else None

    def problem_and_id(self, raw: Any) -> tuple[str, str] | None:
        """``problem()`` with the check id that reports it (a reader may pick a more
        precise one than the key's)."""
        try:
            self.read(raw)
        except (TypeError, ValueError) as exc:
            text = str(exc).strip()
            where = f"DJANGO_JOBS[{self.name!r}]"
            message = where + text if text.startswith("[") else f"{where} {text}"
            return message, getattr(exc, "check_id", self.check_id)
        return None

    def value_in(self, raw: dict[str, Any]) -> T:
        """This key's value in the ``DJANGO_JOBS`` dict ``raw`` (its default when
        absent); ``ValueError``/``TypeError`` when it does not read."""
        return self.read(raw[self.name]) if self.name in raw else self.default_value


class JobsSettings:
    """``DJANGO_JOBS``, one typed attribute per key (SPEC section 11)."""

    DEFAULT_QUEUE: Setting[str] = Setting("default", _name, "E002", "For example 'default'.")
    DEFAULT_PRIORITY: Setting[int] = Setting(
        0,
        _priority,
        "E003",
        "Use an integer in [-100, 100] or 'critical', 'high', 'normal', 'low'.",
    )
    DEFAULT_MAX_RETRIES: Setting[int] = Setting(
        3, _integer(0, "an integer >= 0"), "E004", "For example 3."
    )
    DEFAULT_RETRY_DELAY: Setting[float] = Setting(
        60.0,
        _seconds(0, strict=False, wanted="a finite number of seconds >= 0 or a timedelta"),
        "E005",
        "For example 60 or timedelta(minutes=1).",
    )
    DEFAULT_RETRY_BACKOFF: Setting[float] = Setting(
        2.0, _factor, "E006", "2.0 doubles the delay at every retry; 1 keeps it constant."
    )
    DEFAULT_RETRY_JITTER: Setting[bool] = Setting(
        True, _flag, "E021", "True spreads retries by a random factor in [0.5, 1.5]."
    )
    MAX_RETRY_DELAY: Setting[float] = Setting(
        3600.0,
        _seconds(0, strict=False, wanted="a finite number of seconds >= 0 or a timedelta"),
        "E007",
        "For example 3600 or timedelta(hours=1).",
    )
    DEFAULT_TIMEOUT: Setting[float | None] = Setting(
        None,
        _optional_seconds(0, wanted="None or a finite, positive number of seconds or timedelta"),
        "E008",
        "For example 300.",
    )
    DEAD_LETTER_QUEUE: Setting[str] = Setting(
        "dead-letter", _name, "E009", "The default is 'dead-letter'."
    )
    HEARTBEAT_INTERVAL: Setting[float] = Setting(
        5.0,
        _seconds(0, strict=True, wanted="a finite, positive number of seconds"),
        "E010",
        "For example 5.",
    )
    # Seconds without a heartbeat before a worker counts as dead.
    WORKER_TIMEOUT: Setting[float] = Setting(
        30.0,
        _seconds(0, strict=True, wanted="a finite, positive number of seconds"),
        "E011",
        "For example 30.",
    )
    # Seconds between claims when idle (LISTEN wakes workers sooner on PostgreSQL).
    POLL_INTERVAL: Setting[float] = Setting(
        1.0,
        _seconds(0, strict=False, wanted="a finite number of seconds >= 0"),
        "E018",
        "For example 1.",
    )
    # Age of finished jobs the workers prune, in seconds; None keeps them. A bad value
    # reads as None: a typo never deletes anything.
    RETENTION: Setting[float | None] = Setting(
        timedelta(days=7),
        _optional_seconds(0, wanted="None (keep forever) or a positive timedelta"),
        "E012",
        "For example timedelta(days=7).",
        fallback=None,
    )
    # Email and webhooks (SPEC 10); E013 shape, E025 URL, E026 events, E027 secret.
    NOTIFICATIONS: Setting[NotificationSettings] = Setting(
        {}, _notifications, "E013", "See docs/notifications.md."
    )
    NOTIFICATIONS_QUEUE: Setting[str] = Setting(
        "notifications", _name, "E023", "The default is 'notifications'."
    )
    # The site's address, for links in notifications ("https://example.com"); None: the
    # Sites framework's current site when installed, else no link.
    BASE_URL: Setting[str | None] = Setting(
        None, _base_url, "E028", "For example 'https://jobs.example.com'."
    )
    HEALTH: Setting[HealthSettings] = Setting(
        {},
        _health,
        "E024",
        "For example {'MIN_WORKERS': 2, 'SCHEDULE_LAG': 60, 'MAX_PENDING_AGE': 600}.",
    )
    API_PERMISSION_CLASSES: Setting[list[str]] = Setting(
        ["rest_framework.permissions.IsAdminUser"],
        _dotted_paths,
        "E014",
        "For example ['rest_framework.permissions.IsAdminUser'].",
    )
    # The JSON of a job's args, kwargs and metadata together, in bytes; None = no limit.
    MAX_PAYLOAD_BYTES: Setting[int | None] = Setting(
        1_048_576,
        _optional_integer(1, "a positive integer or None"),
        "E015",
        "For example 1_048_576 (1 MiB).",
    )
    EAGER: Setting[bool] = Setting(False, _flag, "E016", "EAGER runs jobs inline, for tests.")
    # Database alias of the job tables; None = the router's choice.
    DATABASE: Setting[str | None] = Setting(None, _alias, "E017", "Use an alias from DATABASES.")
    # Seconds between two progress writes of one job.
    PROGRESS_THROTTLE: Setting[float] = Setting(
        0.5,
        _seconds(0, strict=False, wanted="a finite number of seconds >= 0"),
        "E018",
        "For example 0.5.",
    )
    SHUTDOWN_TIMEOUT: Setting[float] = Setting(
        30.0,
        _seconds(0, strict=False, wanted="a finite number of seconds >= 0"),
        "E018",
        "For example 30.",
    )
    CLAIM_BATCH_SIZE: Setting[int] = Setting(
        1000, _integer(1, "a positive integer"), "E019", "For example 100."
    )
    # A schedule's due time fired later than this counts as missed (misfire_policy).
    MISFIRE_GRACE: Setting[float] = Setting(
        60.0,
        _seconds(0, strict=False, wanted="a finite number of seconds >= 0 or a timedelta"),
        "E022",
        "For example 60: a schedule fired up to a minute late still counts as on time.",
    )

    def __init__(self) -> None:
        self._cache: dict[str, Any] = {}

    @classmethod
    def keys(cls) -> list[Setting[Any]]:
        """Every key, in the order above."""
        return [value for value in vars(cls).values() if isinstance(value, Setting)]

    def raw(self) -> dict[str, Any]:
        """``settings.DJANGO_JOBS`` as the project wrote it ({} when absent or not a dict)."""
        raw = getattr(django_settings, "DJANGO_JOBS", None)
        return raw if isinstance(raw, dict) else {}

    def value(self, setting: Setting[T]) -> T:
        try:
            return self._cache[setting.name]
        except KeyError:
            pass
        raw = self.raw()
        try:
            value = setting.value_in(raw)
        except (TypeError, ValueError):  # reported by the system checks
            value = setting.fallback
        self._cache[setting.name] = value
        return value

    def clear_cache(self, **kwargs: Any) -> None:
        if kwargs.get("setting") in (None, "DJANGO_JOBS"):
            self._cache.clear()


jobs_settings = JobsSettings()
setting_changed.connect(jobs_settings.clear_cache, dispatch_uid="django_jobs.settings_cache")
