"""Failed jobs grouped by cause: the index, the statistics and the backfill.

Not atomic, so nothing holds a lock on the jobs table for long: on PostgreSQL the partial
index over failed jobs is built ``CONCURRENTLY`` and the statistics on ``(error_group,
task_name, status)`` let the planner estimate a big group's size; SQLite gets the same
partial index, MySQL/MariaDB (no partial indexes) a full one with status first. Existing
failed jobs get their group a thousand at a time, each batch its own transaction.
"""

from django.db import migrations, transaction

from django_jobs.errorgroups import error_group

INDEX = "django_jobs_job_error_group_idx"
STATISTICS = "django_jobs_job_error_group_stats"


def create_index(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        schema_editor.execute(
            f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {INDEX} ON django_jobs_job "
            "(error_group, task_name, finished_at) WHERE status = 'failed'"
        )
        schema_editor.execute(
            f"CREATE STATISTICS IF NOT EXISTS {STATISTICS} (mcv) "
            "ON error_group, task_name, status FROM django_jobs_job"
        )
    elif vendor == "mysql":
        schema_editor.execute(
            f"CREATE INDEX {INDEX} ON django_jobs_job (status, error_group, task_name)"
        )
    else:
        schema_editor.execute(
            f"CREATE INDEX IF NOT EXISTS {INDEX} ON django_jobs_job "
            "(error_group, task_name, finished_at) WHERE status = 'failed'"
        )


def drop_index(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        schema_editor.execute(f"DROP STATISTICS IF EXISTS {STATISTICS}")
        schema_editor.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {INDEX}")
    elif vendor == "mysql":
        schema_editor.execute(f"DROP INDEX {INDEX} ON django_jobs_job")
    else:
        schema_editor.execute(f"DROP INDEX IF EXISTS {INDEX}")


def backfill(apps, schema_editor):
    Job = apps.get_model("django_jobs", "Job")
    db = schema_editor.connection.alias
    failed = Job.objects.using(db).filter(status="failed", error_group="").order_by("pk")
    last = 0
    while True:
        with transaction.atomic(using=db):
            rows = list(failed.filter(pk__gt=last).only("pk", "error", "errors")[:1000])
            if not rows:
                return
            for job in rows:
                job.error_group = error_group(job.error or (job.errors or [None])[-1])
            Job.objects.using(db).bulk_update(rows, ["error_group"])
        last = rows[-1].pk


class Migration(migrations.Migration):
    atomic = False
    dependencies = [("django_jobs", "0010_admin_pages")]

    operations = [
        migrations.RunPython(create_index, drop_index),
        migrations.RunPython(backfill, migrations.RunPython.noop, elidable=True),
    ]
