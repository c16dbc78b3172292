"""The admin's dashboard page (a proxy of Job) and the failures page's grouping key.

``Job.error_group`` holds, for a job that failed for good, its error's type and message
with the per-job details taken out (django_jobs.errorgroups); a partial index over failed
jobs (full, with status first, on MySQL/MariaDB) makes grouping them one index scan, and
PostgreSQL's statistics on the group estimate big groups.
Existing failed jobs get their group here, a thousand at a time.
"""

from django.db import migrations, models

from django_jobs.errorgroups import error_group

from ._ops import PartialIndex

STATISTICS = "django_jobs_job_error_group_stats"


def create_statistics(apps, schema_editor):
    """PostgreSQL: estimates of a big failure group's size (django_jobs.models.counts)
    need to know that a non-empty error group goes with the failed status."""
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(
            f"CREATE STATISTICS IF NOT EXISTS {STATISTICS} (mcv) "
            "ON error_group, task_name, status FROM django_jobs_job"
        )


def drop_statistics(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"DROP STATISTICS IF EXISTS {STATISTICS}")


def backfill(apps, schema_editor):
    Job = apps.get_model("django_jobs", "Job")
    db = schema_editor.connection.alias
    failed = Job.objects.using(db).filter(status="failed", error_group="").order_by("pk")
    last = 0
    while True:
        rows = list(failed.filter(pk__gt=last).only("pk", "error", "errors")[:1000])
        if not rows:
            return
        for job in rows:
            job.error_group = error_group(job.error or (job.errors or [None])[-1])
        Job.objects.using(db).bulk_update(rows, ["error_group"])
        last = rows[-1].pk


class Migration(migrations.Migration):
    dependencies = [("django_jobs", "0009_job_queue_status_statistics")]

    operations = [
        migrations.CreateModel(
            name="Dashboard",
            fields=[],
            options={
                "verbose_name": "dashboard",
                "verbose_name_plural": "dashboard",
                "proxy": True,
                "default_permissions": (),
                "indexes": [],
                "constraints": [],
            },
            bases=("django_jobs.job",),
        ),
        migrations.AddField(
            model_name="job",
            name="error_group",
            field=models.CharField(blank=True, default="", editable=False, max_length=255),
        ),
        PartialIndex(
            name="django_jobs_job_error_group_idx",
            table="django_jobs_job",
            columns=["error_group", "task_name", "finished_at"],
            condition="status = 'failed'",
            mysql_columns=["status", "error_group", "task_name"],
        ),
        migrations.RunPython(create_statistics, drop_statistics),
        migrations.RunPython(backfill, migrations.RunPython.noop, elidable=True),
    ]
