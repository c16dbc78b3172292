"""PostgreSQL: teach the planner how queue and status go together.

On a big table the finished-job counts of ``/metrics/``, ``/stats/`` and the dashboard
are the planner's estimates (django_jobs.models.counts). Its column statistics treat
``queue`` and ``status`` as independent, which they are not (a dead-letter queue holds
only failed jobs, a queue of flaky calls fails more): a multivariate MCV list on the pair,
refreshed by every ANALYZE, makes ``WHERE queue = %s AND status = %s`` estimates close to
the truth. Other databases need nothing.
"""

from django.db import migrations

NAME = "django_jobs_job_queue_status_stats"


def create(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(
            f"CREATE STATISTICS IF NOT EXISTS {NAME} (mcv) ON queue, status FROM django_jobs_job"
        )


def drop(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"DROP STATISTICS IF EXISTS {NAME}")


class Migration(migrations.Migration):
    dependencies = [("django_jobs", "0008_audit_log")]

    operations = [migrations.RunPython(create, drop, elidable=False)]
