"""Workers: who is alive, what each runs. Read-only: rows belong to their workers."""

from __future__ import annotations

from django.contrib import admin
from django.utils.translation import gettext_lazy as _

from ..models import Worker
from .display import JobsAdminMedia, format_duration
from .filters import AliveFilter


@admin.register(Worker)
class WorkerAdmin(JobsAdminMedia, admin.ModelAdmin):
    list_display = (
        "id",
        "hostname",
        "pid",
        "queues_display",
        "concurrency",
        "last_heartbeat_at",
        "heartbeat_age_display",
        "alive",
        "current_jobs_display",
        "jobs_processed",
        "jobs_failed",
    )
    list_filter = (AliveFilter, "hostname")
    search_fields = ("id", "hostname")
    ordering = ("-started_at",)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False  # rows belong to their running workers

    def has_delete_permission(self, request, obj=None):
        # A deleted row of a live worker would make its jobs look stalled and rescued.
        return False

    @admin.display(description=_("queues"))
    def queues_display(self, obj: Worker) -> str:
        text = ", ".join(obj.queues) if obj.queues else str(_("all"))
        if obj.exclude_queues:
            text = f"{text} (except {', '.join(obj.exclude_queues)})"
        return text

    @admin.display(description=_("heartbeat age"))
    def heartbeat_age_display(self, obj: Worker) -> str:
        return format_duration(max(0.0, obj.heartbeat_age.total_seconds()))

    @admin.display(description=_("alive"), boolean=True)
    def alive(self, obj: Worker) -> bool:
        return obj.is_alive

    @admin.display(description=_("current jobs"))
    def current_jobs_display(self, obj: Worker) -> str:
        return ", ".join(f"#{pk}" for pk in obj.current_jobs) or "-"
