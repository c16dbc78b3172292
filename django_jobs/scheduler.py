"""Firing each due time of the schedules exactly once, however many schedulers run
(defining schedules is :mod:`django_jobs.models.schedule_definitions`; the maths of due
times is :mod:`django_jobs.schedules`).

Every ``runworkers`` process runs :func:`run_due_schedules` about once a second. There is
no leader: the database decides who fires what.

- A scheduler takes one due schedule row at a time with ``SELECT ... FOR UPDATE SKIP
  LOCKED`` (PostgreSQL, MySQL 8, MariaDB 10.6+), so two schedulers never work on the same
  row at once.
- It then advances ``next_run_at`` with a conditional ``UPDATE ... WHERE next_run_at =
  <the due time it read>``. Only one scheduler can move a row off a given due time. On
  SQLite, where rows cannot be locked, this condition is the claim.
- The job it enqueues carries ``(schedule, schedule_due_at)``, which is unique in the
  database: even a schedule rewound by hand to a due time that already fired cannot fire
  it twice.

All three happen in one transaction, so a due time is either fired and advanced, or
neither.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime

from django.db import (
    IntegrityError,
    InterfaceError,
    OperationalError,
    connections,
    router,
    transaction,
)

from .enqueue import enqueue_job
from .models import DbNow, Job, Schedule
from .models.functions import db_now as database_now
from .models.job import jobs_db
from .models.schedule_definitions import (
    sync_code_schedules,
    upsert_schedule,
)
from .schedules import (  # noqa: F401 - re-exported: the maths lived here
    FiringPlan,
    aware,
    describe,
    for_db,
    format_seconds,
    initial_next_run,
    next_cron_time,
    next_due_after,
    plan_firing,
    rearmed_next_run,
    validate_cron,
    validate_interval,
    validate_timezone,
)

logger = logging.getLogger("django_jobs.scheduler")

# Workers look for due schedules this often (seconds).
SCHEDULER_INTERVAL = 1.0
# Most due times one run fires, so a backlog cannot hold up the worker's job claims.
MAX_FIRES_PER_RUN = 100
# A schedule that could not be fired (unknown task, bad arguments) is retried by this
# process after this many seconds; other processes, maybe with newer code, still try.
RETRY_BROKEN_AFTER = 60.0


# -- the database clock ----------------------------------------------------------------


def db_now(using: str | None = None) -> datetime:
    """The database's current time (aware UTC): every scheduler shares this clock."""
    return aware(database_now(using or router.db_for_read(Schedule)))


# -- firing ----------------------------------------------------------------------------

# Schedule id -> monotonic time before which this process does not retry it.
_broken: dict[int, float] = {}


def run_due_schedules(
    manager=None, *, using: str | None = None, limit: int = MAX_FIRES_PER_RUN
) -> list[Job]:
    """Fire every schedule that is due now in the job database (``using``, or a
    ``JobManager``'s); returns the jobs this call enqueued.

    Safe to call from any number of processes and hosts at once: each due time is
    enqueued exactly once (see the module docstring).
    """
    db = manager.db if manager is not None else (using or jobs_db())
    now_mono = time.monotonic()
    for pk, until in list(_broken.items()):
        if until <= now_mono:
            del _broken[pk]
    due = Schedule.objects.using(db).due()
    if _broken:
        due = due.exclude(pk__in=list(_broken))
    # A plain read first: when nothing is due (nearly always) no transaction is opened,
    # so idle schedulers take no write lock (SQLite) and no row locks.
    if not due.exists():
        return []
    skip_locked = connections[db].features.has_select_for_update_skip_locked
    fired: list[Job] = []
    for _ in range(limit):
        candidates = due.exclude(pk__in=list(_broken)) if _broken else due
        candidates = candidates.annotate(db_now=DbNow()).order_by("next_run_at", "pk")
        if skip_locked:
            candidates = candidates.select_for_update(skip_locked=True)
        schedule = None
        try:
            with transaction.atomic(using=db):
                schedule = candidates.first()
                if schedule is None:
                    break
                job = _fire(schedule, db)
        except (OperationalError, InterfaceError) as exc:
            # Lock contention or a database restart: the next run (in a second) retries.
            logger.warning(
                "Scheduler could not fire due schedules: %s",
                exc,
                extra={"action": "scheduler_error"},
            )
            break
        except Exception:  # one broken schedule must not stop the others
            logger.exception(
                "Schedule %s could not be fired; retrying in %ss",
                schedule.name if schedule else "?",
                RETRY_BROKEN_AFTER,
                extra={"action": "schedule_error", "schedule": schedule.name if schedule else None},
            )
            if schedule is None:
                break
            _broken[schedule.pk] = time.monotonic() + RETRY_BROKEN_AFTER
            continue
        if job is not None:
            fired.append(job)
    return fired


def _fire(schedule: Schedule, db: str) -> Job | None:
    """Handle one due schedule inside the caller's transaction."""
    plan = plan_firing(schedule, schedule.db_now)
    advanced = (
        Schedule.objects.using(db)
        .filter(pk=schedule.pk, enabled=True, next_run_at=for_db(plan.due))
        .update(next_run_at=for_db(plan.next_run_at))
    )
    if not advanced:
        return None  # another scheduler moved it off this due time first
    schedule.next_run_at = for_db(plan.next_run_at)
    if not plan.fire:
        logger.info(
            "Schedule %s missed its run at %s; skipped (misfire_policy=skip), next run %s",
            schedule.name,
            plan.due.isoformat(),
            _iso(plan.next_run_at),
            extra={"action": "schedule_skipped", "schedule": schedule.name},
        )
        return None
    try:
        with transaction.atomic(using=db):
            job = enqueue_job(
                db,
                schedule.task_name,
                **schedule.job_options(),
                schedule=schedule,
                schedule_due_at=for_db(plan.due),
            )
    except IntegrityError:
        if (
            not Job.objects.using(db)
            .filter(schedule=schedule, schedule_due_at=for_db(plan.due))
            .exists()
        ):
            raise
        logger.info(
            "Schedule %s already fired for %s",
            schedule.name,
            plan.due.isoformat(),
            extra={"action": "schedule_already_fired", "schedule": schedule.name},
        )
        return None
    schedule.record_run(job)
    logger.info(
        "Schedule %s fired for %s%s: job %s (%s), next run %s",
        schedule.name,
        plan.due.isoformat(),
        " (missed, run once)" if plan.missed else "",
        job.pk,
        schedule.task_name,
        _iso(plan.next_run_at),
        extra={"action": "schedule_fired", "schedule": schedule.name, "job_id": job.pk},
    )
    return job


def _iso(value: datetime | None) -> str:
    return value.isoformat() if value is not None else "none"


__all__ = [
    "FiringPlan",
    "db_now",
    "describe",
    "initial_next_run",
    "next_cron_time",
    "next_due_after",
    "plan_firing",
    "rearmed_next_run",
    "run_due_schedules",
    "sync_code_schedules",
    "upsert_schedule",
    "validate_cron",
    "validate_interval",
    "validate_timezone",
]
