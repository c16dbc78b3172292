"""Waking idle workers: PostgreSQL ``NOTIFY`` on one channel (elsewhere workers poll)."""

from __future__ import annotations

from django.db import connections

NOTIFY_CHANNEL = "django_jobs"


def uses_psycopg3(conn) -> bool:
    """PostgreSQL through psycopg 3, which LISTEN and COPY need (psycopg2 does without
    both: workers poll, batches are INSERTed)."""
    return conn.vendor == "postgresql" and getattr(conn.Database, "__name__", "") == "psycopg"


def notify(db: str, queue: str) -> None:
    """Wake idle workers (PostgreSQL NOTIFY, delivered at commit; elsewhere they poll)."""
    conn = connections[db]
    if conn.vendor == "postgresql":
        with conn.cursor() as cursor:
            cursor.execute("SELECT pg_notify(%s, %s)", [NOTIFY_CHANNEL, queue])
