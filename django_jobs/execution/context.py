"""What a running job can reach: ``current_job()`` and ``progress()``."""

from __future__ import annotations

import contextvars
import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from .. import signals
from ..conf import jobs_settings
from ..exceptions import JobCancelled

logger = logging.getLogger("django_jobs.execution")


@dataclass
class RunningJob:
    job: Any
    eager: bool = False
    last_write: float = field(default=float("-inf"))  # the first write is never throttled
    cancelled: bool = False
    interruptible: bool = False
    # The cancel arrived as a signal, at any instruction of the job's code (maybe in the
    # middle of a database query): its connections cannot be trusted afterwards.
    interrupted: bool = False


_current: contextvars.ContextVar[RunningJob | None] = contextvars.ContextVar(
    "django_jobs_current", default=None
)


# A cancel of this job id arrived while its code could not be interrupted yet (it was
# starting: signal receivers, task lookup): raised as soon as it can be.
_pending_interrupt: int | None = None


def interrupt_current(signum=None, frame=None, job_id: int | None = None) -> None:
    """Signal handler: raise ``JobCancelled`` in the running job's code, if any is running;
    remember it for ``job_id`` if that job's code is not running yet."""
    global _pending_interrupt
    state = _current.get()
    if state is not None and state.interruptible:
        state.cancelled = state.interrupted = True
        raise JobCancelled(f"job {state.job.pk} was cancelled")
    _pending_interrupt = job_id


def become_interruptible(state: RunningJob) -> None:
    """From here on the job's code may be interrupted; a cancel that arrived while it was
    starting is raised now."""
    global _pending_interrupt
    state.interruptible = True
    if _pending_interrupt is not None and _pending_interrupt == state.job.pk:
        _pending_interrupt = None
        state.cancelled = state.interrupted = True
        raise JobCancelled(f"job {state.job.pk} was cancelled")


def current_job():
    """The ``Job`` being run in this context, or None outside a job."""
    state = _current.get()
    return state.job if state else None


def progress(fraction: float, message: str = "", **details: Any) -> None:
    """Record progress of the running job (0.0..1.0), throttled.

    Raises ``JobCancelled`` if the job was cancelled. Outside a job it does nothing.
    """
    state = _current.get()
    if state is None:
        return
    try:
        fraction = float(fraction)
    except (TypeError, ValueError):
        raise ValueError(f"progress must be a number in [0, 1], got {fraction!r}") from None
    if fraction != fraction or fraction < 0.0 or fraction > 1.0:
        raise ValueError(f"progress must be in [0, 1], got {fraction!r}")
    job = state.job
    if state.cancelled:
        raise JobCancelled(f"job {job.pk} was cancelled")
    job.progress, job.progress_message, job.progress_details = fraction, str(message), details
    now = time.monotonic()
    if fraction < 1.0 and now - state.last_write < jobs_settings.PROGRESS_THROTTLE:
        return
    state.last_write = now

    try:
        cancel = job.set_progress(fraction, str(message), _jsonable(details))
    except JobCancelled:  # the worker's cancel signal landed during the write
        raise
    except Exception:  # progress is best effort; the job goes on...
        if state.cancelled:  # ...unless a cancel landed in the write and was wrapped
            raise JobCancelled(f"job {job.pk} was cancelled") from None
        logger.exception("Could not record progress of job %s", job.pk)
        return
    signals.send(signals.job_progress, job, progress=fraction, message=message, details=details)
    if cancel:
        state.cancelled = True
        raise JobCancelled(f"job {job.pk} was cancelled")


def _jsonable(details: dict) -> dict:
    try:
        json.dumps(details)
        return details
    except (TypeError, ValueError):
        return {k: repr(v) for k, v in details.items()}


class activate:  # noqa: N801 - used like a function: `with activate(job):`
    """Context manager making ``job`` the current job."""

    def __init__(self, job, eager: bool = False):
        self.state = RunningJob(job=job, eager=eager)

    def __enter__(self) -> RunningJob:
        self.token = _current.set(self.state)
        return self.state

    def __exit__(self, *exc) -> None:
        _current.reset(self.token)
