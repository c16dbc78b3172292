import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

import django_jobs.models.rate

from ._ops import PartialIndex


class Migration(migrations.Migration):
    dependencies = [
        ("django_jobs", "0012_notifications"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name="job",
            name="owner",
            field=models.ForeignKey(
                blank=True,
                db_index=False,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="+",
                to=settings.AUTH_USER_MODEL,
            ),
        ),
        migrations.AddField(
            model_name="job",
            name="trace_context",
            field=models.JSONField(blank=True, editable=False, null=True),
        ),
        migrations.AddField(
            model_name="queue",
            name="rate_limit",
            field=models.CharField(
                blank=True,
                db_default="",
                default="",
                help_text=(
                    "At most this many job starts per period across all workers, "
                    'such as "100/s", "600/m" or "1000/h" (empty: no limit).'
                ),
                max_length=32,
                validators=[django_jobs.models.rate.validate_rate],
            ),
        ),
        migrations.AddField(
            model_name="queue",
            name="rate_window",
            field=models.JSONField(blank=True, editable=False, null=True),
        ),
        # "My jobs": most jobs have no owner, so only those that have one are indexed
        # (MySQL/MariaDB index the foreign key by themselves).
        PartialIndex(
            name="django_jobs_job_owner_idx",
            table="django_jobs_job",
            columns=["owner_id", "id"],
            condition="owner_id IS NOT NULL",
        ),
    ]
