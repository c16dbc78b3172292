from __future__ import annotations

from django.db import models
from django.utils import timezone


class BatchKind(models.TextChoices):
    # Jobs enqueued together with enqueue_batch(); run in any order.
    BATCH = "batch", "Batch"
    # Steps of jobs.chain(); each runs after the previous one completed.
    CHAIN = "chain", "Chain"


class Batch(models.Model):
    """A group of jobs: a batch (``enqueue_batch``) or a chain (``chain``)."""

    kind = models.CharField(
        max_length=max(len(v) for v in BatchKind.values),
        choices=BatchKind.choices,
        default=BatchKind.BATCH,
    )
    task_name = models.CharField(max_length=255, blank=True, default="")
    total = models.PositiveIntegerField(default=0)
    enqueued = models.PositiveIntegerField(default=0)
    completed = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    cancelled = models.PositiveIntegerField(default=0)
    # Task enqueued once every job of the batch finished.
    on_complete = models.CharField(max_length=255, blank=True, default="")
    on_complete_kwargs = models.JSONField(default=dict, blank=True)
    on_complete_job = models.ForeignKey(
        "django_jobs.Job", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Set once on_complete was enqueued, so it never is twice (a failed job of a finished
    # batch may be retried: the batch finishes again, its callback does not run again).
    on_complete_enqueued = models.BooleanField(default=False)
    # The options the batch's jobs were enqueued with (queue, priority, tags): its
    # on_complete job gets them too.
    options = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        verbose_name = "batch"
        verbose_name_plural = "batches"

    def __str__(self) -> str:
        return f"{self.kind} #{self.pk} ({self.task_name or 'mixed'})"

    @property
    def finished_count(self) -> int:
        return self.completed + self.failed + self.cancelled

    @property
    def progress(self) -> float:
        """Share of the jobs that finished (completed, failed or cancelled), 0.0..1.0."""
        return self.finished_count / self.total if self.total else 1.0

    @property
    def is_finished(self) -> bool:
        return self.finished_at is not None

    @property
    def jobs(self) -> list:
        """The batch's jobs; for a chain, in step order."""
        return list(self.job_set.order_by("chain_index", "id"))
