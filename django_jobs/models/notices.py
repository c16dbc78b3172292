"""Job and system events for notifications (SPEC 10), raised in the transaction that
records them.

The models only ask the settings whether some channel wants an event and, if one does,
send ``signals.job_events_recorded`` / ``system_event_recorded`` inside the outcome's
transaction. ``django_jobs.notifications`` (wired in ``AppConfig.ready()``) turns them
into deliveries in that same transaction: a rolled-back outcome notifies nobody, and a
job nobody wants to hear about costs one settings lookup.
"""

from __future__ import annotations

import logging
from typing import Any

from django.db import connections

from .. import signals
from ..conf import jobs_settings

logger = logging.getLogger("django_jobs.notifications")

# A traceback in a notification keeps its last this many characters (the innermost
# frames and the error).
TRACEBACK_CHARS = 8000


def wants(event: str, queue: str | None = None, task: str | None = None) -> bool:
    return jobs_settings.NOTIFICATIONS.wants(event, queue, task)


def listens_to(event: str) -> bool:
    """Whether some channel has ``event`` at all: one look for a whole flush of jobs."""
    return jobs_settings.NOTIFICATIONS.listens_to(event)


def error_summary(error: dict | None) -> dict[str, Any] | None:
    if not error:
        return None
    traceback = error.get("traceback") or ""
    if len(traceback) > TRACEBACK_CHARS:
        traceback = "…" + traceback[-TRACEBACK_CHARS:]
    return {
        "type": error.get("type", ""),
        "message": error.get("message", ""),
        "traceback": traceback,
    }


def _iso(value) -> str | None:
    return value.isoformat() if value is not None and hasattr(value, "isoformat") else None


def job_payload(job, *, status: str, queue: str | None = None, error: dict | None = None):
    """What a notification says of ``job``: SPEC 10's fields (``queue`` is the queue it
    ran in, also for a dead-lettered job) and a few more a reader wants."""
    return {
        "id": job.pk,
        "task": job.task_name,
        "queue": queue or job.queue,
        "status": str(status),
        "attempts": job.attempts,
        "max_retries": job.max_retries,
        "error": error_summary(error if error is not None else job.error),
        "metadata": job.metadata or {},
        "tags": list(job.tags or []),
        "created_at": _iso(job.created_at),
    }


def job_notice(job, event: str, *, status: str, queue: str | None = None, error=None):
    """``(event, payload)`` when a channel wants ``event`` for ``job``, else None. Built
    from the held job before its outcome is written (its queue is the one it ran in)."""
    ran_in = queue or job.queue
    if not wants(event, ran_in, job.task_name):
        return None
    return event, job_payload(job, status=status, queue=ran_in, error=error)


def record(db: str, event: str, payloads: list[dict]) -> None:
    """Raise job events; call it inside the transaction that wrote their outcomes."""
    if payloads:
        _send(signals.job_events_recorded, db, event=event, jobs=payloads)


def _send(signal, db: str, **kwargs) -> None:
    """A failing receiver is logged and never fails the outcome, unless the database
    undid the whole transaction meanwhile (a MySQL deadlock): then the outcome is gone
    too, and its write must fail (to be tried again) rather than look done."""
    for receiver, result in signal.send_robust(sender=None, using=db, **kwargs):
        if isinstance(result, Exception):
            if connections[db].needs_rollback:
                raise result
            logger.error(
                "Notification receiver %r failed",
                receiver,
                exc_info=(type(result), result, result.__traceback__),
            )


def record_rows(db: str, event: str, jobs) -> None:
    """Raise ``event`` for each job of the QuerySet ``jobs`` a channel wants, read as
    they are now in the transaction that changed them (bulk cancels)."""
    payloads = [
        job_payload(job, status=job.status, queue=job.original_queue or job.queue)
        for job in jobs
        if wants(event, job.original_queue or job.queue, job.task_name)
    ]
    record(db, event, payloads)


def record_system(db: str, event: str, subject: str, data: dict[str, Any]) -> None:
    """Raise a system event (``worker_lost``, ``schedule_missed``, ``queue_backlog``)
    about ``subject``; it is sent once per incident."""
    if wants(event):
        _send(signals.system_event_recorded, db, event=event, subject=subject, data=data)
