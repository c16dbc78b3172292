"""The job list and detail: read-only, changed only through the actions."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.actions import delete_selected as django_delete_selected
from django.contrib.admin.helpers import ActionForm
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import JsonResponse
from django.urls import path, reverse
from django.utils.functional import cached_property
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from ..enqueue import job_pk
from ..enums import FINISHED_STATUSES, HELD_STATUSES
from ..models import Job
from ..models.counts import bounded_count
from .audit import audit
from .display import (
    JobsAdminMedia,
    attempts_timeline,
    format_duration,
    pretty_json,
    priority_label,
    progress_bar,
    report_unique_conflicts,
    status_badge,
    task_label,
    when,
)
from .failures import failures_view
from .filters import (
    CreatedRangeFilter,
    OwnerFilter,
    PriorityFilter,
    QueueFilter,
    TagFilter,
    TaskFilter,
)

MAX_PROGRESS_IDS = 200  # ids one progress request may ask about


class JobPaginator(Paginator):
    """Counts exactly up to 10,000 rows, then (on a big PostgreSQL table) trusts the
    planner's estimate: no ``COUNT(*)`` over millions of rows on each page view."""

    @cached_property
    def count(self) -> int:
        n, self.estimated = bounded_count(self.object_list)
        return n


class JobActionForm(ActionForm):
    terminate = forms.BooleanField(
        required=False,
        label=_("terminate running jobs"),
        help_text=_(
            "With “Cancel selected jobs”: stop running jobs now instead of at "
            "their next progress call."
        ),
    )


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
    # Narrow columns (short task names and times, full ones in the title) so the list
    # fits a 1366 px screen beside the admin's sidebar and the filters.
    list_display = (
        "id",
        "task_display",
        "status_badge",
        "queue",
        "priority_display",
        "progress_display",
        "attempts",
        "created_display",
        "duration_display",
    )
    list_display_links = ("id", "task_display")
    list_filter = (
        "status",
        QueueFilter,
        PriorityFilter,
        TaskFilter,
        TagFilter,
        OwnerFilter,
        ("created_at", CreatedRangeFilter),
    )
    search_fields = ("task_name",)
    ordering = ("-id",)
    list_per_page = 50
    show_full_result_count = False  # COUNT(*) over a large jobs table on every page load
    paginator = JobPaginator
    change_list_template = "django_jobs/admin/job_change_list.html"
    action_form = JobActionForm
    actions = ("retry_jobs", "cancel_jobs", "requeue_jobs", "delete_selected")
    fieldsets = (
        (
            None,
            {
                "fields": (
                    ("task_name", "status_badge"),
                    ("queue", "original_queue"),
                    ("priority_display", "tags"),
                    "owner_display",
                )
            },
        ),
        (
            _("Attempts and errors"),
            {
                "fields": (
                    ("attempts", "retry_count", "max_retries"),
                    ("retry_delay", "retry_backoff", "retry_jitter", "max_retry_delay"),
                    "attempts_display",
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
                    "dependants_display",
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
            pk = _job_id(term.lstrip("#"))
            if pk is not None:
                found |= queryset.filter(pk=pk)
        return found, may_have_duplicates

    def has_add_permission(self, request):
        return False  # jobs are enqueued by code or the CLI

    def has_delete_permission(self, request, obj=None):
        # An unfinished job is cancelled, not deleted (as in the API and the CLI).
        if obj is not None and obj.status not in FINISHED_STATUSES:
            return False
        return super().has_delete_permission(request, obj)

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path("failures/", wrap(self.failures), name="django_jobs_job_failures"),
            path("progress/", wrap(self.progress_json), name="django_jobs_job_progress"),
            *super().get_urls(),
        ]

    def failures(self, request):
        return failures_view(self, request)

    def progress_json(self, request):
        """``?id=1&id=2``: the progress of those jobs, for the bars that update
        themselves on the list and detail pages."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        given = (_job_id(v) for v in request.GET.getlist("id")[:MAX_PROGRESS_IDS])
        ids = [pk for pk in given if pk is not None]
        found = {}
        for job in (
            self.get_queryset(request)
            .filter(pk__in=ids)
            .only("pk", "status", "progress", "progress_message", "started_at")
        ):
            eta = job.eta_seconds
            found[str(job.pk)] = {
                "status": job.status,
                "status_label": str(job.get_status_display()),
                "running": job.status in HELD_STATUSES,
                "percent": round(max(0.0, min(1.0, job.progress or 0.0)) * 100),
                "message": job.progress_message,
                "eta": format_duration(eta) if eta is not None else "",
            }
        return JsonResponse({"jobs": found})

    def changelist_view(self, request, extra_context=None):
        extra_context = {
            **(extra_context or {}),
            "failures_url": reverse("admin:django_jobs_job_failures"),
            "dashboard_url": reverse("admin:django_jobs_dashboard"),
        }
        return super().changelist_view(request, extra_context)

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        extra_context = {
            **(extra_context or {}),
            "show_save": False,
            "show_save_and_continue": False,
            "show_save_and_add_another": False,
        }
        return super().changeform_view(request, object_id, form_url, extra_context)

    # -- columns -------------------------------------------------------------------------

    @admin.display(description=_("task"), ordering="task_name")
    def task_display(self, obj: Job) -> str:
        return task_label(obj.task_name)

    @admin.display(description=_("created"), ordering="created_at")
    def created_display(self, obj: Job) -> str:
        return when(obj.created_at)

    @admin.display(description=_("status"), ordering="status")
    def status_badge(self, obj: Job) -> str:
        return status_badge(obj.status)

    @admin.display(description=_("priority"), ordering="priority")
    def priority_display(self, obj: Job) -> str:
        return priority_label(obj.priority)

    @admin.display(description=_("progress"), ordering="progress")
    def progress_display(self, obj: Job) -> str:
        running = obj.status in HELD_STATUSES
        eta = obj.eta_seconds if running else None
        return progress_bar(
            obj.progress,
            obj.progress_message,
            job_id=obj.pk if running else None,
            eta=format_duration(eta) if eta is not None else "",
        )

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

    @admin.display(description=_("owner"))
    def owner_display(self, obj: Job) -> str:
        """The user the job was started for, linked to their other jobs."""
        if obj.owner_id is None:
            return "-"
        owner = obj.owner
        url = reverse("admin:django_jobs_job_changelist") + f"?owner={obj.owner_id}"
        return format_html('<a href="{}">{}</a>', url, str(owner) if owner else obj.owner_id)

    @admin.display(description=_("depends on"))
    def depends_on_display(self, obj: Job) -> str:
        return _job_links(obj.depends_on.order_by("pk").values_list("pk", "task_name", "status"))

    @admin.display(description=_("dependants"))
    def dependants_display(self, obj: Job) -> str:
        return _job_links(
            Job.objects.using(obj._state.db)
            .filter(depends_on=obj)
            .order_by("pk")
            .values_list("pk", "task_name", "status")
        )

    @admin.display(description=_("attempts"))
    def attempts_display(self, obj: Job) -> str:
        """Every attempt, newest first: the running or last one, then each failure with
        its worker, time and traceback."""
        return attempts_timeline(obj)

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
        report_unique_conflicts(request, conflicts)
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
        terminate = request.POST.get("terminate") in ("on", "true", "1")
        eligible = queryset.unfinished()
        ids, flagged = eligible.cancel(reason="cancelled from the admin", terminate=terminate)
        audit(
            request,
            queryset.db,
            "cancel",
            "job",
            ids,
            count=len(ids) + flagged,
            terminate=terminate,
        )
        if ids:
            self.message_user(
                request,
                ngettext("%d job cancelled.", "%d jobs cancelled.", len(ids)) % len(ids),
                messages.SUCCESS,
            )
        if flagged:
            self.message_user(
                request,
                (
                    ngettext(
                        "%d running job flagged: its worker terminates it within a heartbeat.",
                        "%d running jobs flagged: their workers terminate them within a heartbeat.",
                        flagged,
                    )
                    if terminate
                    else ngettext(
                        "%d running job flagged: its worker stops it at its next progress "
                        "call or heartbeat.",
                        "%d running jobs flagged: their workers stop them at their next "
                        "progress call or heartbeat.",
                        flagged,
                    )
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

    @admin.action(
        description=_("Requeue selected finished jobs (run again as a new attempt)"),
        permissions=["change"],
    )
    def requeue_jobs(self, request, queryset):
        finished = queryset.finished()
        targets = list(finished.values_list("pk", flat=True)[:100])
        selected = queryset.count()
        count, conflicts = finished.retry_all(completed_too=True)
        audit(request, queryset.db, "requeue", "job", targets, count=count)
        self.message_user(
            request,
            ngettext("%d job requeued.", "%d jobs requeued.", count) % count,
            messages.SUCCESS if count else messages.WARNING,
        )
        report_unique_conflicts(request, conflicts)
        skipped = selected - count - conflicts
        if skipped > 0:
            self.message_user(
                request,
                ngettext(
                    "%d job skipped: only finished jobs can be requeued (cancel a running "
                    "one first).",
                    "%d jobs skipped: only finished jobs can be requeued (cancel running "
                    "ones first).",
                    skipped,
                )
                % skipped,
                messages.WARNING,
            )

    @admin.action(description=_("Delete selected finished jobs"), permissions=["delete"])
    def delete_selected(self, request, queryset):
        """Django's delete (with its confirmation page) over the finished jobs of the
        selection; unfinished ones are cancelled, not deleted."""
        finished = queryset.finished()
        skipped = queryset.count() - finished.count()
        if skipped and not request.POST.get("post"):
            self.message_user(
                request,
                ngettext(
                    "%d unfinished job left out: cancel it first.",
                    "%d unfinished jobs left out: cancel them first.",
                    skipped,
                )
                % skipped,
                messages.WARNING,
            )
        if not finished.exists():
            return None
        return django_delete_selected(self, request, finished)

    def delete_queryset(self, request, queryset):
        targets = list(queryset.values_list("pk", flat=True)[:100])
        count = queryset.delete_finished()
        audit(request, queryset.db, "delete", "job", targets, count=count)

    def delete_model(self, request, obj):
        count = Job.objects.using(obj._state.db).filter(pk=obj.pk).delete_finished()
        audit(request, obj._state.db, "delete", "job", [obj.pk], count=count)


def _job_id(text: str) -> int | None:
    """``text`` as a job id (``job_pk``'s rules), or None."""
    try:
        return job_pk(text)
    except Job.DoesNotExist:
        return None


def _job_links(rows) -> str:
    """Links to jobs' admin pages, with their task and status."""
    rows = list(rows)
    if not rows:
        return "-"
    return format_html_join(
        ", ",
        '<a href="{}">#{} {}</a> {}',
        (
            (reverse("admin:django_jobs_job_change", args=[pk]), pk, task, status_badge(status))
            for pk, task, status in rows
        ),
    )
