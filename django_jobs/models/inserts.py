"""Writing one new job: in one statement on PostgreSQL (queue row, job row and NOTIFY),
else in a transaction with its dependencies and unique key. ``created_at`` and
``scheduled_at`` come from the database clock. Called by ``django_jobs.enqueue``, which
builds and validates the job first."""

from __future__ import annotations

import functools
import hashlib
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, ProgrammingError, connections, transaction
from django.db.models.base import ModelState
from django.db.models.signals import post_init, pre_init
from django.utils import timezone

from ..enums import JobStatus
from ..wakeups import NOTIFY_CHANNEL, notify, uses_psycopg3
from .bulk import _fields, row_document
from .dependency import JobDependency
from .functions import db_now
from .job import Job
from .queue import Queue
from .workflow import advance_batch


@functools.cache
def _blank_job() -> tuple[dict[str, Any], tuple[tuple[str, Any], ...]]:
    """A new Job's field values: (plain defaults, (attname, factory) of mutable ones)."""
    plain: dict[str, Any] = {}
    fresh = []
    for field in Job._meta.concrete_fields:
        if field.has_default() and callable(field.default):
            fresh.append((field.attname, field.default))
        else:
            plain[field.attname] = field.get_default()
    return plain, tuple(fresh)


def new_job(**values: Any) -> Job:
    """``Job(**values)`` for enqueue's hot path, ``values`` keyed by attname: the same
    instance at a quarter of ``Model.__init__``'s cost (45 fields, each resolved by name).
    Where something listens to ``pre_init``/``post_init`` for jobs, the real thing."""
    if pre_init.has_listeners(Job) or post_init.has_listeners(Job):
        return Job(**values)
    plain, fresh = _blank_job()
    job = Job.__new__(Job)
    state = job.__dict__
    state.update(plain)
    for attname, factory in fresh:
        state[attname] = factory()
    state.update(values)
    job._state = ModelState()
    return job


def ensure_queue(name: str, db: str) -> None:
    # Insert-or-skip in one statement: no read, no race between two enqueuers, and a
    # Queue row deleted meanwhile (admin, tests) comes back on the next enqueue.
    Queue.objects.using(db).bulk_create([Queue(name=name)], ignore_conflicts=True)


def _queue_insert(qn) -> str:
    """The queue row's insert-if-missing (the name twice), shared by both PostgreSQL
    enqueue paths: a read is cheaper than an insert that conflicts (which also burns a
    sequence value), and a queue row deleted meanwhile (admin, tests) comes back."""
    table, name = qn(Queue._meta.db_table), qn("name")
    return (
        f"INSERT INTO {table} ({name}, {qn('description')}, {qn('paused')}, "
        f"{qn('concurrency_limit')}, {qn('created_at')}, {qn('updated_at')}) "
        f"SELECT %s, '', false, NULL, now(), now() "
        f"WHERE NOT EXISTS (SELECT 1 FROM {table} WHERE {name} = %s) ON CONFLICT DO NOTHING"
    )


def _job_insert(qn, delay: str, document: str, returning: str) -> str:
    """INSERT of one job unpacked from a JSON document (``jsonb_populate_record``):
    ``created_at`` and, without an explicit one, ``scheduled_at`` from the clock."""
    job_table = qn(Job._meta.db_table)
    fields = _fields()
    columns = ", ".join(qn(str(f.column)) for f in fields)
    values = ", ".join(
        "n.t"
        if f.attname == "created_at"
        else f"COALESCE(r.{qn(str(f.column))}, n.t + {delay} * INTERVAL '1 second')"
        if f.attname == "scheduled_at"
        else f"r.{qn(str(f.column))}"
        for f in fields
    )
    return (
        f"INSERT INTO {job_table} AS j ({columns}) SELECT {values} "
        f"FROM jsonb_populate_record(NULL::{job_table}, {document}) AS r, "
        f"(SELECT CLOCK_TIMESTAMP() AS t) AS n RETURNING {returning}"
    )


# The PL/pgSQL function enqueue() calls on PostgreSQL (installed by ``migrate``, see
# ``install_enqueue_function``): the INSERT's plan is made once per database session
# and kept, where the same INSERT sent as SQL is parsed and planned on every call (about
# 0.25 ms of the 0.7 ms an enqueue cost). Its name carries a hash of its body, so code
# only calls a function written for the columns it knows.
_FUNCTION_PREFIX = "django_jobs_enqueue_"


def _pg_quote(name: str) -> str:
    """PostgreSQL's quoting of a name (as its backend's ``quote_name``), whatever the
    default database is."""
    return name if name.startswith('"') else f'"{name}"'


@functools.cache
def enqueue_function() -> tuple[str, str]:
    """(name, CREATE statement) of the enqueue function for this code's Job columns."""
    queue_insert = _queue_insert(_pg_quote).replace("%s", "p_queue")
    job_insert = _job_insert(
        _pg_quote, "p_delay", "p_document", "j.id, j.created_at, j.scheduled_at"
    )
    body = (
        "BEGIN\n"
        f"  {queue_insert};\n"
        f"  RETURN QUERY {job_insert};\n"
        "  PERFORM pg_notify(p_channel, p_queue);\n"
        "END"
    )
    digest = hashlib.sha256(body.encode()).hexdigest()[:12]
    name = f"{_FUNCTION_PREFIX}{digest}"
    create = (
        f"CREATE OR REPLACE FUNCTION {name}(p_queue text, p_delay double precision, "
        "p_document jsonb, p_channel text) "
        "RETURNS TABLE (job_id bigint, job_created_at timestamptz, "
        "job_scheduled_at timestamptz) LANGUAGE plpgsql VOLATILE AS $django_jobs$\n"
        f"{body}\n$django_jobs$"
    )
    return name, create


def enqueue_function_exists(cursor) -> bool:
    """Does this code's enqueue function exist (on the cursor's search path)?"""
    cursor.execute("SELECT to_regproc(%s) IS NOT NULL", [enqueue_function()[0]])
    return bool(cursor.fetchone()[0])


# Two ``migrate`` at once would race to create the same function ("tuple concurrently
# updated"): the second waits for the first's transaction here, then finds it.
_INSTALL_LOCK = 0x646A5F656E71  # "dj_enq"


def install_enqueue_function(db: str) -> None:
    """Create this code's enqueue function in database ``db`` (PostgreSQL), unless it
    exists. Run after ``migrate`` (and ``flush``), in a transaction; failing here costs
    speed, not correctness: enqueue() then sends the INSERT itself."""
    conn = connections[db]
    if conn.vendor != "postgresql":
        return
    with conn.cursor() as cursor:
        if not enqueue_function_exists(cursor):
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_INSTALL_LOCK])
            if not enqueue_function_exists(cursor):
                cursor.execute(enqueue_function()[1])
    _function_state.pop(_function_key(conn), None)


# Per database (alias and name: a test run swaps the name): whether the function exists
# and when this process last looked. A "no" is asked again after RECHECK_SECONDS, so
# processes started before ``migrate`` installed it take it up without a restart.
_function_state: dict[tuple[str, str], tuple[bool, float]] = {}
RECHECK_SECONDS = 60.0


def _function_key(conn) -> tuple[str, str]:
    return conn.alias, str(conn.settings_dict.get("NAME"))


def _has_function(conn, cursor) -> bool:
    key = _function_key(conn)
    known = _function_state.get(key)
    if known is None or (not known[0] and time.monotonic() - known[1] > RECHECK_SECONDS):
        known = _function_state[key] = (enqueue_function_exists(cursor), time.monotonic())
    return known[0]


_INSERT_SQL: dict[str, str] = {}  # per database alias


def _insert_sql(conn) -> str:
    sql = _INSERT_SQL.get(conn.alias)
    if sql is None:
        qn = conn.ops.quote_name
        sql = _INSERT_SQL[conn.alias] = (
            f"WITH q AS ({_queue_insert(qn)}), "
            f"j AS ({_job_insert(qn, '%s', '%s::jsonb', 'j.id, j.created_at, j.scheduled_at')}) "
            "SELECT id, created_at, scheduled_at, pg_notify(%s, %s) FROM j"
        )
    return sql


def prepares(conn) -> bool:
    """May enqueue's statement be a prepared one on this connection? Where the project
    allows prepared statements (``OPTIONS["prepare_threshold"]``, psycopg 3): Django
    leaves them off by default because a pooler in transaction mode (PgBouncer before
    1.21) can lose them between transactions."""
    return (
        uses_psycopg3(conn) and conn.settings_dict["OPTIONS"].get("prepare_threshold") is not None
    )


def _server_binding_cursor(conn):
    """A cursor of Django's (execute wrappers, the DEBUG log, error translation) that
    sends its parameters apart from the statement, which psycopg prepares after
    ``prepare_threshold`` runs; Django's default cursor merges them into the text and
    never prepares."""
    # The PostgreSQL backend imports psycopg, which projects on other databases lack.
    from django.db.backends.postgresql.base import ServerBindingCursor

    conn.ensure_connection()
    cursor = ServerBindingCursor(conn.connection)  # type: ignore[call-arg]  # stubs: psycopg2's
    return conn._prepare_cursor(cursor)


def insert_in_one_statement(job: Job, db: str) -> None:
    """INSERT the job, make sure its queue row exists and NOTIFY, in ONE statement:
    written out and prepared where the project allows prepared statements, else a call
    of the enqueue function (or, before ``migrate`` installed it, written out).

    The row travels as one JSON parameter (``jsonb_populate_record``): adapting forty
    parameters one by one costs more on our side than the whole statement on the
    server's. ``created_at`` and (without an explicit one) ``scheduled_at`` come from the
    database clock, like every timestamp of a job."""
    conn = connections[db]
    document = row_document([job], conn, many=False)
    written_out: list[Any] = [job.queue, job.queue, job._delay, document, NOTIFY_CHANNEL, job.queue]
    if prepares(conn):
        with _server_binding_cursor(conn) as cursor:
            cursor.execute(_insert_sql(conn), written_out)
            row = cursor.fetchone()
    else:
        with conn.cursor() as cursor:
            called = False
            if _has_function(conn, cursor):
                try:
                    cursor.execute(
                        f"SELECT * FROM {enqueue_function()[0]}(%s, %s, %s::jsonb, %s)",
                        [job.queue, job._delay, document, NOTIFY_CHANNEL],
                    )
                    row = cursor.fetchone()
                    called = True
                except ProgrammingError as exc:
                    cause = exc.__cause__  # psycopg 3 says sqlstate, psycopg2 pgcode
                    code = getattr(cause, "sqlstate", None) or getattr(cause, "pgcode", None)
                    if code != "42883":
                        raise
                    # Dropped since this process looked (a migration rolled back):
                    # written out from now on. In the caller's transaction the failed
                    # statement has aborted it, so that caller gets the error.
                    _function_state[_function_key(conn)] = (False, time.monotonic())
                    if not conn.get_autocommit():
                        raise
            if not called:
                cursor.execute(_insert_sql(conn), written_out)
                row = cursor.fetchone()
    job.pk, job.created_at, job.scheduled_at = row[0], row[1], row[2]
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
