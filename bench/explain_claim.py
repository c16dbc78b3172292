"""EXPLAIN ANALYZE of the claim query with a million finished jobs in the table.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench_explain python bench/explain_claim.py

Creates the tables (migrate) in that database, fills it with 1,000,000 completed and 1,000
pending jobs, and prints the plan of the SELECT inside the claim statement. It must be an
index scan on django_jobs_job_claim_idx (the partial index over claimable rows), in well
under a millisecond. Prints numbers only; asserts nothing.
"""

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/bench_explain")

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import connection, transaction  # noqa: E402

from django_jobs.models import Job  # noqa: E402

FINISHED, PENDING = 1_000_000, 1_000


def main() -> None:
    if connection.vendor != "postgresql":
        sys.exit("This script is for PostgreSQL (set DATABASE_URL).")
    call_command("migrate", verbosity=0)
    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE django_jobs_job CASCADE")
        cursor.execute(
            """
            INSERT INTO django_jobs_job (task_name, args, kwargs, queue, original_queue,
                priority, status, created_at, scheduled_at, finished_at, errors, attempts,
                retry_count, max_retries, retry_delay, retry_backoff, retry_jitter,
                max_retry_delay, progress, progress_message, progress_details, tags,
                metadata, worker_ids, cancel_requested, terminate_requested, cancel_reason,
                backend, has_dependents)
            SELECT 'bench.noop', '[]', '{}', 'default', '', (g %% 3) * 50 - 50,
                CASE WHEN g <= %s THEN 'completed' ELSE 'pending' END, now(), now(),
                CASE WHEN g <= %s THEN now() END, '[]', 1, 0, 3, 60, 2, true, 3600, 1, '',
                '{}', '[]', '{}', '[]', false, false, '', '', false
            FROM generate_series(1, %s) AS g
            """,
            [FINISHED, FINISHED, FINISHED + PENDING],
        )
        cursor.execute("ANALYZE django_jobs_job")
    claim = Job.objects.due().in_claim_order().select_for_update(skip_locked=True)
    with transaction.atomic():
        sql, params = claim.values("id")[:100].query.get_compiler(using="default").as_sql()
        with connection.cursor() as cursor:
            cursor.execute("EXPLAIN ANALYZE " + sql, params)
            print("\n".join(row[0] for row in cursor.fetchall()))


if __name__ == "__main__":
    main()
