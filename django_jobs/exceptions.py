"""Exceptions users catch or raise."""

from __future__ import annotations

from datetime import timedelta

from django.core.exceptions import ImproperlyConfigured  # noqa: F401  (re-exported)


class JobsError(Exception):
    """Base class of django_jobs errors."""


class TaskNotFound(JobsError, LookupError):
    """No task is registered under that name."""

    def __init__(self, name: str):
        self.name = name
        super().__init__(
            f"No task named {name!r} is registered. Decorate it with @job (or @task with "
            "django_jobs.backend.JobsBackend) in a jobs.py or tasks.py of an installed app."
        )


class JobCancelled(JobsError):
    """Raised inside a running job (by ``progress()``) when the job was cancelled."""


class Retry(Exception):
    """Raise inside a job to force another attempt, optionally after ``delay``."""

    def __init__(self, delay: float | timedelta | None = None, message: str = ""):
        self.delay = delay.total_seconds() if isinstance(delay, timedelta) else delay
        super().__init__(message or "retry requested")


class PermanentError(Exception):
    """Raise inside a job to fail it at once, without any retry."""


class JobTimeout(TimeoutError):
    """The job ran longer than its timeout and was stopped."""


class WorkerLost(ConnectionError):
    """The worker running the job died or stopped heartbeating (transient)."""
