from __future__ import annotations

import time
import uuid
from collections.abc import Iterable
from contextlib import nullcontext
from datetime import UTC, datetime, timedelta
from json import dumps as _json_dumps
from json import loads as _json_loads
from typing import Any

from django.conf import settings
from django.db import (
    DatabaseError,
    OperationalError,
    connections,
    models,
    router,
    transaction,
)
from django.db.models import Case, F, Q, Value, When
from django.db.models.functions import Greatest
from django.utils import timezone

from .. import signals
from .._compat import task_finished
from ..conf import jobs_settings
from ..enums import (
    CLAIMABLE_STATUSES,
    FINISHED_STATUSES,
    HELD_STATUSES,
    MAX_PRIORITY,
    MIN_PRIORITY,
    UNFINISHED_STATUSES,
    JobStatus,
)
from ..registry import registry
from ..results import send_django_signal
from ..wakeups import notify
from .batch import Batch
from .functions import DbNow, db_now
from .queue import Queue
from .schedule import Schedule
from .worker import Worker
from .workflow import advance_batch, job_finished, reopen_batches


def new_lease() -> str:
    return uuid.uuid4().hex


def jobs_db() -> str:
    """The database alias of the job tables: ``DJANGO_JOBS["DATABASE"]``, else the
    router's choice for jobs."""
    return jobs_settings.DATABASE or router.db_for_write(Job)


class JobQuerySet(models.QuerySet):
    """Domain queries over jobs; the admin, API, CLI and worker compose these."""
    def claimable(self) -> JobQuerySet:
        return self.filter(status__in=CLAIMABLE_STATUSES)

    def due(self) -> JobQuerySet:
        """Claimable jobs whose time has come (by the database clock)."""
        return self.claimable().filter(scheduled_at__lte=DbNow())

    def for_queues(self, names: Iterable[str] | None) -> JobQuerySet:
        return self if not names else self.filter(queue__in=list(names))

    def excluding_queues(self, names: Iterable[str] | None) -> JobQuerySet:
        return self if not names else self.exclude(queue__in=list(names))

    def in_claim_order(self) -> JobQuerySet:
        # Must match the partial index django_jobs_job_claim_idx column for column.
        return self.order_by("-priority", "scheduled_at", "id")

    def pending(self) -> JobQuerySet:
        return self.filter(status=JobStatus.PENDING)

    def waiting(self) -> JobQuerySet:
        return self.filter(status=JobStatus.WAITING)

    def held(self) -> JobQuerySet:
        """Reserved or running: a worker holds the lease."""
        return self.filter(status__in=HELD_STATUSES)

    def running(self) -> JobQuerySet:
        return self.filter(status=JobStatus.RUNNING)

    def finished(self) -> JobQuerySet:
        return self.filter(status__in=FINISHED_STATUSES)

    def unfinished(self) -> JobQuerySet:
        return self.filter(status__in=UNFINISHED_STATUSES)

    def failed(self) -> JobQuerySet:
        return self.filter(status=JobStatus.FAILED)

    def cancellable(self) -> JobQuerySet:
        """Jobs that become cancelled at once (no worker holds them)."""
        return self.filter(
            status__in=(JobStatus.PENDING, JobStatus.WAITING, JobStatus.RETRYING)
        )

    def retriable(self) -> JobQuerySet:
        """Jobs ``retry()`` may send back to pending."""
        return self.filter(status__in=(JobStatus.FAILED, JobStatus.CANCELLED))

    def dead_letter(self) -> JobQuerySet:
        return self.failed().filter(queue=jobs_settings.DEAD_LETTER_QUEUE)

    def held_by(self, worker_id: str) -> JobQuerySet:
        return self.held().filter(worker_id=worker_id)

    def stalled(self, cutoff: datetime | timedelta | None = None) -> JobQuerySet:
        """Held jobs whose worker stopped heartbeating (or never registered).

        Liveness-based: a job running for hours under a live worker is not stalled.
        """
        alive = Worker.objects.alive(cutoff).values("id")
        return self.held().filter(Q(worker_id__isnull=True) | ~Q(worker_id__in=alive))

    def prunable(self, older_than: timedelta, statuses: Iterable[str] = FINISHED_STATUSES):
        """Finished jobs that finished more than ``older_than`` ago (database clock)."""
        cutoff = DbNow(-older_than.total_seconds())
        return self.filter(status__in=list(statuses), finished_at__lt=cutoff)

    def with_tag(self, tag: str) -> JobQuerySet:
        # JSON containment is not available on every backend (SQLite), so match the
        # serialised element; tags are plain strings.
        return self.filter(tags__icontains=f'"{tag}"')

    # -- verbs over many jobs: admin bulk actions and the manager's single-job verbs
    # both land here, so each state change exists once.

    def cancel(self, *, terminate: bool = False, reason: str = "cancelled") -> tuple[list[int], int]:
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
        _signal_cancelled(db, ids)
        return ids, flagged

    def _cancel(self, db: str, terminate: bool, reason: str) -> tuple[list[int], int]:
        with transaction.atomic(using=db):
            rows = list(
                self.unfinished()
                .order_by("pk")
                .select_for_update()
                .values_list("id", "status", "batch_id", "has_dependents")
            )
            now_ids = [r for r in rows if r[1] not in HELD_STATUSES]
            held_ids = [r[0] for r in rows if r[1] in HELD_STATUSES]
            ids = [r[0] for r in now_ids]
            if ids:
                Job.objects.using(db).filter(id__in=ids).cancellable().update(
                    status=JobStatus.CANCELLED,
                    finished_at=DbNow(),
                    cancel_reason=reason,
                    worker_id=None,
                    lease=None,
                    unique_active=None,
                )
            # Batches in one order (as the workers' writes), so no deadlock between them.
            for pk, _status, batch_id, has_dependents in sorted(
                    now_ids, key=lambda r: (r[2] or 0, r[0])):
                if batch_id or has_dependents:
                    job_finished(pk, JobStatus.CANCELLED, batch_id=batch_id,
                                 has_dependents=has_dependents, db=db)
            flagged = 0
            if held_ids:
                flagged = Job.objects.using(db).filter(id__in=held_ids).held().update(
                    cancel_requested=True, terminate_requested=terminate, cancel_reason=reason
                )
        return ids, flagged

    def retry_now(self) -> int:
        """Failed or cancelled jobs back to pending in their original queue, with a fresh
        retry budget; their error history is kept. A job of a batch leaves the batch's
        failed (or cancelled) count and counts again when it finishes. Workers are woken
        and ``job_enqueued`` is sent for each."""
        with transaction.atomic(using=self.db):
            rows = list(
                self.retriable().order_by("pk").select_for_update()
                .values_list("id", "original_queue", "queue", "status", "batch_id")
            )
            if not rows:
                return 0
            ids = [row[0] for row in rows]
            n = Job.objects.using(self.db).filter(id__in=ids)._retry_rows()
            reopen_batches([(batch_id, status) for *_, status, batch_id in rows if batch_id],
                           self.db)
            for queue in {orig or queue for _, orig, queue, _, _ in rows}:
                notify(self.db, queue)
        if signals.job_enqueued.has_listeners():
            for job in Job.objects.using(self.db).filter(id__in=ids):
                signals.send(signals.job_enqueued, job)
        return n

    def _retry_rows(self) -> int:
        return self.retriable().update(
            status=JobStatus.PENDING,
            queue=Case(When(original_queue="", then=F("queue")), default=F("original_queue")),
            original_queue="",
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

    def prune(self, older_than: timedelta, statuses: Iterable[str] = FINISHED_STATUSES,
              *, chunk: int = 1000) -> int:
        """Delete finished jobs that finished more than ``older_than`` ago; returns how
        many.

        Set-based and chunked: each chunk is one short transaction of a few statements,
        whatever the number of rows, and rows another transaction has locked are skipped
        (the next prune takes them), so a prune never waits. Rows are not loaded: a
        finished job has no workflow left to settle (the ``pre_delete`` receiver acts on
        unfinished jobs only), and the rows that point at it (dependency links, a batch's
        ``on_complete_job``, a schedule's ``last_job``) are cleared in the same
        transaction. Should another app hold
        a foreign key to jobs, each chunk goes through Django's deletion collector
        instead, so its ``on_delete`` rules still apply.
        """
        db = self.db
        conn = connections[db]
        statuses = list(statuses)
        collector_needed = _has_foreign_relations()
        deleted = 0
        while True:
            with transaction.atomic(using=db):
                candidates = self.prunable(older_than, statuses).order_by()
                if conn.features.has_select_for_update_skip_locked:
                    candidates = candidates.select_for_update(skip_locked=True)
                ids = list(candidates.values_list("id", flat=True)[:chunk])
                if not ids:
                    break
                rows = Job.objects.using(db).filter(pk__in=ids, status__in=statuses)
                if collector_needed:
                    deleted += rows.delete()[1].get(Job._meta.label, 0)
                else:
                    JobDependency.objects.using(db).filter(
                        Q(job_id__in=ids) | Q(depends_on_id__in=ids)
                    )._raw_delete(db)
                    Batch.objects.using(db).filter(on_complete_job_id__in=ids).update(
                        on_complete_job=None
                    )
                    Schedule.objects.using(db).filter(last_job_id__in=ids).update(
                        last_job=None
                    )
                    deleted += rows._raw_delete(db)
            if len(ids) < chunk:
                break
        return deleted

    # -- leaving a worker: handed back, rescued, failed with a retry ----------------------

    def hand_back_held(self, *, started: bool = True) -> int:
        """Give held jobs back to pending (a stopping worker, a killed executor's batch,
        jobs its worker no longer runs): not a failure. ``started=False`` for jobs that
        never began, so their claim does not count as an attempt.

        A job whose cancel was requested while it was held ends ``cancelled`` instead:
        a cancel that returned True is never lost. Returns how many went back to pending.
        """
        changes = dict(status=JobStatus.PENDING, lease=None, worker_id=None, started_at=None)
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
        _signal_cancelled(db, cancelled)
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
        # One statement needs no transaction of its own; batch counters must move with it.
        together = conn.vendor != "postgresql" or any(job.batch_id for job, _ in done)
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
                    if job._guarded().filter(has_dependents=False).update(
                            **job.completion_changes(result, finished)):
                        written.append((job.pk, job.batch_id))
                        finished_at[job.pk] = finished
            batches: dict[int, int] = {}
            for _pk, batch_id in written:
                if batch_id:
                    batches[batch_id] = batches.get(batch_id, 0) + 1
            for batch_id in sorted(batches):  # one lock order: no deadlock between flushes
                advance_batch(batch_id, JobStatus.COMPLETED, db, count=batches[batch_id])
        for job, result in done:
            if job.pk in finished_at:
                for key, value in job.completion_changes(result, finished_at[job.pk]).items():
                    setattr(job, key, value)
        return set(finished_at)

    def _complete_many_postgresql(self, done) -> list[tuple[int, int | None, datetime]]:
        conn = connections[self.db]
        table = conn.ops.quote_name(Job._meta.db_table)
        rows = [
            {"id": job.pk, "lease": job.lease, "result": result,
             "started_at": job.started_at.isoformat() if job.started_at else None}
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
            cursor.execute(sql, params)
            rows = cursor.fetchall()
        if not settings.USE_TZ:  # naive already with Django's adapters; never aware
            rows = [(pk, b, timezone.make_naive(f, UTC) if timezone.is_aware(f) else f)
                    for pk, b, f in rows]
        return rows

    # -- claiming ---------------------------------------------------------------------

    def claim(
        self,
        worker_id: str,
        limit: int = 1,
        *,
        queues: Iterable[str] | None = None,
        exclude_queues: Iterable[str] | None = None,
        config=None,
        lease: str | None = None,
    ) -> list[Job]:
        """Atomically take up to ``limit`` due jobs for ``worker_id``, under ONE lease.

        Highest priority first, then ``scheduled_at``, then id; paused queues and queues
        at their concurrency limit are skipped. Claimed jobs are ``running`` with the
        lease token (``lease``, or a new one), one attempt more, and ``started_at`` set
        from the database clock. ``config`` is a recent ``Queue.objects.claim_config()``
        (read now when not given).

        Every job a claim returns shares one lease, whichever queues it came from: the
        caller holds them as one batch, runs each or hands it back by that lease.
        """
        if limit <= 0:
            return []
        lease = lease or new_lease()
        db = self.db
        conf = config if config is not None else Queue.objects.using(db).claim_config()
        base = self.filter(scheduled_at__lte=DbNow()).for_queues(queues)
        base = base.excluding_queues(exclude_queues)
        if conf.paused:
            base = base.exclude(queue__in=conf.paused)
        limited = {name: lim for name, lim in conf.limits.items() if name not in conf.paused}
        if queues:
            limited = {n: lim for n, lim in limited.items() if n in set(queues)}
        claimed: list[Job] = []
        if limited:
            claimed += self._claim_ids(base.exclude(queue__in=list(limited)), worker_id,
                                       limit, lease)
            for name, lim in limited.items():
                if len(claimed) >= limit:
                    break
                try:
                    claimed += self._claim_limited(base, worker_id, limit - len(claimed),
                                                   name, lim, lease)
                except DatabaseError:
                    if not claimed:
                        raise
                    break  # what was claimed (and committed) so far is the caller's
        else:
            claimed = self._claim_ids(base, worker_id, limit, lease)
        replied = time.monotonic()
        for job in claimed:
            job._claimed_mono = replied
        return claimed

    def _claim_limited(self, base, worker_id, limit, name, lim, lease) -> list[Job]:
        with transaction.atomic(using=self.db):
            # Serialise claims on this queue across workers so the limit holds.
            Queue.objects.using(self.db).select_for_update().filter(name=name).first()
            running = Job.objects.using(self.db).held().filter(queue=name).count()
            free = min(limit, lim - running)
            if free <= 0:
                return []
            return self._claim_ids(base.filter(queue=name), worker_id, free, lease,
                                   atomic=False)

    def _claim_ids(self, candidates, worker_id, limit, lease, atomic=True) -> list[Job]:
        db = self.db
        conn = connections[db]
        if conn.vendor == "postgresql":
            return self._claim_postgresql(candidates, worker_id, limit, lease)
        ctx = transaction.atomic(using=db) if atomic else nullcontext()
        with ctx:
            ids = []
            for query in claim_candidates(candidates, limit, conn):
                if conn.features.has_select_for_update_skip_locked:
                    query = query.select_for_update(skip_locked=True)
                ids += list(query)
            if len(ids) > limit:
                # MySQL: one ordered read per claimable status; the best of both win
                # (the others stay locked only until this short transaction ends).
                ids = [row[0] for row in sorted(ids, key=lambda r: (-r[1], r[2], r[0]))[:limit]]
            else:
                ids = [row[0] for row in ids]
            if not ids:
                return []
            # The status condition makes the claim safe where rows cannot be locked
            # (SQLite): only one conditional UPDATE can move a row out of pending.
            Job.objects.using(db).filter(id__in=ids, status__in=CLAIMABLE_STATUSES).update(
                status=JobStatus.RUNNING,
                worker_id=worker_id,
                lease=lease,
                attempts=F("attempts") + 1,
                started_at=DbNow(),
            )
            return list(
                Job.objects.using(db).filter(id__in=ids, lease=lease).in_claim_order()
            )

    def _claim_postgresql(self, candidates, worker_id, limit, lease) -> list[Job]:
        """One statement: lock up to ``limit`` due rows (skipping locked ones), mark them
        running and return them. A single round trip and a single commit, whatever
        ``limit``; the inner SELECT is the one the partial claim index serves."""
        db = self.db
        conn = connections[db]
        [inner] = claim_candidates(candidates, limit, conn, columns=("id",))
        qn = conn.ops.quote_name
        table = qn(Job._meta.db_table)
        columns = ", ".join(qn(f.column) for f in Job._meta.concrete_fields)
        inner_sql, inner_params = inner.query.get_compiler(using=db).as_sql()
        # FOR UPDATE goes after LIMIT on PostgreSQL. Added here rather than with
        # select_for_update(), which Django only compiles inside atomic(): the statement is
        # its own transaction, and BEGIN/COMMIT would be two more round trips per claim.
        sql = (
            f"UPDATE {table} SET status = %s, worker_id = %s, lease = %s, "
            "attempts = attempts + 1, started_at = CLOCK_TIMESTAMP() "
            f"WHERE id = ANY(ARRAY({inner_sql} FOR UPDATE SKIP LOCKED)) RETURNING {columns}"
        )
        params = [JobStatus.RUNNING, worker_id, lease, *inner_params]
        with conn.cursor() as cursor:
            cursor.execute(sql, params)
            claimed = jobs_from_rows(db, cursor.fetchall())
        claimed.sort(key=lambda j: (-j.priority, j.scheduled_at, j.pk))
        return claimed


def claim_candidates(candidates, limit: int, conn, columns=("id", "priority", "scheduled_at")):
    """The ordered, limited reads a claim locks its rows with (without the lock clause).

    PostgreSQL and SQLite: one read over both claimable statuses, which their partial
    claim index serves in order. MySQL/MariaDB have no partial indexes: their claim index
    starts with ``status``, and ``status IN (pending, retrying)`` would make them sort
    every due row (a filesort), locking ALL of them before the LIMIT, so that concurrent
    claimers find nothing to take. One read per status walks the index in claim order
    and locks only the rows it returns.
    """
    if conn.vendor == "mysql":
        reads = [candidates.filter(status=status) for status in CLAIMABLE_STATUSES]
    else:
        reads = [candidates.filter(status__in=CLAIMABLE_STATUSES)]
    return [read.in_claim_order().values_list(*columns)[:limit] for read in reads]


def _has_foreign_relations() -> bool:
    """Whether a model other than ours points at jobs (so a raw DELETE could break its
    foreign keys or skip its ``on_delete``). Hidden relations (``related_name="+"``)
    count too."""
    ours = {Job, JobDependency, Batch, Schedule}
    return any(
        field.related_model not in ours
        for field in Job._meta.get_fields(include_hidden=True)
        if field.auto_created and not field.concrete and field.is_relation
    )


def _signal_cancelled(db: str, ids: list[int]) -> None:
    """``job_cancelled`` (and django.tasks' ``task_finished``) for jobs just cancelled."""
    if not ids or not (signals.job_cancelled.has_listeners() or task_finished.has_listeners()):
        return
    for job in Job.objects.using(db).filter(id__in=ids):
        signals.send(signals.job_cancelled, job, reason=job.cancel_reason)
        send_django_signal(task_finished, job)


def jobs_from_rows(db: str, rows) -> list[Job]:
    """Job instances from rows of every concrete column in model order (what the claim
    RETURNs), built the cheap way: a worker builds thousands per second, and
    ``Model.__init__`` plus ``json.loads`` of every empty list/dict cost more than the
    no-op job they describe. Equivalent to ``Model.from_db`` for this model (no deferred
    fields, no post_init receivers)."""
    from django.db.models.base import ModelState

    conn = connections[db]
    fields = Job._meta.concrete_fields
    names = [f.attname for f in fields]
    json_columns = {i for i, f in enumerate(fields) if isinstance(f, models.JSONField)}
    converters = [
        (i, _load_json if i in json_columns else f.from_db_value)
        for i, f in enumerate(fields) if hasattr(f, "from_db_value")
    ]
    cheap = not models.signals.post_init.has_listeners(Job)
    jobs = []
    for row in rows:
        values = list(row)
        for i, convert in converters:
            values[i] = convert(values[i], None, conn)
        if not cheap:
            jobs.append(Job.from_db(db, names, values))
            continue
        job = Job.__new__(Job)
        job.__dict__.update(zip(names, values))
        state = job._state = ModelState()
        state.adding = False
        state.db = db
        jobs.append(job)
    return jobs


def _load_json(value, expression, connection):
    # JSONField.from_db_value without its generality: the common empty values directly.
    if value is None:
        return None
    if value == "[]":
        return []
    if value == "{}":
        return {}
    if isinstance(value, str):
        return _json_loads(value)
    return value


class JobManager(models.Manager.from_queryset(JobQuerySet)):
    pass


class Job(models.Model):
    """One execution request of a registered task."""
    id = models.BigAutoField(primary_key=True)
    task_name = models.CharField(max_length=255, db_index=True)
    args = models.JSONField(default=list, blank=True)
    kwargs = models.JSONField(default=dict, blank=True)
    queue = models.CharField(max_length=255, default="default")
    # The queue a dead-lettered job came from; retry() sends it back there.
    original_queue = models.CharField(max_length=255, blank=True, default="")
    priority = models.SmallIntegerField(default=0)
    status = models.CharField(
        max_length=max(len(v) for v in JobStatus.values),
        choices=JobStatus.choices,
        default=JobStatus.PENDING,
    )
    created_at = models.DateTimeField(default=timezone.now)
    scheduled_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    result = models.JSONField(null=True, blank=True)
    error = models.JSONField(null=True, blank=True)  # the last failure
    errors = models.JSONField(default=list, blank=True)  # one entry per failed attempt

    attempts = models.PositiveIntegerField(default=0)  # executions started
    retry_count = models.PositiveIntegerField(default=0)
    max_retries = models.PositiveIntegerField(default=3)
    retry_delay = models.FloatField(default=60.0)  # seconds
    retry_backoff = models.FloatField(default=2.0)
    retry_jitter = models.BooleanField(default=True)
    max_retry_delay = models.FloatField(default=3600.0)  # seconds
    timeout = models.FloatField(null=True, blank=True)  # seconds

    progress = models.FloatField(default=0.0)
    progress_message = models.TextField(blank=True, default="")
    progress_details = models.JSONField(default=dict, blank=True)

    tags = models.JSONField(default=list, blank=True)
    metadata = models.JSONField(default=dict, blank=True)

    worker_id = models.CharField(max_length=255, null=True, blank=True)
    # Token of the current claim: completion is only accepted with the same token, so a
    # worker whose job was rescued by another can never overwrite the new owner's result.
    lease = models.CharField(max_length=32, null=True, blank=True)
    worker_ids = models.JSONField(default=list, blank=True)  # one per finished attempt
    cancel_requested = models.BooleanField(default=False)
    terminate_requested = models.BooleanField(default=False)
    cancel_reason = models.TextField(blank=True, default="")

    # django.tasks: the backend alias a job was enqueued through ("" = our API).
    backend = models.CharField(max_length=100, blank=True, default="")

    # Workflows. A batch or chain groups jobs; a chain's steps are ordered by chain_index.
    batch = models.ForeignKey(
        "django_jobs.Batch", null=True, blank=True, on_delete=models.SET_NULL,
        related_name="job_set",
    )
    chain_index = models.PositiveIntegerField(null=True, blank=True)
    depends_on = models.ManyToManyField(
        "self", symmetrical=False, through="django_jobs.JobDependency",
        related_name="dependents", blank=True,
    )
    # Set once another job depends on this one, so completing a job that nothing
    # depends on costs no dependency query.
    has_dependents = models.BooleanField(default=False)
    # Unique jobs: unique_key is kept; unique_active holds it only while the job is
    # unfinished, and a plain unique constraint on it (NULLs never collide, on every
    # database) lets one unfinished job per key exist.
    unique_key = models.CharField(max_length=255, null=True, blank=True)
    unique_active = models.CharField(max_length=255, null=True, blank=True, unique=True)
    # Jobs fired by a schedule: (schedule, due time) is unique, so a due time is
    # enqueued at most once however many schedulers run.
    schedule = models.ForeignKey(
        "django_jobs.Schedule", null=True, blank=True, on_delete=models.SET_NULL,
        related_name="jobs",
    )
    schedule_due_at = models.DateTimeField(null=True, blank=True)

    objects = JobManager()

    class Meta:
        ordering = ["-id"]
        verbose_name = "job"
        verbose_name_plural = "jobs"
        # Two partial indexes live in migration 0001 (PartialIndex operations), not here,
        # so MySQL projects get no warnings about ignored conditions:
        #   django_jobs_job_claim_idx (priority DESC, scheduled_at, id)
        #       WHERE status IN ('pending', 'retrying')   -- serves the claim query exactly
        #   django_jobs_job_held_idx (worker_id) WHERE status IN ('reserved', 'running')
        # MySQL/MariaDB get full indexes instead (claim: status first).
        indexes = [
            models.Index(fields=["status", "queue"], name="django_jobs_job_status_idx"),
            models.Index(fields=["finished_at"], name="django_jobs_job_finished_idx"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(priority__gte=MIN_PRIORITY, priority__lte=MAX_PRIORITY),
                name="django_jobs_job_priority_range",
            ),
            models.CheckConstraint(
                condition=Q(progress__gte=0.0, progress__lte=1.0),
                name="django_jobs_job_progress_range",
            ),
            models.CheckConstraint(
                condition=Q(status__in=JobStatus.values),
                name="django_jobs_job_status_valid",
            ),
            models.UniqueConstraint(
                fields=["schedule", "schedule_due_at"],
                name="django_jobs_job_schedule_due_unique",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.task_name} #{self.pk} ({self.status})"

    # -- reading ----------------------------------------------------------------------

    @property
    def is_finished(self) -> bool:
        return self.status in FINISHED_STATUSES

    @property
    def duration(self) -> timedelta | None:
        if self.started_at and self.finished_at:
            return self.finished_at - self.started_at
        return None

    def get_task(self):
        """The registered task of this job (raises ``TaskNotFound``)."""
        return registry.get(self.task_name)

    # -- state changes guarded by the lease ---------------------------------------------

    def _guarded(self):
        return Job.objects.using(self._state.db or router.db_for_write(Job)).filter(
            pk=self.pk, lease=self.lease, status__in=HELD_STATUSES
        )

    def _finish(self, changes: dict, outcome: str, qs=None) -> bool:
        """Apply ``changes`` that end the job, then advance its workflow, atomically.

        A job nobody depends on and outside any batch finishes in one UPDATE. The
        ``has_dependents=False`` condition is read by that UPDATE itself: a dependant
        enqueued since this job was claimed sets the flag under the row lock, so it can
        never be missed. ``qs``: the guarded row with more conditions.
        """
        changes = {**changes, "unique_active": None}
        qs = qs if qs is not None else self._guarded()
        if not self.batch_id and qs.filter(has_dependents=False).update(**changes):
            return True

        db = qs.db
        with transaction.atomic(using=db):
            row = qs.select_for_update().values_list("has_dependents", "batch_id").first()
            if row is None:
                return False  # the lease was lost
            qs.update(**changes)
            job_finished(self.pk, outcome, batch_id=row[1], has_dependents=row[0], db=db)
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
        return dict(
            status=JobStatus.COMPLETED,
            result=result,
            finished_at=finished_at,
            started_at=self.started_at,
            progress=1.0,
            lease=None,
            unique_active=None,
            worker_ids=[*self.worker_ids, self.worker_id],
        )

    def set_completed(self, result: Any) -> bool:
        """Record success; False if this worker no longer holds the lease."""
        now = db_now(self._guarded().db)
        finished = max(now, self.started_at) if self.started_at else now
        changes = self.completion_changes(result, finished)
        done = self._finish(changes, JobStatus.COMPLETED)
        if done:
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
        common = dict(error=error, errors=errors, lease=None, worker_ids=worker_ids)
        if self.started_at is not None:
            common["started_at"] = self.started_at
        if retry_in is not None:
            changes = dict(
                status=retry_status,
                retry_count=F("retry_count") + (1 if count_retry else 0),
                worker_id=None,
                **common,
            )
            if not (keep_place and retry_in == 0):
                changes["scheduled_at"] = DbNow(retry_in)
            # The flag is read by the UPDATE itself: a cancel committed before it keeps
            # the job from going back to the queue; one committed after it finds the job
            # waiting for its retry and cancels it at once.
            done = bool(self._guarded().filter(cancel_requested=False).update(**changes))
        else:
            dlq = jobs_settings.DEAD_LETTER_QUEUE
            changes = dict(
                status=JobStatus.FAILED,
                finished_at=self._finished_at(),
                original_queue=self.queue if self.queue != dlq else self.original_queue,
                queue=dlq,
                **common,
            )
            done = self._finish(changes, JobStatus.FAILED,
                                qs=self._guarded().filter(cancel_requested=False))
        if not done and self._guarded().filter(cancel_requested=True).exists():
            return self.set_cancelled_while_running("cancelled", extra=common)
        if done:
            self.refresh_from_db()
        return done

    def set_cancelled_while_running(self, reason: str, extra: dict | None = None) -> bool:
        """Record that the held job stopped (or never started) because it was cancelled.
        The reason given to ``cancel()`` is kept; ``reason`` only fills it when none was
        recorded. ``extra``: more columns to write (the error of a last failed attempt)."""
        worker_ids = [*self.worker_ids, self.worker_id] if self.worker_id else self.worker_ids
        changes = dict(
            status=JobStatus.CANCELLED,
            finished_at=self._finished_at(),
            cancel_reason=Case(
                When(cancel_reason="", then=Value(reason)),
                default=F("cancel_reason"),
                output_field=models.TextField(),
            ),
            lease=None,
            worker_ids=worker_ids,
        )
        changes.update(extra or {})
        if self.started_at is not None:
            changes["started_at"] = self.started_at
        done = self._finish(changes, JobStatus.CANCELLED)
        if done:
            self.refresh_from_db()
        return done

    def set_progress(self, fraction: float, message: str, details: dict) -> bool | None:
        """Write progress; returns whether a cancel was requested (None: lease lost)."""
        qs = self._guarded()
        n = qs.update(progress=fraction, progress_message=message, progress_details=details)
        if not n:
            return None
        return qs.filter(cancel_requested=True).exists()


class JobDependency(models.Model):
    """``job`` waits until ``depends_on`` completed."""
    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="+")
    depends_on = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="+")

    class Meta:
        verbose_name = "job dependency"
        verbose_name_plural = "job dependencies"
        constraints = [
            models.UniqueConstraint(
                fields=["job", "depends_on"], name="django_jobs_jobdependency_unique"
            ),
        ]
