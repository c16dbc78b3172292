"""Failed jobs grouped by cause, at ``admin/django_jobs/job/failures/``.

Each group is an error type and message with the per-job details stripped
(``Job.error_group``, django_jobs.errorgroups), with how many jobs, when first and last
seen, and which tasks. A whole group can be retried (``change_job``) or deleted
(``delete_job``) from here; both call the QuerySet verbs the job actions use and are
written to the audit log.
"""

from __future__ import annotations

from urllib.parse import urlencode

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from ..manager import jobs
from ..models.counts import failure_groups
from .audit import audit
from .display import page_context, report_unique_conflicts

MAX_GROUPS = 200


def failures_view(model_admin, request):
    if not model_admin.has_view_permission(request):
        raise PermissionDenied
    queryset = jobs.objects.all()
    if request.method == "POST":
        return _act(model_admin, request, queryset)
    groups, estimated = failure_groups(queryset, limit=MAX_GROUPS)
    changelist = reverse("admin:django_jobs_job_changelist")
    for group in groups:
        group["jobs_url"] = (
            changelist + "?" + urlencode({"status__exact": "failed", "error_group": group["group"]})
        )
        group["task_list"] = sorted(group["tasks"].items(), key=lambda item: (-item[1], item[0]))
    trail = [(changelist, model_admin.model._meta.verbose_name_plural.capitalize())]
    context = {
        **page_context(request, model_admin, _("Failed jobs by cause"), trail),
        "groups": groups,
        "estimated": estimated,
        "max_groups": MAX_GROUPS,
        "can_retry": model_admin.has_change_permission(request),
        "can_delete": model_admin.has_delete_permission(request),
    }
    return TemplateResponse(request, "django_jobs/admin/failures_page.html", context)


def _act(model_admin, request, queryset):
    action, group = request.POST.get("action"), request.POST.get("group")
    here = reverse("admin:django_jobs_job_failures")
    if group is None or action not in ("retry", "delete"):
        messages.error(request, _("Choose a group and an action."))
        return HttpResponseRedirect(here)
    members = queryset.in_error_group(group)
    if action == "retry":
        if not model_admin.has_change_permission(request):
            raise PermissionDenied
        targets = list(members.values_list("pk", flat=True)[:100])
        count, conflicts = members.retry_all()
        audit(request, queryset.db, "retry", "job", targets, count=count, error_group=group)
        messages.success(
            request,
            ngettext("%d job sent back to pending.", "%d jobs sent back to pending.", count)
            % count,
        )
        report_unique_conflicts(request, conflicts)
    else:
        if not model_admin.has_delete_permission(request):
            raise PermissionDenied
        targets = list(members.values_list("pk", flat=True)[:100])
        count = members.delete_finished()
        audit(request, queryset.db, "delete", "job", targets, count=count, error_group=group)
        messages.success(request, ngettext("%d job deleted.", "%d jobs deleted.", count) % count)
    return HttpResponseRedirect(here)
