"""Jobs whose process died: rescued from dead workers, or lost with a crashed executor.

A job is *lost* when the process running it dies under it: its worker stopped
heartbeating (SIGKILL, OOM, a lost host), or its executor process crashed. A loss is
rarely the job's fault, so it does not use the retry budget: the job goes back to
pending at once, in its place in the queue (its ``scheduled_at`` is kept), with a
``WorkerLost`` (or ``ExecutorCrashed``) entry in its errors. A job
lost ``MAX_LOST`` times is probably what kills its processes (a poison job): it fails for
good and goes to the dead-letter queue instead of taking process after process down.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.db import connections, transaction

from ..conf import jobs_settings, to_seconds
from ..enums import JobStatus
from ..exceptions import WorkerLost
from ..models import Job, notices
from ..wakeups import notify
from .policy import error_entry
from .runner import record_failure

logger = logging.getLogger("django_jobs.worker")

# A job lost this many times fails for good (it may be what kills its processes).
MAX_LOST = 3
# The error types that count as a loss.
LOSS_TYPES = ("WorkerLost", "ExecutorCrashed")


def _mark_lost(job, exc: BaseException) -> tuple[dict, float | None] | None:
    """Write the loss of a held job (back to pending, or failed for good at MAX_LOST);
    returns ``(error entry, retry delay)``, or None if the job is no longer held there.
    A job whose cancel was requested ends cancelled."""
    entry = error_entry(exc, job=job)
    entry["traceback"] = ""
    lost = sum(1 for e in job.errors if e.get("type") in LOSS_TYPES) + 1
    delay = 0.0 if lost < MAX_LOST else None
    if job.set_failed(
        entry, retry_in=delay, retry_status=JobStatus.PENDING, count_retry=False, keep_place=True
    ):
        return entry, delay
    return None


def record_lost(job, exc: BaseException) -> bool:
    """Record that the process running ``job`` died under it, and send the signals."""
    marked = _mark_lost(job, exc)
    if marked is None:
        return False
    record_failure(job, *marked)
    return True


def rescue_stalled(
    db: str,
    older_than: float | timedelta | None = None,
    *,
    worker_id: str | None = None,
    chunk: int = 100,
) -> int:
    """Rescue jobs held by workers that stopped heartbeating; returns how many.

    ``older_than`` (heartbeat age, default ``WORKER_TIMEOUT``) is never taken below two
    heartbeat intervals; ``worker_id`` rescues what a restarted worker of that id held
    before, alive or not.
    """

    cutoff = None
    if older_than is not None:
        # Below two heartbeats a live worker would look dead and its jobs run twice.
        floor = 2 * jobs_settings.HEARTBEAT_INTERVAL
        cutoff = timedelta(seconds=max(to_seconds(older_than, "older_than"), floor))
    conn = connections[db]
    objects = Job.objects.using(db)
    rescued = 0
    while True:
        with transaction.atomic(using=db):
            if worker_id is not None:
                qs = objects.held_by(worker_id).order_by("id")
            else:
                qs = objects.stalled(cutoff).order_by("id")
            if conn.features.has_select_for_update_skip_locked:
                qs = qs.select_for_update(skip_locked=True)
            batch = list(qs[:chunk])
            done = []
            lost: dict[str, list[int]] = {}
            for job in batch:
                exc = WorkerLost(
                    f"worker {job.worker_id} stopped heartbeating while running the job"
                    if worker_id is None
                    else f"worker {job.worker_id} restarted while running the job"
                )
                lost_by = job.worker_id
                marked = _mark_lost(job, exc)
                if marked is not None:
                    done.append((job, *marked))
                    lost.setdefault(lost_by or "", []).append(job.pk)
            for lost_by, ids in lost.items():
                # Once per lost worker: the receiver opens one incident per worker id.
                notices.record_system(
                    db,
                    "worker_lost",
                    lost_by,
                    {"worker_id": lost_by, "jobs": ids, "restarted": worker_id is not None},
                )
        for job, entry, delay in done:
            rescued += 1
            logger.warning(
                "Rescued job %s from dead worker %s",
                job.pk,
                entry.get("worker_id"),
                extra={"action": "job_rescued", "job_id": job.pk},
            )
            record_failure(job, entry, delay)
        if len(batch) < chunk:
            break
    if rescued:
        notify(db, "*")
    return rescued
