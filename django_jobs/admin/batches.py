"""Batches and chains: their counts and progress. Read-only: the counts belong to the jobs."""

from __future__ import annotations

from django.contrib import admin
from django.utils.translation import gettext_lazy as _

from ..models import Batch
from .display import JobsAdminMedia, progress_bar


@admin.register(Batch)
class BatchAdmin(JobsAdminMedia, admin.ModelAdmin):
    list_display = (
        "id",
        "kind",
        "task_name",
        "total",
        "completed",
        "failed",
        "cancelled",
        "progress_display",
        "created_at",
        "finished_at",
    )
    list_filter = ("kind",)
    search_fields = ("id", "task_name")
    ordering = ("-id",)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False  # counters belong to the jobs

    @admin.display(description=_("progress"))
    def progress_display(self, obj: Batch) -> str:
        return progress_bar(obj.progress)
