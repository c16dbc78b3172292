"""Schedules: edit the timing, run now, enable and disable."""

from __future__ import annotations

from django.contrib import admin, messages
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from ..manager import JobManager
from ..models import Schedule
from .audit import audit
from .display import JobsAdminMedia, status_badge


@admin.register(Schedule)
class ScheduleAdmin(JobsAdminMedia, admin.ModelAdmin):
    list_display = (
        "name",
        "task_name",
        "timing",
        "next_run_at",
        "last_run_at",
        "last_status",
        "run_count",
        "enabled",
    )
    list_filter = ("enabled", "kind", "source", "misfire_policy")
    search_fields = ("name", "task_name")
    ordering = ("name",)
    actions = ("run_now", "enable_schedules", "disable_schedules")
    readonly_fields = (
        "next_run_at",
        "last_run_at",
        "last_job",
        "run_count",
        "source",
        "created_at",
        "updated_at",
    )
    fieldsets = (
        (None, {"fields": ("name", "task_name", "enabled", "description")}),
        (
            _("When"),
            {"fields": ("kind", "cron", "interval", "run_at", "timezone", "misfire_policy")},
        ),
        (
            _("Jobs it enqueues"),
            {"fields": ("args", "kwargs", "queue", "priority", "tags", "metadata")},
        ),
        (
            _("State"),
            {
                "fields": (
                    "next_run_at",
                    "last_run_at",
                    "last_job",
                    "run_count",
                    "source",
                    "created_at",
                    "updated_at",
                )
            },
        ),
    )

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("last_job")

    def save_model(self, request, obj, form, change):
        # Schedule.clean() validated cron, time zone, interval and task; the next run
        # follows from the (new) definition.
        timing = ("kind", "cron", "interval", "run_at", "timezone", "enabled")
        super().save_model(request, obj, form, change)
        if not change or any(f in form.changed_data for f in timing):
            obj.reschedule()

    @admin.display(description=_("schedule"))
    def timing(self, obj: Schedule) -> str:
        return obj.describe()

    @admin.display(description=_("last status"))
    def last_status(self, obj: Schedule) -> str:
        if obj.last_job is None:
            return "-"
        return status_badge(obj.last_job.status)

    @admin.action(description=_("Run selected schedules now"), permissions=["change"])
    def run_now(self, request, queryset):
        manager = JobManager(queryset.db)
        names = list(queryset.values_list("name", flat=True))
        fired = [manager.run_schedule_now(name) for name in names]
        audit(request, queryset.db, "schedule.run", "schedule", names)
        self.message_user(
            request,
            ngettext("%d job enqueued.", "%d jobs enqueued.", len(fired)) % len(fired),
            messages.SUCCESS,
        )

    @admin.action(description=_("Enable selected schedules"), permissions=["change"])
    def enable_schedules(self, request, queryset):
        names = list(queryset.values_list("name", flat=True))
        n = sum(schedule.enable() for schedule in queryset)
        audit(request, queryset.db, "schedule.enable", "schedule", names, count=n)
        self.message_user(
            request,
            ngettext("%d schedule enabled.", "%d schedules enabled.", n) % n,
            messages.SUCCESS,
        )

    @admin.action(description=_("Disable selected schedules"), permissions=["change"])
    def disable_schedules(self, request, queryset):
        names = list(queryset.values_list("name", flat=True))
        n = queryset.disable()
        audit(request, queryset.db, "schedule.disable", "schedule", names, count=n)
        self.message_user(
            request,
            ngettext("%d schedule disabled.", "%d schedules disabled.", n) % n,
            messages.SUCCESS,
        )
