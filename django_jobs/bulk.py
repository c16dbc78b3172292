"""Insert many jobs in one statement per chunk.

``bulk_create`` splits rows by the database's parameter limit (999 on SQLite, so about
25 jobs per INSERT). Here each chunk travels as ONE parameter, a JSON document, which the
database unpacks (``jsonb_to_recordset`` on PostgreSQL, ``json_each`` on SQLite,
``JSON_TABLE`` on MySQL/MariaDB): one INSERT per chunk whatever its size.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from django.db import connections, models

from .models import Job


def _fields() -> list[models.Field]:
    return [f for f in Job._meta.concrete_fields if not f.primary_key]


def _value(field: models.Field, value: Any, connection) -> Any:
    if value is None:
        return None
    if isinstance(field, models.JSONField):
        return value
    if isinstance(value, datetime):
        if connection.vendor == "postgresql":
            return value.isoformat()
        # SQLite and MySQL store naive UTC text in Django's own format.
        return str(connection.ops.adapt_datetimefield_value(value))
    if isinstance(value, bool) and connection.vendor != "postgresql":
        return int(value)
    return value


def _column_type(field: models.Field, connection) -> str:
    if isinstance(field, models.JSONField):
        return "jsonb" if connection.vendor == "postgresql" else "json"
    if isinstance(field, models.ForeignKey):
        return field.target_field.rel_db_type(connection)
    db_type = field.db_type(connection)
    return db_type.split(" CHECK")[0]


def insert_jobs(jobs: list[Job], using: str) -> int:
    """INSERT ``jobs`` (unsaved instances) in one statement; returns the row count."""
    if not jobs:
        return 0
    connection = connections[using]
    fields = _fields()
    qn = connection.ops.quote_name
    table = qn(Job._meta.db_table)
    columns = ", ".join(qn(f.column) for f in fields)
    rows = [
        {f.column: _value(f, getattr(job, f.attname), connection) for f in fields}
        for job in jobs
    ]
    document = json.dumps(rows, separators=(",", ":"))
    if connection.vendor == "postgresql":
        spec = ", ".join(f"{qn(f.column)} {_column_type(f, connection)}" for f in fields)
        sql = (
            f"INSERT INTO {table} ({columns}) SELECT {columns} "
            f"FROM jsonb_to_recordset(%s::jsonb) AS x({spec})"
        )
    elif connection.vendor == "sqlite":
        extract = ", ".join(f"json_extract(j.value, '$.{f.column}')" for f in fields)
        sql = f"INSERT INTO {table} ({columns}) SELECT {extract} FROM json_each(%s) AS j"
    elif connection.vendor == "mysql":
        spec = ", ".join(
            f"{qn(f.column)} {_column_type(f, connection)} PATH '$.{f.column}'" for f in fields
        )
        sql = (
            f"INSERT INTO {table} ({columns}) SELECT {columns} "
            f"FROM JSON_TABLE(%s, '$[*]' COLUMNS ({spec})) AS jt"
        )
    else:  # pragma: no cover - other backends: Django's own bulk insert
        Job.objects.using(using).bulk_create(jobs)
        return len(jobs)
    with connection.cursor() as cursor:
        cursor.execute(sql, [document])
        return cursor.rowcount
