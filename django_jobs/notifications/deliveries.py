"""Events become deliveries: one ``Delivery`` row per channel and message, and a job on
``NOTIFICATIONS_QUEUE`` that sends it (:mod:`.sending`).

The receivers run inside the transaction that recorded the outcome (see
``models/notices.py``), in a savepoint of their own, and only insert rows: a rolled-back
outcome leaves no delivery, and recording one takes no row lock.

Webhooks get one message per job event. Email is digested: the job events of one task
(and one event) within ``EMAIL["DIGEST"]`` seconds (60 by default) share one email. Each
event is a pending row of its group (``Delivery.digest_key``); one unique sending job per
group takes every pending row when it starts. The first email of a quiet task goes at
once, the next when the window since it ends: a storm of failures makes a webhook
delivery per job and one or two emails a minute (1,000 failures: one email, tested).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from datetime import timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Max
from django.utils import timezone

from ..conf import DELIVERY_TASK, DIGEST_TASK, EmailChannel, WebhookChannel, jobs_settings
from ..enqueue import enqueue_job
from ..models import Delivery, Incident
from .messages import DIGEST_LISTED, now_iso, webhook_body


def on_job_events(sender, *, event: str, jobs: list[dict], using: str, **kwargs) -> None:
    """``job_events_recorded`` receiver (wired in ``AppConfig.ready()``)."""
    _guarded(using, f"{event} of {len(jobs)} job(s)", lambda: job_events(using, event, jobs))


def on_system_event(sender, *, event: str, subject: str, data: dict, using: str, **kwargs) -> None:
    """``system_event_recorded`` receiver (wired in ``AppConfig.ready()``)."""
    _guarded(using, f"{event} of {subject}", lambda: system_event(using, event, subject, data))


def _guarded(db: str, what: str, record: Callable[[], object]) -> None:
    """``record()`` in a savepoint inside the outcome's transaction, so that a database
    error in it leaves that transaction usable. What an error then does to the outcome
    (logged, or re-raised when the database undid the whole transaction) is decided
    where the signal is sent, ``models.notices``."""
    with transaction.atomic(using=db):
        record()


def job_events(db: str, event: str, jobs: list[dict]) -> None:
    settings = jobs_settings.NOTIFICATIONS
    stamp = now_iso()
    for hook in settings.webhooks:
        for job in jobs:
            if hook.wants(event, job["queue"], job["task"]):
                webhook(db, hook, event, {"job": job}, job_id=job["id"], task=job["task"], at=stamp)
    email = settings.email
    if email is None:
        return
    by_task: dict[str, list[dict]] = {}
    for job in jobs:
        if email.wants(event, job["queue"], job["task"]):
            by_task.setdefault(job["task"], []).append(job)
    for task, wanted in by_task.items():
        email_digest(db, email, event, task, wanted)


def webhook(
    db: str,
    hook: WebhookChannel,
    event: str,
    data: dict[str, Any],
    *,
    job_id: int | None = None,
    task: str = "",
    at: str | None = None,
) -> Delivery:
    delivery = Delivery(
        event=event,
        channel=Delivery.WEBHOOK,
        target=hook.url,
        payload=webhook_body(event, data, at),
        job_id=job_id,
        task_name=task[:255],
        due_at=timezone.now(),
    )
    delivery.save(using=db)
    send_later(db, delivery)
    return delivery


def email(
    db: str, channel: EmailChannel, event: str, payload: dict[str, Any], **fields
) -> Delivery:
    delivery = Delivery(
        event=event,
        channel=Delivery.EMAIL,
        target=", ".join(channel.to),
        payload=payload,
        due_at=timezone.now(),
        **fields,
    )
    delivery.save(using=db)
    send_later(db, delivery)
    return delivery


def email_digest(db: str, channel: EmailChannel, event: str, task: str, jobs: list[dict]) -> None:
    """One pending row per job (an INSERT: the outcome's transaction takes no lock here),
    and one sending job per (event, task) at a time (``schedule_digest``)."""
    if channel.digest <= 0:
        for job in jobs:
            email(
                db,
                channel,
                event,
                _digest_payload(event, task, [job], 1),
                task_name=task[:255],
                job_id=job["id"],
            )
        return
    group = _bounded(f"{event}:{task}")
    Delivery.objects.using(db).bulk_create(
        [
            Delivery(
                event=event,
                channel=Delivery.EMAIL,
                target=", ".join(channel.to),
                payload=_digest_payload(event, task, [job], 1),
                job_id=job["id"],
                task_name=task[:255],
                digest_key=group,
            )
            for job in jobs
        ]
    )
    schedule_digest(db, channel, group)


def schedule_digest(db: str, channel: EmailChannel, group: str) -> None:
    """Enqueue the sender of ``group``'s digest unless one is waiting already (a unique
    job, which gives its key up when it starts): due now, or when the window of the
    group's last email ends."""
    last = (
        Delivery.objects.using(db)
        .filter(digest_key=group)
        .exclude(due_at=None)
        .aggregate(last=Max("due_at"))["last"]
    )
    now = timezone.now()
    due = max(now, last + timedelta(seconds=channel.digest)) if last else now
    enqueue_job(
        db,
        DIGEST_TASK,
        args=[group],
        queue=jobs_settings.NOTIFICATIONS_QUEUE,
        delay=max(0.0, (due - now).total_seconds()) or None,
        unique_key=digest_job_key(group),
    )


def digest_job_key(group: str) -> str:
    return f"django_jobs.notifications.digest:{hashlib.sha256(group.encode()).hexdigest()}"


def _digest_payload(event: str, task: str, jobs: list[dict], count: int) -> dict[str, Any]:
    return {"event": event, "task": task, "jobs": jobs[:DIGEST_LISTED], "count": count}


def system_event(db: str, event: str, subject: str, data: dict[str, Any]) -> bool:
    """Notify a system event once per incident: nothing while one about ``subject`` is
    open (:mod:`.alerts` clears it when the condition is over). True if it notified."""
    if not open_incident(db, event, subject, data):
        return False
    settings = jobs_settings.NOTIFICATIONS
    for hook in settings.webhooks:
        if hook.wants(event):
            webhook(db, hook, event, data)
    if settings.email is not None and settings.email.wants(event):
        email(db, settings.email, event, data, task_name=subject[:255])
    return True


def open_incident(db: str, kind: str, subject: str, data: dict[str, Any]) -> bool:
    """Open the incident ``kind`` of ``subject``; False if one is open already."""
    try:
        with transaction.atomic(using=db):
            Incident.objects.using(db).create(
                kind=kind, subject=subject[:255], open_key=incident_key(kind, subject), data=data
            )
    except IntegrityError:
        return False
    return True


def incident_key(kind: str, subject: str) -> str:
    return _bounded(f"{kind}:{subject}")


def _bounded(key: str) -> str:
    """A key within the column's 255 characters (MySQL's limit for a unique column): a
    longer one keeps its start and ends with its SHA-256."""
    if len(key) <= 255:
        return key
    return key[:190] + ":" + hashlib.sha256(key.encode()).hexdigest()


def send_later(db: str, delivery: Delivery, delay: float | None = None) -> None:
    """Enqueue the job that sends ``delivery`` (in the caller's transaction)."""
    job = enqueue_job(
        db,
        DELIVERY_TASK,
        args=[delivery.message_id],
        queue=jobs_settings.NOTIFICATIONS_QUEUE,
        delay=delay if delay and delay > 0 else None,
    )
    Delivery.objects.using(db).filter(pk=delivery.pk).update(sender_job_id=job.pk)
    delivery.sender_job_id = job.pk


def resend(deliveries: Iterable[Delivery], db: str) -> int:
    """Send these deliveries again (same message id, the attempts so far kept); pending
    ones are left to the job already sending them. Returns how many."""
    with transaction.atomic(using=db):
        chosen = Delivery.objects.using(db).filter(pk__in=[d.pk for d in deliveries]).reopen()
        for delivery in chosen:
            send_later(db, delivery)
    return len(chosen)


def send_test(db: str, channel: str) -> Delivery:
    """A test notification to ``channel``: ``"email"`` or a configured webhook URL."""
    settings = jobs_settings.NOTIFICATIONS
    data = {"message": "A test notification from django_jobs.", "channel": channel}
    with transaction.atomic(using=db):
        if channel == "email":
            if settings.email is None:
                raise ValueError("No email channel is configured in DJANGO_JOBS['NOTIFICATIONS'].")
            return email(db, settings.email, "test", data)
        for hook in settings.webhooks:
            if hook.url == channel:
                return webhook(db, hook, "test", data)
    raise ValueError(f"No webhook with the URL {channel!r} is configured.")


def prune(db: str, older_than: float, chunk: int = 5000) -> int:
    """Delete deliveries older than ``older_than`` seconds that are not pending (the
    log keeps what ``RETENTION`` keeps of the jobs)."""
    cutoff = timezone.now() - timedelta(seconds=older_than)
    return Delivery.objects.using(db).prune(cutoff, chunk)
