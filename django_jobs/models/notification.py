"""The notifications' own rows (SPEC 10): each delivery with its attempts, and the open
incidents of the system events (so that each is sent once, not at every check)."""

from __future__ import annotations

import uuid
from typing import Any

from django.db import models
from django.utils import timezone


def _message_id() -> str:
    return f"msg_{uuid.uuid4().hex}"


class DeliveryQuerySet(models.QuerySet["Delivery"]):
    """The state changes of deliveries, each in one place (the delivery jobs, the
    workers' sweep, the admin and the CLI call these)."""

    def pending(self) -> DeliveryQuerySet:
        return self.filter(status=Delivery.PENDING)

    def take_digest(self, group: str, sender_job_id: int | None) -> list[Delivery]:
        """The pending email rows of ``group`` that ``sender_job_id`` sends: those it
        took before (an earlier attempt) and every row no sender took yet, taken in one
        UPDATE so two senders never take one row."""
        rows = self.pending().filter(digest_key=group, channel=Delivery.EMAIL)
        rows.filter(due_at=None, sender_job_id=None).update(
            due_at=timezone.now(), sender_job_id=sender_job_id
        )
        taken: list[Delivery] = list(
            rows.filter(sender_job_id=sender_job_id).exclude(due_at=None).order_by("pk")
        )
        return taken

    def record_attempt(self, history: list[dict], status: str) -> int:
        """Write an attempt's outcome: ``history`` is every attempt so far, the last one
        included; ``status`` pending (tried again later), delivered or failed."""
        changes: dict[str, Any] = {"status": status, "attempts": history}
        if status == Delivery.DELIVERED:
            changes["delivered_at"] = timezone.now()
        return self.update(**changes)

    def reopen(self) -> list[Delivery]:
        """Deliveries that are not pending become pending again, due now (resend); the
        pending ones are left to the job already sending them. Returns those reopened."""
        chosen: list[Delivery] = list(self.exclude(status=Delivery.PENDING))
        self.model._default_manager.using(self.db).filter(pk__in=[d.pk for d in chosen]).update(
            status=Delivery.PENDING, delivered_at=None, due_at=timezone.now()
        )
        return chosen

    def abandon(self, ended_sender_ids: set[int], note: str) -> int:
        """Pending deliveries whose sending job ended without sending them fail, with
        ``note`` (which may name ``{job}``) as their last attempt's error."""
        failed = 0
        for delivery in self.pending().filter(sender_job_id__in=ended_sender_ids):
            entry = {
                "at": timezone.now().isoformat(),
                "status_code": None,
                "error": note.format(job=delivery.sender_job_id),
                "seconds": 0,
            }
            failed += (
                self.pending()
                .filter(pk=delivery.pk, sender_job_id=delivery.sender_job_id)
                .update(status=Delivery.FAILED, attempts=[*delivery.attempts, entry])
            )
        return failed

    def prune(self, cutoff, chunk: int = 5000) -> int:
        """Delete what is not pending and was created before ``cutoff``, a chunk per
        statement."""
        deleted = 0
        while True:
            ids = list(
                self.filter(created_at__lt=cutoff)
                .exclude(status=Delivery.PENDING)
                .values_list("pk", flat=True)[:chunk]
            )
            if not ids:
                return deleted
            deleted += self.filter(pk__in=ids).delete()[0]


class Delivery(models.Model):
    """One notification to one channel: a webhook POST about one event, or an email
    about one event or a digest of many. Sent by a job of its own on
    ``NOTIFICATIONS_QUEUE``; every attempt is kept in ``attempts``."""

    EMAIL, WEBHOOK = "email", "webhook"
    PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"

    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    event = models.CharField(max_length=32)  # "failed", "worker_lost", "test", ...
    channel = models.CharField(max_length=16, choices=[(EMAIL, "email"), (WEBHOOK, "webhook")])
    # The webhook's URL, or the email's recipients (comma-separated).
    target = models.TextField()
    status = models.CharField(
        max_length=16,
        default=PENDING,
        choices=[(PENDING, "Pending"), (DELIVERED, "Delivered"), (FAILED, "Failed")],
        db_index=True,
    )
    # The Standard Webhooks message id: unique per message, the same on every retry.
    message_id = models.CharField(max_length=64, unique=True, default=_message_id)
    # A webhook: the JSON body sent. An email: {"event", "task", "jobs": [...], "count"}.
    payload = models.JSONField(default=dict)
    # The job reported on (an id, not a foreign key: the log outlives pruned jobs), and
    # the job that sends this delivery.
    job_id = models.BigIntegerField(null=True, blank=True, db_index=True)
    task_name = models.CharField(max_length=255, blank=True, default="")
    sender_job_id = models.BigIntegerField(null=True, blank=True)
    # An email that waits to be sent in a digest: its group, "<event>:<task>". The
    # digest's sending job takes the group's pending rows (setting due_at) and sends
    # them in one email.
    digest_key = models.CharField(max_length=255, null=True, blank=True, db_index=True)
    # When it is (or was) to be sent; NULL for a digest's email not taken yet.
    due_at = models.DateTimeField(null=True, blank=True)
    # Each attempt: {"at", "status_code", "error", "seconds"}.
    attempts = models.JSONField(default=list, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    objects = DeliveryQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "notification delivery"
        verbose_name_plural = "notification deliveries"

    def __str__(self) -> str:
        return f"{self.event} by {self.channel} to {self.target} ({self.status})"

    @property
    def last_attempt(self) -> dict[str, Any] | None:
        return self.attempts[-1] if self.attempts else None

    @property
    def last_answer(self) -> str:
        """The last attempt in a few words: its error, ``HTTP 200``, ``sent``, or ``-``."""
        last = self.last_attempt
        if not last:
            return "-"
        if last.get("error"):
            return str(last["error"])
        return f"HTTP {last['status_code']}" if last.get("status_code") else "sent"


class Incident(models.Model):
    """A system condition that was notified once and is not over yet: a lost worker, a
    late schedule, a queue's backlog. Cleared when the condition is over, so the next
    one notifies again."""

    kind = models.CharField(max_length=32)  # worker_lost, schedule_missed, queue_backlog
    subject = models.CharField(max_length=255)  # the worker id, schedule name, queue name
    # "<kind>:<subject>" (hashed past 255 characters) while open, NULL once cleared: one
    # open incident per subject.
    open_key = models.CharField(max_length=255, null=True, blank=True, unique=True)
    opened_at = models.DateTimeField(default=timezone.now)
    cleared_at = models.DateTimeField(null=True, blank=True)
    data = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-opened_at", "-id"]

    def __str__(self) -> str:
        state = "cleared" if self.cleared_at else "open"
        return f"{self.kind} {self.subject} ({state})"
