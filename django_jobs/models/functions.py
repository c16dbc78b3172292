from __future__ import annotations

from datetime import UTC, datetime

from django.conf import settings
from django.db import models
from django.db.models.sql import Query


class DbNow(models.Func):
    """The database's current UTC time, read at execution, plus ``offset`` seconds.

    Every timestamp a job carries comes from this one clock, the database's (never a
    worker's or a web server's), so that ``created_at <= started_at <= finished_at``
    holds whatever the hosts' clocks say, and cross-host order (heartbeats, due times)
    is taken from one clock too. MySQL's CURRENT_TIMESTAMP follows the session time
    zone, so UTC_TIMESTAMP is used there.
    """

    template = "CURRENT_TIMESTAMP"
    output_field = models.DateTimeField()

    def __init__(self, offset: float = 0.0, **extra):
        self.offset = float(offset)
        super().__init__(**extra)

    def as_postgresql(self, compiler, connection, **extra):
        if not self.offset:
            return "CLOCK_TIMESTAMP()", []
        return "(CLOCK_TIMESTAMP() + %s * INTERVAL '1 second')", [self.offset]

    def as_mysql(self, compiler, connection, **extra):
        if not self.offset:
            return "UTC_TIMESTAMP(6)", []
        return "(UTC_TIMESTAMP(6) + INTERVAL %s MICROSECOND)", [round(self.offset * 1e6)]

    def as_sqlite(self, compiler, connection, **extra):
        # SQLite compares datetimes as text, so this must be the text Django stores:
        # "YYYY-MM-DD HH:MM:SS.ffffff". STRFTIME's %f has milliseconds only ("SS.SSS"),
        # and "…00.123" sorts before the "…00.123000" of a job stamped with it: a job
        # was not due within the millisecond it was enqueued. Hence the three zeros.
        # "%%": the SQL goes through "%" formatting once more (the backend's parameter
        # substitution), as Django's own Now.
        fmt = "(STRFTIME('%%Y-%%m-%%d %%H:%%M:%%f', 'NOW'"
        if not self.offset:
            return fmt + ") || '000')", []
        return fmt + ", %s) || '000')", [f"{self.offset:+.6f} seconds"]


def db_now(using: str) -> datetime:
    """The database's current time (aware UTC when ``USE_TZ``): one round trip."""

    query = Query(None)
    query.add_annotation(DbNow(), "now")
    (row,) = list(query.get_compiler(using).results_iter())
    value = row[0]
    if settings.USE_TZ and value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value
