"""Defining schedules: validating a definition, creating or updating its row
(``jobs.schedule``, ``jobs.schedule_interval``, ``jobs.schedule_once``), and keeping the
schedules declared in code (``@job(cron=...)``) in step with the code."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import IntegrityError, router, transaction

from ..enums import MisfirePolicy, Priority, ScheduleKind
from ..jsonvalues import check_json
from ..registry import registry
from ..schedules import (
    for_db,
    initial_next_run,
    rearmed_next_run,
    validate_cron,
    validate_interval,
    validate_timezone,
)
from .functions import db_now
from .schedule import Schedule

logger = logging.getLogger("django_jobs.scheduler")

# Fields whose change moves the schedule's next run; other fields keep next_run_at.
TIMING_FIELDS = ("kind", "cron", "interval", "run_at", "timezone")
EXTRA_OPTIONS = ("tags", "metadata", "description", "start_at")


# -- defining schedules ----------------------------------------------------------------


def _definition(
    *,
    task,
    kind,
    name,
    cron,
    interval,
    run_at,
    timezone,
    args,
    kwargs,
    queue,
    priority,
    misfire_policy,
    enabled,
    options,
) -> tuple[dict[str, Any], datetime | None]:
    """Validated field values (and ``start_at``); raises before anything is written."""

    unknown = set(options) - set(EXTRA_OPTIONS)
    if unknown:
        raise TypeError(f"Unknown schedule option(s): {', '.join(sorted(unknown))}.")
    task_obj = registry.get(task)  # TaskNotFound for unknown tasks
    if name is None:
        name = task_obj.name
    if not isinstance(name, str) or not name.strip() or len(name) > 255:
        raise ValueError(
            f"Schedule name must be a non-empty string of at most 255 characters, got {name!r}."
        )
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
        values["run_at"] = for_db(run_at.astimezone(UTC))
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
    values["args"] = check_json(list(args), "args")
    values["kwargs"] = check_json(kwargs, "kwargs")
    if queue is not None and (not isinstance(queue, str) or not queue.strip() or len(queue) > 255):
        raise ValueError(
            f"queue must be a non-empty name of at most 255 characters, got {queue!r}."
        )
    values["queue"] = queue or ""
    values["priority"] = Priority.coerce(priority)
    if misfire_policy is not None:
        if misfire_policy not in MisfirePolicy.values:
            raise ValueError(
                f"misfire_policy must be one of {', '.join(MisfirePolicy.values)}, "
                f"got {misfire_policy!r}."
            )
        values["misfire_policy"] = str(misfire_policy)
    if enabled is not None:
        values["enabled"] = bool(enabled)
    if "tags" in options:
        tags = options["tags"] or []
        values["tags"] = [str(t) for t in ([tags] if isinstance(tags, str) else tags)]
    if "metadata" in options:
        metadata = check_json(options["metadata"] or {}, "metadata")
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
        task=task,
        kind=kind,
        name=name,
        cron=cron,
        interval=interval,
        run_at=run_at,
        timezone=timezone,
        args=args,
        kwargs=kwargs,
        queue=queue,
        priority=priority,
        misfire_policy=misfire_policy,
        enabled=enabled,
        options=options,
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
        schedule.next_run_at = for_db(initial_next_run(schedule, now, start_at))
        schedule.save(using=db, force_insert=True)
        logger.info(
            "Schedule %s created (%s), next run %s",
            schedule.name,
            schedule.describe(),
            _when(schedule.next_run_at),
            extra={"action": "schedule_created", "schedule": schedule.name},
        )
        return schedule
    changed = [field for field, value in values.items() if getattr(existing, field) != value]
    if not changed:
        return existing
    was_enabled = existing.enabled
    for field in changed:
        setattr(existing, field, values[field])
    if any(field in TIMING_FIELDS for field in changed):
        existing.next_run_at = for_db(initial_next_run(existing, now, start_at))
        changed.append("next_run_at")
    elif existing.enabled and not was_enabled:
        existing.next_run_at = for_db(rearmed_next_run(existing, now))
        changed.append("next_run_at")
    existing.save(using=db, update_fields=[*changed, "updated_at"])
    logger.info(
        "Schedule %s updated (%s), next run %s",
        existing.name,
        ", ".join(changed),
        _when(existing.next_run_at),
        extra={"action": "schedule_updated", "schedule": existing.name},
    )
    return existing


# -- schedules declared in code --------------------------------------------------------


def sync_code_schedules(using: str | None = None) -> list[Schedule]:
    """Create or update the schedules of ``@job(cron=...)`` / ``@job(interval=...)`` tasks.

    Each is named after its task. Idempotent: an unchanged declaration writes nothing, so
    every worker can run this at start. Schedules once declared in code whose task no
    longer declares one are deleted. A bad declaration is logged and skipped.
    """

    db = using or router.db_for_write(Schedule)
    declared: list[Schedule] = []
    names: set[str] = set()
    for task in registry.all():
        cron, interval = getattr(task, "cron", None), getattr(task, "interval", None)
        if not cron and interval is None:
            continue
        names.add(task.name)
        if cron and interval is not None:
            logger.error(
                "Task %s declares both cron= and interval=; its schedule is not synced.",
                task.name,
                extra={"action": "schedule_invalid"},
            )
            continue
        try:
            declared.append(
                upsert_schedule(
                    task=task,
                    name=task.name,
                    using=db,
                    source="code",
                    kind=ScheduleKind.CRON if cron else ScheduleKind.INTERVAL,
                    cron=cron or "",
                    interval=interval,
                    misfire_policy=None,
                    enabled=None,
                )
            )
        except (ValueError, TypeError) as exc:
            logger.error(
                "Schedule of task %s is invalid and was not synced: %s",
                task.name,
                exc,
                extra={"action": "schedule_invalid"},
            )
    stale = Schedule.objects.using(db).filter(source="code").exclude(name__in=names)
    removed = list(stale.values_list("name", flat=True))
    if removed:
        stale.delete()
        logger.info(
            "Removed schedule(s) no longer declared in code: %s",
            ", ".join(removed),
            extra={"action": "schedule_removed"},
        )
    return declared


def _when(value: datetime | None) -> str:
    """A due time for a log line."""
    return value.isoformat() if value is not None else "none"
