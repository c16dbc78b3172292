"""What PostgreSQL spends per job on the statements of the engine (no workers, no peers).

    bench/.venv/bin/python bench/statement_costs.py [--jobs 20000]

Creates (and drops) the database ``bench_statements``, migrates the benchmark's Django
project (ours) into it, pre-fills ``--jobs`` pending no-op jobs and times, per job:

1. claim + complete as the engine does them: ``UPDATE … RETURNING`` 1,000 jobs, then
   one completing ``UPDATE`` for them (two new row versions per job);
2. the same with a row lock only: ``SELECT … FOR UPDATE SKIP LOCKED`` held until the one
   completing ``UPDATE`` (one row version per job; not what the engine does, see
   bench/README.md);
3. one ``enqueue()``: the floor (a round trip; a committed tiny INSERT), its statement
   written out (Django's cursor, psycopg unprepared and prepared, prepared without a
   synchronous commit), the enqueue function ``migrate`` installs (what ``enqueue()``
   calls by default), the whole ``jobs.enqueue()`` call by default and where
   ``OPTIONS["prepare_threshold"]`` allows prepared statements, inside
   ``transaction.atomic()`` and as ``enqueue_on_commit``, and our Python alone;
4. inserting 100,000 rows into the jobs table vs into a copy of it without foreign keys,
   the COMMIT (where the deferred ``batch_id`` check runs) timed apart.

Prints numbers; asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import uuid
from pathlib import Path

BENCH = Path(__file__).resolve().parent
DB = "bench_statements"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=20000)
    args = parser.parse_args()
    sys.path[:0] = [str(BENCH), str(BENCH / "djproject")]
    os.environ.update(
        BENCH_DJANGO_SYSTEM="ours", BENCH_DB_NAME=DB, DJANGO_SETTINGS_MODULE="benchsite.settings"
    )
    import psycopg

    admin = psycopg.connect("host=127.0.0.1 user=postgres dbname=postgres", autocommit=True)
    admin.execute(f"DROP DATABASE IF EXISTS {DB}")
    admin.execute(f"CREATE DATABASE {DB}")
    try:
        run(args.jobs)
    finally:
        from django.db import connections

        connections.close_all()
        admin.execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")


def run(n: int) -> None:
    import django
    import psycopg

    django.setup()
    from django.core.management import call_command
    from django.db import connection, transaction
    from ours_app.tasks import noop

    from django_jobs import enqueue, jobs
    from django_jobs.models import inserts
    from django_jobs.models.bulk import row_document

    call_command("migrate", verbosity=0)
    first = jobs.enqueue(noop)
    fields = [f for f in first._meta.concrete_fields if not f.primary_key]
    cols = ", ".join(f'"{f.column}"' for f in fields)
    raw = psycopg.connect(f"host=127.0.0.1 user=postgres dbname={DB}", autocommit=True)
    table = "django_jobs_job"

    def refill():
        raw.execute(f"TRUNCATE {table} CASCADE")
        raw.execute(
            f"INSERT INTO {table} ({cols}) SELECT {cols} FROM jcopy_seed, generate_series(1, {n})"
        )
        raw.execute(f"VACUUM ANALYZE {table}")

    raw.execute(f"CREATE TABLE jcopy_seed AS SELECT * FROM {table} WHERE id = %s", [first.pk])
    due = (
        "SELECT id FROM django_jobs_job WHERE status IN ('pending', 'retrying') "
        "AND scheduled_at <= now() ORDER BY priority DESC, scheduled_at, id "
        "LIMIT 1000 FOR UPDATE SKIP LOCKED"
    )
    complete = (
        "UPDATE django_jobs_job SET status = 'completed', finished_at = now(), "
        "lease = NULL, attempts = attempts + 1 WHERE id = ANY(%s)"
    )
    claim = (
        "UPDATE django_jobs_job SET status = 'running', worker_id = 'w', lease = %s, "
        "attempts = attempts + 1, started_at = clock_timestamp() "
        f"WHERE id = ANY(ARRAY({due})) RETURNING id"
    )
    tx = psycopg.connect(f"host=127.0.0.1 user=postgres dbname={DB}")

    refill()
    done, t = 0, time.perf_counter()
    while ids := [r[0] for r in tx.execute(claim, [uuid.uuid4().hex]).fetchall()]:
        tx.commit()
        tx.execute(complete, [ids])
        tx.commit()
        done += len(ids)
    tx.rollback()  # the last, empty claim
    print(
        f"claim UPDATE + complete UPDATE: {(time.perf_counter() - t) / done * 1e6:6.1f} "
        f"us/job ({done} jobs, 1,000 per statement)"
    )

    refill()
    done, t = 0, time.perf_counter()
    while ids := [r[0] for r in tx.execute(due).fetchall()]:
        tx.execute(complete, [ids])
        tx.commit()
        done += len(ids)
    tx.rollback()
    print(
        f"row lock + complete UPDATE:     {(time.perf_counter() - t) / done * 1e6:6.1f} "
        f"us/job ({done} jobs)"
    )

    job = enqueue.build_job(noop, [], {"tag": 1})
    inserts.insert_in_one_statement(job, "default")
    sql = inserts._insert_sql(connection)
    document = row_document([job], connection, many=False)
    params = ["default", "default", 0.0, document, "django_jobs", "default"]
    function = f"SELECT * FROM {inserts.enqueue_function()[0]}(%s, %s, %s::jsonb, %s)"
    fparams = ["default", 0.0, document, "django_jobs"]
    options = connection.settings_dict["OPTIONS"]
    connection.ensure_connection()
    raw.execute(
        "CREATE TABLE tiny (id bigserial PRIMARY KEY, queue text, scheduled_at timestamptz)"
    )
    lazy = psycopg.connect(f"host=127.0.0.1 user=postgres dbname={DB}", autocommit=True)
    lazy.execute("SET synchronous_commit = off")

    def prepared_enqueue():
        # What enqueue() does where OPTIONS["prepare_threshold"] is set (the benchmark's
        # settings leave it unset).
        options["prepare_threshold"] = connection.connection.prepare_threshold = 0
        try:
            jobs.enqueue(noop)
        finally:
            options.pop("prepare_threshold")
            connection.connection.prepare_threshold = None

    def in_atomic():
        with transaction.atomic():
            jobs.enqueue(noop)

    def on_commit():
        with transaction.atomic():
            jobs.enqueue_on_commit(noop)

    variants = {
        # The floor: a round trip, and a round trip that commits a tiny row.
        "SELECT 1, Django cursor          ": lambda: connection.cursor().execute("SELECT 1"),
        "tiny INSERT, prepared, own conn. ": lambda: raw.execute(
            "INSERT INTO tiny (queue, scheduled_at) VALUES (%s, now())", ["q"], prepare=True
        ),
        # The enqueue statement written out, in autocommit, four ways.
        "enqueue statement, Django cursor ": lambda: connection.cursor().execute(sql, params),
        "same, not prepared, own conn.    ": lambda: raw.execute(sql, params, prepare=False),
        "same, prepared, own conn.        ": lambda: raw.execute(sql, params, prepare=True),
        "same, prepared, no sync commit   ": lambda: lazy.execute(sql, params, prepare=True),
        # What enqueue() sends by default: the function installed by migrate.
        "enqueue function, Django cursor  ": lambda: connection.cursor().execute(function, fparams),
        "function, prepared, own conn.    ": lambda: raw.execute(function, fparams, prepare=True),
        # The whole public call (the difference to its statement is our Python).
        "jobs.enqueue(noop), default      ": lambda: jobs.enqueue(noop),
        "jobs.enqueue(noop), prepare_thr. ": prepared_enqueue,
        "in transaction.atomic()          ": in_atomic,
        "enqueue_on_commit in atomic()    ": on_commit,
        "build_job(noop) alone (Python)   ": lambda: enqueue.build_job(noop, [], {}),
        "row_document alone (Python)      ": lambda: row_document([job], connection, many=False),
    }
    # Interleaved rounds, medians: the machine's speed drifts more than these differ.
    times: dict[str, list[float]] = {label: [] for label in variants}
    for _round in range(7):
        for label, call in variants.items():
            t = time.perf_counter()
            for _ in range(200):
                call()
            times[label].append((time.perf_counter() - t) / 200)
    for label, seconds in times.items():
        print(
            f"{label}: {sorted(seconds)[3] * 1e3:.3f} ms/call (autocommit, median of "
            "7 interleaved rounds of 200)"
        )
    lazy.close()

    # One default enqueue() split three ways: inside the driver's execute() the process
    # either works (psycopg: binding, sending, reading the row) or waits (the network and
    # the server); everything outside execute() is our Python.
    split = {"whole": 0.0, "execute": 0.0, "execute_cpu": 0.0}

    def timing(execute, sql, params, many, context):
        wall, cpu = time.perf_counter(), time.process_time()
        try:
            return execute(sql, params, many, context)
        finally:
            split["execute"] += time.perf_counter() - wall
            split["execute_cpu"] += time.process_time() - cpu

    calls = 2000
    with connection.execute_wrapper(timing):
        t = time.perf_counter()
        for _ in range(calls):
            jobs.enqueue(noop)
        split["whole"] = time.perf_counter() - t
    ms = {k: v / calls * 1e3 for k, v in split.items()}
    print(
        f"jobs.enqueue(noop) split, {calls} calls: {ms['whole']:.3f} ms = our Python "
        f"{ms['whole'] - ms['execute']:.3f} + driver (psycopg, CPU in execute) "
        f"{ms['execute_cpu']:.3f} + network and server {ms['execute'] - ms['execute_cpu']:.3f}"
    )

    rows = 100_000
    raw.execute("CREATE TABLE jcopy_nofk (LIKE django_jobs_job INCLUDING ALL)")
    batch = raw.execute(
        "INSERT INTO django_jobs_batch (kind, task_name, total, enqueued, "
        "completed, failed, cancelled, on_complete, on_complete_kwargs, "
        "on_complete_enqueued, options, created_at) "
        "VALUES ('batch', '', 0, 0, 0, 0, 0, '', '{}', false, '{}', now()) "
        "RETURNING id"
    ).fetchone()[0]
    select_cols = cols.replace('"batch_id"', "%s")
    for target in ("jcopy_nofk", table):
        t0 = time.perf_counter()
        tx.execute(
            f"INSERT INTO {target} ({cols}) SELECT {select_cols} "
            f"FROM jcopy_seed, generate_series(1, {rows})",
            [batch],
        )
        t1 = time.perf_counter()
        tx.commit()
        t2 = time.perf_counter()
        print(
            f"insert {rows:,} rows into {target:15}: {(t1 - t0) / rows * 1e6:5.1f} us/row, "
            f"commit {(t2 - t1) / rows * 1e6:5.1f} us/row"
        )
    tx.close()
    raw.close()


if __name__ == "__main__":
    main()
