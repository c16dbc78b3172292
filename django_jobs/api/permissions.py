"""Who may use the API: ``DJANGO_JOBS["API_PERMISSION_CLASSES"]`` (staff by default)."""

from __future__ import annotations

from django.utils.module_loading import import_string
from rest_framework.permissions import BasePermission

from ..conf import jobs_settings


def api_permissions() -> list[BasePermission]:
    """Instances of the configured permission classes, read at request time."""
    return [import_string(path)() for path in jobs_settings.API_PERMISSION_CLASSES]
