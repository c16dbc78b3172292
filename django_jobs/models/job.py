"""The ``Job`` model: one execution request of a registered task.

Its QuerySet is composed from :mod:`filters` (the named subsets), :mod:`claiming`,
:mod:`outcomes` (state changes over many jobs) and :mod:`pruning`; its own guarded state
changes come from ``transitions.JobTransitions``.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db import models, router
from django.db.models import Q
from django.utils import timezone

from ..conf import jobs_settings
from ..enums import FINISHED_STATUSES, HELD_STATUSES, MAX_PRIORITY, MIN_PRIORITY, JobStatus
from ..registry import registry
from .claiming import claim_candidates, jobs_from_rows, new_lease
from .dependency import JobDependency
from .pruning import JobPruning
from .transitions import JobTransitions

__all__ = [
    "Job",
    "JobDependency",
    "JobObjects",
    "JobQuerySet",
    "claim_candidates",
    "jobs_db",
    "jobs_from_rows",
    "new_lease",
]


def jobs_db() -> str:
    """The database alias of the job tables: ``DJANGO_JOBS["DATABASE"]``, else the
    router's choice for jobs."""
    return jobs_settings.DATABASE or router.db_for_write(Job)


class JobQuerySet(JobPruning):
    """Domain queries and verbs over jobs; the admin, the CLI and the worker compose these.

    One class built in layers, each seeing those below it: ``JobFilters`` (named
    subsets) < ``JobClaiming`` < ``JobOutcomes`` (guarded transitions, batched
    completion) < ``JobPruning``.
    """


JobObjectsBase = models.Manager.from_queryset(JobQuerySet)


class JobObjects(JobObjectsBase):
    """``Job.objects``."""


class Job(JobTransitions, models.Model):
    """One execution request of a registered task."""

    # Set on instances in memory only: when the worker received its claim
    # (time.monotonic()), and enqueue's delay in seconds until the row is written.
    _claimed_mono: float
    _delay: float

    id = models.BigAutoField(primary_key=True)
    task_name = models.CharField(max_length=255, db_index=True)
    args = models.JSONField(default=list, blank=True)
    kwargs = models.JSONField(default=dict, blank=True)
    queue = models.CharField(max_length=255, default="default")
    # The queue a dead-lettered job came from; retry() sends it back there.
    original_queue = models.CharField(max_length=255, blank=True, default="")
    priority = models.SmallIntegerField(default=0)
    status = models.CharField(
        max_length=max(len(v) for v in JobStatus.values),
        choices=JobStatus.choices,
        default=JobStatus.PENDING,
    )
    created_at = models.DateTimeField(default=timezone.now)
    scheduled_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    result = models.JSONField(null=True, blank=True)
    error = models.JSONField(null=True, blank=True)  # the last failure
    errors = models.JSONField(default=list, blank=True)  # one entry per failed attempt
    # Failed for good: the error's type and message without its per-job details
    # (django_jobs.errorgroups), what the admin's failures page groups by.
    error_group = models.CharField(max_length=255, blank=True, default="", editable=False)

    attempts = models.PositiveIntegerField(default=0)  # executions started
    retry_count = models.PositiveIntegerField(default=0)
    max_retries = models.PositiveIntegerField(default=3)
    retry_delay = models.FloatField(default=60.0)  # seconds
    retry_backoff = models.FloatField(default=2.0)
    retry_jitter = models.BooleanField(default=True)
    max_retry_delay = models.FloatField(default=3600.0)  # seconds
    timeout = models.FloatField(null=True, blank=True)  # seconds

    progress = models.FloatField(default=0.0)
    progress_message = models.TextField(blank=True, default="")
    progress_details = models.JSONField(default=dict, blank=True)

    tags = models.JSONField(default=list, blank=True)
    metadata = models.JSONField(default=dict, blank=True)

    worker_id = models.CharField(max_length=255, null=True, blank=True)
    # Token of the current claim: completion is only accepted with the same token, so a
    # worker whose job was rescued by another can never overwrite the new owner's result.
    lease = models.CharField(max_length=32, null=True, blank=True)
    worker_ids = models.JSONField(default=list, blank=True)  # one per finished attempt
    cancel_requested = models.BooleanField(default=False)
    terminate_requested = models.BooleanField(default=False)
    cancel_reason = models.TextField(blank=True, default="")

    # django.tasks: the backend alias a job was enqueued through ("" = our API).
    backend = models.CharField(max_length=100, blank=True, default="")

    # Workflows. A batch or chain groups jobs; a chain's steps are ordered by chain_index.
    batch = models.ForeignKey(
        "django_jobs.Batch",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="job_set",
    )
    chain_index = models.PositiveIntegerField(null=True, blank=True)
    depends_on = models.ManyToManyField(
        "self",
        symmetrical=False,
        through="django_jobs.JobDependency",
        related_name="dependents",
        blank=True,
    )
    # Set once another job depends on this one, so completing a job that nothing
    # depends on costs no dependency query.
    has_dependents = models.BooleanField(default=False)
    # Unique jobs: unique_key is kept; unique_active holds it only while the job is
    # unfinished, and a plain unique constraint on it (NULLs never collide, on every
    # database) lets one unfinished job per key exist.
    unique_key = models.CharField(max_length=255, null=True, blank=True)
    unique_active = models.CharField(max_length=255, null=True, blank=True, unique=True)
    # Jobs fired by a schedule: (schedule, due time) is unique, so a due time is
    # enqueued at most once however many schedulers run.
    schedule = models.ForeignKey(
        "django_jobs.Schedule",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="jobs",
    )
    schedule_due_at = models.DateTimeField(null=True, blank=True)
    # The user the job was started for (SPEC 5.10): they may follow its progress (the
    # end-user widget); deleting the user keeps the job. No reverse accessor on the user
    # model (a project's own ``Job`` model would clash with it). Indexed where set only
    # (migration 0013: a partial index; MySQL indexes the foreign key itself).
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_index=False,
        db_constraint=True,
    )
    # The W3C trace context of the span that enqueued the job ({"traceparent": ...}),
    # when OpenTelemetry is installed: the worker continues that trace.
    trace_context = models.JSONField(null=True, blank=True, editable=False)

    objects = JobObjects()

    class Meta:
        ordering = ["-id"]
        verbose_name = "job"
        verbose_name_plural = "jobs"
        # Two partial indexes live in migration 0001 (PartialIndex operations), not here,
        # so MySQL projects get no warnings about ignored conditions:
        #   django_jobs_job_claim_idx (priority DESC, scheduled_at, id)
        #       WHERE status IN ('pending', 'retrying')   -- serves the claim query exactly
        #   django_jobs_job_held_idx (worker_id) WHERE status IN ('reserved', 'running')
        # MySQL/MariaDB get full indexes instead (claim: status first).
        indexes = [
            models.Index(fields=["status", "queue"], name="django_jobs_job_status_idx"),
            models.Index(fields=["finished_at"], name="django_jobs_job_finished_idx"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(priority__gte=MIN_PRIORITY, priority__lte=MAX_PRIORITY),
                name="django_jobs_job_priority_range",
            ),
            models.CheckConstraint(
                condition=Q(progress__gte=0.0, progress__lte=1.0),
                name="django_jobs_job_progress_range",
            ),
            models.CheckConstraint(
                condition=Q(status__in=JobStatus.values),
                name="django_jobs_job_status_valid",
            ),
            models.UniqueConstraint(
                fields=["schedule", "schedule_due_at"],
                name="django_jobs_job_schedule_due_unique",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.task_name} #{self.pk} ({self.status})"

    # -- reading ----------------------------------------------------------------------

    @property
    def is_finished(self) -> bool:
        return self.status in FINISHED_STATUSES

    @property
    def duration(self) -> timedelta | None:
        if self.started_at and self.finished_at:
            return self.finished_at - self.started_at
        return None

    @property
    def eta(self) -> datetime | None:
        """When a running job should finish, from the progress it reported so far (the
        rate so far, kept up); None until it reported some progress."""
        if self.status not in HELD_STATUSES or self.started_at is None:
            return None
        if not 0.0 < self.progress < 1.0:
            return None
        elapsed = timezone.now() - self.started_at
        try:
            return self.started_at + elapsed / self.progress
        except OverflowError:  # a tiny fraction so far: past any date there is
            return None

    @property
    def eta_seconds(self) -> float | None:
        """Seconds until ``eta`` (0 once it passed); None when unknown."""
        eta = self.eta
        if eta is None:
            return None
        return max(0.0, (eta - timezone.now()).total_seconds())

    def get_task(self):
        """The registered task of this job (raises ``TaskNotFound``)."""
        return registry.get(self.task_name)
