from __future__ import annotations

from datetime import datetime, timedelta

from django.db import models
from django.utils import timezone

from ..conf import jobs_settings
from .functions import DbNow


class WorkerQuerySet(models.QuerySet):
    def _cutoff(self, cutoff: datetime | timedelta | None):
        if isinstance(cutoff, datetime):
            return cutoff
        age = cutoff if cutoff is not None else timedelta(seconds=jobs_settings.WORKER_TIMEOUT)
        # Compared with the database clock: heartbeats are written with it too.
        return DbNow() - age

    def alive(self, cutoff: datetime | timedelta | None = None) -> WorkerQuerySet:
        return self.filter(last_heartbeat_at__gte=self._cutoff(cutoff), stopped_at__isnull=True)

    def unstopped(self) -> WorkerQuerySet:
        """Workers that did not stop cleanly: alive, or stale (killed, host lost) until
        their row is aged out."""
        return self.filter(stopped_at__isnull=True)

    def dead(self, cutoff: datetime | timedelta | None = None) -> WorkerQuerySet:
        return self.exclude(pk__in=self.alive(cutoff).values("pk"))

    def silent_for(self, age: timedelta) -> WorkerQuerySet:
        """Workers (stopped or not) whose last heartbeat is older than ``age``."""
        return self.filter(last_heartbeat_at__lt=DbNow() - age)


class Worker(models.Model):
    """One ``runworkers`` process: registered at start, heartbeating while alive."""

    id = models.CharField(max_length=255, primary_key=True)
    hostname = models.CharField(max_length=255)
    pid = models.PositiveIntegerField()
    queues = models.JSONField(default=list, blank=True)  # [] = every queue
    exclude_queues = models.JSONField(default=list, blank=True)
    concurrency = models.PositiveIntegerField(default=1)
    started_at = models.DateTimeField(default=timezone.now)
    last_heartbeat_at = models.DateTimeField(default=timezone.now)
    stopped_at = models.DateTimeField(null=True, blank=True)
    current_jobs = models.JSONField(default=list, blank=True)  # ids of running jobs
    jobs_processed = models.PositiveIntegerField(default=0)
    jobs_failed = models.PositiveIntegerField(default=0)
    version = models.CharField(max_length=50, blank=True, default="")

    objects = WorkerQuerySet.as_manager()

    class Meta:
        ordering = ["-started_at"]
        verbose_name = "worker"
        verbose_name_plural = "workers"

    def __str__(self) -> str:
        return self.id

    @property
    def heartbeat_age(self) -> timedelta:
        return timezone.now() - self.last_heartbeat_at

    @property
    def is_alive(self) -> bool:
        return self.stopped_at is None and self.heartbeat_age.total_seconds() < (
            jobs_settings.WORKER_TIMEOUT
        )

    def beat(self, current_jobs: list[int], processed: int, failed: int) -> bool:
        """Heartbeat with the worker's totals so far; False if the row is gone (removed
        in the admin, or cleaned up after a day of silence)."""
        n = (
            Worker.objects.using(self._state.db)
            .filter(pk=self.pk)
            .update(
                last_heartbeat_at=DbNow(),
                current_jobs=current_jobs,
                jobs_processed=processed,
                jobs_failed=failed,
            )
        )
        return bool(n)
