"""Schedule maths: when cron, interval and one-time schedules are due, validated input,
a schedule in plain words and its next runs previewed. Pure functions of a schedule's
fields and the time: no database, no models (a schedule is anything with ``kind``,
``cron``, ``interval``, ``run_at``, ``timezone``, ``misfire_policy`` and ``next_run_at``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cron_descriptor import ExpressionDescriptor, Options
from croniter import CroniterBadDateError, CroniterError, croniter
from django.conf import settings

from .conf import jobs_settings, to_seconds
from .enums import MisfirePolicy, ScheduleKind

CRON_ALIASES = ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")
CRON_FIELDS = "minute hour day-of-month month day-of-week"

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


def aware(value: datetime) -> datetime:
    # With USE_TZ the database hands back aware UTC datetimes; without it, naive UTC.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def for_db(value: datetime | None) -> datetime | None:
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
    return _next_cron(expression, zone, after)[0]


def _next_cron(expression: str, zone: ZoneInfo, after: datetime) -> tuple[datetime, datetime]:
    """``next_cron_time``, and the naive wall-clock time the expression matched."""
    after = aware(after).astimezone(UTC)
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
            return candidate, candidate_wall
    raise ValueError(f"Cron expression {expression!r} has no due time after {after}.")


def _interval_delta(seconds: float) -> timedelta:
    return timedelta(microseconds=max(1, round(seconds * 1_000_000)))


def next_due_after(schedule, after: datetime) -> datetime | None:
    """The schedule's next tick strictly after ``after`` on its own grid.

    Cron: the expression's next match. Interval: ``after + interval`` (callers pass a due
    time, so the grid is kept). Once: nothing after its single run.
    """
    if schedule.kind == ScheduleKind.CRON:
        return next_cron_time(schedule.cron, schedule.timezone, after)
    if schedule.kind == ScheduleKind.INTERVAL:
        return aware(after) + _interval_delta(schedule.interval)
    return None


def _first_tick_after(schedule, due: datetime, now: datetime) -> datetime | None:
    """The first tick strictly after ``now``; interval ticks stay on ``due``'s grid."""
    if schedule.kind == ScheduleKind.CRON:
        return next_cron_time(schedule.cron, schedule.timezone, now)
    if schedule.kind == ScheduleKind.INTERVAL:
        step = _interval_delta(schedule.interval)
        due = aware(due)
        if due > now:
            return due
        return due + step * ((now - due) // step + 1)
    return None


def initial_next_run(schedule, now: datetime, start_at: datetime | None = None):
    """When a new (or redefined) schedule first runs.

    Cron: the next match after now. Interval: ``start_at``, else one interval from now.
    Once: its ``run_at``.
    """
    if schedule.kind == ScheduleKind.CRON:
        return next_cron_time(schedule.cron, schedule.timezone, now)
    if schedule.kind == ScheduleKind.INTERVAL:
        return aware(start_at) if start_at is not None else now + _interval_delta(schedule.interval)
    return aware(schedule.run_at)


def rearmed_next_run(schedule, now: datetime) -> datetime | None:
    """The next run of a schedule being enabled again: no catch-up for the time it was off.

    A future ``next_run_at`` is kept. A one-time schedule keeps its pending run (which
    then follows the misfire policy if its time has passed) and stays done once fired.
    """
    current = schedule.next_run_at
    if schedule.kind == ScheduleKind.ONCE:
        return current
    if current is not None and aware(current) > now:
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


def plan_firing(schedule, now: datetime, grace: float | None = None) -> FiringPlan:
    """What to do with a schedule whose ``next_run_at`` has come, at database time ``now``.

    The due time is *missed* when a later tick has passed too, or when it is older than
    ``MISFIRE_GRACE``. On time: fire it and move to the next tick. Missed with
    ``run_once``: fire it once for all that was missed, then move to the first future
    tick. Missed with ``skip``: fire nothing, move to the first future tick.
    """
    if grace is None:
        grace = jobs_settings.MISFIRE_GRACE
    now = aware(now)
    due = aware(schedule.next_run_at)
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


def describe(schedule) -> str:
    """A short human-readable form: ``cron 0 9 * * * (Europe/Paris)``, ``every 5m``,
    ``once at 2026-01-01 09:00 UTC``."""
    if schedule.kind == ScheduleKind.CRON:
        named = "" if schedule.timezone == "UTC" else f" ({schedule.timezone})"
        return f"cron {schedule.cron}{named}"
    if schedule.kind == ScheduleKind.INTERVAL:
        return f"every {format_seconds(schedule.interval or 0)}"
    if schedule.run_at is None:
        return "once"
    zone: tzinfo
    try:
        zone, label = validate_timezone(schedule.timezone), schedule.timezone
    except ValueError:
        zone, label = UTC, "UTC"
    when = aware(schedule.run_at).astimezone(zone)
    return f"once at {when:%Y-%m-%d %H:%M:%S} {label}"


# -- in plain words ----------------------------------------------------------------------

# cron-descriptor reads 5 fields only; the aliases croniter accepts, spelled out.
_ALIAS_FIELDS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}


@lru_cache(maxsize=512)
def cron_in_words(expression: str) -> str:
    """``"0 9 * * 1-5"`` -> ``"At 09:00, Monday through Friday"`` (cron-descriptor, in
    English, 24-hour clock). An expression it cannot read comes back as it is."""
    text = " ".join(str(expression).split())
    fields = _ALIAS_FIELDS.get(text.lower(), text)
    options = Options(locale_code="en_US", use_24hour_time_format=True)
    try:
        return str(ExpressionDescriptor(fields, options).get_description())
    except Exception:  # noqa: BLE001 - a description is a nicety; never fail a page for it
        return text


def interval_in_words(seconds: float) -> str:
    """``300`` -> ``"Every 5 minutes"``; ``60`` -> ``"Every minute"``; ``5400`` ->
    ``"Every 1 hour 30 minutes"``; ``1.5`` -> ``"Every 1.5 seconds"``."""
    if seconds != int(seconds) or seconds < 1:
        return f"Every {seconds:g} seconds"
    rest = int(seconds)
    parts = []
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60), ("second", 1)):
        n, rest = divmod(rest, size)
        if n:
            parts.append((n, unit))
    if len(parts) == 1 and parts[0][0] == 1:
        return f"Every {parts[0][1]}"
    return "Every " + " ".join(f"{n} {unit}{'s' if n != 1 else ''}" for n, unit in parts)


def in_words(schedule) -> str:
    """The schedule's timing in plain words: ``"At 09:00, Monday through Friday"``,
    ``"Every 5 minutes"``, ``"Once, on 2026-01-01 at 09:00"`` (in its time zone)."""
    if schedule.kind == ScheduleKind.CRON:
        return cron_in_words(schedule.cron)
    if schedule.kind == ScheduleKind.INTERVAL:
        return interval_in_words(schedule.interval or 0)
    if schedule.run_at is None:
        return "Once"
    zone: tzinfo
    try:
        zone = validate_timezone(schedule.timezone)
    except ValueError:
        zone = UTC
    when = aware(schedule.run_at).astimezone(zone)
    return f"Once, on {when:%Y-%m-%d} at {when:%H:%M}"


# -- the next runs, previewed ------------------------------------------------------------


@dataclass(frozen=True)
class UpcomingRun:
    """One future run of a schedule, and what daylight saving does to it."""

    at: datetime  # aware UTC
    local: datetime  # the same instant in the schedule's time zone
    # Cron only: the wall-clock time the expression names (naive), when that differs
    # from ``local`` because the clocks jumped over it.
    wall: datetime | None = None
    gap: bool = False  # the named time does not exist that day: runs when the clocks jump
    repeat: bool = False  # the named time happens twice that day: runs at the first
    # Interval only: the zone's offset changed since the previous run, so the local time
    # of the runs moves (an interval is an exact duration).
    shifted: bool = False


def upcoming_runs(
    schedule, now: datetime, count: int = 5, first: datetime | None = None
) -> list[UpcomingRun]:
    """The next ``count`` runs of ``schedule`` (disabled or not) after ``now``.

    ``first`` is where the runs start when it is known (the saved ``next_run_at`` of a
    schedule whose timing did not change); otherwise they start where a new definition
    does (:func:`initial_next_run`). Invalid timing raises ``ValueError`` naming it.
    """
    zone = validate_timezone(schedule.timezone)
    now = aware(now).astimezone(UTC)
    runs: list[UpcomingRun] = []
    if schedule.kind == ScheduleKind.CRON:
        expression = validate_cron(schedule.cron)
        # A saved next run of a cron schedule is a match of its expression: start just
        # before it to get it back with its wall-clock time.
        after = aware(first) - timedelta(microseconds=1) if first is not None else now
        for _ in range(count):
            at, wall = _next_cron(expression, zone, after)
            local = at.astimezone(zone)
            gap = local.replace(tzinfo=None) != wall
            earlier = wall.replace(tzinfo=zone, fold=0).utcoffset()
            repeat = not gap and earlier != wall.replace(tzinfo=zone, fold=1).utcoffset()
            runs.append(UpcomingRun(at, local, wall if gap else None, gap, repeat))
            after = at
        return runs
    if schedule.kind == ScheduleKind.INTERVAL:
        step = _interval_delta(validate_interval(schedule.interval))
        at = aware(first).astimezone(UTC) if first is not None else now + step
        offset = now.astimezone(zone).utcoffset()
        for _ in range(count):
            local = at.astimezone(zone)
            runs.append(UpcomingRun(at, local, shifted=local.utcoffset() != offset))
            offset = local.utcoffset()
            at += step
        return runs
    if schedule.kind == ScheduleKind.ONCE:
        if schedule.run_at is None:
            raise ValueError("A one-time schedule needs a run-at time.")
        at = aware(schedule.run_at).astimezone(UTC)
        return [UpcomingRun(at, at.astimezone(zone))]
    raise ValueError(f"Unknown schedule kind {schedule.kind!r}: expected cron, interval or once.")
