"""The end-user progress widget's two views (SPEC 6.1), mounted with
``path("jobs/", include("django_jobs.urls"))``: ``job-progress`` answers a job's state as
JSON, ``job-cancel`` cancels it.

Plain Django views: DRF is an optional extra. Only staff and the job's owner get
anything; for anyone else a job that exists answers exactly like one that does not (and
like an id that is no id), so nothing leaks. Nothing is cached on the way.
"""

from __future__ import annotations

import math
from typing import Any

from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext, ngettext
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.http import require_POST, require_safe

from .enums import HELD_STATUSES, JobStatus
from .manager import jobs
from .models import AuditEntry, Job

# What the widget reads of a job. Never its arguments, result or errors: an exception's
# message may name hosts, paths or other users' data, which its owner should not see.
STATE_FIELDS = ("status", "progress", "progress_message", "started_at", "cancel_requested")
MAX_PK = 2**63 - 1


def followed_job(request: HttpRequest, job: Any) -> Job | None:
    """The job (a ``Job`` or an id) read afresh if ``request.user`` may follow it, else
    None, also for anything that is no job id ("abc", "-1", "١")."""
    text = str(job.pk if isinstance(job, Job) else job)
    if not (text.isascii() and text.isdigit() and len(text) <= 19) or not 0 < int(text) <= MAX_PK:
        return None
    user = getattr(request, "user", None)
    return jobs.objects.followable_by(user).only(*STATE_FIELDS).filter(pk=int(text)).first()


def eta_text(seconds: float | None) -> str:
    """Time left, in words for the widget ("12 seconds left"); "" when unknown."""
    if seconds is None:
        return ""
    if seconds < 1:
        return gettext("almost done")
    if seconds < 60:
        count = math.ceil(seconds)
        return ngettext("%(count)d second left", "%(count)d seconds left", count) % {"count": count}
    minutes = round(seconds / 60)
    if minutes < 60:
        return ngettext("about %(count)d minute left", "about %(count)d minutes left", minutes) % {
            "count": minutes
        }
    hours, minutes = divmod(minutes, 60)
    return gettext("about %(hours)d h %(minutes)02d min left") % {
        "hours": hours,
        "minutes": minutes,
    }


def status_text(job: Job) -> str:
    """The widget's headline: the outcome once finished, "Cancelling…" while a cancel
    waits for the worker, nothing while it runs (its message speaks), else that it has
    not started."""
    if job.is_finished:
        return str(job.get_status_display())
    if job.cancel_requested:
        return gettext("Cancelling…")
    if job.status in HELD_STATUSES:
        return ""
    if job.status == JobStatus.RETRYING:
        return gettext("Retrying soon")
    return gettext("Waiting to start")


def job_state(job: Job) -> dict[str, Any]:
    """What an owner may see of a job: the JSON of ``job-progress``, and what
    ``{% job_progress %}`` renders before any script runs."""
    fraction = min(1.0, max(0.0, job.progress or 0.0))
    finished = job.is_finished
    eta = None if finished else job.eta_seconds
    return {
        "id": job.pk,
        "status": job.status,
        "status_text": status_text(job),
        "progress": fraction,
        # Rounded down: 99.7 % of a running job is not 100 %.
        "percent": math.floor(fraction * 100 + 1e-9),
        "message": job.progress_message,
        "eta_seconds": None if eta is None else round(eta),
        "eta_text": eta_text(eta),
        "finished": finished,
        "cancel_requested": bool(job.cancel_requested) and not finished,
    }


def not_found() -> JsonResponse:
    """The one answer for a job that does not exist, is not the caller's, or is no id."""
    return JsonResponse({"detail": "Not found."}, status=404)


@never_cache
@require_safe
def job_progress(request: HttpRequest, job_id: str) -> HttpResponse:
    """``GET``: the job's state (``job_state``) as JSON."""
    job = followed_job(request, job_id)
    if job is None:
        return not_found()
    return JsonResponse(job_state(job))


@never_cache
@require_POST
@csrf_protect
def job_cancel(request: HttpRequest, job_id: str) -> HttpResponse:
    """``POST``: cancel the job (``jobs.cancel``: at once if no worker holds it, else at
    its worker's next progress call or heartbeat) and answer its new state, with
    ``"cancelled"``: whether this request cancelled or flagged it.

    A form posted without the script sends ``next``, the page to go back to.
    """
    job = followed_job(request, job_id)
    if job is None:
        return not_found()
    cancelled = jobs.cancel(job.pk)
    if cancelled:
        AuditEntry.record(
            source=AuditEntry.API,
            action="cancel",
            target_type="job",
            targets=[job.pk],
            user=request.user,
            using=jobs.db,
            via="job-cancel",
        )
    job = followed_job(request, job.pk)
    if job is None:  # deleted meanwhile
        return not_found()
    back = request.POST.get("next", "")
    if back and url_has_allowed_host_and_scheme(
        back, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return HttpResponseRedirect(back)
    return JsonResponse({**job_state(job), "cancelled": cancelled})
