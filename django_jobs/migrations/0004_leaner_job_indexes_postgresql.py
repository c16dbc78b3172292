"""PostgreSQL: fewer index entries per job update.

Claiming and finishing a job change its status, so neither update can be HOT: every
index of the table gets a new entry, twice per job. Indexes over columns that are NULL
on almost every row (batch, schedule, unique key, finished_at while unfinished) and the
two task_name indexes cost more there than they ever save, so on PostgreSQL:

- task_name: no index (its varchar_pattern_ops twin goes too);
- batch_id, finished_at, unique_active, (schedule_id, schedule_due_at): partial indexes
  over the non-NULL rows (the uniqueness of unique_active and of (schedule, due time) is
  kept: partial UNIQUE indexes);
- schedule_id: covered by the (schedule_id, schedule_due_at) index.

That leaves three index entries per update (primary key, status, and the claim, held or
finished partial index) instead of eleven. The models' state is unchanged, and MySQL,
MariaDB and SQLite keep their indexes as they are.
"""

from django.db import migrations

FORWARD = [
    "DROP INDEX IF EXISTS django_jobs_job_task_name_f7866e76_like",
    "DROP INDEX IF EXISTS django_jobs_job_task_name_f7866e76",
    "DROP INDEX IF EXISTS django_jobs_job_schedule_id_88dc6578",
    "DROP INDEX IF EXISTS django_jobs_job_batch_id_31ba0a66",
    "CREATE INDEX django_jobs_job_batch_id_31ba0a66 ON django_jobs_job (batch_id) "
    "WHERE batch_id IS NOT NULL",
    "DROP INDEX IF EXISTS django_jobs_job_finished_idx",
    "CREATE INDEX django_jobs_job_finished_idx ON django_jobs_job (finished_at) "
    "WHERE finished_at IS NOT NULL",
    "DROP INDEX IF EXISTS django_jobs_job_unique_active_7db1e675_like",
    "ALTER TABLE django_jobs_job DROP CONSTRAINT IF EXISTS django_jobs_job_unique_active_key",
    "CREATE UNIQUE INDEX django_jobs_job_unique_active_key ON django_jobs_job (unique_active) "
    "WHERE unique_active IS NOT NULL",
    "ALTER TABLE django_jobs_job DROP CONSTRAINT IF EXISTS django_jobs_job_schedule_due_unique",
    "CREATE UNIQUE INDEX django_jobs_job_schedule_due_unique ON django_jobs_job "
    "(schedule_id, schedule_due_at) WHERE schedule_id IS NOT NULL",
]

BACKWARD = [
    "DROP INDEX IF EXISTS django_jobs_job_schedule_due_unique",
    "ALTER TABLE django_jobs_job ADD CONSTRAINT django_jobs_job_schedule_due_unique "
    "UNIQUE (schedule_id, schedule_due_at)",
    "DROP INDEX IF EXISTS django_jobs_job_unique_active_key",
    "ALTER TABLE django_jobs_job ADD CONSTRAINT django_jobs_job_unique_active_key "
    "UNIQUE (unique_active)",
    "CREATE INDEX django_jobs_job_unique_active_7db1e675_like ON django_jobs_job "
    "(unique_active varchar_pattern_ops)",
    "DROP INDEX IF EXISTS django_jobs_job_finished_idx",
    "CREATE INDEX django_jobs_job_finished_idx ON django_jobs_job (finished_at)",
    "DROP INDEX IF EXISTS django_jobs_job_batch_id_31ba0a66",
    "CREATE INDEX django_jobs_job_batch_id_31ba0a66 ON django_jobs_job (batch_id)",
    "CREATE INDEX django_jobs_job_schedule_id_88dc6578 ON django_jobs_job (schedule_id)",
    "CREATE INDEX django_jobs_job_task_name_f7866e76 ON django_jobs_job (task_name)",
    "CREATE INDEX django_jobs_job_task_name_f7866e76_like ON django_jobs_job "
    "(task_name varchar_pattern_ops)",
]


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        for sql in FORWARD:
            schema_editor.execute(sql)


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        for sql in BACKWARD:
            schema_editor.execute(sql)


class Migration(migrations.Migration):
    dependencies = [("django_jobs", "0003_job_table_autovacuum")]

    operations = [migrations.RunPython(forwards, backwards, elidable=False)]
