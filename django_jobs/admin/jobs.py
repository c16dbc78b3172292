"""The job list and detail: read-only, changed only through the actions."""

from __future__ import annotations

from django.contrib import admin, messages
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from ..models import Job
from .audit import audit
from .display import (
    JobsAdminMedia,
    failures,
    format_duration,
    pretty_json,
    priority_label,
    progress_bar,
    status_badge,
)
from .filters import PriorityFilter

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


@admin.register(Job)
class JobAdmin(JobsAdminMedia, admin.ModelAdmin):
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
        return False  # jobs are enqueued by code or the CLI

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
        return status_badge(obj.status)

    @admin.display(description=_("priority"), ordering="priority")
    def priority_display(self, obj: Job) -> str:
        return priority_label(obj.priority)

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
        return failures(obj.errors)

    # -- actions -------------------------------------------------------------------------

    @admin.action(description=_("Retry selected failed/cancelled jobs"), permissions=["change"])
    def retry_jobs(self, request, queryset):
        selected = queryset.count()
        targets = list(queryset.retriable().values_list("pk", flat=True)[:100])
        count, conflicts = queryset.retry_all()
        audit(request, queryset.db, "retry", "job", targets, count=count)
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
        audit(request, queryset.db, "cancel", "job", ids, count=len(ids) + flagged)
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
