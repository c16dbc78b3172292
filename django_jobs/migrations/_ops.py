"""Migration operations that only apply on some database vendors."""

from django.db import migrations


class VendorSQL(migrations.RunSQL):
    """``RunSQL`` that runs only on the given vendor (e.g. "mysql")."""

    def __init__(self, vendor, sql, reverse_sql=None, **kwargs):
        self.vendor = vendor
        super().__init__(sql, reverse_sql, **kwargs)

    def deconstruct(self):
        name, args, kwargs = super().deconstruct()
        return name, [self.vendor, *args], kwargs

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor == self.vendor:
            super().database_forwards(app_label, schema_editor, from_state, to_state)

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor == self.vendor:
            super().database_backwards(app_label, schema_editor, from_state, to_state)
