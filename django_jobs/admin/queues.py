"""Queues: counts per queue, pause, resume and clear."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from ..manager import jobs
from ..models import Queue
from ..models.queue_counts import with_counts
from .audit import audit
from .display import JobsAdminMedia


@admin.register(Queue)
class QueueAdmin(JobsAdminMedia, admin.ModelAdmin):
    list_display = (
        "name",
        "paused",
        "concurrency_limit",
        "pending_count",
        "running_count",
        "failed_count",
        "description",
    )
    list_filter = ("paused",)
    search_fields = ("name", "description")
    actions = ("pause_queues", "resume_queues", "clear_queues")
    fields = (
        "name",
        "description",
        "paused",
        "concurrency_limit",
        "max_pending_age",
        "created_at",
        "updated_at",
    )

    def get_readonly_fields(self, request, obj=None):
        # Pausing goes through the actions (resume also wakes idle workers).
        readonly = ["paused", "created_at", "updated_at"]
        if obj is not None:
            readonly.append("name")  # jobs refer to their queue by name
        return readonly

    def get_queryset(self, request):
        return with_counts(super().get_queryset(request))

    @admin.display(description=_("pending"), ordering="pending")
    def pending_count(self, obj: Any) -> int:  # a Queue annotated with its counts
        return obj.pending

    @admin.display(description=_("running"), ordering="running")
    def running_count(self, obj: Any) -> int:  # a Queue annotated with its counts
        return obj.running

    @admin.display(description=_("failed"), ordering="failed")
    def failed_count(self, obj: Any) -> int:  # a Queue annotated with its counts
        return obj.failed

    @admin.action(description=_("Pause selected queues"), permissions=["change"])
    def pause_queues(self, request, queryset):
        names = list(queryset.filter(paused=False).values_list("name", flat=True))
        for name in names:
            jobs.pause_queue(name)
        audit(request, queryset.db, "pause", "queue", names)
        self.message_user(
            request, ngettext("%d queue paused.", "%d queues paused.", len(names)) % len(names)
        )

    @admin.action(description=_("Resume selected queues"), permissions=["change"])
    def resume_queues(self, request, queryset):
        names = list(queryset.filter(paused=True).values_list("name", flat=True))
        for name in names:
            jobs.resume_queue(name)
        audit(request, queryset.db, "resume", "queue", names)
        self.message_user(
            request, ngettext("%d queue resumed.", "%d queues resumed.", len(names)) % len(names)
        )

    @admin.action(
        description=_("Clear selected queues (cancel their pending jobs)"), permissions=["change"]
    )
    def clear_queues(self, request, queryset):
        names = list(queryset.values_list("name", flat=True))
        total = sum(jobs.clear_queue(name) for name in names)
        audit(request, queryset.db, "clear", "queue", names, jobs_cancelled=total)
        self.message_user(
            request,
            ngettext("%d pending job cancelled.", "%d pending jobs cancelled.", total) % total,
        )
