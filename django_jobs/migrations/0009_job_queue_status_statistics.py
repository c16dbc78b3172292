"""PostgreSQL: the planner learns how queue and status go together; failed jobs indexed.

On a big table the finished-job counts of ``/metrics/``, ``/stats/`` and the dashboard
are the planner's estimates (django_jobs.models.counts). Its column statistics treat
``queue`` and ``status`` as independent, which they are not (a dead-letter queue holds
only failed jobs, a queue of flaky calls fails more): a multivariate MCV list on the pair,
refreshed by every ANALYZE, makes ``WHERE queue = %s AND status = %s`` estimates close to
the truth; the same for ``original_queue`` (where a dead-lettered job came from). Other
databases need nothing.
"""

from django.db import migrations

# name: the columns, with status (dead-lettered jobs are counted by original_queue)
STATISTICS = {
    "django_jobs_job_queue_status_stats": "queue",
    "django_jobs_job_original_queue_status_stats": "original_queue",
}


# Failed jobs by the queue they failed in (dead-lettered ones by original_queue): counted
# index-only up to a bound. Partial: only failed jobs, a small share of the table.
FAILED_INDEX = "django_jobs_job_failed_origin_idx"


def create(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        # CONCURRENTLY: the table may already be big; this migration is not atomic.
        schema_editor.execute(
            f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {FAILED_INDEX} "
            "ON django_jobs_job (original_queue, queue) WHERE status = 'failed'"
        )
        for name, column in STATISTICS.items():
            schema_editor.execute(
                f"CREATE STATISTICS IF NOT EXISTS {name} (mcv) "
                f"ON {column}, status FROM django_jobs_job"
            )


def drop(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {FAILED_INDEX}")
        for name in STATISTICS:
            schema_editor.execute(f"DROP STATISTICS IF EXISTS {name}")


class Migration(migrations.Migration):
    atomic = False
    dependencies = [("django_jobs", "0008_audit_log")]

    operations = [migrations.RunPython(create, drop, elidable=False)]
