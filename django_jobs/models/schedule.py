from __future__ import annotations

from datetime import datetime

from django.core.exceptions import ValidationError
from django.db import models, router, transaction
from django.db.models import Q
from django.utils import timezone as dj_timezone

from .. import schedules
from ..enums import MAX_PRIORITY, MIN_PRIORITY, MisfirePolicy, ScheduleKind
from ..exceptions import TaskNotFound
from ..registry import registry
from .functions import DbNow, db_now

__all__ = ["MisfirePolicy", "Schedule", "ScheduleKind", "ScheduleQuerySet"]


class ScheduleQuerySet(models.QuerySet):
    def enabled(self) -> ScheduleQuerySet:
        return self.filter(enabled=True)

    def due(self) -> ScheduleQuerySet:
        """Enabled schedules whose next run time has come (by the database clock)."""
        return self.enabled().filter(next_run_at__isnull=False, next_run_at__lte=DbNow())

    def disabled(self) -> ScheduleQuerySet:
        return self.filter(enabled=False)

    def declared_in_code(self) -> ScheduleQuerySet:
        """Schedules created from ``@job(cron=...)`` / ``@job(interval=...)``."""
        return self.filter(source="code")

    # -- verbs over many schedules (admin actions); single-schedule verbs land here too.

    def enable(self) -> int:
        """Enable the disabled schedules among these; returns how many."""
        count = 0
        for schedule in self.disabled():
            count += schedule.enable()
        return count

    def disable(self) -> int:
        """Disable these schedules; returns how many were enabled."""
        return self.enabled().update(enabled=False, updated_at=dj_timezone.now())


class Schedule(models.Model):
    """A task run on a cron expression, an interval, or once at a given time."""

    db_now: datetime  # annotated by the scheduler's due query: the database's clock

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
            models.Index(fields=["enabled", "next_run_at"], name="django_jobs_schedule_due_idx")
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

    # -- reading ----------------------------------------------------------------------

    def describe(self) -> str:
        """Human-readable timing: ``cron 0 9 * * * (Europe/Paris)``, ``every 5m``, ..."""
        return schedules.describe(self)

    def next_due_after(self, after):
        """The next due time strictly after ``after`` (aware UTC; None for one-time)."""
        return schedules.next_due_after(self, after)

    def job_options(self) -> dict:
        """The ``enqueue()`` arguments of a job fired by this schedule."""
        return {
            "args": self.args,
            "kwargs": self.kwargs,
            "queue": self.queue or None,  # "" = the task's queue
            "priority": self.priority,
            "tags": self.tags or None,
            "metadata": self.metadata or None,
        }

    def clean(self) -> None:
        """Model validation (admin forms): cron, time zone and interval are checked."""
        errors = {}
        for field, check in (
            ("timezone", schedules.validate_timezone),
            ("cron", schedules.validate_cron),
            ("interval", schedules.validate_interval),
        ):
            if field != "timezone" and self.kind != field:
                continue
            try:
                check(getattr(self, field))
            except ValueError as exc:
                errors[field] = str(exc)
        if self.kind == ScheduleKind.ONCE and self.run_at is None:
            errors["run_at"] = "A one-time schedule needs a run-at time."
        # What enqueue() would refuse at every firing is refused now, once.
        if not isinstance(self.args, list):
            errors["args"] = "args must be a JSON list."
        if not isinstance(self.kwargs, dict):
            errors["kwargs"] = "kwargs must be a JSON object."
        if self.priority is not None:
            if not MIN_PRIORITY <= self.priority <= MAX_PRIORITY:
                errors["priority"] = f"Priority must be in [{MIN_PRIORITY}, {MAX_PRIORITY}]."
        try:
            registry.get(self.task_name)
        except TaskNotFound as exc:
            errors["task_name"] = str(exc)
        if errors:
            raise ValidationError(errors)

    # -- state changes ----------------------------------------------------------------

    def enable(self) -> int:
        """Enable the schedule; returns 1 if it was disabled.

        ``next_run_at`` moves to the first due time from now: the time it was disabled is
        not caught up. A one-time schedule that already fired stays done.
        """
        db = self._state.db or router.db_for_write(Schedule)
        with transaction.atomic(using=db):
            row = Schedule.objects.using(db).select_for_update().get(pk=self.pk)
            if row.enabled:
                self.enabled, self.next_run_at = True, row.next_run_at
                return 0
            self.enabled = row.enabled = True
            now = schedules.aware(db_now(db))
            self.next_run_at = schedules.for_db(schedules.rearmed_next_run(row, now))
            self.save(using=db, update_fields=["enabled", "next_run_at", "updated_at"])
        return 1

    def reschedule(self) -> None:
        """Recompute ``next_run_at`` from the current definition and save it.

        For forms that save a new or edited schedule directly (the admin):
        cron -> next match after now, interval -> one interval from now, once -> run_at.
        """
        db = self._state.db or router.db_for_write(Schedule)
        now = schedules.aware(db_now(db))
        self.next_run_at = schedules.for_db(schedules.initial_next_run(self, now))
        if self.pk is not None:
            self.save(using=db, update_fields=["next_run_at", "updated_at"])

    def disable(self) -> int:
        """Disable the schedule; returns 1 if it was enabled. Its jobs are left alone."""
        db = self._state.db
        updated = Schedule.objects.using(db).filter(pk=self.pk).disable()
        self.enabled = False
        return updated

    def record_run(self, job) -> None:
        """Note that ``job`` was fired by this schedule (last run, last job, run count)."""
        db = job._state.db or self._state.db
        Schedule.objects.using(db).filter(pk=self.pk).update(
            last_run_at=DbNow(), last_job=job, run_count=models.F("run_count") + 1
        )
        self.refresh_from_db(using=db, fields=["last_run_at", "last_job", "run_count"])
