"""A webhook receiver, as a project receiving django_jobs' notifications would write it:
check the Standard Webhooks signature, then act on the event."""

from __future__ import annotations

import json
import logging

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from django_jobs.notifications import WebhookVerificationError, verify

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
