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

from ..conf import DELIVERY_TASK, DIGEST_TASK, jobs_settings
from ..exceptions import Retry
from ..execution.context import current_job
from ..models import Delivery
from ..registry import register_task
from .messages import DIGEST_LISTED, email_subject, email_text, encode, now_iso
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
    started = time.monotonic()
    at = now_iso()
    if delivery.channel == Delivery.WEBHOOK:
        attempt = post(delivery)
    else:
        attempt = send_email(delivery.event, delivery.target, delivery.payload, delivery.task_name)
    return _settle(objects.filter(pk=delivery.pk), delivery.attempts, attempt, at, started, job)


def send_digest(group: str) -> dict[str, Any]:
    """Send the pending emails of a digest group (``"<event>:<task>"``) as one email."""
    job = current_job()
    db = job._state.db if job is not None else router.db_for_write(Delivery)
    if job is not None:
        # From now on an event of this group enqueues the next sender (due when this
        # email's window ends), so nothing is left waiting on this one.
        job.release_unique_key()
    taken = Delivery.objects.using(db).take_digest(group, job.pk if job is not None else None)
    if not taken:
        return {"status": "nothing to send"}
    first = taken[0]
    listed = [row.payload["jobs"][0] for row in taken[:DIGEST_LISTED] if row.payload.get("jobs")]
    for job_payload in listed[1:]:  # one traceback is enough for an email
        if job_payload.get("error"):
            job_payload["error"] = {**job_payload["error"], "traceback": ""}
    payload = {"event": first.event, "task": first.task_name, "jobs": listed, "count": len(taken)}
    started = time.monotonic()
    at = now_iso()
    attempt = send_email(first.event, first.target, payload, first.task_name)
    rows = Delivery.objects.using(db).filter(pk__in=[row.pk for row in taken])
    return {**_settle(rows, first.attempts, attempt, at, started, job), "count": len(taken)}


def _settle(rows, attempts: list, attempt: Attempt, at: str, started: float, job) -> dict:
    """Record ``attempt`` on ``rows`` (the delivery, or a digest's rows) and decide: done,
    try again (``Retry``, while the job has retries left), or give up."""
    entry = {
        "at": at,
        "status_code": attempt.status_code,
        "error": attempt.error,
        "seconds": round(time.monotonic() - started, 3),
    }
    history = [*attempts, entry]
    if attempt.delivered:
        rows.record_attempt(history, Delivery.DELIVERED)
        return {"status": Delivery.DELIVERED, "status_code": attempt.status_code}
    if attempt.retry and job is not None and job.retry_count < job.max_retries:
        rows.record_attempt(history, Delivery.PENDING)
        raise Retry(attempt.retry_after, f"delivery failed, will try again: {attempt.error}")
    rows.record_attempt(history, Delivery.FAILED)
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
    except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        return Attempt(False, error=f"{type(exc).__name__}: {reason}", retry=True)
    except ValueError as exc:  # a URL urllib cannot use: trying again would not help
        return Attempt(False, error=f"{type(exc).__name__}: {exc}")
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


def send_email(event: str, target: str, payload: dict[str, Any], task: str) -> Attempt:
    channel = jobs_settings.NOTIFICATIONS.email
    if channel is None:
        return Attempt(False, error="no email channel is configured any more")
    sender = channel.from_email or settings.SERVER_EMAIL
    recipients = [a.strip() for a in target.split(",") if a.strip()]
    subject = email_subject(
        event, payload.get("task", task), payload.get("jobs", []), payload.get("count", 1)
    )
    message = EmailMessage(
        subject=subject,
        body=email_text(event, payload, window=channel.digest),
        from_email=sender,
        to=recipients,
        headers={"X-Django-Jobs-Event": event},
    )
    try:
        message.send(fail_silently=False)
    except Exception as exc:  # noqa: BLE001 - SMTP, network, a backend's own errors
        return Attempt(False, error=f"{type(exc).__name__}: {exc}", retry=True)
    return Attempt(True)


# The tasks: their jobs never notify (conf.NOTIFYING_TASKS), and retry with backoff from
# 10 s (20 s, 40 s, ... with jitter), eight times: about 40 minutes of trying in all.
RETRYING = {"max_retries": 8, "retry_delay": 10, "retry_backoff": 2.0, "max_retry_delay": 3600}
send_digest_task = register_task(DIGEST_TASK, send_digest, timeout=120, **RETRYING)
deliver_task = register_task(
    DELIVERY_TASK,
    deliver,
    timeout=120,
    **RETRYING,
)
