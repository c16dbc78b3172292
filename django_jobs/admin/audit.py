"""The audit log in the admin: read-only, and how the other admins write to it."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.utils.translation import gettext_lazy as _

from ..models import AuditEntry
from .display import JobsAdminMedia


def audit(request, using: str, action: str, target_type: str, targets: list, **details: Any):
    """Record a state change made from the admin by ``request.user``."""
    count = details.pop("count", None)
    AuditEntry.record(
        source=AuditEntry.ADMIN,
        action=action,
        target_type=target_type,
        targets=targets,
        count=count,
        user=request.user,
        using=using,
        **details,
    )


@admin.register(AuditEntry)
class AuditEntryAdmin(JobsAdminMedia, admin.ModelAdmin):
    list_display = ("created_at", "username", "source", "action", "target_type", "count",
                    "targets_display")  # fmt: skip
    list_filter = ("source", "action", "target_type")
    search_fields = ("username", "action")
    date_hierarchy = "created_at"
    show_full_result_count = False

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False  # a log is not edited

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description=_("targets"))
    def targets_display(self, obj: AuditEntry) -> str:
        shown = ", ".join(map(str, obj.targets[:10]))
        more = len(obj.targets) - 10
        return f"{shown} (+{more})" if more > 0 else shown or "-"
