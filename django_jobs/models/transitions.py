"""A held job's own state changes, on ``Job``: started, completed, failed (a retry with
backoff, or the dead-letter queue), cancelled. Each is guarded by the job's lease, so a
worker that lost the job can never overwrite the new owner's outcome, and a job whose
cancel was requested while it was held always ends cancelled.
"""

from __future__ import annotations

from contextlib import nullcontext
from datetime import datetime
from typing import Any

from django.db import (
    models,
    router,
    transaction,
)
from django.db.models import Case, F, Value, When
from django.db.models.functions import Greatest
from django.utils import timezone

from ..conf import jobs_settings
from ..enums import HELD_STATUSES, JobStatus
from ..errorgroups import error_group
from . import notices
from .functions import DbNow, db_now
from .rollup import CANCELLED, COMPLETED, FAILED, RAN, RETRIED, WAITED, Observation, rollups
from .workflow import job_finished


class JobTransitions(models.Model):
    """A held job's own state changes, each guarded by its lease (mixed into ``Job``)."""

    # The fields of Job these use (declared on Job).
    queue: str
    task_name: str
    scheduled_at: datetime | None
    original_queue: str
    lease: str | None
    batch_id: int | None
    started_at: datetime | None
    worker_id: str | None
    worker_ids: list[str]
    errors: list[dict[str, Any]]

    class Meta:
        abstract = True

    def _guarded(self):
        manager: Any = type(self)._default_manager  # Job's: the fields below are Job's
        return manager.using(self._state.db or router.db_for_write(type(self))).filter(
            pk=self.pk, lease=self.lease, status__in=HELD_STATUSES
        )

    def _finish(self, changes: dict, outcome: str, qs=None, notice=None) -> bool:
        """Apply ``changes`` that end the job, then advance its workflow, atomically.

        A job nobody depends on and outside any batch finishes in one UPDATE. The
        ``has_dependents=False`` condition is read by that UPDATE itself: a dependant
        enqueued since this job was claimed sets the flag under the row lock, so it can
        never be missed. ``qs``: the guarded row with more conditions. ``notice``: the
        ``(event, payload)`` a notification channel wants, raised in the same
        transaction (the one UPDATE then gets a transaction of its own).
        """
        changes = {**changes, "unique_active": None}
        qs = qs if qs is not None else self._guarded()
        db = qs.db
        if not self.batch_id:
            with transaction.atomic(using=db) if notice else nullcontext():
                if qs.filter(has_dependents=False).update(**changes):
                    if notice:
                        notices.record(db, notice[0], [notice[1]])
                    return True

        with transaction.atomic(using=db):
            row = qs.select_for_update().values_list("has_dependents", "batch_id").first()
            if row is None:
                return False  # the lease was lost
            qs.update(**changes)
            job_finished(self.pk, outcome, batch_id=row[1], has_dependents=row[0], db=db)
            if notice:
                notices.record(db, notice[0], [notice[1]])
        return True

    def _finished_at(self):
        """When an outcome is written: the database's clock, never before ``started_at``
        (which the executor derives from the claim's database time)."""
        if self.started_at is None:
            return DbNow()
        return Greatest(DbNow(), Value(self.started_at, output_field=models.DateTimeField()))

    def completion_changes(self, result: Any, finished_at: datetime) -> dict[str, Any]:
        """What recording this job's success writes, alone (``set_completed``) or with
        others (``JobQuerySet.complete_many``, whose PostgreSQL statement writes the same
        columns). ``finished_at`` is a value read from the database clock, so the
        instance (and the TaskResult sent with task_finished) carries what is stored."""
        return {
            "status": JobStatus.COMPLETED,
            "result": result,
            "finished_at": finished_at,
            "started_at": self.started_at,
            "progress": 1.0,
            "lease": None,
            "unique_active": None,
            "worker_ids": [*self.worker_ids, self.worker_id],
        }

    def count_outcome(self, kind: str, finished: datetime | None = None) -> None:
        """Count this attempt's outcome for the metrics, and how long it ran and waited
        (``models/rollup.py``), once the transaction that recorded it commits. Call it
        with the job's fields as they were while it was held."""
        db = self._state.db or router.db_for_write(type(self))
        rollups.record_many_on_commit(db, self.observations(kind, finished))

    def observations(self, kind: str, finished: datetime | None = None) -> list[Observation]:
        """What this attempt's outcome counts: the outcome, and when it started, how long
        it ran and how long it waited first."""
        seen: list[Observation] = [(self.queue, self.task_name, kind, None)]
        if self.started_at is not None:
            end = finished if finished is not None else timezone.now()
            seen.append((self.queue, self.task_name, RAN, (end - self.started_at).total_seconds()))
            if self.scheduled_at is not None:
                waited = (self.started_at - self.scheduled_at).total_seconds()
                seen.append((self.queue, "", WAITED, waited))
        return seen

    def set_completed(self, result: Any) -> bool:
        """Record success; False if this worker no longer holds the lease."""
        now = db_now(self._guarded().db)
        finished = max(now, self.started_at) if self.started_at else now
        changes = self.completion_changes(result, finished)
        notice = notices.job_notice(self, "completed", status=JobStatus.COMPLETED)
        done = self._finish(changes, JobStatus.COMPLETED, notice=notice)
        if done:
            self.count_outcome(COMPLETED, finished)
            for key, value in changes.items():
                setattr(self, key, value)
        return done

    def set_failed(
        self,
        error: dict,
        *,
        retry_in: float | None,
        retry_status: str = JobStatus.RETRYING,
        count_retry: bool = True,
        keep_place: bool = False,
    ) -> bool:
        """Record a failed attempt: retry after ``retry_in`` seconds, or fail for good
        (``retry_in=None``) and move to the dead-letter queue. ``keep_place``: a job
        going back at once keeps its ``scheduled_at``, and so its place in the queue (a
        lost job is not sent behind everything enqueued since it was first due).

        A job whose cancel was requested while it was held ends ``cancelled`` instead
        (with this failure in its errors), whatever ``retry_in`` says: a cancel is a cancel.
        """
        worker_ids = [*self.worker_ids, self.worker_id] if self.worker_id else self.worker_ids
        errors = [*self.errors, error]
        common: dict[str, Any] = {
            "error": error,
            "errors": errors,
            "lease": None,
            "worker_ids": worker_ids,
        }
        if self.started_at is not None:
            common["started_at"] = self.started_at
        if retry_in is not None:
            changes: dict[str, Any] = dict(
                status=retry_status,
                retry_count=F("retry_count") + (1 if count_retry else 0),
                worker_id=None,
                **common,
            )
            if not (keep_place and retry_in == 0):
                changes["scheduled_at"] = DbNow(retry_in)
            # A retry notifies; a loss (count_retry=False) is the worker_lost event's.
            notice = (
                notices.job_notice(self, "retrying", status=retry_status, error=error)
                if count_retry
                else None
            )
            # The flag is read by the UPDATE itself: a cancel committed before it keeps
            # the job from going back to the queue; one committed after it finds the job
            # waiting for its retry and cancels it at once.
            guarded = self._guarded()
            with transaction.atomic(using=guarded.db) if notice else nullcontext():
                done = bool(guarded.filter(cancel_requested=False).update(**changes))
                if done and notice:
                    notices.record(guarded.db, notice[0], [notice[1]])
        else:
            dlq = jobs_settings.DEAD_LETTER_QUEUE
            changes = dict(
                status=JobStatus.FAILED,
                error_group=error_group(error),
                finished_at=self._finished_at(),
                original_queue=self.queue if self.queue != dlq else self.original_queue,
                queue=dlq,
                **common,
            )
            notice = notices.job_notice(self, "failed", status=JobStatus.FAILED, error=error)
            done = self._finish(
                changes,
                JobStatus.FAILED,
                qs=self._guarded().filter(cancel_requested=False),
                notice=notice,
            )
        if not done and self._guarded().filter(cancel_requested=True).exists():
            return self.set_cancelled_while_running("cancelled", extra=common)
        if done:
            self.count_outcome(RETRIED if retry_in is not None else FAILED)
            self.refresh_from_db()
        return done

    def set_cancelled_while_running(self, reason: str, extra: dict | None = None) -> bool:
        """Record that the held job stopped (or never started) because it was cancelled.
        The reason given to ``cancel()`` is kept; ``reason`` only fills it when none was
        recorded. ``extra``: more columns to write (the error of a last failed attempt)."""
        worker_ids = [*self.worker_ids, self.worker_id] if self.worker_id else self.worker_ids
        changes = {
            "status": JobStatus.CANCELLED,
            "finished_at": self._finished_at(),
            "cancel_reason": Case(
                When(cancel_reason="", then=Value(reason)),
                default=F("cancel_reason"),
                output_field=models.TextField(),
            ),
            "lease": None,
            "worker_ids": worker_ids,
        }
        changes.update(extra or {})
        if self.started_at is not None:
            changes["started_at"] = self.started_at
        notice = notices.job_notice(
            self, "cancelled", status=JobStatus.CANCELLED, error=changes.get("error")
        )
        done = self._finish(changes, JobStatus.CANCELLED, notice=notice)
        if done:
            self.count_outcome(CANCELLED)
            self.refresh_from_db()
        return done

    def release_unique_key(self) -> bool:
        """Give the held job's unique key up before it finishes, so the next job of that
        key can be enqueued while this one runs (a digest's sender, once it has taken its
        rows). False if this worker no longer holds the job."""
        return bool(self._guarded().update(unique_active=None))

    def set_progress(self, fraction: float, message: str, details: dict) -> bool | None:
        """Write progress; returns whether a cancel was requested (None: lease lost)."""
        qs = self._guarded()
        n = qs.update(progress=fraction, progress_message=message, progress_details=details)
        if not n:
            return None
        return qs.filter(cancel_requested=True).exists()
