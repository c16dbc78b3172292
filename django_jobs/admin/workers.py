"""Workers: who is alive, what each runs. Read-only: rows belong to their workers (which
delete the rows of workers silent for a day, stopped ones included)."""

from __future__ import annotations

from django.contrib import admin
from django.contrib.admin.views.main import ChangeList
from django.urls import reverse
from django.utils.translation import gettext_lazy as _

from ..conf import jobs_settings
from ..models import Worker
from .columns import (
    ListsAdminMedia,
    current_jobs,
    load_current_jobs,
    name_cell,
    worker_heartbeat,
)
from .filters import AliveFilter


class WorkerChangeList(ChangeList):
    def get_results(self, request):
        super().get_results(request)
        # The current jobs of every worker on the page, in one query.
        load_current_jobs(list(self.result_list), self.queryset.db)


@admin.register(Worker)
class WorkerAdmin(ListsAdminMedia, admin.ModelAdmin):
    # Host and pid sit under the worker's id: the list fits a 1366-pixel screen beside
    # the admin's menus.
    list_display = (
        "worker",
        "queues_display",
        "concurrency",
        "heartbeat",
        "current_jobs_display",
        "processed",
        "failed",
    )
    list_display_links = None  # the id links to the detail page itself
    list_filter = (AliveFilter, "hostname")
    search_fields = ("id", "hostname")
    ordering = ("-started_at",)
    fields = (
        "id",
        ("hostname", "pid", "version"),
        "queues_display",
        "concurrency",
        ("started_at", "stopped_at"),
        "heartbeat",
        "current_jobs_display",
        ("jobs_processed", "jobs_failed"),
    )
    readonly_fields = (
        "id",
        "hostname",
        "pid",
        "version",
        "queues_display",
        "concurrency",
        "started_at",
        "stopped_at",
        "heartbeat",
        "current_jobs_display",
        "jobs_processed",
        "jobs_failed",
    )

    def get_changelist(self, request, **kwargs):
        return WorkerChangeList

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False  # rows belong to their running workers

    def has_delete_permission(self, request, obj=None):
        # A deleted row of a live worker would make its jobs look stalled and rescued.
        return False

    @admin.display(description=_("worker"), ordering="id")
    def worker(self, obj: Worker) -> str:
        url = reverse(
            f"admin:{self.opts.app_label}_{self.opts.model_name}_change",
            args=[obj.pk],
            current_app=self.admin_site.name,
        )
        return name_cell(obj.id, url, f"{obj.hostname} · pid {obj.pid}")

    @admin.display(description=_("queues"))
    def queues_display(self, obj: Worker) -> str:
        text = ", ".join(obj.queues) if obj.queues else str(_("all"))
        if obj.exclude_queues:
            text = f"{text} (except {', '.join(obj.exclude_queues)})"
        return text

    @admin.display(description=_("heartbeat"), ordering="-last_heartbeat_at")
    def heartbeat(self, obj: Worker) -> str:
        return worker_heartbeat(obj, jobs_settings.WORKER_TIMEOUT)

    @admin.display(description=_("processed"), ordering="jobs_processed")
    def processed(self, obj: Worker) -> int:
        return obj.jobs_processed

    @admin.display(description=_("failed"), ordering="jobs_failed")
    def failed(self, obj: Worker) -> int:
        return obj.jobs_failed

    @admin.display(description=_("current jobs"))
    def current_jobs_display(self, obj: Worker) -> str:
        if obj.stopped_at is not None:
            return "-"
        return current_jobs(obj, self.admin_site.name)
