"""The demo's pages: a webhook receiver, as a project receiving django_jobs' notifications
would write it (check the Standard Webhooks signature, then act on the event), and a
user's page that starts a report and shows its progress."""

from __future__ import annotations

import json
import logging
import time

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from django_jobs import jobs
from django_jobs.models import Job
from django_jobs.notifications import WebhookVerificationError, verify

from .tasks import build_report

logger = logging.getLogger("demo")


@csrf_exempt  # signed instead: a forged or replayed request fails verify()
@require_POST
def job_webhook(request: HttpRequest) -> HttpResponse:
    try:
        verify(settings.DEMO_WEBHOOK_SECRET, request.headers, request.body)
    except WebhookVerificationError as exc:
        logger.warning("Rejected a webhook: %s", exc)
        return HttpResponse(status=400)
    event = json.loads(request.body)
    job = event["data"].get("job")
    if job:
        error = (job.get("error") or {}).get("message", "")
        logger.warning("Webhook %s: job %s (%s) %s", event["type"], job["id"], job["task"], error)
    else:
        logger.warning("Webhook %s: %s", event["type"], event["data"])
    return HttpResponse(status=204)


# -- a user's own page: start a report, watch its progress bar (SPEC 6.1) ------------------


def home(request: HttpRequest) -> HttpResponse:
    """The demo's landing page: where to go."""
    return render(request, "demo/home.html")


@login_required
def reports(request: HttpRequest) -> HttpResponse:
    """``POST`` starts a report for the signed-in user (the job's owner); the page shows
    the bars of their latest reports, which update themselves until each finishes."""
    if request.method == "POST":
        jobs.enqueue(
            build_report,
            kwargs={"report_id": int(time.time()), "sections": 10, "seconds_per_section": 1.5},
            owner=request.user,
        )
        return redirect("reports")  # a reload does not start another one
    mine = Job.objects.filter(owner_id=request.user.pk, task_name=build_report.name)
    latest = [(job.pk, f"Report #{job.pk}") for job in mine.order_by("-id").only("pk")[:5]]
    return render(request, "demo/reports.html", {"reports": latest})
