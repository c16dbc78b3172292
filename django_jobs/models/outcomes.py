"""How jobs end, or leave a worker, over many jobs at once (on ``JobQuerySet``): cancel,
retry, hand back, batched completion. A single job's own guarded changes are in
``transitions.py``. Every write that ends a held job is guarded by its lease, and a job
whose cancel was requested while it was held always ends cancelled.
"""

from __future__ import annotations

import time
from contextlib import nullcontext
from datetime import UTC, datetime
from json import dumps as _json_dumps
from typing import Any

from django.conf import settings
from django.db import (
    IntegrityError,
    OperationalError,
    connections,
    transaction,
)
from django.db.models import Case, F, Value, When
from django.utils import timezone

from .. import signals
from .._compat import task_finished
from ..enums import HELD_STATUSES, JobStatus
from ..results import send_django_signal
from ..wakeups import notify
from . import notices
from .claiming import JobClaiming, fast_timestamps
from .functions import DbNow, db_now
from .rollup import CANCELLED, COMPLETED, rollups
from .workflow import advance_batch, job_finished, reopen_batches


class JobOutcomes(JobClaiming):
    """State changes over many jobs (part of ``JobQuerySet``)."""

    # -- verbs over many jobs: admin bulk actions and the manager's single-job verbs
    # both land here, so each state change exists once.

    def cancel(
        self, *, terminate: bool = False, reason: str = "cancelled"
    ) -> tuple[list[int], int]:
        """Cancel at once what no worker holds; flag held jobs for their worker.

        Returns (ids cancelled now, number of running jobs flagged). Every unfinished row
        is locked first, so a job moving between held and pending meanwhile (handed
        back, rescued) is seen in exactly one of the two states: a flag is never set on
        a job that just left its worker, and a job never escapes both.
        """
        db = self.db
        for attempt in range(5):
            try:
                ids, flagged = self._cancel(db, terminate, reason)
                break
            except OperationalError as exc:
                # A worker's batched completion locks rows in its own order: PostgreSQL
                # and MySQL break such a deadlock by aborting one side; try again.
                if "deadlock" not in str(exc).lower() or attempt == 4:
                    raise
                time.sleep(0.05 * (attempt + 1))
        _signal_cancelled(self.model, db, ids)
        return ids, flagged

    def _cancel(self, db: str, terminate: bool, reason: str) -> tuple[list[int], int]:
        with transaction.atomic(using=db):
            rows = list(
                self.unfinished()
                .order_by("pk")
                .select_for_update()
                .values_list("id", "status", "batch_id", "has_dependents", "queue", "task_name")
            )
            now_ids = [r for r in rows if r[1] not in HELD_STATUSES]
            held_ids = [r[0] for r in rows if r[1] in HELD_STATUSES]
            ids = [r[0] for r in now_ids]
            if ids:
                self.fresh(db).filter(id__in=ids).cancellable().update(
                    status=JobStatus.CANCELLED,
                    finished_at=DbNow(),
                    cancel_reason=reason,
                    worker_id=None,
                    lease=None,
                    unique_active=None,
                )
                for _pk, _status, _batch, _has, queue, task in now_ids:
                    rollups.record_on_commit(db, queue, task, CANCELLED)
                wanted = [r[0] for r in now_ids if notices.wants("cancelled", r[4], r[5])]
                if wanted:
                    notices.record_rows(db, "cancelled", self.fresh(db).filter(id__in=wanted))
            # Batches in one order (as the workers' writes), so no deadlock between them.
            for pk, _status, batch_id, has_dependents, _queue, _task in sorted(
                now_ids, key=lambda r: (r[2] or 0, r[0])
            ):
                if batch_id or has_dependents:
                    job_finished(
                        pk,
                        JobStatus.CANCELLED,
                        batch_id=batch_id,
                        has_dependents=has_dependents,
                        db=db,
                    )
            flagged = 0
            if held_ids:
                flagged = (
                    self.fresh(db)
                    .filter(id__in=held_ids)
                    .held()
                    .update(
                        cancel_requested=True, terminate_requested=terminate, cancel_reason=reason
                    )
                )
        return ids, flagged

    def retry_now(self, *, completed_too: bool = False) -> int:
        """Failed or cancelled jobs back to pending in their original queue, with a fresh
        retry budget; their error history is kept. A job of a batch leaves the batch's
        failed (or cancelled) count and counts again when it finishes. Workers are woken
        and ``job_enqueued`` is sent for each. ``completed_too``: completed jobs run
        again as well (the admin's ``requeue_jobs``: a finished job, a new attempt)."""
        eligible = self.finished() if completed_too else self.retriable()
        with transaction.atomic(using=self.db):
            rows = list(
                eligible.order_by("pk")
                .select_for_update()
                .values_list("id", "original_queue", "queue", "status", "batch_id")
            )
            if not rows:
                return 0
            ids = [row[0] for row in rows]
            n = self.fresh().filter(id__in=ids)._retry_rows()
            reopen_batches(
                [(batch_id, status) for *_, status, batch_id in rows if batch_id], self.db
            )
            for queue in {orig or queue for _, orig, queue, _, _ in rows}:
                notify(self.db, queue)
        if signals.job_enqueued.has_listeners():
            for job in self.fresh().filter(id__in=ids):
                signals.send(signals.job_enqueued, job)
        return n

    def retry_all(self, *, completed_too: bool = False) -> tuple[int, int]:
        """``retry_now()`` for every failed or cancelled job of this QuerySet (and
        completed ones with ``completed_too``; the others are left alone), skipping those
        whose unique key another unfinished job holds. Returns ``(retried, skipped for
        their unique key)``."""
        try:
            with transaction.atomic(using=self.db):
                return self.retry_now(completed_too=completed_too), 0
        except IntegrityError:  # some unique key is taken: retry the others one by one
            pass
        retried = conflicts = 0
        eligible = self.finished() if completed_too else self.retriable()
        for pk in eligible.values_list("pk", flat=True):
            try:
                with transaction.atomic(using=self.db):
                    retried += self.fresh().filter(pk=pk).retry_now(completed_too=completed_too)
            except IntegrityError:
                conflicts += 1
        return retried, conflicts

    def _retry_rows(self) -> int:
        # The caller chose and locked the rows (failed, cancelled, maybe completed).
        return self.finished().update(
            status=JobStatus.PENDING,
            queue=Case(When(original_queue="", then=F("queue")), default=F("original_queue")),
            original_queue="",
            error_group="",
            retry_count=0,
            scheduled_at=DbNow(),
            started_at=None,
            finished_at=None,
            worker_id=None,
            lease=None,
            progress=0.0,
            progress_message="",
            cancel_requested=False,
            terminate_requested=False,
            cancel_reason="",
            # Unfinished again: it holds its unique key again (IntegrityError if another
            # unfinished job took the key meanwhile).
            unique_active=F("unique_key"),
        )

    def requeue(self) -> int:
        """Delayed or retrying jobs: make them due now."""
        return self.claimable().update(scheduled_at=DbNow(), status=JobStatus.PENDING)

    # -- leaving a worker: handed back, rescued, failed with a retry ----------------------

    def hand_back_held(self, *, started: bool = True) -> int:
        """Give held jobs back to pending (a stopping worker, a killed executor's batch,
        jobs its worker no longer runs): not a failure. ``started=False`` for jobs that
        never began, so their claim does not count as an attempt.

        A job whose cancel was requested while it was held ends ``cancelled`` instead:
        a cancel that returned True is never lost. Returns how many went back to pending.
        """
        changes: dict[str, Any] = {
            "status": JobStatus.PENDING,
            "lease": None,
            "worker_id": None,
            "started_at": None,
        }
        if not started:
            changes["attempts"] = Case(
                When(attempts__gt=0, then=F("attempts") - 1), default=Value(0)
            )
        # The flag is part of the UPDATE's condition: a cancel committed before it keeps
        # the row out (and cancel_flagged() below finishes it); one committed after it
        # finds the job pending and cancels it at once.
        n = self.held().filter(cancel_requested=False).update(**changes)
        self.cancel_flagged()
        return n

    def cancel_flagged(self, reason: str = "cancelled") -> list[int]:
        """Held jobs whose cancel was requested end ``cancelled`` now (their worker let
        go of them before acting on the flag). Returns their ids."""
        db = self.db
        cancelled = []
        for job in self.held().filter(cancel_requested=True).order_by("pk"):
            if job.set_cancelled_while_running(reason):
                cancelled.append(job.pk)
        _signal_cancelled(self.model, db, cancelled)
        return cancelled

    # -- batched outcomes (the worker's executors) ---------------------------------------

    def complete_many(self, done: list) -> set[int]:
        """Record many successes at once: ``done`` is a list of ``(job, result)`` pairs of
        held jobs (``job.started_at`` set by the executor). One statement on PostgreSQL,
        one transaction elsewhere; each row still guarded by its lease. Batches reached by
        these jobs advance once per batch, in the same transaction.

        Returns the ids written. A job that is missing lost its lease, or gained a
        dependant since it was claimed: the caller records it alone (``set_completed``
        takes the locked path that releases dependants).
        """
        if not done:
            return set()

        db = self.db
        conn = connections[db]
        notify = (
            {job.pk for job, _ in done if notices.wants("completed", job.queue, job.task_name)}
            if notices.listens_to("completed")
            else set()
        )
        # One statement needs no transaction of its own; batch counters and notifications
        # must move with it.
        together = (
            conn.vendor != "postgresql" or bool(notify) or any(job.batch_id for job, _ in done)
        )
        finished_at: dict[int, datetime] = {}
        with transaction.atomic(using=db) if together else nullcontext():
            if conn.vendor == "postgresql":
                written = []
                for pk, batch_id, finished in self._complete_many_postgresql(done):
                    written.append((pk, batch_id))
                    finished_at[pk] = finished
            else:
                now = db_now(db)
                written = []
                for job, result in done:
                    finished = max(now, job.started_at) if job.started_at else now
                    if (
                        job._guarded()
                        .filter(has_dependents=False)
                        .update(**job.completion_changes(result, finished))
                    ):
                        written.append((job.pk, job.batch_id))
                        finished_at[job.pk] = finished
            batches: dict[int, int] = {}
            for _pk, batch_id in written:
                if batch_id:
                    batches[batch_id] = batches.get(batch_id, 0) + 1
            for batch_id in sorted(batches):  # one lock order: no deadlock between flushes
                advance_batch(batch_id, JobStatus.COMPLETED, db, count=batches[batch_id])
            if notify:
                notices.record(
                    db,
                    "completed",
                    [
                        notices.job_payload(job, status=JobStatus.COMPLETED)
                        for job, _ in done
                        if job.pk in notify and job.pk in finished_at
                    ],
                )
        counted = []
        for job, result in done:
            if job.pk in finished_at:
                counted += job.observations(COMPLETED, finished_at[job.pk])
                for key, value in job.completion_changes(result, finished_at[job.pk]).items():
                    setattr(job, key, value)
        rollups.record_many_on_commit(db, counted)
        return set(finished_at)

    def _complete_many_postgresql(self, done) -> list[tuple[int, int | None, datetime]]:
        conn = connections[self.db]
        table = conn.ops.quote_name(self.model._meta.db_table)
        rows = [
            {
                "id": job.pk,
                "lease": job.lease,
                "result": result,
                "started_at": job.started_at.isoformat() if job.started_at else None,
            }
            for job, result in done
        ]
        # finished_at from the database clock, never before started_at (which the
        # executor derived from the claim's database time).
        sql = (
            f"UPDATE {table} AS j SET status = %s, result = x.result, "
            "started_at = COALESCE(x.started_at, j.started_at), "
            "finished_at = GREATEST(CLOCK_TIMESTAMP(), COALESCE(x.started_at, j.started_at)), "
            "progress = 1.0, lease = NULL, unique_active = NULL, "
            "worker_ids = j.worker_ids || jsonb_build_array(j.worker_id) "
            "FROM jsonb_to_recordset(%s::jsonb) "
            "AS x(id bigint, lease varchar, result jsonb, started_at timestamptz) "
            "WHERE j.id = x.id AND j.lease = x.lease AND j.status IN (%s, %s) "
            "AND NOT j.has_dependents RETURNING j.id, j.batch_id, j.finished_at"
        )
        params = [JobStatus.COMPLETED, _json_dumps(rows), *HELD_STATUSES]
        with conn.cursor() as cursor:
            fast_timestamps(conn, cursor)
            cursor.execute(sql, params)
            finished = cursor.fetchall()
        if not settings.USE_TZ:  # naive already with Django's adapters; never aware
            finished = [
                (pk, b, timezone.make_naive(f, UTC) if timezone.is_aware(f) else f)
                for pk, b, f in finished
            ]
        return finished


def _signal_cancelled(job_model, db: str, ids: list[int]) -> None:
    """``job_cancelled`` (and django.tasks' ``task_finished``) for jobs just cancelled."""
    if not ids or not (signals.job_cancelled.has_listeners() or task_finished.has_listeners()):
        return
    for job in job_model._default_manager.using(db).filter(id__in=ids):
        signals.send(signals.job_cancelled, job, reason=job.cancel_reason)
        send_django_signal(task_finished, job)
