"""Migration operations that only apply on some database vendors."""

from django.db import migrations


class PartialIndex(migrations.operations.base.Operation):
    """A partial index where the database has them (PostgreSQL, SQLite) and a full index
    on ``mysql_columns`` on MySQL/MariaDB, which have none.

    Kept out of the models' ``Meta.indexes`` on purpose: there, Django would warn about
    ignored conditions (models.W037) on every ``check`` of a MySQL project.
    """

    reduces_to_sql = True
    reversible = True

    def __init__(self, name, table, columns, condition, mysql_columns=None):
        self.name = name
        self.table = table
        self.columns = list(columns)
        self.condition = condition
        self.mysql_columns = list(mysql_columns) if mysql_columns else None

    def deconstruct(self):
        kwargs = {
            "name": self.name,
            "table": self.table,
            "columns": self.columns,
            "condition": self.condition,
        }
        if self.mysql_columns:
            kwargs["mysql_columns"] = self.mysql_columns
        return self.__class__.__qualname__, [], kwargs

    def state_forwards(self, app_label, state):
        pass

    def _sql(self, vendor):
        if vendor == "mysql":
            if not self.mysql_columns:
                return None
            return f"CREATE INDEX {self.name} ON {self.table} ({', '.join(self.mysql_columns)})"
        return (
            f"CREATE INDEX {self.name} ON {self.table} ({', '.join(self.columns)}) "
            f"WHERE {self.condition}"
        )

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        sql = self._sql(schema_editor.connection.vendor)
        if sql:
            schema_editor.execute(sql)

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        vendor = schema_editor.connection.vendor
        if not self._sql(vendor):
            return
        on = f" ON {self.table}" if vendor == "mysql" else ""
        schema_editor.execute(f"DROP INDEX {self.name}{on}")

    def describe(self):
        return f"Create partial index {self.name} on {self.table}"
