"""Domain filters over jobs: what the admin, the CLI and the worker compose."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Self

from django.db import models
from django.db.models import Q

from ..conf import jobs_settings
from ..enums import (
    CLAIMABLE_STATUSES,
    FINISHED_STATUSES,
    HELD_STATUSES,
    UNFINISHED_STATUSES,
    JobStatus,
)
from .functions import DbNow
from .worker import Worker

if TYPE_CHECKING:
    from .job import Job  # noqa: F401 - named (as a string) in JobFilters' base


class JobFilters(models.QuerySet["Job", "Job"]):
    """The named subsets of jobs (part of ``JobQuerySet``)."""

    def fresh(self, db: str | None = None) -> Self:
        """All jobs, unfiltered, as this QuerySet class, on ``db`` (this one's by default)."""
        return type(self)(model=self.model, using=db or self.db)

    def claimable(self) -> Self:
        return self.filter(status__in=CLAIMABLE_STATUSES)

    def due(self) -> Self:
        """Claimable jobs whose time has come (by the database clock)."""
        return self.claimable().filter(scheduled_at__lte=DbNow())

    def for_queues(self, names: Iterable[str] | None) -> Self:
        return self if not names else self.filter(queue__in=list(names))

    def excluding_queues(self, names: Iterable[str] | None) -> Self:
        return self if not names else self.exclude(queue__in=list(names))

    def in_claim_order(self) -> Self:
        # Must match the partial index django_jobs_job_claim_idx column for column.
        return self.order_by("-priority", "scheduled_at", "id")

    def pending(self) -> Self:
        return self.filter(status=JobStatus.PENDING)

    def in_error_group(self, group: str) -> Self:
        """Failed jobs whose error falls in ``group`` (``Job.error_group``)."""
        return self.failed().filter(error_group=group)

    def waiting(self) -> Self:
        return self.filter(status=JobStatus.WAITING)

    def held(self) -> Self:
        """Reserved or running: a worker holds the lease."""
        return self.filter(status__in=HELD_STATUSES)

    def running(self) -> Self:
        return self.filter(status=JobStatus.RUNNING)

    def finished(self) -> Self:
        return self.filter(status__in=FINISHED_STATUSES)

    def unfinished(self) -> Self:
        return self.filter(status__in=UNFINISHED_STATUSES)

    def failed(self) -> Self:
        return self.filter(status=JobStatus.FAILED)

    def cancellable(self) -> Self:
        """Jobs that become cancelled at once (no worker holds them)."""
        return self.filter(status__in=(JobStatus.PENDING, JobStatus.WAITING, JobStatus.RETRYING))

    def retriable(self) -> Self:
        """Jobs ``retry()`` may send back to pending."""
        return self.filter(status__in=(JobStatus.FAILED, JobStatus.CANCELLED))

    def dead_letter(self) -> Self:
        return self.failed().filter(queue=jobs_settings.DEAD_LETTER_QUEUE)

    def held_by(self, worker_id: str) -> Self:
        return self.held().filter(worker_id=worker_id)

    def stalled(self, cutoff: datetime | timedelta | None = None) -> Self:
        """Held jobs whose worker stopped heartbeating (or never registered).

        Liveness-based: a job running for hours under a live worker is not stalled.
        """
        alive = Worker.objects.alive(cutoff).values("id")
        return self.held().filter(Q(worker_id__isnull=True) | ~Q(worker_id__in=alive))

    def followable_by(self, user: Any) -> Self:
        """The jobs whose progress ``user`` may follow (SPEC 6.1): every job for active
        staff, their own (``Job.owner``) for another signed-in user, none for anyone else
        (anonymous, inactive, None)."""
        if user is None or not user.is_authenticated or not getattr(user, "is_active", True):
            return self.none()
        if getattr(user, "is_staff", False):
            return self
        return self.filter(owner_id=user.pk)

    def with_tag(self, tag: str) -> Self:
        # JSON containment is not available on every backend (SQLite), so match the
        # serialised element; tags are plain strings.
        return self.filter(tags__icontains=f'"{tag}"')
