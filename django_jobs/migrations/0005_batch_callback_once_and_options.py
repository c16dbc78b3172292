"""Batches remember their options (the on_complete job is enqueued with them) and whether
their on_complete job was enqueued (it never is twice, even when a failed job of a
finished batch is retried and the batch finishes again)."""

from django.db import migrations, models


def mark_enqueued(apps, schema_editor):
    Batch = apps.get_model("django_jobs", "Batch")
    Batch.objects.using(schema_editor.connection.alias).filter(finished_at__isnull=False).exclude(
        on_complete=""
    ).update(on_complete_enqueued=True)


class Migration(migrations.Migration):
    dependencies = [("django_jobs", "0004_leaner_job_indexes_postgresql")]

    operations = [
        migrations.AddField(
            model_name="batch",
            name="on_complete_enqueued",
            field=models.BooleanField(default=False),
        ),
        migrations.AddField(
            model_name="batch",
            name="options",
            field=models.JSONField(blank=True, default=dict),
        ),
        migrations.RunPython(mark_enqueued, migrations.RunPython.noop, elidable=True),
    ]
