"""Insert many jobs in one statement per chunk (``COPY`` on PostgreSQL).

``bulk_create`` splits rows by the database's parameter limit (999 on SQLite, so about
25 jobs per INSERT). Here each chunk travels as ONE parameter, a JSON document, which the
database unpacks (``jsonb_to_recordset`` on PostgreSQL, ``json_each`` on SQLite,
``JSON_TABLE`` on MySQL/MariaDB): one INSERT per chunk whatever its size.
"""

from __future__ import annotations

import functools
import json
import time
from datetime import datetime
from typing import Any

from django.db import connections, models

from .job import Job


@functools.cache
def _fields() -> tuple[models.Field, ...]:
    """The inserted columns, in the order ``row_document`` and ``copy_jobs`` write them."""
    return tuple(f for f in Job._meta.concrete_fields if not f.primary_key)


def _value(field: models.Field, value: Any, connection) -> Any:
    if value is None:
        return None
    if isinstance(field, models.JSONField):
        return value
    if isinstance(field, models.ForeignKey):
        # The owner: the user model's primary key may be a UUID (PostgreSQL's own type,
        # 32 hex digits elsewhere) or another non-JSON value.
        value = field.target_field.get_db_prep_value(value, connection)
        return value if isinstance(value, (int, str)) else str(value)
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
        return str(field.target_field.rel_db_type(connection))
    return str(field.db_type(connection)).split(" CHECK")[0]


def row_document(jobs: list[Job], connection, many: bool = True) -> str:
    """The rows of ``jobs`` as one JSON document (a list, or one object), column names
    as keys: what ``jsonb_to_recordset``/``jsonb_populate_record``, ``json_each`` and
    ``JSON_TABLE`` unpack into an INSERT of the ``_fields()`` columns."""
    plain, other = _document_plan(connection.vendor)
    # MySQL's JSON_TABLE reads a JSON null into a JSON column as the JSON value null, not
    # SQL NULL (``result__isnull=True`` would miss the row): it gets no key instead.
    drop_nulls = connection.vendor == "mysql"
    rows = []
    for job in jobs:
        values = job.__dict__
        row = {column: values[attname] for column, attname in plain}
        for column, attname, field in other:
            row[column] = _value(field, values[attname], connection)
        if drop_nulls:
            row = {column: value for column, value in row.items() if value is not None}
        rows.append(row)
    return json.dumps(rows if many else rows[0], separators=(",", ":"))


@functools.cache
def _document_plan(vendor: str) -> tuple[list, list]:
    """(columns copied as they are, columns converted), once per database vendor:
    ``enqueue()`` builds a document per call."""
    fields = _fields()
    return (
        [(f.column, f.attname) for f in fields if _is_plain(f, vendor)],
        [(f.column, f.attname, f) for f in fields if not _is_plain(f, vendor)],
    )


def _is_plain(field: models.Field, vendor: str) -> bool:
    """Columns whose Python value is already its JSON form (no datetime, no bool to
    turn into 0/1 outside PostgreSQL)."""
    if isinstance(field, (models.DateTimeField, models.DateField)):
        return False
    if isinstance(field, models.BooleanField):
        return vendor == "postgresql"
    return not isinstance(field, models.ForeignKey)


def insert_jobs(jobs: list[Job], using: str) -> int:
    """INSERT ``jobs`` (unsaved instances) in one statement; returns the row count."""
    if not jobs:
        return 0
    connection = connections[using]
    fields = _fields()
    qn = connection.ops.quote_name
    table = qn(Job._meta.db_table)
    columns = ", ".join(qn(str(f.column)) for f in fields)
    document = row_document(jobs, connection)
    if connection.vendor == "postgresql":
        spec = ", ".join(f"{qn(str(f.column))} {_column_type(f, connection)}" for f in fields)
        sql = (
            f"INSERT INTO {table} ({columns}) SELECT {columns} "
            f"FROM jsonb_to_recordset(%s::jsonb) AS x({spec})"
        )
    elif connection.vendor == "sqlite":
        extract = ", ".join(f"json_extract(j.value, '$.{f.column}')" for f in fields)
        sql = f"INSERT INTO {table} ({columns}) SELECT {extract} FROM json_each(%s) AS j"
    elif connection.vendor == "mysql":
        spec = ", ".join(
            f"{qn(str(f.column))} {_column_type(f, connection)} PATH '$.{f.column}'" for f in fields
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


def _copy_text(field: models.Field, value: Any, connection) -> str:
    """One column of a ``COPY ... FROM STDIN`` text-format row."""
    if value is None:
        return "\\N"
    if isinstance(field, models.JSONField):
        text = json.dumps(value)
    elif isinstance(value, bool):
        text = "t" if value else "f"
    elif isinstance(value, datetime):
        text = value.isoformat()
    else:
        text = str(value)
    return _copy_escape(text)


def _copy_escape(text: str) -> str:
    if "\\" in text:
        text = text.replace("\\", "\\\\")
    if "\t" in text or "\n" in text or "\r" in text:
        text = text.replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")
    return text


def copy_jobs(template: Job, payloads: list[tuple[str, str]], using: str) -> int:
    """PostgreSQL: insert one job per ``(args JSON, kwargs JSON)`` pair, every other
    column from ``template``, with ONE ``COPY``. The constant part of each row is
    formatted once, so a row costs two string joins on our side."""
    if not payloads:
        return 0
    connection = connections[using]
    fields = _fields()
    qn = connection.ops.quote_name
    names = [f.attname for f in fields]
    i_args, i_kwargs = names.index("args"), names.index("kwargs")
    cells = [_copy_text(f, getattr(template, f.attname), connection) for f in fields]
    head = "\t".join(cells[:i_args])
    middle = "\t".join(cells[i_args + 1 : i_kwargs])
    tail = "\t".join(cells[i_kwargs + 1 :])
    head = head + "\t" if head else ""
    middle = "\t" + middle + "\t" if middle else "\t"
    tail = "\t" + tail + "\n" if tail else "\n"
    sql = (
        f"COPY {qn(Job._meta.db_table)} ({', '.join(qn(str(f.column)) for f in fields)}) FROM STDIN"
    )
    started = time.monotonic()
    with connection.cursor() as cursor, cursor.cursor.copy(sql) as copy:
        chunk = []
        for args_text, kwargs_text in payloads:
            chunk.append(head + _copy_escape(args_text) + middle + _copy_escape(kwargs_text) + tail)
            if len(chunk) >= 5000:
                copy.write("".join(chunk))
                chunk = []
        if chunk:
            copy.write("".join(chunk))
    if connection.queries_logged:  # what Django's debug cursor would have recorded
        connection.queries_log.append(
            {
                "sql": f"{sql} -- {len(payloads)} rows",
                "time": f"{time.monotonic() - started:.3f}",
            }
        )
    return len(payloads)
