"""The workers' periodic notification duties (every ``CHECK_EVERY`` seconds): the
system events that are conditions rather than moments, and a sweep of deliveries no job
will send any more.

The conditions: ``schedule_missed`` (an
enabled schedule more than ``HEALTH["SCHEDULE_LAG"]`` late) and ``queue_backlog`` (a
queue's oldest due job older than its ``max_pending_age``, else
``HEALTH["MAX_PENDING_AGE"]``), checked by every worker every ``CHECK_EVERY`` seconds.

Each condition opens an ``Incident`` and notifies once; while it lasts, later checks (of
this worker or any other) find the incident open and send nothing; once it is over the
incident is cleared, so the next one notifies again. ``worker_lost`` is raised by the
rescue itself (one incident per lost worker id, cleared if that id heartbeats again).
"""

from __future__ import annotations

from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from .. import health
from ..conf import jobs_settings
from ..enums import CLAIMABLE_STATUSES
from ..models import Delivery, Incident, Job, Worker
from ..models.functions import db_now
from .deliveries import schedule_digest, system_event

# Seconds between two checks of one worker.
CHECK_EVERY = 10.0
# Cleared incidents are deleted after this long.
KEEP_CLEARED = timedelta(days=7)


def check(db: str) -> dict[str, list[str]]:
    """Open (and notify) or clear the incidents of late schedules and backlogged queues;
    returns what was opened. Cheap when no channel wants these events."""
    settings = jobs_settings.NOTIFICATIONS
    opened: dict[str, list[str]] = {"schedule_missed": [], "queue_backlog": [], "cleared": []}
    now = db_now(db)
    for kind, find in (("schedule_missed", late_schedules), ("queue_backlog", backlogged_queues)):
        if not settings.wants(kind):
            continue
        found = find(db, now)
        opened[kind] = [name for name, data in found.items() if _raise(db, kind, name, data)]
        opened["cleared"] += _clear(db, kind, set(found))
    if settings.wants("worker_lost"):
        # Over once the lost worker holds no job any more (the rescue sent them back) or
        # heartbeats again; a default worker id never comes back.
        alive = set(Worker.objects.using(db).alive().values_list("id", flat=True))
        holding = set(
            Job.objects.using(db).held().exclude(worker_id=None).values_list("worker_id", flat=True)
        )
        opened["cleared"] += _clear_where(
            db, "worker_lost", lambda subject: subject in alive or subject not in holding
        )
    Incident.objects.using(db).filter(cleared_at__lt=timezone.now() - KEEP_CLEARED).delete()
    if settings.channels():
        sweep(db)
    return opened


def sweep(db: str) -> dict[str, int]:
    """What no job will send any more gets one: a delivery whose sending job ended
    without sending it (cancelled, or dead-lettered after a hang) is marked failed, so
    the log says so and it can be resent; an email digest whose rows no sender took
    (its sender cancelled before it started, or an event that joined a sender just as it
    started) gets a sender."""
    pending = Delivery.objects.using(db).pending()
    senders = {
        pk
        for pk in pending.exclude(sender_job_id=None).values_list("sender_job_id", flat=True)
        if pk
    }
    running = set(
        Job.objects.using(db).filter(pk__in=senders).unfinished().values_list("pk", flat=True)
    )
    failed = Delivery.objects.using(db).abandon(
        senders - running, "its sending job {job} ended without sending it"
    )
    scheduled = 0
    email = jobs_settings.NOTIFICATIONS.email
    if email is not None and email.digest > 0:
        quiet = timezone.now() - timedelta(seconds=CHECK_EVERY)
        groups = {
            group
            for group in pending.filter(channel=Delivery.EMAIL, due_at=None, sender_job_id=None)
            .exclude(digest_key=None)
            .filter(created_at__lt=quiet)
            .values_list("digest_key", flat=True)
            if group
        }
        for group in sorted(groups):
            with transaction.atomic(using=db):
                schedule_digest(db, email, group)  # a unique job: one sender per group
            scheduled += 1
    return {"failed": failed, "digests": scheduled}


def late_schedules(db: str, now) -> dict[str, dict]:
    lag = jobs_settings.HEALTH.SCHEDULE_LAG
    return {
        name: {
            "schedule": name,
            "task": task,
            "due_at": due.isoformat() if due else None,
            "late_seconds": round((now - due).total_seconds(), 1) if due else None,
            "allowed_seconds": lag,
        }
        for name, task, due in health.late_schedules(db, now)
    }


def backlogged_queues(db: str, now) -> dict[str, dict]:
    due = Job.objects.using(db).filter(status__in=CLAIMABLE_STATUSES, scheduled_at__lte=now)
    return {
        name: {
            "queue": name,
            "oldest_pending_age_seconds": round(age, 1),
            "allowed_seconds": limit,
            "due_jobs": due.filter(queue=name).count(),
        }
        for name, age, limit in health.queue_waits(db, now)
        if limit is not None and age > limit
    }


def _raise(db: str, kind: str, subject: str, data: dict) -> bool:
    if (
        Incident.objects.using(db)
        .filter(kind=kind, subject=subject[:255], cleared_at=None)
        .exists()
    ):
        return False
    with transaction.atomic(using=db):
        return system_event(db, kind, subject, data)


def _clear(db: str, kind: str, still: set[str]) -> list[str]:
    return _clear_where(db, kind, lambda subject: subject not in still)


def _clear_where(db: str, kind: str, over) -> list[str]:
    cleared = []
    for pk, subject in (
        Incident.objects.using(db).filter(kind=kind, cleared_at=None).values_list("pk", "subject")
    ):
        if over(subject):
            Incident.objects.using(db).filter(pk=pk, cleared_at=None).update(
                cleared_at=timezone.now(), open_key=None
            )
            cleared.append(subject)
    return cleared
