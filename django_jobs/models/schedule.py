from __future__ import annotations

from django.db import models
from django.db.models import Q
from django.utils import timezone as dj_timezone


class ScheduleKind(models.TextChoices):
    # Standard 5-field cron expression, evaluated in the schedule's time zone.
    CRON = "cron", "Cron"
    # Every ``interval`` seconds.
    INTERVAL = "interval", "Interval"
    # Once, at ``run_at``.
    ONCE = "once", "Once"


class MisfirePolicy(models.TextChoices):
    # After downtime, run once for all the due times that were missed.
    RUN_ONCE = "run_once", "Run once"
    # After downtime, skip what was missed and wait for the next due time.
    SKIP = "skip", "Skip"


class ScheduleQuerySet(models.QuerySet):
    def enabled(self) -> ScheduleQuerySet:
        return self.filter(enabled=True)

    def due(self) -> ScheduleQuerySet:
        """Enabled schedules whose next run time has come (by the database clock)."""
        from .functions import DbNow

        return self.enabled().filter(next_run_at__isnull=False, next_run_at__lte=DbNow())


class Schedule(models.Model):
    """A task run on a cron expression, an interval, or once at a given time."""

    name = models.CharField(max_length=255, unique=True)
    task_name = models.CharField(max_length=255)
    args = models.JSONField(default=list, blank=True)
    kwargs = models.JSONField(default=dict, blank=True)
    queue = models.CharField(max_length=255, blank=True, default="")  # "" = the task's
    priority = models.SmallIntegerField(null=True, blank=True)  # None = the task's
    kind = models.CharField(
        max_length=max(len(v) for v in ScheduleKind.values), choices=ScheduleKind.choices
    )
    cron = models.CharField(max_length=255, blank=True, default="")
    interval = models.FloatField(null=True, blank=True)  # seconds
    run_at = models.DateTimeField(null=True, blank=True)
    timezone = models.CharField(max_length=64, default="UTC")
    enabled = models.BooleanField(default=True)
    misfire_policy = models.CharField(
        max_length=max(len(v) for v in MisfirePolicy.values),
        choices=MisfirePolicy.choices,
        default=MisfirePolicy.RUN_ONCE,
    )
    next_run_at = models.DateTimeField(null=True, blank=True)
    last_run_at = models.DateTimeField(null=True, blank=True)
    last_job = models.ForeignKey(
        "django_jobs.Job", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    run_count = models.PositiveIntegerField(default=0)
    tags = models.JSONField(default=list, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    description = models.TextField(blank=True, default="")
    # "code" for schedules declared with @job(cron=...)/@job(interval=...), else "api".
    source = models.CharField(max_length=10, default="api")
    created_at = models.DateTimeField(default=dj_timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    objects = ScheduleQuerySet.as_manager()

    class Meta:
        ordering = ["name"]
        verbose_name = "schedule"
        verbose_name_plural = "schedules"
        indexes = [
            models.Index(
                fields=["next_run_at"],
                condition=Q(enabled=True),
                name="django_jobs_schedule_due_idx",
            )
        ]
        constraints = [
            models.CheckConstraint(
                condition=(
                    Q(kind="cron", cron__gt="")
                    | Q(kind="interval", interval__gt=0)
                    | Q(kind="once", run_at__isnull=False)
                ),
                name="django_jobs_schedule_kind_fields",
            ),
        ]

    def __str__(self) -> str:
        return self.name
