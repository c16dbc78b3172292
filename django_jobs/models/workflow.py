"""What a job reaching a final state does to the jobs around it: workflow bookkeeping.

Called inside the transaction that finished the job, so a dependant is released (or
cancelled) and a batch advanced atomically with the job's own outcome. What a finished
batch triggers afterwards (enqueueing its ``on_complete``) is the ``batch_finished``
signal's receiver's business.
"""

from __future__ import annotations

import logging

from django.apps import apps
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from .. import signals
from ..enums import JobStatus
from ..wakeups import notify
from . import notices
from .batch import Batch
from .functions import DbNow
from .rollup import CANCELLED, rollups

logger = logging.getLogger("django_jobs.workflows")

OUTCOME_FIELD = {
    JobStatus.COMPLETED: "completed",
    JobStatus.FAILED: "failed",
    JobStatus.CANCELLED: "cancelled",
}


def job_finished(
    job_id: int, outcome: str, *, batch_id: int | None, has_dependents: bool, db: str
) -> None:
    """Release or cancel dependants and advance the batch of a job that just finished."""
    if has_dependents:
        if outcome == JobStatus.COMPLETED:
            release_dependents(job_id, db)
        else:
            cancel_dependents([job_id], f"dependency {job_id} {outcome}", db)
    if batch_id:
        advance_batch(batch_id, outcome, db)


def release_dependents(job_id: int, db: str) -> list[int]:
    """Waiting jobs whose dependencies are now all completed become pending."""
    Job, JobDependency = _models()

    waiting = list(
        Job.objects.using(db)
        .waiting()
        .filter(
            pk__in=JobDependency.objects.using(db).filter(depends_on_id=job_id).values("job_id")
        )
        .select_for_update()
        .values_list("pk", flat=True)
    )
    if not waiting:
        return []
    blocked = set(
        JobDependency.objects.using(db)
        .filter(job_id__in=waiting)
        .exclude(depends_on__status=JobStatus.COMPLETED)
        .values_list("job_id", flat=True)
    )
    ready = [pk for pk in waiting if pk not in blocked]
    if ready:
        Job.objects.using(db).filter(pk__in=ready, status=JobStatus.WAITING).update(
            status=JobStatus.PENDING
        )
        for queue in set(
            Job.objects.using(db).filter(pk__in=ready).values_list("queue", flat=True)
        ):
            notify(db, queue)
    return ready


def cancel_dependents(job_ids: list[int], reason: str, db: str) -> list[int]:
    """Cancel every job waiting on ``job_ids``, transitively, recording ``reason``."""

    Job, JobDependency = _models()

    cancelled: list[int] = []
    frontier = list(job_ids)
    while frontier:
        rows = list(
            Job.objects.using(db)
            .waiting()
            .filter(
                pk__in=JobDependency.objects.using(db)
                .filter(depends_on_id__in=frontier)
                .values("job_id")
            )
            .select_for_update()
            .values_list("pk", "batch_id", "has_dependents", "queue", "task_name")
        )
        if not rows:
            break
        ids = [pk for pk, *_ in rows]
        Job.objects.using(db).filter(pk__in=ids, status=JobStatus.WAITING).update(
            status=JobStatus.CANCELLED,
            finished_at=DbNow(),
            cancel_reason=reason,
            unique_active=None,
        )
        for _pk, batch_id, _has, queue, task in rows:
            rollups.record_on_commit(db, queue, task, CANCELLED)
            if batch_id:
                advance_batch(batch_id, JobStatus.CANCELLED, db)
        wanted = [pk for pk, _, _, queue, task in rows if notices.wants("cancelled", queue, task)]
        if wanted:
            notices.record_rows(db, "cancelled", Job.objects.using(db).filter(pk__in=wanted))
        cancelled += ids
        frontier = [pk for pk, _, has, _, _ in rows if has]
    if cancelled:
        _signal_cancelled_on_commit(cancelled, reason, db)
    return cancelled


def _signal_cancelled_on_commit(ids: list[int], reason: str, db: str) -> None:
    if not signals.job_cancelled.has_listeners():
        return

    def send():
        Job, _ = _models()

        for job in Job.objects.using(db).filter(pk__in=ids):
            signals.send(signals.job_cancelled, job, reason=reason)

    transaction.on_commit(send, using=db)


def reopen_batches(jobs: list[tuple[int, str]], db: str) -> None:
    """Jobs of batches, ``(batch_id, status)`` pairs, going from finished (failed,
    cancelled, or completed for a requeue) back to pending (``retry()``): each leaves its
    batch's count, and the batch is unfinished again until it finishes once more. Its
    ``on_complete`` ran already and does not run again."""

    counts: dict[int, dict[str, int]] = {}
    for batch_id, status in jobs:
        field = OUTCOME_FIELD[JobStatus(status)]
        per_batch = counts.setdefault(batch_id, {})
        per_batch[field] = per_batch.get(field, 0) + 1
    for batch_id in sorted(counts):  # one lock order, as advance_batch
        changes = {field: F(field) - n for field, n in counts[batch_id].items()}
        Batch.objects.using(db).filter(pk=batch_id).update(finished_at=None, **changes)


def advance_batch(batch_id: int, outcome: str, db: str, count: int = 1) -> None:
    """Count ``count`` finished jobs; the last one to finish enqueues ``on_complete``
    (once). The worker's batched completion counts a whole flush in one call."""

    field = OUTCOME_FIELD[JobStatus(outcome)]
    Batch.objects.using(db).filter(pk=batch_id).update(**{field: F(field) + count})
    # The row lock taken by the UPDATE serialises finishers: exactly one of them sees
    # the batch complete while finished_at is still empty.
    batch = Batch.objects.using(db).select_for_update().filter(pk=batch_id).first()
    if batch is None or batch.finished_at is not None:
        return
    if batch.finished_count < batch.total:
        return
    finish_batch(batch, db)


def finish_batch(batch, db: str) -> None:
    """Mark ``batch`` finished (once) and, if it has an ``on_complete`` task that was never
    enqueued, send ``batch_finished`` in the finishing transaction: its receiver (wired in
    ``AppConfig.ready()``) enqueues the callback, so that a rolled-back outcome enqueues
    nothing and the models need not know the manager."""

    batch.finished_at = timezone.now()
    fire = bool(batch.on_complete) and not batch.on_complete_enqueued
    updated = (
        Batch.objects.using(db)
        .filter(pk=batch.pk, finished_at__isnull=True)
        .update(
            finished_at=batch.finished_at,
            on_complete_enqueued=batch.on_complete_enqueued or fire,
        )
    )
    if updated and fire:
        batch.on_complete_enqueued = True
        signals.batch_finished.send(sender=Batch, batch=batch, using=db)


def _models():
    # job.py imports this module: the models are looked up in the app registry.
    return apps.get_model("django_jobs", "Job"), apps.get_model("django_jobs", "JobDependency")
