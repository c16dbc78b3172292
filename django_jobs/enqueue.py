"""Enqueueing: the options a job gets, and the ways it is written.

``JobManager``'s enqueue verbs (and the scheduler) call these. Every option left out
falls back to the task's, then to the settings; everything is validated before anything
is written. The common case on PostgreSQL is one statement (queue row, job row and
NOTIFY); dependencies, unique keys and schedules take a transaction; batches are one
bulk write per chunk (one ``COPY`` on PostgreSQL). ``created_at`` and ``scheduled_at``
come from the database clock.
"""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import connections, models, transaction
from django.utils import timezone

from . import signals, tracing
from ._compat import DEFAULT_TASK_QUEUE_NAME, task_enqueued
from .conf import finite, jobs_settings, to_seconds
from .execution.policy import default_options
from .execution.runner import run_job
from .jsonvalues import check_json, json_text
from .models import Batch, BatchKind, Job, JobStatus, Priority
from .models.bulk import copy_jobs, insert_jobs
from .models.functions import DbNow, db_now
from .models.inserts import (
    ensure_queue,
    insert_in_one_statement,
    insert_job,
    new_job,
    stamp,
)
from .models.job import new_lease
from .models.rollup import CANCELLED, ENQUEUED, rollups
from .models.workflow import finish_batch
from .registry import BUILD_OPTIONS, JobTask, default_unique_key, registry
from .results import backend_for, result_from_job
from .wakeups import notify, uses_psycopg3

DEFAULT_TASK_PRIORITY = 0  # Django's default for tasks declared without a priority


def build_job(
    task,
    args,
    kwargs,
    *,
    priority=None,
    queue=None,
    scheduled_at=None,
    delay=None,
    max_retries=None,
    retry_delay=None,
    timeout=None,
    tags=None,
    metadata=None,
    owner=None,
    backend="",
    options=None,
) -> Job:
    """A validated, unsaved job: the options given, else the task's, else the settings.
    Raises ``TaskNotFound``, ``TypeError`` or ``ValueError``; writes nothing."""
    options = options or {}
    task = registry.get(task)
    if args is None:
        args = []
    if kwargs is None:
        kwargs = {}
    if isinstance(args, (str, bytes, dict)) or not isinstance(args, Iterable):
        raise TypeError(f"args must be a list, got {type(args).__name__}.")
    if not isinstance(kwargs, dict):
        raise TypeError(f"kwargs must be a dict, got {type(kwargs).__name__}.")
    args = check_json(list(args), "args")
    kwargs = check_json(kwargs, "kwargs")
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
        raise ValueError(
            f"queue must be a non-empty name of at most 255 characters, got {queue!r}."
        )
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
    backoff = finite(
        backoff if backoff is not None else (task.retry_backoff or defaults["retry_backoff"]),
        "retry_backoff",
    )
    if backoff < 1:
        raise ValueError(f"retry_backoff must be >= 1, got {backoff!r}.")
    jitter = options.get("retry_jitter")
    jitter = bool(
        jitter
        if jitter is not None
        else (task.retry_jitter if task.retry_jitter is not None else defaults["retry_jitter"])
    )
    cap = options.get("max_retry_delay")
    cap = to_seconds(
        cap
        if cap is not None
        else (
            task.max_retry_delay
            if task.max_retry_delay is not None
            else defaults["max_retry_delay"]
        ),
        "max_retry_delay",
    )
    if tags is None:
        tags = list(task.tags)
    elif isinstance(tags, str):
        tags = [tags]
    tags = [str(t) for t in tags]
    metadata = check_json(metadata or {}, "metadata")
    if not isinstance(metadata, dict):
        raise TypeError("metadata must be a dict.")
    limit = jobs_settings.MAX_PAYLOAD_BYTES
    if limit and len(json.dumps([args, kwargs, metadata]).encode()) > limit:
        raise ValueError(
            f"The job's args, kwargs and metadata are larger than MAX_PAYLOAD_BYTES ({limit} "
            "bytes) in JSON: store large data elsewhere and pass a reference."
        )
    job = new_job(
        task_name=task.name,
        args=args,
        kwargs=kwargs,
        queue=queue,
        priority=priority,
        status=JobStatus.PENDING,
        # Both from the database clock when the row is written (see models.inserts.stamp).
        created_at=None,  # not a datetime until then
        scheduled_at=scheduled_at,
        max_retries=max_retries,
        retry_delay=retry_delay,
        retry_backoff=backoff,
        retry_jitter=jitter,
        max_retry_delay=cap,
        timeout=timeout,
        tags=tags,
        metadata=metadata,
        owner_id=owner_pk(owner),
        backend=backend or "",
    )
    job._delay = seconds
    return job


def owner_pk(owner: Any) -> Any:
    """The primary key of the user a job is started for: a user, a user's primary key,
    or None. ``request.user`` may be passed as it is: an anonymous user owns nothing."""
    if owner is None:
        return None
    user_model = get_user_model()
    if isinstance(owner, user_model):
        if owner.pk is None:
            raise ValueError("owner must be a saved user (it has no primary key yet).")
        return owner.pk
    if getattr(owner, "is_anonymous", False) is True:
        return None
    if isinstance(owner, models.Model):
        raise TypeError(
            f"owner must be a {user_model._meta.label} (AUTH_USER_MODEL), got a "
            f"{owner._meta.label}."
        )
    if isinstance(owner, (bool, float)) or not isinstance(owner, (int, str, uuid.UUID)):
        raise TypeError(f"owner must be a user or a user's primary key, got {owner!r}.")
    try:
        pk = user_model._meta.pk.to_python(owner)
    except ValidationError:
        raise TypeError(f"owner must be a user or a user's primary key, got {owner!r}.") from None
    # A key alone may name nobody: refuse it now, not with a foreign key violation at the
    # commit of the caller's transaction (PostgreSQL and SQLite check them there).
    if not user_model._default_manager.filter(pk=pk).exists():
        raise ValueError(f"owner: there is no user with primary key {owner!r}.")
    return pk


def job_pk(job_or_id: Any) -> int:
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


def enqueue_job(
    db: str,
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
    owner: Any = None,
    backend: str = "",
    schedule=None,
    schedule_due_at: datetime | None = None,
    batch=None,
    chain_index: int | None = None,
    **options: Any,
) -> Job:
    """Write one job into database ``db``, in the caller's transaction (``JobManager.enqueue``
    documents the arguments); returns it, or the unfinished job holding its unique key."""
    job = build_job(
        task,
        args,
        kwargs,
        priority=priority,
        queue=queue,
        scheduled_at=scheduled_at,
        delay=delay,
        max_retries=max_retries,
        retry_delay=retry_delay,
        timeout=timeout,
        tags=tags,
        metadata=metadata,
        owner=owner,
        backend=backend,
        options=options,
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
    dep_ids = [job_pk(d) for d in (depends_on or [])]
    if batch is not None:
        job.batch = batch
        job.chain_index = chain_index
    stored = job
    with tracing.producing(job):  # stores the trace context in the job: before the write
        if (
            not dep_ids
            and unique_key is None
            and schedule is None
            and connections[db].vendor == "postgresql"
        ):
            # The common case in one statement (queue row, job row, NOTIFY): one round
            # trip, one commit in autocommit.
            insert_in_one_statement(job, db)
        else:
            stored = insert_job(job, dep_ids, unique_key, db)
    if stored is not job:
        return stored  # the unfinished job holding the unique key
    rollups.record_on_commit(db, job.queue, job.task_name, ENQUEUED)
    if job.status == JobStatus.CANCELLED:  # a dependency had failed already
        rollups.record_on_commit(db, job.queue, job.task_name, CANCELLED)
        signals.send(signals.job_cancelled, job, reason=job.cancel_reason)
        return job
    signals.send(signals.job_enqueued, job)
    if job.backend:
        backend_obj = backend_for(job.backend)
        task_enqueued.send_robust(
            sender=type(backend_obj), task_result=result_from_job(job, backend_obj)
        )
    if jobs_settings.EAGER and job.status == JobStatus.PENDING:
        run_eager(db, job)
    return job


def enqueue_many(
    db: str,
    task: JobTask | str,
    items: Iterable[Any],
    batch_size: int = 1000,
    on_complete: JobTask | str | None = None,
    **options: Any,
) -> Batch:
    """``JobManager.enqueue_batch`` into database ``db``: one bulk write per ``batch_size``
    items (one ``COPY`` on PostgreSQL), in one transaction."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}.")
    for name in ("depends_on", "unique_key"):
        if options.get(name):
            raise ValueError(f"{name} is not supported for batches.")
        options.pop(name, None)
    task = registry.get(task)
    complete_name = registry.get(on_complete).name if on_complete is not None else ""
    known = {name: options.pop(name, None) for name in BUILD_OPTIONS}
    template = build_job(task, [], {}, backend="", options=options, **known)
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
        payloads.append(
            (
                json_text(list(args), f"items[{n}] args") if args else "[]",
                json_text(dict(kwargs), f"items[{n}] kwargs") if kwargs else "{}",
            )
        )
    with tracing.producing(template, len(payloads)), transaction.atomic(using=db):
        batch = Batch.objects.using(db).create(
            kind=BatchKind.BATCH,
            task_name=task.name,
            total=len(payloads),
            enqueued=len(payloads),
            on_complete=complete_name,
            options={
                "queue": template.queue,
                "priority": template.priority,
                "tags": template.tags,
                "owner": template.owner_id,
            },
        )
        ensure_queue(template.queue, db)
        stamp(template, db_now(db))
        template.batch_id = batch.pk
        conn = connections[db]
        if uses_psycopg3(conn):
            copy_jobs(template, payloads, db)
        else:
            for start in range(0, len(payloads), batch_size):
                chunk = []
                for args_text, kwargs_text in payloads[start : start + batch_size]:
                    job = copy.copy(template)
                    job.args, job.kwargs = json.loads(args_text), json.loads(kwargs_text)
                    chunk.append(job)
                insert_jobs(chunk, db)
        if not payloads:
            finish_batch(batch, db)
        rollups.record_on_commit(db, template.queue, task.name, ENQUEUED, n=len(payloads))
        notify(db, template.queue)
    if signals.job_enqueued.has_listeners():
        for job in Job.objects.using(db).filter(batch_id=batch.pk):
            signals.send(signals.job_enqueued, job)
    if jobs_settings.EAGER:
        for job in Job.objects.using(db).filter(batch_id=batch.pk, status=JobStatus.PENDING):
            run_eager(db, job)
    batch.refresh_from_db()
    return batch


def enqueue_chain(db: str, steps: Iterable[Any], **options: Any) -> Batch:
    """``JobManager.chain`` into database ``db``: each step depends on the one before."""
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
    with transaction.atomic(using=db):
        chain = Batch.objects.using(db).create(
            kind=BatchKind.CHAIN,
            total=len(parsed),
            enqueued=len(parsed),
            task_name=parsed[0][0].name,
        )
        previous = None
        for index, (task, args, kwargs) in enumerate(parsed):
            job = enqueue_job(
                db,
                task,
                args,
                kwargs,
                batch=chain,
                chain_index=index,
                depends_on=[previous] if previous is not None else None,
                **options,
            )
            previous = job
    chain.refresh_from_db()  # EAGER mode ran the steps already
    return chain


def run_eager(db: str, job: Job) -> None:
    """EAGER mode: run the job now, in this process, without retries."""
    lease = new_lease()
    updated = (
        Job.objects.using(db)
        .filter(pk=job.pk, status=JobStatus.PENDING)
        .update(
            status=JobStatus.RUNNING,
            worker_id="eager",
            lease=lease,
            attempts=1,
            started_at=DbNow(),
        )
    )
    if not updated:
        return
    job.refresh_from_db()
    run_job(job, allow_retry=False)
