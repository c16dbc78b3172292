"""Schedules: the timing in plain words, the next runs previewed while editing; run now,
enable and disable."""

from __future__ import annotations

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db import router
from django.http import JsonResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from ..enums import ScheduleKind
from ..manager import JobManager
from ..models import Schedule
from ..models.schedule_definitions import TIMING_FIELDS
from .audit import audit
from .columns import (
    ListsAdminMedia,
    Preview,
    PreviewForm,
    TimezoneInput,
    name_cell,
    preview,
    render_preview,
    schedule_last_run,
    schedule_timing,
    schedule_when,
    schedule_zone,
)


@admin.register(Schedule)
class ScheduleAdmin(ListsAdminMedia, admin.ModelAdmin):
    # Name and task share a column, the time zone sits under the timing and the outcome
    # beside the last run: the list fits a 1366-pixel screen beside the admin's menus.
    list_display = ("name_and_task", "timing", "next_run", "last_run", "enabled")
    list_display_links = None  # the name links to the form itself
    list_filter = ("enabled", "kind", "source", "misfire_policy")
    search_fields = ("name", "task_name")
    ordering = ("name",)
    actions = ("run_now", "enable_schedules", "disable_schedules")
    readonly_fields = (
        "next_runs",
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
            {
                "fields": (
                    "kind",
                    "cron",
                    "interval",
                    "run_at",
                    "timezone",
                    "misfire_policy",
                    "next_runs",
                )
            },
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

    class Media(ListsAdminMedia.Media):
        js = ("django_jobs/schedule-preview.js",)

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("last_job")

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        if db_field.name == "timezone":
            kwargs["widget"] = TimezoneInput
            kwargs["help_text"] = _("An IANA name such as Europe/Paris, America/New_York or UTC.")
        elif db_field.name == "cron":
            kwargs["help_text"] = _(
                "5 fields: minute hour day-of-month month day-of-week (0 9 * * 1-5 is 09:00 "
                "on weekdays), or @hourly, @daily, @weekly, @monthly, @yearly. Read in the "
                "schedule's time zone."
            )
        elif db_field.name == "interval":
            kwargs["help_text"] = _("Seconds between runs (300 is every 5 minutes).")
        elif db_field.name == "run_at":
            zone = timezone.get_current_timezone_name()
            kwargs["help_text"] = _(
                "In this site's time zone (%(zone)s); the preview shows it in the schedule's."
            ) % {"zone": zone}
        return super().formfield_for_dbfield(db_field, request, **kwargs)

    # -- saving ----------------------------------------------------------------------------

    def save_model(self, request, obj, form, change):
        # Schedule.clean() validated cron, time zone, interval and task; the next run
        # follows from the (new) definition.
        super().save_model(request, obj, form, change)
        if not change or any(f in form.changed_data for f in (*TIMING_FIELDS, "enabled")):
            obj.reschedule()
        action = "schedule.change" if change else "schedule.create"
        audit(request, _db(obj), action, "schedule", [obj.name], fields=sorted(form.changed_data))

    def delete_model(self, request, obj):
        JobManager(_db(obj)).unschedule(obj.name)
        audit(request, _db(obj), "schedule.delete", "schedule", [obj.name])

    def delete_queryset(self, request, queryset):
        manager = JobManager(queryset.db)
        names = list(queryset.values_list("name", flat=True))
        for name in names:
            manager.unschedule(name)
        audit(request, queryset.db, "schedule.delete", "schedule", names)

    # -- the preview of the next runs ------------------------------------------------------

    def get_urls(self):
        info = self.opts.app_label, self.opts.model_name
        preview_url = path(
            "preview/",
            self.admin_site.admin_view(self.preview_view),
            name="{}_{}_preview".format(*info),
        )
        # Before the model's own URLs: "<path:object_id>/" would take "preview/".
        return [preview_url, *super().get_urls()]

    def preview_view(self, request):
        """The next runs of the timing on the form, as the form's script sends it (GET):
        ``{"html": ..., "error": ..., "runs": [ISO times]}``."""
        if not (self.has_add_permission(request) or self.has_change_permission(request)):
            raise PermissionDenied
        form = PreviewForm(request.GET)
        if not form.is_valid():
            name, errors = next(iter(form.errors.items()))
            label = form.fields[name].label or name.replace("_", " ").capitalize()
            result = Preview(error=f"{label}: {' '.join(str(e) for e in errors)}")
        else:
            data = form.cleaned_data
            schedule = Schedule(
                kind=data["kind"] or "",
                cron=data["cron"] or "",
                interval=data["interval"],
                run_at=data["run_at"],
                timezone=data["timezone"] or "",
                enabled=data["enabled"],
            )
            if data["schedule"] is not None:
                stored = self.get_queryset(request).filter(pk=data["schedule"]).first()
                if stored is not None:
                    schedule.pk = stored.pk
                    schedule._state.db = stored._state.db
            result = preview(schedule)
        return JsonResponse(
            {
                "html": render_preview(result),
                "error": result.error,
                "words": result.words,
                "runs": [run["iso"] for run in result.runs or []],
            }
        )

    @admin.display(description=_("next five runs"))
    def next_runs(self, obj: Schedule) -> str:
        url = reverse(
            f"admin:{self.opts.app_label}_{self.opts.model_name}_preview",
            current_app=self.admin_site.name,
        )
        return render_preview(preview(obj), url, obj.pk)

    # -- columns ---------------------------------------------------------------------------

    @admin.display(description=_("name"), ordering="name")
    def name_and_task(self, obj: Schedule) -> str:
        url = reverse(
            f"admin:{self.opts.app_label}_{self.opts.model_name}_change",
            args=[obj.pk],
            current_app=self.admin_site.name,
        )
        return name_cell(obj.name, url, obj.task_name if obj.task_name != obj.name else "")

    @admin.display(description=_("schedule"))
    def timing(self, obj: Schedule) -> str:
        return schedule_timing(obj)

    @admin.display(description=_("next run"), ordering="next_run_at")
    def next_run(self, obj: Schedule) -> str:
        if not obj.enabled:
            return schedule_when(None, None, str(_("disabled")))
        empty = str(_("done")) if obj.kind == ScheduleKind.ONCE else "-"
        return schedule_when(obj.next_run_at, schedule_zone(obj), empty)

    @admin.display(description=_("last run"), ordering="last_run_at")
    def last_run(self, obj: Schedule) -> str:
        return schedule_last_run(obj, self.admin_site.name)

    # -- actions ---------------------------------------------------------------------------

    @admin.action(description=_("Run selected schedules now"), permissions=["change"])
    def run_now(self, request, queryset):
        manager = JobManager(queryset.db)
        names = list(queryset.values_list("name", flat=True))
        fired = [manager.run_schedule_now(name) for name in names]
        audit(request, queryset.db, "schedule.run", "schedule", names,
              jobs=[job.pk for job in fired])  # fmt: skip
        self.message_user(
            request,
            ngettext("%d job enqueued.", "%d jobs enqueued.", len(fired)) % len(fired),
            messages.SUCCESS,
        )

    @admin.action(description=_("Enable selected schedules"), permissions=["change"])
    def enable_schedules(self, request, queryset):
        names = list(queryset.disabled().values_list("name", flat=True))
        n = queryset.enable()
        audit(request, queryset.db, "schedule.enable", "schedule", names, count=n)
        self.message_user(
            request,
            ngettext("%d schedule enabled.", "%d schedules enabled.", n) % n,
            messages.SUCCESS,
        )

    @admin.action(description=_("Disable selected schedules"), permissions=["change"])
    def disable_schedules(self, request, queryset):
        names = list(queryset.enabled().values_list("name", flat=True))
        n = queryset.disable()
        audit(request, queryset.db, "schedule.disable", "schedule", names, count=n)
        self.message_user(
            request,
            ngettext("%d schedule disabled.", "%d schedules disabled.", n) % n,
            messages.SUCCESS,
        )


def _db(schedule: Schedule) -> str:
    return schedule._state.db or router.db_for_write(Schedule)
