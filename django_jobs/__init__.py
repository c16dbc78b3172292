"""Background jobs for Django, from the database.

Public API: ``job``, ``register_task``, ``trigger``, ``jobs``, ``Priority``, ``JobStatus``,
``progress``, ``current_job``, ``Retry``, ``PermanentError``.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__version__ = "0.1.0.dev0"

__all__ = [
    "JobCancelled",
    "JobStatus",
    "PermanentError",
    "Priority",
    "Retry",
    "TaskNotFound",
    "current_job",
    "job",
    "jobs",
    "progress",
    "register_task",
    "trigger",
]

from .enums import JobStatus, Priority
from .exceptions import JobCancelled, PermanentError, Retry, TaskNotFound
from .execution.context import current_job, progress

_LAZY = {
    # These import models or django.tasks, which need the app registry ready.
    "job": ("registry", "job"),
    "register_task": ("registry", "register_task"),
    "trigger": ("registry", "trigger"),
    "jobs": ("manager", "jobs"),
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module, attr = _LAZY[name]
        return getattr(import_module(f".{module}", __name__), attr)
    raise AttributeError(f"module 'django_jobs' has no attribute {name!r}")
