from __future__ import annotations

from dataclasses import dataclass, field
from typing import cast

from django.db import models
from django.db.models import Q


@dataclass
class ClaimConfig:
    paused: list[str] = field(default_factory=list)
    limits: dict[str, int] = field(default_factory=dict)


class QueueQuerySet(models.QuerySet):
    def paused(self) -> QueueQuerySet:
        return self.filter(paused=True)

    def claim_config(self) -> ClaimConfig:
        """Paused queues and concurrency limits, in one small query per claim cycle."""
        conf = ClaimConfig()
        rows = self.filter(Q(paused=True) | Q(concurrency_limit__isnull=False)).values_list(
            "name", "paused", "concurrency_limit"
        )
        for name, paused, limit in rows:
            if paused:
                conf.paused.append(name)
            elif limit is not None:
                conf.limits[name] = limit
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
