"""``jobs``: the public verbs. Admin actions, API viewsets, CLI subcommands and the
django.tasks backend all call these (or the model/QuerySet methods they call)."""

from __future__ import annotations

import copy
import json
import logging
import time
from collections.abc import Iterable
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import IntegrityError, connections, router, transaction
from django.utils import timezone

from . import signals
from ._compat import DEFAULT_TASK_QUEUE_NAME
from ._jsontext import has_nul
from .conf import finite, jobs_settings, to_seconds
from .execution.policy import default_options
from .models import (
    FINISHED_STATUSES,
    Batch,
    BatchKind,
    Job,
    JobStatus,
    Priority,
    Queue,
    Worker,
)
from .models.functions import DbNow, db_now
from .models.job import new_lease
from .registry import JobTask, registry
from .workflows import default_unique_key

logger = logging.getLogger("django_jobs")

DEFAULT_TASK_PRIORITY = 0  # Django's default for tasks declared without a priority
NOTIFY_CHANNEL = "django_jobs"

_UNSET: Any = object()



def uses_psycopg3(conn) -> bool:
    """PostgreSQL through psycopg 3, which LISTEN and COPY need (psycopg2 does without
    both: workers poll, batches are INSERTed)."""
    return conn.vendor == "postgresql" and getattr(conn.Database, "__name__", "") == "psycopg"


def notify(db: str, queue: str) -> None:
    """Wake idle workers (PostgreSQL NOTIFY, delivered at commit; elsewhere they poll)."""
    conn = connections[db]
    if conn.vendor == "postgresql":
        with conn.cursor() as cursor:
            cursor.execute("SELECT pg_notify(%s, %s)", [NOTIFY_CHANNEL, queue])


_INSERT_SQL: dict[str, str] = {}  # per database alias


def _insert_postgresql(job: Job, db: str) -> None:
    """INSERT the job, make sure its queue row exists and NOTIFY, in ONE statement.

    The row travels as one JSON parameter (``jsonb_populate_record``): adapting forty
    parameters one by one costs more on our side than the whole statement on the
    server's. ``created_at`` and (without an explicit one) ``scheduled_at`` come from the
    database clock, like every timestamp of a job."""
    from .bulk import _fields, row_document

    conn = connections[db]
    sql = _INSERT_SQL.get(conn.alias)
    if sql is None:
        qn = conn.ops.quote_name
        fields = _fields()
        columns = ", ".join(qn(f.column) for f in fields)
        values = ", ".join(
            "n.t" if f.attname == "created_at"
            else f"COALESCE(r.{qn(f.column)}, n.t + %s * INTERVAL '1 second')"
            if f.attname == "scheduled_at"
            else f"r.{qn(f.column)}"
            for f in fields
        )
        job_table, queue_table = qn(Job._meta.db_table), qn(Queue._meta.db_table)
        sql = (
            f"WITH q AS (INSERT INTO {queue_table} ({qn('name')}, {qn('description')}, "
            f"{qn('paused')}, {qn('concurrency_limit')}, {qn('created_at')}, "
            f"{qn('updated_at')}) VALUES (%s, '', false, NULL, now(), now()) "
            f"ON CONFLICT DO NOTHING), "
            f"j AS (INSERT INTO {job_table} ({columns}) SELECT {values} "
            f"FROM jsonb_populate_record(NULL::{job_table}, %s::jsonb) AS r, "
            "(SELECT CLOCK_TIMESTAMP() AS t) AS n "
            f"RETURNING {qn('id')}, {qn('created_at')}, {qn('scheduled_at')}) "
            f"SELECT {qn('id')}, {qn('created_at')}, {qn('scheduled_at')}, pg_notify(%s, %s) "
            "FROM j"
        )
        _INSERT_SQL[conn.alias] = sql
    params = [job.queue, job._delay, row_document([job], conn, many=False),
              NOTIFY_CHANNEL, job.queue]
    with conn.cursor() as cursor:
        cursor.execute(sql, params)
        job.pk, job.created_at, job.scheduled_at, _ = cursor.fetchone()
    if not settings.USE_TZ:  # naive already with Django's adapters; never aware
        for name in ("created_at", "scheduled_at"):
            value = getattr(job, name)
            if timezone.is_aware(value):
                setattr(job, name, timezone.make_naive(value, dt_timezone.utc))
    job._state.adding = False
    job._state.db = db


def _stamp(job: Job, now: datetime) -> None:
    """``created_at`` and ``scheduled_at`` of a job about to be inserted, from ``now``
    read off the database clock."""
    job.created_at = now
    if job.scheduled_at is None:
        job.scheduled_at = now + timedelta(seconds=job._delay)
    if job.status == JobStatus.CANCELLED:
        job.finished_at = now


def _json_text(value: Any, what: str) -> str:
    """``value`` as JSON text; TypeError if it cannot be stored.

    NaN/Infinity are not JSON, and NUL characters cannot be stored by PostgreSQL: both
    are refused here, on every database, rather than failing at INSERT time.
    """
    try:
        text = json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{what} must be JSON-serializable: {exc}") from None
    if has_nul(text):
        raise TypeError(f"{what} must not contain NUL characters (\\x00).")
    return text


def _check_json(value: Any, what: str) -> Any:
    """``value`` as stored JSON (tuples become lists); TypeError if it cannot be stored."""
    if type(value) in (list, dict) and not value:
        return type(value)()  # the common no-arguments case: nothing to check
    return json.loads(_json_text(value, what))


def _job_id(job_or_id: Any) -> int:
    """The integer id of a Job, an int or its string form (Job.DoesNotExist otherwise)."""
    if isinstance(job_or_id, Job):
        return job_or_id.pk
    try:
        value = int(str(job_or_id).strip())
    except (TypeError, ValueError):
        raise Job.DoesNotExist(f"No job with id {job_or_id!r}.") from None
    if value <= 0 or value > 2**63 - 1:
        raise Job.DoesNotExist(f"No job with id {job_or_id!r}.")
    return value


class JobManager:
    """The default instance is ``django_jobs.jobs``."""

    def __init__(self, database: str | None = None) -> None:
        self._database = database

    @property
    def db(self) -> str:
        return self._database or jobs_settings.DATABASE or router.db_for_write(Job)

    @property
    def objects(self):
        return Job.objects.using(self.db)

    # -- enqueue -------------------------------------------------------------------------

    def _build(self, task, args, kwargs, *, priority, queue, scheduled_at, delay,
               max_retries, retry_delay, timeout, tags, metadata, backend, options) -> Job:
        task = registry.get(task)
        if args is None:
            args = []
        if kwargs is None:
            kwargs = {}
        if isinstance(args, (str, bytes, dict)) or not isinstance(args, Iterable):
            raise TypeError(f"args must be a list, got {type(args).__name__}.")
        if not isinstance(kwargs, dict):
            raise TypeError(f"kwargs must be a dict, got {type(kwargs).__name__}.")
        args = _check_json(list(args), "args")
        kwargs = _check_json(kwargs, "kwargs")
        limit = jobs_settings.MAX_PAYLOAD_BYTES
        if limit and len(json.dumps([args, kwargs])) > limit:
            raise ValueError(
                f"The job's arguments are larger than MAX_PAYLOAD_BYTES ({limit} bytes): "
                "store large data elsewhere and pass a reference."
            )
        unknown = set(options) - {"retry_backoff", "retry_jitter", "max_retry_delay"}
        if unknown:
            raise TypeError(f"Unknown enqueue option(s): {', '.join(sorted(unknown))}.")

        defaults = default_options()

        def pick(explicit, name):
            if explicit is not None:
                return explicit
            value = getattr(task, name, None)
            return defaults[name] if value is None else value

        if queue is None:
            # A task declared without a queue carries Django's "default": that means the
            # DEFAULT_QUEUE setting, read now (not when the task was decorated).
            queue = task.queue_name
            if queue == DEFAULT_TASK_QUEUE_NAME:
                queue = jobs_settings.DEFAULT_QUEUE or DEFAULT_TASK_QUEUE_NAME
        if not isinstance(queue, str) or not queue.strip() or len(queue) > 255:
            raise ValueError(f"queue must be a non-empty name of at most 255 characters, got {queue!r}.")
        if priority is None:
            priority = task.priority
            if priority == DEFAULT_TASK_PRIORITY:  # likewise: the DEFAULT_PRIORITY setting
                priority = jobs_settings.DEFAULT_PRIORITY
        priority = Priority.coerce(priority)

        if scheduled_at is not None and delay is not None:
            raise ValueError("Pass scheduled_at or delay, not both.")
        seconds = 0.0
        if delay is not None:
            seconds = to_seconds(delay, "delay")
            if seconds < 0:
                raise ValueError(f"delay must not be negative, got {delay!r}.")
        if scheduled_at is not None:
            if not isinstance(scheduled_at, datetime):
                raise TypeError(f"scheduled_at must be a datetime, got {scheduled_at!r}.")
            if settings.USE_TZ and timezone.is_naive(scheduled_at):
                raise ValueError("scheduled_at must be an aware datetime (USE_TZ is on).")
        max_retries = pick(max_retries, "max_retries")
        if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
            raise ValueError(f"max_retries must be an integer >= 0, got {max_retries!r}.")
        retry_delay = to_seconds(pick(retry_delay, "retry_delay"), "retry_delay")
        if retry_delay < 0:
            raise ValueError(f"retry_delay must not be negative, got {retry_delay!r}.")
        timeout = pick(timeout, "timeout")
        timeout = to_seconds(timeout, "timeout") if timeout is not None else None
        if timeout is not None and timeout <= 0:
            raise ValueError(f"timeout must be positive, got {timeout!r}.")
        backoff = options.get("retry_backoff")
        backoff = finite(backoff if backoff is not None else (
            task.retry_backoff or defaults["retry_backoff"]), "retry_backoff")
        if backoff < 1:
            raise ValueError(f"retry_backoff must be >= 1, got {backoff!r}.")
        jitter = options.get("retry_jitter")
        jitter = bool(jitter if jitter is not None else (
            task.retry_jitter if task.retry_jitter is not None else defaults["retry_jitter"]))
        cap = options.get("max_retry_delay")
        cap = to_seconds(cap if cap is not None else (
            task.max_retry_delay if task.max_retry_delay is not None else defaults["max_retry_delay"]),
            "max_retry_delay")
        if tags is None:
            tags = list(task.tags)
        elif isinstance(tags, str):
            tags = [tags]
        tags = [str(t) for t in tags]
        metadata = _check_json(metadata or {}, "metadata")
        if not isinstance(metadata, dict):
            raise TypeError("metadata must be a dict.")
        job = Job(
            task_name=task.name,
            args=args,
            kwargs=kwargs,
            queue=queue,
            priority=priority,
            status=JobStatus.PENDING,
            # Both from the database clock when the row is written (see _stamp).
            created_at=None,
            scheduled_at=scheduled_at,
            max_retries=max_retries,
            retry_delay=retry_delay,
            retry_backoff=backoff,
            retry_jitter=jitter,
            max_retry_delay=cap,
            timeout=timeout,
            tags=tags,
            metadata=metadata,
            backend=backend or "",
        )
        job._delay = seconds
        return job

    def enqueue(
        self,
        task: JobTask | str,
        args: Iterable[Any] | None = None,
        kwargs: dict[str, Any] | None = None,
        *,
        priority: int | str | None = None,
        queue: str | None = None,
        scheduled_at: datetime | None = None,
        delay: float | timedelta | None = None,
        max_retries: int | None = None,
        retry_delay: float | timedelta | None = None,
        timeout: float | timedelta | None = None,
        tags: Iterable[str] | None = None,
        metadata: dict[str, Any] | None = None,
        depends_on: Iterable[Any] | None = None,
        unique_key: str | None = None,
        backend: str = "",
        schedule=None,
        schedule_due_at: datetime | None = None,
        batch=None,
        chain_index: int | None = None,
        **options: Any,
    ) -> Job:
        """Write one job in the caller's transaction and return it.

        Raises ``TaskNotFound`` for an unknown task, ``TypeError`` for arguments that are
        not JSON-serializable and ``ValueError`` for bad options; nothing is written then.
        """
        job = self._build(
            task, args, kwargs, priority=priority, queue=queue, scheduled_at=scheduled_at,
            delay=delay, max_retries=max_retries, retry_delay=retry_delay, timeout=timeout,
            tags=tags, metadata=metadata, backend=backend, options=options,
        )
        if schedule is not None:
            # (schedule, due time) is unique: a second scheduler firing the same due time
            # gets an IntegrityError, which the scheduler treats as "already fired".
            job.schedule = schedule
            job.schedule_due_at = schedule_due_at
        task = registry.get(task)
        if unique_key is None and task.unique:
            unique_key = default_unique_key(job.task_name, job.args, job.kwargs)
        if unique_key is not None:
            if not isinstance(unique_key, str) or not unique_key or len(unique_key) > 255:
                raise ValueError("unique_key must be a non-empty string of at most 255 characters.")
            job.unique_key = job.unique_active = unique_key
        dep_ids = [_job_id(d) for d in (depends_on or [])]
        if batch is not None:
            job.batch = batch
            job.chain_index = chain_index
        db = self.db
        if (not dep_ids and unique_key is None and schedule is None
                and connections[db].vendor == "postgresql"):
            # The common case in one statement (queue row, job row, NOTIFY): one round
            # trip, one commit in autocommit.
            _insert_postgresql(job, db)
        else:
            stored = self._insert(job, dep_ids, unique_key, db)
            if stored is not job:
                return stored  # the unfinished job holding the unique key
        if job.status == JobStatus.CANCELLED:
            signals.send(signals.job_cancelled, job, reason=job.cancel_reason)
            return job
        signals.send(signals.job_enqueued, job)
        if job.backend:
            from ._compat import task_enqueued
            from .backend import JobsBackend, result_from_job

            backend_obj = JobsBackend.for_alias(job.backend)
            task_enqueued.send_robust(
                sender=type(backend_obj), task_result=result_from_job(job, backend_obj)
            )
        if jobs_settings.EAGER and job.status == JobStatus.PENDING:
            self._run_eager(job)
        return job

    def _insert(self, job: Job, dep_ids: list[int], unique_key: str | None, db: str) -> Job:
        with transaction.atomic(using=db):
            self._ensure_queue(job.queue, db)
            if dep_ids:
                self._apply_dependencies(job, dep_ids, db)
            _stamp(job, db_now(db))
            if unique_key is not None:
                existing = self._insert_unique(job, db)
                if existing is not None:
                    return existing
            else:
                job.save(using=db, force_insert=True)
            if dep_ids:
                self._link_dependencies(job, dep_ids, db)
            if job.status == JobStatus.PENDING:
                self._notify(db, job.queue)
        return job

    def _apply_dependencies(self, job: Job, dep_ids: list[int], db: str) -> None:
        """Set the new job's status from its dependencies, which stay locked until commit
        so none of them can finish unseen in between."""
        rows = dict(
            self.objects.filter(pk__in=dep_ids)
            .order_by("pk")
            .select_for_update()
            .values_list("pk", "status")
        )
        missing = sorted(set(dep_ids) - set(rows))
        if missing:
            raise ValueError(f"depends_on: no job with id {', '.join(map(str, missing))}.")
        broken = [(pk, st) for pk, st in sorted(rows.items())
                  if st in (JobStatus.FAILED, JobStatus.CANCELLED)]
        if broken:
            pk, status = broken[0]
            job.status = JobStatus.CANCELLED
            job.cancel_reason = f"dependency {pk} {status}"
            job.unique_active = None
        elif all(st == JobStatus.COMPLETED for st in rows.values()):
            job.status = JobStatus.PENDING
        else:
            job.status = JobStatus.WAITING

    def _link_dependencies(self, job: Job, dep_ids: list[int], db: str) -> None:
        from .models import JobDependency

        JobDependency.objects.using(db).bulk_create(
            [JobDependency(job_id=job.pk, depends_on_id=pk) for pk in sorted(set(dep_ids))]
        )
        self.objects.filter(pk__in=dep_ids, has_dependents=False).update(has_dependents=True)
        if job.status == JobStatus.CANCELLED and job.batch_id:
            from .workflows import advance_batch

            advance_batch(job.batch_id, JobStatus.CANCELLED, db)

    def _insert_unique(self, job: Job, db: str) -> Job | None:
        """Insert, or return the unfinished job that already holds the unique key."""
        for _ in range(5):
            try:
                with transaction.atomic(using=db):
                    job.save(using=db, force_insert=True)
                return None
            except IntegrityError:
                job.pk = None
                job._state.adding = True
                existing = self.objects.filter(unique_active=job.unique_active).first()
                if existing is not None:
                    return existing
                # It finished between our INSERT and this read: try again.
        raise IntegrityError(f"Could not enqueue unique job {job.unique_key!r}.")

    def enqueue_on_commit(self, task, args=None, kwargs=None, **options: Any) -> None:
        """Like ``enqueue``, after the current transaction commits (at once outside one).

        The task and options are validated now, so mistakes raise here, not at commit.
        """
        # Build (and drop) the job now: the same validation as enqueue, without a write.
        extra = dict(options)
        known = {name: extra.pop(name, None) for name in (
            "priority", "queue", "scheduled_at", "delay", "max_retries", "retry_delay",
            "timeout", "tags", "metadata", "backend")}
        for internal in ("schedule", "schedule_due_at", "batch", "chain_index"):
            extra.pop(internal, None)
        extra.pop("depends_on", None)
        extra.pop("unique_key", None)
        self._build(task, args, kwargs, **known, options=extra)
        transaction.on_commit(
            lambda: self.enqueue(task, args, kwargs, **options), using=self.db
        )

    def enqueue_batch(
        self,
        task: JobTask | str,
        items: Iterable[Any],
        batch_size: int = 1000,
        on_complete: JobTask | str | None = None,
        **options: Any,
    ) -> Batch:
        """Enqueue one job per item in one INSERT per ``batch_size`` items; returns the Batch.

        An item is a kwargs dict or an ``(args, kwargs)`` pair. ``on_complete`` (a task)
        is enqueued once, when every job of the batch has finished; it receives
        ``batch_id=`` if it accepts it. Options apply to every job.
        """
        from .bulk import copy_jobs, insert_jobs

        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}.")
        for name in ("depends_on", "unique_key"):
            if options.get(name):
                raise ValueError(f"{name} is not supported for batches.")
            options.pop(name, None)
        task = registry.get(task)
        complete_name = registry.get(on_complete).name if on_complete is not None else ""
        known = {name: options.pop(name, None) for name in (
            "priority", "queue", "scheduled_at", "delay", "max_retries", "retry_delay",
            "timeout", "tags", "metadata")}
        template = self._build(task, [], {}, backend="", options=options, **known)
        db = self.db
        # Each item as its (args, kwargs) JSON text: validated here, before anything is
        # written, and all PostgreSQL's COPY needs.
        payloads = []
        for n, item in enumerate(items):
            if isinstance(item, dict):
                args, kwargs = [], item
            elif isinstance(item, (list, tuple)) and len(item) == 2:
                args, kwargs = item
            else:
                raise TypeError(
                    f"items[{n}] must be a kwargs dict or an (args, kwargs) pair, got {item!r}."
                )
            payloads.append((_json_text(list(args), f"items[{n}] args") if args else "[]",
                             _json_text(dict(kwargs), f"items[{n}] kwargs") if kwargs else "{}"))
        with transaction.atomic(using=db):
            batch = Batch.objects.using(db).create(
                kind=BatchKind.BATCH, task_name=task.name, total=len(payloads),
                enqueued=len(payloads), on_complete=complete_name,
                options={"queue": template.queue, "priority": template.priority,
                         "tags": template.tags},
            )
            self._ensure_queue(template.queue, db)
            _stamp(template, db_now(db))
            template.batch_id = batch.pk
            conn = connections[db]
            if uses_psycopg3(conn):
                copy_jobs(template, payloads, db)
            else:
                for start in range(0, len(payloads), batch_size):
                    chunk = []
                    for args_text, kwargs_text in payloads[start:start + batch_size]:
                        job = copy.copy(template)
                        job.args, job.kwargs = json.loads(args_text), json.loads(kwargs_text)
                        chunk.append(job)
                    insert_jobs(chunk, db)
            if not payloads:
                from .workflows import finish_batch

                finish_batch(batch, db)
            self._notify(db, template.queue)
        if signals.job_enqueued.has_listeners():
            for job in self.objects.filter(batch_id=batch.pk):
                signals.send(signals.job_enqueued, job)
        if jobs_settings.EAGER:
            for job in self.objects.filter(batch_id=batch.pk, status=JobStatus.PENDING):
                self._run_eager(job)
        batch.refresh_from_db()
        return batch

    def chain(self, steps: Iterable[Any], **options: Any) -> Batch:
        """Enqueue steps that run one after the other; returns the chain (a Batch).

        A step is ``(task, args, kwargs)``, ``(task, args)`` or a task. Each step waits
        for the previous one to complete; if a step fails for good (or is cancelled) the
        rest are cancelled with the reason recorded. Options apply to every step.
        """
        parsed = []
        for n, step in enumerate(steps):
            if isinstance(step, (list, tuple)):
                if not 1 <= len(step) <= 3:
                    raise TypeError(f"steps[{n}] must be (task, args, kwargs), got {step!r}.")
                task, args, kwargs = (*step, None, None)[:3]
            else:
                task, args, kwargs = step, None, None
            parsed.append((registry.get(task), args, kwargs))
        if not parsed:
            raise ValueError("A chain needs at least one step.")
        for name in ("depends_on", "unique_key"):
            if options.get(name):
                raise ValueError(f"{name} is not supported for chain steps.")
            options.pop(name, None)
        db = self.db
        with transaction.atomic(using=db):
            chain = Batch.objects.using(db).create(
                kind=BatchKind.CHAIN, total=len(parsed), enqueued=len(parsed),
                task_name=parsed[0][0].name,
            )
            previous = None
            for index, (task, args, kwargs) in enumerate(parsed):
                job = self.enqueue(
                    task, args, kwargs, batch=chain, chain_index=index,
                    depends_on=[previous] if previous is not None else None, **options,
                )
                previous = job
        chain.refresh_from_db()  # EAGER mode ran the steps already
        return chain

    def get_batch(self, batch_id: Any) -> Batch:
        """The batch (or chain) with that id; raises ``Batch.DoesNotExist``."""
        try:
            pk = int(str(batch_id))
        except (TypeError, ValueError):
            raise Batch.DoesNotExist(f"No batch with id {batch_id!r}.") from None
        return Batch.objects.using(self.db).get(pk=pk)

    def enqueue_delayed(self, task, delay, args=None, kwargs=None, **options: Any) -> Job:
        """Enqueue to run once ``delay`` (seconds or timedelta) from now."""
        return self.enqueue(task, args, kwargs, delay=delay, **options)

    def _ensure_queue(self, name: str, db: str) -> None:
        # Insert-or-skip in one statement: no read, no race between two enqueuers, and a
        # Queue row deleted meanwhile (admin, tests) comes back on the next enqueue.
        Queue.objects.using(db).bulk_create([Queue(name=name)], ignore_conflicts=True)

    def _notify(self, db: str, queue: str) -> None:
        notify(db, queue)

    def _run_eager(self, job: Job) -> None:
        from .execution.runner import run_job

        lease = new_lease()
        updated = self.objects.filter(pk=job.pk, status=JobStatus.PENDING).update(
            status=JobStatus.RUNNING, worker_id="eager", lease=lease, attempts=1,
            started_at=DbNow(),
        )
        if not updated:
            return
        job.refresh_from_db()
        run_job(job, allow_retry=False)

    # -- reading -------------------------------------------------------------------------

    def get_job(self, job_id: Any) -> Job:
        """The job with that id (int or str); raises ``Job.DoesNotExist``."""
        return self.objects.get(pk=_job_id(job_id))

    def wait_for(self, job_id: Any, timeout: float | None = 60, poll_interval: float = 0.1) -> Job:
        """Block until the job is finished and return it; ``TimeoutError`` if not in time."""
        pk = _job_id(job_id)
        deadline = None if timeout is None else time.monotonic() + to_seconds(timeout, "timeout")
        while True:
            status = self.objects.filter(pk=pk).values_list("status", flat=True).first()
            if status is None:
                raise Job.DoesNotExist(f"No job with id {job_id!r}.")
            if status in FINISHED_STATUSES:
                return self.get_job(pk)
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"Job {pk} is not finished after {timeout} seconds (status {status}).")
            time.sleep(poll_interval)

    def get_failed_jobs(self, queue: str | None = None):
        qs = self.objects.failed()
        if queue:
            qs = qs.filter(original_queue=queue) | qs.filter(queue=queue)
        return qs.order_by("-finished_at", "-id")

    def get_dead_letter_queue(self):
        return self.objects.dead_letter().order_by("-finished_at", "-id")

    # -- control -------------------------------------------------------------------------

    def cancel(self, job_id: Any, terminate: bool = False) -> bool:
        """Cancel a job: at once if no worker holds it, else flag it for its worker.

        False for finished (or unknown) jobs.
        """
        pk = _job_id(job_id)
        ids, flagged = self.objects.filter(pk=pk).cancel(terminate=terminate)
        return bool(ids or flagged)

    def retry(self, job_id: Any) -> Job:
        """A failed or cancelled job back to pending in its original queue."""
        pk = _job_id(job_id)
        qs = self.objects.filter(pk=pk)
        try:
            with transaction.atomic(using=self.db):
                retried = qs.retry_now()
                # Read before commit: a worker may claim it the moment it is committed.
                job = self.get_job(pk) if retried else None
        except IntegrityError:
            raise ValueError(
                f"Job {pk} cannot be retried: another unfinished job holds its unique key."
            ) from None
        if not retried:
            job = self.get_job(pk)  # raises DoesNotExist for unknown ids
            raise ValueError(
                f"Job {pk} is {job.status}; only failed or cancelled jobs can be retried."
            )
        return job

    def requeue_stuck(
        self, older_than: float | timedelta | None = None, *, worker_id: str | None = None
    ) -> int:
        """Rescue jobs held by workers that stopped heartbeating; returns how many.

        Each rescue is recorded as a ``WorkerLost`` error and counts as an attempt, but does
        not use the retry budget: the job goes back to pending, unless it was lost
        ``MAX_LOST`` (3) times (it may be what kills its workers) and then fails for good.
        A job whose cancel was requested ends cancelled instead. ``older_than`` (heartbeat
        age) is never taken below two heartbeat intervals; ``worker_id`` rescues what a
        restarted worker of that id held before.
        """
        from .execution.rescue import rescue_stalled

        return rescue_stalled(self.db, older_than, worker_id=worker_id)

    def prune(
        self,
        statuses: Iterable[str] = ("completed", "failed", "cancelled"),
        older_than: float | timedelta = timedelta(days=7),
    ) -> int:
        """Delete finished jobs that finished more than ``older_than`` ago; returns how
        many. Chunked, set-based and never waiting on a locked row (see
        ``JobQuerySet.prune``)."""
        statuses = list(statuses)
        bad = set(statuses) - set(FINISHED_STATUSES)
        if bad:
            raise ValueError(f"Only finished jobs can be pruned, not {sorted(bad)}.")
        age = timedelta(seconds=to_seconds(older_than, "older_than"))
        return self.objects.prune(age, statuses)

    # -- queues --------------------------------------------------------------------------

    def get_queue_names(self) -> list[str]:
        names = set(Queue.objects.using(self.db).values_list("name", flat=True))
        names |= set(self.objects.unfinished().values_list("queue", flat=True).distinct())
        if self.objects.dead_letter().exists():
            names.add(jobs_settings.DEAD_LETTER_QUEUE)
        return sorted(names)

    def get_queue(self, name: str) -> Queue:
        return Queue.objects.using(self.db).ensure(name)

    def queue_length(self, name: str) -> int:
        """Pending jobs (claimable: pending or awaiting a retry) in the queue."""
        return self.objects.claimable().filter(queue=name).count()

    def pause_queue(self, name: str) -> Queue:
        queue = self.get_queue(name)
        queue.pause()
        return queue

    def resume_queue(self, name: str) -> Queue:
        queue = self.get_queue(name)
        queue.resume()
        self._notify(self.db, name)
        return queue

    def clear_queue(self, name: str) -> int:
        """Cancel the queue's jobs that no worker holds; returns how many."""
        ids, _ = self.objects.filter(queue=name).cancellable().cancel(reason="queue cleared")
        return len(ids)

    # -- schedules -----------------------------------------------------------------------
    # Thin: validation, upsert and firing live in django_jobs.scheduler, state changes on
    # the Schedule model. Invalid input raises (ValueError, TypeError, TaskNotFound) and
    # writes nothing; an existing name is updated (idempotent at start-up).

    def schedule(self, task, cron: str, name: str | None = None, args=None, kwargs=None,
                 timezone: str = "UTC", queue: str | None = None, priority=None,
                 misfire_policy: str = "run_once", enabled: bool = True, **options: Any):
        """Run ``task`` on a 5-field cron expression read in ``timezone``; returns the
        ``Schedule``. ``name`` defaults to the task name. Options: ``tags``, ``metadata``,
        ``description``."""
        from .scheduler import upsert_schedule

        return upsert_schedule(
            task=task, kind="cron", cron=cron, name=name, args=args, kwargs=kwargs,
            timezone=timezone, queue=queue, priority=priority, misfire_policy=misfire_policy,
            enabled=enabled, using=self.db, **options,
        )

    def schedule_interval(self, task, interval: float | timedelta, name: str | None = None,
                          args=None, kwargs=None, queue: str | None = None, priority=None,
                          misfire_policy: str = "run_once", enabled: bool = True,
                          **options: Any):
        """Run ``task`` every ``interval`` (seconds or timedelta), first one interval from
        now (or at ``start_at=``). Options: ``start_at``, ``tags``, ``metadata``,
        ``description``, ``timezone``."""
        from .scheduler import upsert_schedule

        return upsert_schedule(
            task=task, kind="interval", interval=interval, name=name, args=args,
            kwargs=kwargs, queue=queue, priority=priority, misfire_policy=misfire_policy,
            enabled=enabled, using=self.db, **options,
        )

    def schedule_once(self, task, at: datetime, name: str | None = None, args=None,
                      kwargs=None, queue: str | None = None, priority=None,
                      misfire_policy: str = "run_once", enabled: bool = True,
                      **options: Any):
        """Run ``task`` once at ``at`` (an aware datetime)."""
        from .scheduler import upsert_schedule

        return upsert_schedule(
            task=task, kind="once", run_at=at, name=name, args=args, kwargs=kwargs,
            queue=queue, priority=priority, misfire_policy=misfire_policy, enabled=enabled,
            using=self.db, **options,
        )

    def unschedule(self, name: str) -> bool:
        """Delete the schedule ``name``; False if there was none. Its jobs are kept."""
        from .models import Schedule

        deleted, _ = Schedule.objects.using(self.db).filter(name=name).delete()
        return bool(deleted)

    def list_scheduled(self):
        """All schedules (enabled or not), by name."""
        from .models import Schedule

        return Schedule.objects.using(self.db).order_by("name")

    def get_schedule(self, name: str):
        """The schedule ``name``; raises ``Schedule.DoesNotExist``."""
        from .models import Schedule

        return Schedule.objects.using(self.db).get(name=name)

    def enable_schedule(self, name: str):
        """Enable it; its next run is the first due time from now (no catch-up)."""
        schedule = self.get_schedule(name)
        schedule.enable()
        return schedule

    def disable_schedule(self, name: str):
        """Disable it: no job is fired until it is enabled again."""
        schedule = self.get_schedule(name)
        schedule.disable()
        return schedule

    def run_schedule_now(self, name: str) -> Job:
        """Enqueue one job of the schedule now, leaving its next run as it is."""
        return self.get_schedule(name).run_now(manager=self)

    # -- monitoring ----------------------------------------------------------------------

    def get_statistics(self) -> dict[str, Any]:
        from .monitoring import get_statistics

        return get_statistics(self.db)

    def get_workers(self):
        return Worker.objects.using(self.db).all()


def _add_async_twins(cls) -> None:
    """Every public verb gets an async twin prefixed with ``a`` (``aenqueue``...)."""
    for name in [n for n in vars(cls) if not n.startswith("_")]:
        method = getattr(cls, name)
        if not callable(method) or isinstance(vars(cls)[name], property):
            continue

        def make(method_name):
            async def twin(self, *args, **kwargs):
                bound = getattr(self, method_name)
                return await sync_to_async(bound, thread_sensitive=True)(*args, **kwargs)

            twin.__name__ = twin.__qualname__ = f"a{method_name}"
            twin.__doc__ = f"Async twin of :meth:`{method_name}`."
            return twin

        setattr(cls, f"a{name}", make(name))


_add_async_twins(JobManager)

jobs = JobManager()
