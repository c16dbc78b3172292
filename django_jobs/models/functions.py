from __future__ import annotations

from django.db import models


class DbNow(models.Func):
    """The database's current UTC time, read at execution.

    Cross-host order (heartbeats, due times) is taken from one clock, the database's.
    MySQL's CURRENT_TIMESTAMP follows the session time zone, so use UTC_TIMESTAMP there.
    """

    template = "CURRENT_TIMESTAMP"
    output_field = models.DateTimeField()

    def as_postgresql(self, compiler, connection, **extra):
        return self.as_sql(compiler, connection, template="CLOCK_TIMESTAMP()", **extra)

    def as_mysql(self, compiler, connection, **extra):
        return self.as_sql(compiler, connection, template="UTC_TIMESTAMP(6)", **extra)

    def as_sqlite(self, compiler, connection, **extra):
        # Same text format as Django stores datetimes in SQLite, so comparisons hold.
        return self.as_sql(
            compiler,
            connection,
            # Doubly escaped, as Django's own Now: the SQL goes through "%" formatting
            # twice when DEBUG logs it (last_executed_query).
            template="STRFTIME('%%%%Y-%%%%m-%%%%d %%%%H:%%%%M:%%%%f', 'NOW')",
            **extra,
        )
