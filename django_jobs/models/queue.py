from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import cast

from django.core.exceptions import ValidationError
from django.db import models, router
from django.db.models import Q

from ..wakeups import notify
from .rate import Rate, parse_rate, validate_rate

logger = logging.getLogger("django_jobs.worker")


@dataclass
class ClaimConfig:
    paused: list[str] = field(default_factory=list)
    limits: dict[str, int] = field(default_factory=dict)
    rates: dict[str, Rate] = field(default_factory=dict)
    # Set by a claim that found a rate-limited queue with nothing left to start: seconds
    # until one more start is allowed there (None: no such queue held the claim back).
    rate_wait: float | None = None

    def throttled(self) -> set[str]:
        """Queues each claim must take one by one, under their row's lock."""
        return (set(self.limits) | set(self.rates)) - set(self.paused)


class QueueQuerySet(models.QuerySet):
    def paused(self) -> QueueQuerySet:
        return self.filter(paused=True)

    def claim_config(self) -> ClaimConfig:
        """Paused queues, concurrency and rate limits, in one small query per claim
        cycle."""
        conf = ClaimConfig()
        rows = self.filter(
            Q(paused=True) | Q(concurrency_limit__isnull=False) | ~Q(rate_limit="")
        ).values_list("name", "paused", "concurrency_limit", "rate_limit")
        for name, paused, limit, rate in rows:
            if paused:
                conf.paused.append(name)
                continue
            if limit is not None:
                conf.limits[name] = limit
            if rate:
                try:
                    conf.rates[name] = parse_rate(rate)
                except ValidationError:
                    # Written around the validation (a raw UPDATE): say so, claim on.
                    logger.error("Queue %r has an invalid rate_limit %r: ignored", name, rate)
        return conf

    def ensure(self, name: str) -> Queue:
        """The queue of that name, created on first use."""
        obj, _ = self.get_or_create(name=name)
        return cast(Queue, obj)


class Queue(models.Model):
    """A named queue. Rows are created on first use; jobs refer to queues by name."""

    name = models.CharField(max_length=255, unique=True)
    description = models.TextField(blank=True, default="")
    paused = models.BooleanField(default=False)
    # At most this many running jobs of the queue across all workers (None: no limit).
    concurrency_limit = models.PositiveIntegerField(null=True, blank=True)
    # At most this many job starts per period across all workers and hosts ("100/s",
    # "600/m", "1000/h"; empty: no limit), counted in ``rate_window`` by every claim.
    rate_limit = models.CharField(
        max_length=32,
        blank=True,
        default="",
        db_default="",
        validators=[validate_rate],
        help_text="At most this many job starts per period across all workers, such as "
        '"100/s", "600/m" or "1000/h" (empty: no limit).',
    )
    # The recent starts the rate limit counts (``models.rate``); written by claims only.
    rate_window = models.JSONField(null=True, blank=True, editable=False)
    # The health check (and the queue_backlog alert) fail when the queue's oldest due job
    # has waited longer than this (None: DJANGO_JOBS["HEALTH"]["MAX_PENDING_AGE"]).
    max_pending_age = models.DurationField(
        null=True,
        blank=True,
        help_text="Alert when the oldest due job has waited longer than this "
        "(empty: the HEALTH setting's MAX_PENDING_AGE).",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = QueueQuerySet.as_manager()

    class Meta:
        ordering = ["name"]
        verbose_name = "queue"
        verbose_name_plural = "queues"

    def __str__(self) -> str:
        return self.name

    def pause(self) -> None:
        self.paused = True
        self.save(update_fields=["paused", "updated_at"])

    def resume(self) -> None:
        self.paused = False
        self.save(update_fields=["paused", "updated_at"])

    # The settings a person may change (the admin's queue form); the name is not one:
    # jobs refer to their queue by name.
    SETTINGS = ("description", "concurrency_limit", "rate_limit", "max_pending_age")

    def configure(self, **settings) -> list[str]:
        """Change some of ``SETTINGS``; returns the names of those that changed.

        Workers read the limits at every poll, so a new ``concurrency_limit`` or
        ``rate_limit`` holds within one ``POLL_INTERVAL`` (a second by default); a
        changed limit also wakes idle workers where the database can (PostgreSQL): a
        raised one frees jobs.
        """
        unknown = set(settings) - set(self.SETTINGS)
        if unknown:
            raise TypeError(f"Unknown queue setting(s): {', '.join(sorted(unknown))}.")
        changed = [name for name, value in settings.items() if getattr(self, name) != value]
        if not changed:
            return []
        if "rate_limit" in changed:
            settings["rate_limit"] = (settings["rate_limit"] or "").strip()
            validate_rate(settings["rate_limit"])  # ValidationError, nothing written
        for name in changed:
            setattr(self, name, settings[name])
        self.save(update_fields=[*changed, "updated_at"])
        if "concurrency_limit" in changed or "rate_limit" in changed:
            notify(self._state.db or router.db_for_write(Queue), self.name)
        return changed
