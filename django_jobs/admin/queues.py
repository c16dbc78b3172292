"""Queues: counts per queue, how long the oldest job waited, limits; pause, resume and
clear; edit the concurrency limit (workers follow it within a second)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.db import router
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from ..conf import jobs_settings
from ..manager import JobManager
from ..models import Job, Queue
from ..models.queue_counts import with_counts
from ..schedules import format_seconds
from .audit import audit
from .columns import ListsAdminMedia, badge, count_link, job_list_url, name_cell, queue_age


@admin.register(Queue)
class QueueAdmin(ListsAdminMedia, admin.ModelAdmin):
    list_display = (
        "name_display",
        "state",
        "concurrency_limit_display",
        "rate_limit_display",
        "pending_count",
        "running_count",
        "failed_count",
        "oldest_pending",
        "max_pending_age_display",
    )
    list_display_links = None  # the name links to the form itself
    list_filter = ("paused",)
    search_fields = ("name", "description")
    actions = ("pause_queues", "resume_queues", "clear_queues")
    fields = (
        "name",
        "description",
        "paused",
        "concurrency_limit",
        "rate_limit",
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

    # -- saving: through the model's verb, audited -----------------------------------------

    def save_model(self, request, obj, form, change):
        if not change:
            super().save_model(request, obj, form, change)
            audit(request, _db(obj), "queue.create", "queue", [obj.name], **_settings_of(obj))
            return
        db = _db(obj)
        stored = Queue.objects.using(db).get(pk=obj.pk)
        wanted = {f: form.cleaned_data[f] for f in form.changed_data if f in Queue.SETTINGS}
        changed = stored.configure(**wanted)
        if changed:
            values = _settings_of(stored)
            audit(request, db, "queue.change", "queue", [obj.name],
                  **{name: values[name] for name in changed})  # fmt: skip

    def delete_model(self, request, obj):
        super().delete_model(request, obj)
        audit(request, _db(obj), "queue.delete", "queue", [obj.name])

    def delete_queryset(self, request, queryset):
        names = list(queryset.values_list("name", flat=True))
        super().delete_queryset(request, queryset)
        audit(request, queryset.db, "queue.delete", "queue", names)

    # -- columns ---------------------------------------------------------------------------

    def _site(self) -> str:
        return self.admin_site.name

    @admin.display(description=_("name"), ordering="name")
    def name_display(self, obj: Queue) -> str:
        url = reverse(
            f"admin:{self.opts.app_label}_{self.opts.model_name}_change",
            args=[obj.pk],
            current_app=self.admin_site.name,
        )
        description = obj.description
        short = description if len(description) <= 60 else description[:59] + "…"
        return name_cell(obj.name, url, short, description)

    @admin.display(description=_("state"), ordering="paused")
    def state(self, obj: Queue) -> str:
        if obj.paused:
            return badge(str(_("paused")), "warn", str(_("no worker claims from it")))
        return badge(str(_("active")), "good")

    @admin.display(description=_("limit"), ordering="concurrency_limit")
    def concurrency_limit_display(self, obj: Queue) -> str:
        return str(obj.concurrency_limit) if obj.concurrency_limit is not None else "-"

    @admin.display(description=_("rate limit"), ordering="rate_limit")
    def rate_limit_display(self, obj: Queue) -> str:
        return obj.rate_limit or "-"

    @admin.display(description=_("pending"), ordering="pending")
    def pending_count(self, obj: Any) -> str:  # a Queue annotated with its counts
        url = job_list_url(self._site(), queue__exact=obj.name, status__exact="pending")
        return count_link(obj.pending, url, str(_("pending and retrying jobs")))

    @admin.display(description=_("running"), ordering="running")
    def running_count(self, obj: Any) -> str:
        url = job_list_url(self._site(), queue__exact=obj.name, status__exact="running")
        limit = obj.concurrency_limit
        return count_link(obj.running, url, str(_("limit: %s")) % limit if limit else "")

    @admin.display(description=_("failed"), ordering="failed")
    def failed_count(self, obj: Any) -> str:
        # Failed jobs move to the dead-letter queue, remembering where they came from.
        url = job_list_url(self._site(), status__exact="failed", original_queue=obj.name)
        return count_link(obj.failed, url, str(_("failed jobs from this queue")))

    @admin.display(description=_("oldest pending"), ordering="oldest_due")
    def oldest_pending(self, obj: Any) -> str:
        own = obj.max_pending_age
        limit = own.total_seconds() if own is not None else jobs_settings.HEALTH.MAX_PENDING_AGE
        return queue_age(obj.oldest_due, limit, own is not None)

    @admin.display(description=_("max pending age"), ordering="max_pending_age")
    def max_pending_age_display(self, obj: Queue) -> str:
        if obj.max_pending_age is not None:
            return format_seconds(obj.max_pending_age.total_seconds())
        default = jobs_settings.HEALTH.MAX_PENDING_AGE
        shown = format_seconds(default) if default is not None else "-"
        return str(_("%s (default)")) % shown

    # -- actions ---------------------------------------------------------------------------

    @admin.action(description=_("Pause selected queues"), permissions=["change"])
    def pause_queues(self, request, queryset):
        manager = JobManager(queryset.db)
        names = list(queryset.filter(paused=False).values_list("name", flat=True))
        for name in names:
            manager.pause_queue(name)
        audit(request, queryset.db, "pause", "queue", names)
        self.message_user(
            request, ngettext("%d queue paused.", "%d queues paused.", len(names)) % len(names)
        )

    @admin.action(description=_("Resume selected queues"), permissions=["change"])
    def resume_queues(self, request, queryset):
        manager = JobManager(queryset.db)
        names = list(queryset.filter(paused=True).values_list("name", flat=True))
        for name in names:
            manager.resume_queue(name)
        audit(request, queryset.db, "resume", "queue", names)
        self.message_user(
            request, ngettext("%d queue resumed.", "%d queues resumed.", len(names)) % len(names)
        )

    @admin.action(
        description=_("Clear selected queues (cancel their pending jobs)"), permissions=["change"]
    )
    def clear_queues(self, request, queryset):
        names = list(queryset.values_list("name", flat=True))
        if request.POST.get("post") != "yes":
            # Like Django's delete action: say how many jobs it cancels, then ask.
            jobs = Job.objects.using(queryset.db)
            counts = [(name, jobs.filter(queue=name).cancellable().count()) for name in names]
            return TemplateResponse(
                request,
                "django_jobs/admin/queue_clear_confirm.html",
                {
                    **self.admin_site.each_context(request),
                    "title": _("Clear queues?"),
                    "opts": self.opts,
                    "media": self.media,
                    "queues": counts,
                    "total": sum(n for _, n in counts),
                    "queryset": queryset,
                    "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
                },
            )
        manager = JobManager(queryset.db)
        total = sum(manager.clear_queue(name) for name in names)
        audit(request, queryset.db, "clear", "queue", names, jobs_cancelled=total)
        self.message_user(
            request,
            ngettext("%d pending job cancelled.", "%d pending jobs cancelled.", total) % total,
            messages.SUCCESS,
        )
        return None


def _db(queue: Queue) -> str:
    return queue._state.db or router.db_for_write(Queue)


def _settings_of(queue: Queue) -> dict[str, Any]:
    """The queue's settings as JSON values for the audit log."""
    values: dict[str, Any] = {name: getattr(queue, name) for name in Queue.SETTINGS}
    age = values["max_pending_age"]
    values["max_pending_age"] = age.total_seconds() if age is not None else None
    return values
