"""PostgreSQL: vacuum the jobs table early and fast.

Every job is updated several times (claimed, finished), leaving dead tuples behind; with
the default scale factor (20% of the table) a large table is vacuumed rarely and the claim
query slows down walking dead index entries. A fixed threshold and no cost delay keep it
lean whatever the table's size. Other databases need nothing.
"""

from django.db import migrations

TUNED = (
    "autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 5000, "
    "autovacuum_vacuum_cost_delay = 0, autovacuum_analyze_scale_factor = 0, "
    "autovacuum_analyze_threshold = 10000"
)
DEFAULTS = (
    "autovacuum_vacuum_scale_factor, autovacuum_vacuum_threshold, "
    "autovacuum_vacuum_cost_delay, autovacuum_analyze_scale_factor, "
    "autovacuum_analyze_threshold"
)


def tune(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"ALTER TABLE django_jobs_job SET ({TUNED})")


def untune(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"ALTER TABLE django_jobs_job RESET ({DEFAULTS})")


class Migration(migrations.Migration):
    dependencies = [("django_jobs", "0002_workflows_and_schedules")]

    operations = [migrations.RunPython(tune, untune, elidable=False)]
