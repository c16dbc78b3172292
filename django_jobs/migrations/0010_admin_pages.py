"""The admin's dashboard page (a proxy of Job) and the failures page's grouping key.

``Job.error_group`` holds, for a job that failed for good, its error's type and message
with the per-job details taken out (django_jobs.errorgroups). Adding a column with a
constant default is a catalogue change on PostgreSQL 11+ and MySQL 8 (no table rewrite);
its index, statistics and the backfill of existing failed jobs are in 0011, outside any
transaction, so a big table is not locked while they run.
"""

from django.db import migrations, models


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
    ]
