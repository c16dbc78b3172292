"""The delivery task: send one ``Delivery`` (a signed webhook POST or an email), record
the attempt, and decide what comes next.

- Delivered: a 2xx answer, or the mail backend took the email.
- Tried again later, with the job's backoff (``Retry-After`` honoured, up to an hour):
  network errors, timeouts, 408, 429 and 5xx answers, mail backend errors.
- Given up: other 4xx answers, redirects (configure the final URL), a channel no longer
  configured, and the last allowed attempt. A delivery that gave up ends ``failed`` in
  the log; its job completes (the dead-letter queue is for the project's own jobs).

The delivery jobs are jobs like any other, so a failing channel can only ever delay
other deliveries, never the jobs reported on.
"""

from __future__ import annotations

import http.client
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

from django.conf import settings
from django.core.mail import EmailMessage
from django.db import router
from django.utils import timezone

from ..conf import DELIVERY_TASK, jobs_settings
from ..exceptions import Retry
from ..execution.context import current_job
from ..models import Delivery
from ..registry import register_task
from .messages import email_subject, email_text, encode, now_iso
from .signing import signed_headers

# Seconds a webhook receiver has to answer.
TIMEOUT = 10.0
# A Retry-After longer than this is cut to it.
MAX_RETRY_AFTER = 3600.0


@dataclass
class Attempt:
    delivered: bool
    status_code: int | None = None
    error: str = ""
    retry: bool = False  # worth another attempt
    retry_after: float | None = None  # seconds the receiver asked for


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None  # a redirect is an answer (3xx), not followed


_opener = urllib.request.build_opener(_NoRedirects)


def deliver(message_id: str) -> dict[str, Any]:
    """Send the delivery ``message_id`` (the job's only argument)."""
    job = current_job()
    db = job._state.db if job is not None else router.db_for_write(Delivery)
    objects = Delivery.objects.using(db)
    delivery = objects.filter(message_id=message_id).first()
    if delivery is None or delivery.status != Delivery.PENDING:
        return {"status": delivery.status if delivery else "missing"}
    if delivery.digest_key:
        # Close the digest: what outcomes add from now on opens the next one. The UPDATE
        # waits for those adding to it now, then the row is read with all they added.
        objects.filter(pk=delivery.pk).update(digest_key=None)
        delivery.refresh_from_db()

    at = now_iso()
    started = time.monotonic()
    if delivery.channel == Delivery.WEBHOOK:
        attempt = post(delivery)
    else:
        attempt = send_email(delivery)
    entry = {
        "at": at,
        "status_code": attempt.status_code,
        "error": attempt.error,
        "seconds": round(time.monotonic() - started, 3),
    }
    attempts = [*delivery.attempts, entry]
    if attempt.delivered:
        objects.filter(pk=delivery.pk).update(
            status=Delivery.DELIVERED, attempts=attempts, delivered_at=timezone.now()
        )
        return {"status": Delivery.DELIVERED, "status_code": attempt.status_code}
    if attempt.retry and job is not None and job.retry_count < job.max_retries:
        objects.filter(pk=delivery.pk).update(attempts=attempts)
        raise Retry(attempt.retry_after, f"delivery failed, will try again: {attempt.error}")
    objects.filter(pk=delivery.pk).update(status=Delivery.FAILED, attempts=attempts)
    return {"status": Delivery.FAILED, "status_code": attempt.status_code, "error": attempt.error}


def post(delivery: Delivery) -> Attempt:
    """POST the webhook's body, signed with its channel's current secret."""
    hook = next((h for h in jobs_settings.NOTIFICATIONS.webhooks if h.url == delivery.target), None)
    if hook is None:
        return Attempt(False, error="no webhook with this URL is configured any more")
    body = encode(delivery.payload)
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "django_jobs-webhooks",
        **signed_headers(hook.secret, delivery.message_id, body),
    }
    request = urllib.request.Request(delivery.target, data=body, headers=headers, method="POST")
    try:
        with _opener.open(request, timeout=TIMEOUT) as response:
            code = response.status
            response.read(65536)
        retry_after = None
    except urllib.error.HTTPError as exc:
        code = exc.code
        retry_after = _retry_after(exc.headers.get("Retry-After"))
        exc.close()
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return Attempt(False, error=f"{type(exc).__name__}: {reason}", retry=True)
    if 200 <= code < 300:
        return Attempt(True, code)
    if code in (408, 429) or code >= 500:
        return Attempt(False, code, f"HTTP {code}", retry=True, retry_after=retry_after)
    return Attempt(False, code, f"HTTP {code}: not retried")


def _retry_after(value: str | None) -> float | None:
    """``Retry-After`` in seconds: a number, or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - datetime.now(UTC)).total_seconds()
    if seconds != seconds:  # NaN
        return None
    return min(max(0.0, seconds), MAX_RETRY_AFTER)


def send_email(delivery: Delivery) -> Attempt:
    settings_ = jobs_settings.NOTIFICATIONS.email
    sender = (settings_.from_email if settings_ else None) or settings.SERVER_EMAIL
    recipients = [a.strip() for a in delivery.target.split(",") if a.strip()]
    payload = delivery.payload
    subject = email_subject(
        delivery.event,
        payload.get("task", delivery.task_name),
        payload.get("jobs", []),
        payload.get("count", 1),
    )
    message = EmailMessage(
        subject=subject,
        body=email_text(delivery.event, payload),
        from_email=sender,
        to=recipients,
        headers={"X-Django-Jobs-Event": delivery.event},
    )
    try:
        message.send(fail_silently=False)
    except Exception as exc:  # noqa: BLE001 - SMTP, network, a backend's own errors
        return Attempt(False, error=f"{type(exc).__name__}: {exc}", retry=True)
    return Attempt(True)


# The task itself: its jobs never notify (conf.DELIVERY_TASK), and retry with backoff
# from 10 s up to an hour, eight times (about an hour and a half of trying in all).
deliver_task = register_task(
    DELIVERY_TASK,
    deliver,
    max_retries=8,
    retry_delay=10,
    retry_backoff=2.0,
    max_retry_delay=3600,
    timeout=120,
)
