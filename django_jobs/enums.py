from __future__ import annotations

import enum

from django.db import models
from django.utils.translation import gettext_lazy as _


class JobStatus(models.TextChoices):
    # Dependencies are not all completed yet.
    WAITING = "waiting", _("Waiting")
    # Ready to be claimed once scheduled_at has passed.
    PENDING = "pending", _("Pending")
    # Claimed, not started: a status SPEC 5.4 names, which no job enters today. A claim
    # marks its batch `running` at once (the batch starts within ~50 ms of work, and a
    # second write per job to go from reserved to running would cost the drain one
    # UPDATE per job); filters and counts treat it as held, like `running`.
    RESERVED = "reserved", _("Reserved")
    # Running in a worker.
    RUNNING = "running", _("Running")
    # Finished successfully.
    COMPLETED = "completed", _("Completed")
    # Failed for good (and moved to the dead-letter queue).
    FAILED = "failed", _("Failed")
    # Failed; another attempt is scheduled at scheduled_at.
    RETRYING = "retrying", _("Retrying")
    # Cancelled before or while running.
    CANCELLED = "cancelled", _("Cancelled")


FINISHED_STATUSES = (JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED)
# Rows a worker may claim (when due).
CLAIMABLE_STATUSES = (JobStatus.PENDING, JobStatus.RETRYING)
# Rows held by a worker.
HELD_STATUSES = (JobStatus.RESERVED, JobStatus.RUNNING)
UNFINISHED_STATUSES = tuple(s for s in JobStatus if s not in FINISHED_STATUSES)

MIN_PRIORITY = -100
MAX_PRIORITY = 100


class Priority(enum.IntEnum):
    """Named priorities; any integer in [-100, 100] is valid, higher runs first."""

    CRITICAL = 100
    HIGH = 50
    NORMAL = 0
    LOW = -50

    @classmethod
    def coerce(cls, value: int | str | None) -> int | None:
        """An int priority from an int, a ``Priority`` or a name ("high"); validated."""
        if value is None:
            return None
        if isinstance(value, str):
            key = value.strip().upper()
            if key in cls.__members__:
                return int(cls[key])
            try:
                value = int(value)
            except ValueError:
                raise ValueError(
                    f"Unknown priority {value!r}: use an integer in [-100, 100] or one of "
                    "'critical', 'high', 'normal', 'low'."
                ) from None
        if isinstance(value, bool) or not isinstance(value, int):
            if not isinstance(value, bool) and isinstance(value, float) and value.is_integer():
                value = int(value)
            else:
                raise ValueError(f"Priority must be an integer in [-100, 100], got {value!r}.")
        if not MIN_PRIORITY <= value <= MAX_PRIORITY:
            raise ValueError(f"Priority must be in [-100, 100], got {value}.")
        return int(value)

    @classmethod
    def label_for(cls, value: int) -> str:
        """The bucket name of a priority: critical >= 100 > high >= 50 > normal >= 0 > low."""
        if value >= cls.CRITICAL:
            return "critical"
        if value >= cls.HIGH:
            return "high"
        if value >= cls.NORMAL:
            return "normal"
        return "low"


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
