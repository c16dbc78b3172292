"""Schedules: due times for cron, interval and one-time schedules, and firing each due time
exactly once however many schedulers run.

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
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterBadDateError, CroniterError, croniter
from django.conf import settings
from django.db import (
    IntegrityError,
    InterfaceError,
    OperationalError,
    connections,
    router,
    transaction,
)

from .conf import jobs_settings, to_seconds
from .models import DbNow, Job, MisfirePolicy, Schedule, ScheduleKind
from .models.functions import db_now as database_now

logger = logging.getLogger("django_jobs.scheduler")

# Workers look for due schedules this often (seconds).
SCHEDULER_INTERVAL = 1.0
# Most due times one run fires, so a backlog cannot hold up the worker's job claims.
MAX_FIRES_PER_RUN = 100
# A schedule that could not be fired (unknown task, bad arguments) is retried by this
# process after this many seconds; other processes, maybe with newer code, still try.
RETRY_BROKEN_AFTER = 60.0

CRON_ALIASES = ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")
CRON_FIELDS = "minute hour day-of-month month day-of-week"
# Fields whose change moves the schedule's next run; other fields keep next_run_at.
TIMING_FIELDS = ("kind", "cron", "interval", "run_at", "timezone")
EXTRA_OPTIONS = ("tags", "metadata", "description", "start_at")


# -- validation ------------------------------------------------------------------------


def validate_cron(expression: Any) -> str:
    """The normalised 5-field cron expression; ``ValueError`` naming the problem.

    An expression that can never match (``0 0 30 2 *``) is refused too.
    """
    if not isinstance(expression, str) or not expression.strip():
        raise ValueError(f"Invalid cron expression {expression!r}: expected a non-empty string.")
    text = " ".join(expression.split())
    if text.startswith("@"):
        if text.lower() not in CRON_ALIASES:
            raise ValueError(
                f"Invalid cron expression {expression!r}: unknown alias; use 5 fields "
                f"({CRON_FIELDS}) or one of {', '.join(CRON_ALIASES)}."
            )
        text = text.lower()
    elif len(text.split()) != 5:
        raise ValueError(
            f"Invalid cron expression {expression!r}: expected 5 fields ({CRON_FIELDS}), "
            f"got {len(text.split())}."
        )
    if len(text) > 255:
        raise ValueError(f"Invalid cron expression {expression!r}: longer than 255 characters.")
    try:
        croniter(text, datetime(2000, 1, 1)).get_next(datetime)
    except CroniterBadDateError:
        raise ValueError(
            f"Invalid cron expression {expression!r}: it never matches a date."
        ) from None
    except (CroniterError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"Invalid cron expression {expression!r}: {exc}") from None
    return text


def validate_timezone(name: Any) -> ZoneInfo:
    """The zone for an IANA name such as ``"Europe/Paris"``; ``ValueError`` naming it."""
    if not isinstance(name, str) or not name.strip() or len(name) > 64:
        raise ValueError(f"Unknown time zone {name!r}: expected an IANA name like 'Europe/Paris'.")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ValueError(
            f"Unknown time zone {name!r}: expected an IANA name like 'Europe/Paris' or 'UTC'."
        ) from None


def validate_interval(value: Any) -> float:
    """Seconds (> 0) from a number or a ``timedelta``."""
    try:
        seconds = to_seconds(value, "interval")
    except TypeError:
        raise ValueError(f"interval must be seconds or a timedelta, got {value!r}.") from None
    if seconds is None or not seconds > 0 or seconds == float("inf"):
        raise ValueError(f"interval must be positive, got {value!r}.")
    return seconds


def _aware(value: datetime) -> datetime:
    # With USE_TZ the database hands back aware UTC datetimes; without it, naive UTC.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def _for_db(value: datetime | None) -> datetime | None:
    if value is None or settings.USE_TZ:
        return value
    return value.astimezone(UTC).replace(tzinfo=None)


# -- due times -------------------------------------------------------------------------


def next_cron_time(expression: str, tz: str | ZoneInfo, after: datetime) -> datetime:
    """The first due time of ``expression`` strictly after ``after``, as an aware UTC
    datetime, with the expression read as wall-clock time in ``tz``.

    Daylight saving: a wall-clock time skipped by a spring-forward gap fires once, at the
    instant the clocks jump to (02:30 -> 03:30 local); a wall-clock time that a fall-back
    repeats fires once, at its first occurrence.
    """
    zone = tz if isinstance(tz, ZoneInfo) else validate_timezone(tz)
    after = _aware(after).astimezone(UTC)
    wall = after.astimezone(zone).replace(tzinfo=None)
    it = croniter(expression, wall)
    # Only a fall-back hour (wall times before `after`) or a gap (two wall times on one
    # instant) make a step come back not later than `after`; a few thousand steps cover
    # the longest such run of an every-minute expression many times over.
    for _ in range(5000):
        candidate_wall = it.get_next(datetime)
        # fold=0 is the offset in force before a transition: a time in the gap lands after
        # it, a repeated time on its first occurrence.
        candidate = candidate_wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
        if candidate > after:
            return candidate
    raise ValueError(f"Cron expression {expression!r} has no due time after {after}.")


def _interval_delta(seconds: float) -> timedelta:
    return timedelta(microseconds=max(1, round(seconds * 1_000_000)))


def next_due_after(schedule: Schedule, after: datetime) -> datetime | None:
    """The schedule's next tick strictly after ``after`` on its own grid.

    Cron: the expression's next match. Interval: ``after + interval`` (callers pass a due
    time, so the grid is kept). Once: nothing after its single run.
    """
    if schedule.kind == ScheduleKind.CRON:
        return next_cron_time(schedule.cron, schedule.timezone, after)
    if schedule.kind == ScheduleKind.INTERVAL:
        return _aware(after) + _interval_delta(schedule.interval)
    return None


def _first_tick_after(schedule: Schedule, due: datetime, now: datetime) -> datetime | None:
    """The first tick strictly after ``now``; interval ticks stay on ``due``'s grid."""
    if schedule.kind == ScheduleKind.CRON:
        return next_cron_time(schedule.cron, schedule.timezone, now)
    if schedule.kind == ScheduleKind.INTERVAL:
        step = _interval_delta(schedule.interval)
        due = _aware(due)
        if due > now:
            return due
        return due + step * ((now - due) // step + 1)
    return None


def initial_next_run(schedule: Schedule, now: datetime, start_at: datetime | None = None):
    """When a new (or redefined) schedule first runs.

    Cron: the next match after now. Interval: ``start_at``, else one interval from now.
    Once: its ``run_at``.
    """
    if schedule.kind == ScheduleKind.CRON:
        return next_cron_time(schedule.cron, schedule.timezone, now)
    if schedule.kind == ScheduleKind.INTERVAL:
        return _aware(start_at) if start_at is not None else now + _interval_delta(schedule.interval)
    return _aware(schedule.run_at)


def rearmed_next_run(schedule: Schedule, now: datetime) -> datetime | None:
    """The next run of a schedule being enabled again: no catch-up for the time it was off.

    A future ``next_run_at`` is kept. A one-time schedule keeps its pending run (which
    then follows the misfire policy if its time has passed) and stays done once fired.
    """
    current = schedule.next_run_at
    if schedule.kind == ScheduleKind.ONCE:
        return current
    if current is not None and _aware(current) > now:
        return current
    if current is None:
        return initial_next_run(schedule, now)
    return _first_tick_after(schedule, current, now)


@dataclass(frozen=True)
class FiringPlan:
    due: datetime  # the due time being handled: the job's schedule_due_at
    fire: bool  # enqueue a job for it
    missed: bool  # late beyond the grace, or later ticks have passed too
    next_run_at: datetime | None  # where the schedule moves to (None: a one-time schedule is done)


def plan_firing(schedule: Schedule, now: datetime, grace: float | None = None) -> FiringPlan:
    """What to do with a schedule whose ``next_run_at`` has come, at database time ``now``.

    The due time is *missed* when a later tick has passed too, or when it is older than
    ``MISFIRE_GRACE``. On time: fire it and move to the next tick. Missed with
    ``run_once``: fire it once for all that was missed, then move to the first future
    tick. Missed with ``skip``: fire nothing, move to the first future tick.
    """
    if grace is None:
        grace = jobs_settings.MISFIRE_GRACE
    now = _aware(now)
    due = _aware(schedule.next_run_at)
    later = next_due_after(schedule, due)
    missed = (later is not None and later <= now) or (now - due).total_seconds() > grace
    fire = not missed or schedule.misfire_policy != MisfirePolicy.SKIP
    if schedule.kind == ScheduleKind.ONCE:
        following = None
    elif missed:
        following = _first_tick_after(schedule, due, now)
    else:
        following = later
    return FiringPlan(due=due, fire=fire, missed=missed, next_run_at=following)


# -- the database clock ----------------------------------------------------------------


def db_now(using: str | None = None) -> datetime:
    """The database's current time (aware UTC): every scheduler shares this clock."""
    return _aware(database_now(using or router.db_for_read(Schedule)))


# -- firing ----------------------------------------------------------------------------

# Schedule id -> monotonic time before which this process does not retry it.
_broken: dict[int, float] = {}


def run_due_schedules(manager=None, *, limit: int = MAX_FIRES_PER_RUN) -> list[Job]:
    """Fire every schedule that is due now; returns the jobs this call enqueued.

    Safe to call from any number of processes and hosts at once: each due time is
    enqueued exactly once (see the module docstring).
    """
    from .manager import jobs as default_manager

    manager = manager or default_manager
    db = manager.db
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
                job = _fire(schedule, manager, db)
        except (OperationalError, InterfaceError) as exc:
            # Lock contention or a database restart: the next run (in a second) retries.
            logger.warning("Scheduler could not fire due schedules: %s", exc,
                           extra={"action": "scheduler_error"})
            break
        except Exception:  # noqa: BLE001 - one broken schedule must not stop the others
            logger.exception(
                "Schedule %s could not be fired; retrying in %ss",
                schedule.name if schedule else "?", RETRY_BROKEN_AFTER,
                extra={"action": "schedule_error",
                       "schedule": schedule.name if schedule else None},
            )
            if schedule is None:
                break
            _broken[schedule.pk] = time.monotonic() + RETRY_BROKEN_AFTER
            continue
        if job is not None:
            fired.append(job)
    return fired


def _fire(schedule: Schedule, manager, db: str) -> Job | None:
    """Handle one due schedule inside the caller's transaction."""
    plan = plan_firing(schedule, schedule.db_now)
    advanced = Schedule.objects.using(db).filter(
        pk=schedule.pk, enabled=True, next_run_at=_for_db(plan.due)
    ).update(next_run_at=_for_db(plan.next_run_at))
    if not advanced:
        return None  # another scheduler moved it off this due time first
    schedule.next_run_at = _for_db(plan.next_run_at)
    if not plan.fire:
        logger.info(
            "Schedule %s missed its run at %s; skipped (misfire_policy=skip), next run %s",
            schedule.name, plan.due.isoformat(), _iso(plan.next_run_at),
            extra={"action": "schedule_skipped", "schedule": schedule.name},
        )
        return None
    try:
        with transaction.atomic(using=db):
            job = manager.enqueue(
                schedule.task_name, **schedule.job_options(),
                schedule=schedule, schedule_due_at=_for_db(plan.due),
            )
    except IntegrityError:
        if not Job.objects.using(db).filter(
            schedule=schedule, schedule_due_at=_for_db(plan.due)
        ).exists():
            raise
        logger.info("Schedule %s already fired for %s", schedule.name, plan.due.isoformat(),
                    extra={"action": "schedule_already_fired", "schedule": schedule.name})
        return None
    schedule.record_run(job)
    logger.info(
        "Schedule %s fired for %s%s: job %s (%s), next run %s",
        schedule.name, plan.due.isoformat(), " (missed, run once)" if plan.missed else "",
        job.pk, schedule.task_name, _iso(plan.next_run_at),
        extra={"action": "schedule_fired", "schedule": schedule.name, "job_id": job.pk},
    )
    return job


def _iso(value: datetime | None) -> str:
    return value.isoformat() if value is not None else "none"


# -- defining schedules ----------------------------------------------------------------


def _definition(
    *, task, kind, name, cron, interval, run_at, timezone, args, kwargs, queue, priority,
    misfire_policy, enabled, options,
) -> tuple[dict[str, Any], datetime | None]:
    """Validated field values (and ``start_at``); raises before anything is written."""
    from .enums import Priority
    from .manager import _check_json
    from .registry import registry

    unknown = set(options) - set(EXTRA_OPTIONS)
    if unknown:
        raise TypeError(f"Unknown schedule option(s): {', '.join(sorted(unknown))}.")
    task_obj = registry.get(task)  # TaskNotFound for unknown tasks
    if name is None:
        name = task_obj.name
    if not isinstance(name, str) or not name.strip() or len(name) > 255:
        raise ValueError(f"Schedule name must be a non-empty string of at most 255 characters, "
                         f"got {name!r}.")
    values: dict[str, Any] = {"name": name, "task_name": task_obj.name, "kind": kind}
    validate_timezone(timezone)
    values["timezone"] = timezone
    values["cron"] = validate_cron(cron) if kind == ScheduleKind.CRON else ""
    values["interval"] = validate_interval(interval) if kind == ScheduleKind.INTERVAL else None
    if kind == ScheduleKind.ONCE:
        if not isinstance(run_at, datetime):
            raise TypeError(f"at must be a datetime, got {run_at!r}.")
        if run_at.tzinfo is None or run_at.utcoffset() is None:
            raise ValueError("at must be an aware datetime (with a time zone), got a naive one.")
        values["run_at"] = _for_db(run_at.astimezone(UTC))
    else:
        values["run_at"] = None
    start_at = options.get("start_at")
    if start_at is not None:
        if kind != ScheduleKind.INTERVAL:
            raise TypeError("start_at applies to interval schedules only.")
        if not isinstance(start_at, datetime) or start_at.utcoffset() is None:
            raise ValueError("start_at must be an aware datetime.")
        start_at = start_at.astimezone(UTC)
    if args is None:
        args = []
    if isinstance(args, (str, bytes, dict)) or not isinstance(args, (list, tuple)):
        raise TypeError(f"args must be a list, got {type(args).__name__}.")
    if kwargs is None:
        kwargs = {}
    if not isinstance(kwargs, dict):
        raise TypeError(f"kwargs must be a dict, got {type(kwargs).__name__}.")
    values["args"] = _check_json(list(args), "args")
    values["kwargs"] = _check_json(kwargs, "kwargs")
    if queue is not None and (not isinstance(queue, str) or not queue.strip() or len(queue) > 255):
        raise ValueError(f"queue must be a non-empty name of at most 255 characters, got {queue!r}.")
    values["queue"] = queue or ""
    values["priority"] = None if priority is None else int(Priority.coerce(priority))
    if misfire_policy is not None:
        if misfire_policy not in MisfirePolicy.values:
            raise ValueError(f"misfire_policy must be one of {', '.join(MisfirePolicy.values)}, "
                             f"got {misfire_policy!r}.")
        values["misfire_policy"] = str(misfire_policy)
    if enabled is not None:
        values["enabled"] = bool(enabled)
    if "tags" in options:
        tags = options["tags"] or []
        values["tags"] = [str(t) for t in ([tags] if isinstance(tags, str) else tags)]
    if "metadata" in options:
        metadata = _check_json(options["metadata"] or {}, "metadata")
        if not isinstance(metadata, dict):
            raise TypeError("metadata must be a dict.")
        values["metadata"] = metadata
    if "description" in options:
        values["description"] = str(options["description"] or "")
    return values, start_at


def upsert_schedule(
    *,
    task,
    kind: str,
    name: str | None = None,
    cron: str = "",
    interval: float | timedelta | None = None,
    run_at: datetime | None = None,
    timezone: str = "UTC",
    args=None,
    kwargs=None,
    queue: str | None = None,
    priority: int | str | None = None,
    misfire_policy: str | None = MisfirePolicy.RUN_ONCE,
    enabled: bool | None = True,
    source: str = "api",
    using: str | None = None,
    **options: Any,
) -> Schedule:
    """Create the schedule ``name``, or update it to this definition. Idempotent.

    Validation happens first: invalid input raises (``ValueError``, ``TypeError``,
    ``TaskNotFound``) and writes nothing. An unchanged definition writes nothing at all.
    A changed cron, interval, run-at, time zone or kind recomputes ``next_run_at``; other
    changes (arguments, queue, ...) keep it. ``misfire_policy=None`` / ``enabled=None``
    keep the stored values (defaults for a new schedule): code-declared schedules use
    that, so a schedule disabled in the admin stays disabled across deploys.
    """
    values, start_at = _definition(
        task=task, kind=kind, name=name, cron=cron, interval=interval, run_at=run_at,
        timezone=timezone, args=args, kwargs=kwargs, queue=queue, priority=priority,
        misfire_policy=misfire_policy, enabled=enabled, options=options,
    )
    values["source"] = source
    db = using or router.db_for_write(Schedule)
    for attempt in range(2):
        try:
            with transaction.atomic(using=db):
                return _upsert(values, start_at, db)
        except IntegrityError:
            # Two processes created the same name at once (workers starting together):
            # the row exists now, so the second round updates it.
            if attempt:
                raise
    raise AssertionError("unreachable")


def _upsert(values: dict[str, Any], start_at: datetime | None, db: str) -> Schedule:
    objects = Schedule.objects.using(db)
    existing = objects.select_for_update().filter(name=values["name"]).first()
    now = db_now(db)
    if existing is None:
        schedule = Schedule(**values)
        schedule.next_run_at = _for_db(initial_next_run(schedule, now, start_at))
        schedule.save(using=db, force_insert=True)
        logger.info("Schedule %s created (%s), next run %s", schedule.name,
                    schedule.describe(), _iso(schedule.next_run_at),
                    extra={"action": "schedule_created", "schedule": schedule.name})
        return schedule
    changed = [field for field, value in values.items() if getattr(existing, field) != value]
    if not changed:
        return existing
    was_enabled = existing.enabled
    for field in changed:
        setattr(existing, field, values[field])
    if any(field in TIMING_FIELDS for field in changed):
        existing.next_run_at = _for_db(initial_next_run(existing, now, start_at))
        changed.append("next_run_at")
    elif existing.enabled and not was_enabled:
        existing.next_run_at = _for_db(rearmed_next_run(existing, now))
        changed.append("next_run_at")
    existing.save(using=db, update_fields=[*changed, "updated_at"])
    logger.info("Schedule %s updated (%s), next run %s", existing.name, ", ".join(changed),
                _iso(existing.next_run_at),
                extra={"action": "schedule_updated", "schedule": existing.name})
    return existing


# -- schedules declared in code --------------------------------------------------------


def sync_code_schedules(using: str | None = None) -> list[Schedule]:
    """Create or update the schedules of ``@job(cron=...)`` / ``@job(interval=...)`` tasks.

    Each is named after its task. Idempotent: an unchanged declaration writes nothing, so
    every worker can run this at start. Schedules once declared in code whose task no
    longer declares one are deleted. A bad declaration is logged and skipped.
    """
    from .registry import registry

    db = using or router.db_for_write(Schedule)
    declared: list[Schedule] = []
    names: set[str] = set()
    for task in registry.all():
        cron, interval = getattr(task, "cron", None), getattr(task, "interval", None)
        if not cron and interval is None:
            continue
        names.add(task.name)
        if cron and interval is not None:
            logger.error("Task %s declares both cron= and interval=; its schedule is not "
                         "synced.", task.name, extra={"action": "schedule_invalid"})
            continue
        try:
            declared.append(upsert_schedule(
                task=task, name=task.name, using=db, source="code",
                kind=ScheduleKind.CRON if cron else ScheduleKind.INTERVAL,
                cron=cron or "", interval=interval, misfire_policy=None, enabled=None,
            ))
        except (ValueError, TypeError) as exc:
            logger.error("Schedule of task %s is invalid and was not synced: %s", task.name,
                         exc, extra={"action": "schedule_invalid"})
    stale = Schedule.objects.using(db).filter(source="code").exclude(name__in=names)
    removed = [name for name in stale.values_list("name", flat=True)]
    if removed:
        stale.delete()
        logger.info("Removed schedule(s) no longer declared in code: %s", ", ".join(removed),
                    extra={"action": "schedule_removed"})
    return declared


def sync_code_schedules_after_migrate(sender, *, using, apps=None, **kwargs) -> None:
    """``post_migrate`` receiver: code-declared schedules exist right after ``migrate``."""
    if apps is not None:
        try:
            apps.get_model("django_jobs", "Schedule")
        except LookupError:
            return  # migrated to a state before schedules existed
    if not router.allow_migrate_model(using, Schedule):
        return
    if jobs_settings.DATABASE and jobs_settings.DATABASE != using:
        return
    from .registry import registry

    try:
        registry.autodiscover()
        sync_code_schedules(using=using)
    except Exception:  # noqa: BLE001 - never fail migrate; workers sync again at start
        logger.exception("Could not sync the schedules declared in code after migrate")


# -- display ---------------------------------------------------------------------------


def format_seconds(seconds: float) -> str:
    """``90`` -> ``1m30s``; ``86400`` -> ``1d``; ``1.5`` -> ``1.5s``."""
    if seconds != int(seconds):
        return f"{seconds:g}s"
    rest = int(seconds)
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if rest >= size:
            parts.append(f"{rest // size}{unit}")
            rest %= size
    return "".join(parts) or "0s"


def describe(schedule: Schedule) -> str:
    """A short human-readable form: ``cron 0 9 * * * (Europe/Paris)``, ``every 5m``,
    ``once at 2026-01-01 09:00 UTC``."""
    if schedule.kind == ScheduleKind.CRON:
        zone = "" if schedule.timezone == "UTC" else f" ({schedule.timezone})"
        return f"cron {schedule.cron}{zone}"
    if schedule.kind == ScheduleKind.INTERVAL:
        return f"every {format_seconds(schedule.interval or 0)}"
    if schedule.run_at is None:
        return "once"
    try:
        zone, label = validate_timezone(schedule.timezone), schedule.timezone
    except ValueError:
        zone, label = UTC, "UTC"
    when = _aware(schedule.run_at).astimezone(zone)
    return f"once at {when:%Y-%m-%d %H:%M:%S} {label}"


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
