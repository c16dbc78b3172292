"""Writing one new job: in one statement on PostgreSQL (queue row, job row and NOTIFY),
else in a transaction with its dependencies and unique key. ``created_at`` and
``scheduled_at`` come from the database clock. Called by ``django_jobs.enqueue``, which
builds and validates the job first."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connections, transaction
from django.utils import timezone

from ..enums import JobStatus
from ..wakeups import NOTIFY_CHANNEL, notify
from .bulk import _fields, row_document
from .dependency import JobDependency
from .functions import db_now
from .job import Job
from .queue import Queue
from .workflow import advance_batch


def ensure_queue(name: str, db: str) -> None:
    # Insert-or-skip in one statement: no read, no race between two enqueuers, and a
    # Queue row deleted meanwhile (admin, tests) comes back on the next enqueue.
    Queue.objects.using(db).bulk_create([Queue(name=name)], ignore_conflicts=True)


_INSERT_SQL: dict[str, str] = {}  # per database alias


def insert_in_one_statement(job: Job, db: str) -> None:
    """INSERT the job, make sure its queue row exists and NOTIFY, in ONE statement.

    The row travels as one JSON parameter (``jsonb_populate_record``): adapting forty
    parameters one by one costs more on our side than the whole statement on the
    server's. ``created_at`` and (without an explicit one) ``scheduled_at`` come from the
    database clock, like every timestamp of a job."""
    conn = connections[db]
    sql = _INSERT_SQL.get(conn.alias)
    if sql is None:
        qn = conn.ops.quote_name
        fields = _fields()
        columns = ", ".join(qn(str(f.column)) for f in fields)
        values = ", ".join(
            "n.t"
            if f.attname == "created_at"
            else f"COALESCE(r.{qn(str(f.column))}, n.t + %s * INTERVAL '1 second')"
            if f.attname == "scheduled_at"
            else f"r.{qn(str(f.column))}"
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
    params: list[Any] = [
        job.queue,
        job._delay,
        row_document([job], conn, many=False),
        NOTIFY_CHANNEL,
        job.queue,
    ]
    with conn.cursor() as cursor:
        cursor.execute(sql, params)
        job.pk, job.created_at, job.scheduled_at, _ = cursor.fetchone()
    if not settings.USE_TZ:  # naive already with Django's adapters; never aware
        for name in ("created_at", "scheduled_at"):
            value = getattr(job, name)
            if timezone.is_aware(value):
                setattr(job, name, timezone.make_naive(value, UTC))
    job._state.adding = False
    job._state.db = db


def stamp(job: Job, now: datetime) -> None:
    """``created_at`` and ``scheduled_at`` of a job about to be inserted, from ``now``
    read off the database clock."""
    job.created_at = now
    if job.scheduled_at is None:
        job.scheduled_at = now + timedelta(seconds=job._delay)
    if job.status == JobStatus.CANCELLED:
        job.finished_at = now


def insert_job(job: Job, dep_ids: list[int], unique_key: str | None, db: str) -> Job:
    """Insert ``job`` in a transaction: its queue row, its dependencies (locked until
    commit), its unique key (returning the unfinished job that holds it instead), and
    the wake-up."""
    with transaction.atomic(using=db):
        ensure_queue(job.queue, db)
        if dep_ids:
            _apply_dependencies(job, dep_ids, db)
        stamp(job, db_now(db))
        if unique_key is not None:
            existing = _insert_unique(job, db)
            if existing is not None:
                return existing
        else:
            job.save(using=db, force_insert=True)
        if dep_ids:
            _link_dependencies(job, dep_ids, db)
        if job.status == JobStatus.PENDING:
            notify(db, job.queue)
    return job


def _apply_dependencies(job: Job, dep_ids: list[int], db: str) -> None:
    """Set the new job's status from its dependencies, which stay locked until commit
    so none of them can finish unseen in between."""
    rows = dict(
        Job.objects.using(db)
        .filter(pk__in=dep_ids)
        .order_by("pk")
        .select_for_update()
        .values_list("pk", "status")
    )
    missing = sorted(set(dep_ids) - set(rows))
    if missing:
        raise ValueError(f"depends_on: no job with id {', '.join(map(str, missing))}.")
    broken = [
        (pk, st) for pk, st in sorted(rows.items()) if st in (JobStatus.FAILED, JobStatus.CANCELLED)
    ]
    if broken:
        pk, status = broken[0]
        job.status = JobStatus.CANCELLED
        job.cancel_reason = f"dependency {pk} {status}"
        job.unique_active = None
    elif all(st == JobStatus.COMPLETED for st in rows.values()):
        job.status = JobStatus.PENDING
    else:
        job.status = JobStatus.WAITING


def _link_dependencies(job: Job, dep_ids: list[int], db: str) -> None:
    JobDependency.objects.using(db).bulk_create(
        [JobDependency(job_id=job.pk, depends_on_id=pk) for pk in sorted(set(dep_ids))]
    )
    Job.objects.using(db).filter(pk__in=dep_ids, has_dependents=False).update(has_dependents=True)
    if job.status == JobStatus.CANCELLED and job.batch_id:
        advance_batch(job.batch_id, JobStatus.CANCELLED, db)


def _insert_unique(job: Job, db: str) -> Job | None:
    """Insert, or return the unfinished job that already holds the unique key."""
    for _ in range(5):
        try:
            with transaction.atomic(using=db):
                job.save(using=db, force_insert=True)
            return None
        except IntegrityError:
            job.pk = None
            job._state.adding = True
            existing = Job.objects.using(db).filter(unique_active=job.unique_active).first()
            if existing is not None:
                return existing
            # It finished between our INSERT and this read: try again.
    raise IntegrityError(f"Could not enqueue unique job {job.unique_key!r}.")
