"""Django admin for jobs, queues and workers.

An observatory with explicit actions: every action filters the selection to the rows it
applies to and then calls the same QuerySet/manager verbs as the API and the CLI, so no
state change is written here. The dashboard joins this package later.
"""

from __future__ import annotations

import json
from typing import Any

from django.contrib import admin, messages
from django.db import IntegrityError, transaction
from django.db.models import F, Func, IntegerField, OuterRef, Q, Subquery
from django.db.models.functions import Coalesce
from django.utils.html import format_html
from django.utils.safestring import mark_safe
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from ..enums import MAX_PRIORITY, MIN_PRIORITY, JobStatus, Priority
from ..manager import JobManager, jobs
from ..models import Batch, Job, Queue, Schedule, Worker

STATUS_COLOURS: dict[str, str] = {
    JobStatus.WAITING: "#6c757d",
    JobStatus.PENDING: "#0d6efd",
    JobStatus.RESERVED: "#6610f2",
    JobStatus.RUNNING: "#0f8b8d",
    JobStatus.COMPLETED: "#198754",
    JobStatus.FAILED: "#dc3545",
    JobStatus.RETRYING: "#fd7e14",
    JobStatus.CANCELLED: "#adb5bd",
}

# The bounds of each named bucket, as Priority.label_for() draws them.
PRIORITY_BUCKETS = {
    "critical": (Priority.CRITICAL, MAX_PRIORITY),
    "high": (Priority.HIGH, Priority.CRITICAL - 1),
    "normal": (Priority.NORMAL, Priority.HIGH - 1),
    "low": (MIN_PRIORITY, Priority.NORMAL - 1),
}

# Large JSON columns the change list never shows.
LIST_DEFERRED = (
    "args",
    "kwargs",
    "result",
    "error",
    "errors",
    "metadata",
    "progress_details",
    "worker_ids",
)


def pretty_json(value: Any) -> str:
    """``value`` as indented JSON in a <pre> block (escaped)."""
    text = json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, default=str)
    return format_html('<pre style="margin:0; white-space:pre-wrap">{}</pre>', text)


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


def progress_bar(fraction: float, message: str = "") -> str:
    percent = max(0.0, min(1.0, fraction or 0.0)) * 100
    return format_html(
        '<span title="{}" style="white-space:nowrap"><span style="width:90px;'
        " background:#e9ecef; border-radius:3px; height:12px; overflow:hidden;"
        ' display:inline-block; vertical-align:middle"><span style="display:block;'
        ' width:{}%; background:#0d6efd; height:100%"></span></span> {}%</span>',
        message,
        f"{percent:.0f}",
        f"{percent:.0f}",
    )


class PriorityFilter(admin.SimpleListFilter):
    title = _("priority")
    parameter_name = "priority_bucket"

    def lookups(self, request, model_admin):
        return [(name, name.capitalize()) for name in PRIORITY_BUCKETS]

    def queryset(self, request, queryset):
        bounds = PRIORITY_BUCKETS.get(self.value() or "")
        if bounds is None:
            return queryset
        low, high = bounds
        return queryset.filter(priority__gte=low, priority__lte=high)


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "task_name",
        "status_badge",
        "queue",
        "priority_display",
        "progress_display",
        "attempts",
        "created_at",
        "duration_display",
    )
    list_display_links = ("id", "task_name")
    list_filter = ("status", "queue", PriorityFilter, "task_name")
    search_fields = ("task_name",)
    ordering = ("-id",)
    list_per_page = 50
    show_full_result_count = False  # COUNT(*) over a large jobs table on every page load
    actions = ("retry_jobs", "cancel_jobs")
    fieldsets = (
        (
            None,
            {
                "fields": (
                    ("task_name", "status_badge"),
                    ("queue", "original_queue"),
                    ("priority_display", "tags"),
                )
            },
        ),
        (
            _("Attempts and errors"),
            {
                "fields": (
                    ("attempts", "retry_count", "max_retries"),
                    ("retry_delay", "retry_backoff", "retry_jitter", "max_retry_delay"),
                    "errors_display",
                )
            },
        ),
        (_("Call"), {"fields": ("args_json", "kwargs_json", "result_json", "metadata_json")}),
        (
            _("Progress"),
            {"fields": (("progress_display", "progress_message"), "progress_details_json")},
        ),
        (
            _("Timing"),
            {
                "fields": (
                    ("created_at", "scheduled_at"),
                    ("started_at", "finished_at"),
                    ("duration_display", "timeout"),
                )
            },
        ),
        (
            _("Workflow"),
            {
                "classes": ("collapse",),
                "fields": (
                    ("batch", "chain_index"),
                    "depends_on_display",
                    "unique_key",
                    ("schedule", "schedule_due_at"),
                ),
            },
        ),
        (
            _("Worker"),
            {
                "classes": ("collapse",),
                "fields": (
                    ("worker_id", "backend"),
                    "worker_ids",
                    ("cancel_requested", "terminate_requested", "cancel_reason"),
                ),
            },
        ),
    )

    def get_readonly_fields(self, request, obj=None):
        # The detail page is read-only: jobs change state only through the actions.
        return [
            name
            for _, options in self.fieldsets
            for line in options["fields"]
            for name in ((line,) if isinstance(line, str) else line)
        ]

    def get_queryset(self, request):
        qs = super().get_queryset(request)
        match = getattr(request, "resolver_match", None)
        if match is not None and match.url_name == "django_jobs_job_changelist":
            qs = qs.defer(*LIST_DEFERRED)
        return qs

    def get_search_results(self, request, queryset, search_term):
        """Task name (``search_fields``), plus an exact id and an exact tag."""
        found, may_have_duplicates = super().get_search_results(request, queryset, search_term)
        term = search_term.strip()
        if term:
            found |= queryset.with_tag(term)
            digits = term.lstrip("#")
            if digits.isdigit() and int(digits) <= 2**63 - 1:
                found |= queryset.filter(pk=int(digits))
        return found, may_have_duplicates

    def has_add_permission(self, request):
        return False  # jobs are enqueued by code, the API or the CLI

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        extra_context = {
            **(extra_context or {}),
            "show_save": False,
            "show_save_and_continue": False,
            "show_save_and_add_another": False,
        }
        return super().changeform_view(request, object_id, form_url, extra_context)

    # -- columns -------------------------------------------------------------------------

    @admin.display(description=_("status"), ordering="status")
    def status_badge(self, obj: Job) -> str:
        colour = STATUS_COLOURS.get(obj.status, "#6c757d")
        return format_html(
            '<span style="background:{}; color:#fff; padding:1px 7px; border-radius:8px;'
            ' white-space:nowrap">{}</span>',
            colour,
            obj.get_status_display(),
        )

    @admin.display(description=_("priority"), ordering="priority")
    def priority_display(self, obj: Job) -> str:
        return format_html(
            '<span style="white-space:nowrap">{} ({})</span>',
            Priority.label_for(obj.priority),
            obj.priority,
        )

    @admin.display(description=_("progress"), ordering="progress")
    def progress_display(self, obj: Job) -> str:
        return progress_bar(obj.progress, obj.progress_message)

    @admin.display(description=_("duration"))
    def duration_display(self, obj: Job) -> str:
        duration = obj.duration
        return format_duration(duration.total_seconds() if duration is not None else None)

    @admin.display(description=_("args"))
    def args_json(self, obj: Job) -> str:
        return pretty_json(obj.args)

    @admin.display(description=_("kwargs"))
    def kwargs_json(self, obj: Job) -> str:
        return pretty_json(obj.kwargs)

    @admin.display(description=_("result"))
    def result_json(self, obj: Job) -> str:
        return pretty_json(obj.result)

    @admin.display(description=_("metadata"))
    def metadata_json(self, obj: Job) -> str:
        return pretty_json(obj.metadata)

    @admin.display(description=_("progress details"))
    def progress_details_json(self, obj: Job) -> str:
        return pretty_json(obj.progress_details)

    @admin.display(description=_("depends on"))
    def depends_on_display(self, obj: Job) -> str:
        # Through the relation's own rows: depends_on has an explicit through model.
        ids = list(obj.depends_on.values_list("pk", flat=True))
        return ", ".join(f"#{pk}" for pk in ids) or "-"

    @admin.display(description=_("errors"))
    def errors_display(self, obj: Job) -> str:
        """Every failed attempt, newest first, with its traceback."""
        if not obj.errors:
            return "-"
        blocks = []
        for number, entry in reversed(list(enumerate(obj.errors, start=1))):
            entry = entry if isinstance(entry, dict) else {"message": str(entry)}
            details = {k: v for k, v in entry.items() if k not in ("traceback", "type", "message")}
            blocks.append(
                format_html(
                    "<div style='margin-bottom:1em'><strong>{} {}: {}: {}</strong>{}{}</div>",
                    _("Failure"),
                    number,
                    entry.get("type", "?"),
                    entry.get("message", ""),
                    pretty_json(details),
                    format_html(
                        '<pre style="white-space:pre-wrap">{}</pre>', entry.get("traceback") or ""
                    ),
                )
            )
        return mark_safe("".join(blocks))  # each block was built by format_html

    # -- actions -------------------------------------------------------------------------

    @admin.action(description=_("Retry selected failed/cancelled jobs"), permissions=["change"])
    def retry_jobs(self, request, queryset):
        eligible = queryset.retriable()
        selected = queryset.count()
        conflicts = 0
        try:
            with transaction.atomic(using=eligible.db):
                count = eligible.retry_now()
        except IntegrityError:
            # Some job's unique key is held by another unfinished job: retry the others.
            count = 0
            for pk in eligible.values_list("pk", flat=True):
                try:
                    with transaction.atomic(using=eligible.db):
                        count += Job.objects.using(eligible.db).filter(pk=pk).retry_now()
                except IntegrityError:
                    conflicts += 1
        self.message_user(
            request,
            ngettext("%d job sent back to pending.", "%d jobs sent back to pending.", count)
            % count,
            messages.SUCCESS if count else messages.WARNING,
        )
        if conflicts:
            self.message_user(
                request,
                ngettext(
                    "%d job skipped: another unfinished job holds its unique key.",
                    "%d jobs skipped: other unfinished jobs hold their unique keys.",
                    conflicts,
                )
                % conflicts,
                messages.WARNING,
            )
        skipped = selected - count - conflicts
        if skipped > 0:
            self.message_user(
                request,
                ngettext(
                    "%d job skipped: only failed or cancelled jobs can be retried.",
                    "%d jobs skipped: only failed or cancelled jobs can be retried.",
                    skipped,
                )
                % skipped,
                messages.WARNING,
            )

    @admin.action(description=_("Cancel selected jobs"), permissions=["change"])
    def cancel_jobs(self, request, queryset):
        eligible = queryset.unfinished()
        ids, flagged = eligible.cancel(reason="cancelled from the admin")
        if ids:
            self.message_user(
                request,
                ngettext("%d job cancelled.", "%d jobs cancelled.", len(ids)) % len(ids),
                messages.SUCCESS,
            )
        if flagged:
            self.message_user(
                request,
                ngettext(
                    "%d running job flagged: its worker stops it at its next progress call or "
                    "heartbeat.",
                    "%d running jobs flagged: their workers stop them at their next progress "
                    "call or heartbeat.",
                    flagged,
                )
                % flagged,
                messages.SUCCESS,
            )
        if not ids and not flagged:
            self.message_user(
                request,
                _("No selected job could be cancelled: they are all finished."),
                messages.WARNING,
            )


@admin.register(Queue)
class QueueAdmin(admin.ModelAdmin):
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
    fields = ("name", "description", "paused", "concurrency_limit", "created_at", "updated_at")

    def get_readonly_fields(self, request, obj=None):
        # Pausing goes through the actions (resume also wakes idle workers).
        readonly = ["paused", "created_at", "updated_at"]
        if obj is not None:
            readonly.append("name")  # jobs refer to their queue by name
        return readonly

    def get_queryset(self, request):
        name = OuterRef("name")
        return (
            super()
            .get_queryset(request)
            .annotate(
                pending=_per_queue(Job.objects.claimable(), Q(queue=name)),
                running=_per_queue(Job.objects.held(), Q(queue=name)),
                # Failed jobs live in the dead-letter queue and remember where they came from.
                failed=_per_queue(Job.objects.failed(), Q(queue=name) | Q(original_queue=name)),
            )
        )

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
        self.message_user(
            request, ngettext("%d queue paused.", "%d queues paused.", len(names)) % len(names)
        )

    @admin.action(description=_("Resume selected queues"), permissions=["change"])
    def resume_queues(self, request, queryset):
        names = list(queryset.filter(paused=True).values_list("name", flat=True))
        for name in names:
            jobs.resume_queue(name)
        self.message_user(
            request, ngettext("%d queue resumed.", "%d queues resumed.", len(names)) % len(names)
        )

    @admin.action(
        description=_("Clear selected queues (cancel their pending jobs)"), permissions=["change"]
    )
    def clear_queues(self, request, queryset):
        total = sum(jobs.clear_queue(name) for name in queryset.values_list("name", flat=True))
        self.message_user(
            request,
            ngettext("%d pending job cancelled.", "%d pending jobs cancelled.", total) % total,
        )


def _per_queue(jobs_qs, condition: Q):
    """COUNT of the ``jobs_qs`` rows matching ``condition``, per queue row.

    Job.queue is a name, not a foreign key, so this is a correlated scalar subquery; COUNT
    as a plain function keeps Django from adding a GROUP BY to it.
    """
    counted = (
        jobs_qs.filter(condition).order_by().annotate(n=Func(F("id"), function="COUNT")).values("n")
    )
    return Coalesce(Subquery(counted, output_field=IntegerField()), 0)


class AliveFilter(admin.SimpleListFilter):
    title = _("alive")
    parameter_name = "alive"

    def lookups(self, request, model_admin):
        return [("yes", _("Alive")), ("no", _("Stopped or stale"))]

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.alive()
        if self.value() == "no":
            return queryset.dead()
        return queryset


@admin.register(Worker)
class WorkerAdmin(admin.ModelAdmin):
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


@admin.register(Schedule)
class ScheduleAdmin(admin.ModelAdmin):
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
        colour = STATUS_COLOURS.get(obj.last_job.status, "#6c757d")
        return format_html('<b style="color:{}">{}</b>', colour, obj.last_job.status)

    @admin.action(description=_("Run selected schedules now"), permissions=["change"])
    def run_now(self, request, queryset):
        manager = JobManager(queryset.db)
        fired = [manager.run_schedule_now(schedule.name) for schedule in queryset]
        self.message_user(
            request,
            ngettext("%d job enqueued.", "%d jobs enqueued.", len(fired)) % len(fired),
            messages.SUCCESS,
        )

    @admin.action(description=_("Enable selected schedules"), permissions=["change"])
    def enable_schedules(self, request, queryset):
        n = sum(schedule.enable() for schedule in queryset)
        self.message_user(
            request,
            ngettext("%d schedule enabled.", "%d schedules enabled.", n) % n,
            messages.SUCCESS,
        )

    @admin.action(description=_("Disable selected schedules"), permissions=["change"])
    def disable_schedules(self, request, queryset):
        n = queryset.disable()
        self.message_user(
            request,
            ngettext("%d schedule disabled.", "%d schedules disabled.", n) % n,
            messages.SUCCESS,
        )


@admin.register(Batch)
class BatchAdmin(admin.ModelAdmin):
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
