"""Health: is this deployment of django_jobs able to run jobs? (SPEC 9.2)

Five checks, each answering with ``ok`` and a message, so that one failing never hides
the others: ``database`` (reachable), ``migrations`` (every migration of django_jobs
applied), ``workers`` (at least ``HEALTH["MIN_WORKERS"]`` alive), ``scheduler`` (no
enabled schedule later than ``HEALTH["SCHEDULE_LAG"]``) and ``queues`` (no unpaused
queue whose oldest due job has waited longer than its ``max_pending_age``, else
``HEALTH["MAX_PENDING_AGE"]``). ``GET /health/`` of the API, ``manage.py jobs health``
and the django-health-check plugins all call :func:`run_checks`.

Besides, :func:`worker_file_age` reads the file ``runworkers --health-file`` touches at
every heartbeat: a liveness probe for worker containers that needs no database.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db import DatabaseError, connections
from django.db.migrations.loader import MigrationLoader
from django.db.models import Min

from .conf import jobs_settings
from .enums import CLAIMABLE_STATUSES
from .models import Job, Queue, Schedule, Worker
from .models.functions import db_now
from .models.job import jobs_db

CHECKS = ("database", "migrations", "workers", "scheduler", "queues")


@dataclass
class CheckResult:
    name: str
    ok: bool
    message: str
    details: dict[str, Any] = field(default_factory=dict)

    def as_dict(self, details: bool = True) -> dict[str, Any]:
        shown: dict[str, Any] = {"status": "ok" if self.ok else "fail"}
        if details:
            shown["message"] = self.message
            shown.update(self.details)
        return shown


@dataclass
class HealthReport:
    checks: list[CheckResult]

    @property
    def ok(self) -> bool:
        return all(check.ok for check in self.checks)

    def as_dict(self, details: bool = True) -> dict[str, Any]:
        """``{"status": "ok" | "fail", "checks": {name: {"status", ...}}}``; without
        ``details`` each check says only its status (what anonymous callers see)."""
        return {
            "status": "ok" if self.ok else "fail",
            "checks": {check.name: check.as_dict(details) for check in self.checks},
        }


def run_checks(names: Iterable[str] | None = None, *, using: str | None = None) -> HealthReport:
    """Run the checks ``names`` (all by default) against the job database.

    ``ValueError`` names an unknown check. A check that cannot run (the database is
    down) fails with the error as its message; nothing here raises for that.
    """
    wanted = list(dict.fromkeys(names)) if names else list(CHECKS)
    unknown = [name for name in wanted if name not in CHECKS]
    if unknown:
        raise ValueError(
            f"Unknown health check(s): {', '.join(unknown)}. Known: {', '.join(CHECKS)}."
        )
    db = using or jobs_db()
    return HealthReport([_run(name, _CHECKS[name], db) for name in wanted])


def _run(name: str, check: Callable[[str], CheckResult], db: str) -> CheckResult:
    try:
        return check(db)
    except DatabaseError as exc:
        return CheckResult(name, False, f"database error: {exc}".strip())


def check_database(db: str) -> CheckResult:
    started = time.monotonic()
    with connections[db].cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    took = round((time.monotonic() - started) * 1000, 1)
    return CheckResult("database", True, f"reachable ({took} ms)", {"alias": db, "ms": took})


def check_migrations(db: str) -> CheckResult:
    loader = MigrationLoader(connections[db], ignore_no_migrations=True)
    targets = loader.graph.leaf_nodes("django_jobs")
    missing = [
        name
        for app, name in (node for target in targets for node in loader.graph.forwards_plan(target))
        if app == "django_jobs" and (app, name) not in loader.applied_migrations
    ]
    if missing:
        return CheckResult(
            "migrations",
            False,
            f"{len(missing)} migration(s) of django_jobs not applied: run manage.py migrate",
            {"unapplied": missing},
        )
    return CheckResult("migrations", True, "all applied")


def check_workers(db: str) -> CheckResult:
    minimum = jobs_settings.HEALTH.MIN_WORKERS
    alive = Worker.objects.using(db).alive().count()
    details = {"alive": alive, "min_workers": minimum}
    if alive < minimum:
        return CheckResult(
            "workers", False, f"{alive} worker(s) alive, fewer than {minimum}", details
        )
    return CheckResult("workers", True, f"{alive} worker(s) alive", details)


def check_scheduler(db: str) -> CheckResult:
    lag = jobs_settings.HEALTH.SCHEDULE_LAG
    now = db_now(db)
    late = [(name, due) for name, _task, due in late_schedules(db, now, limit=10)]
    if late:
        first_due = late[0][1] or now  # never None: next_run_at__lt excludes NULL
        worst = (now - first_due).total_seconds()
        return CheckResult(
            "scheduler",
            False,
            f"schedule {late[0][0]!r} is {worst:.0f} s late (more than {lag:g} s): is a "
            "worker running its scheduler?",
            {"late": [name for name, _ in late], "max_lag_seconds": round(worst, 1)},
        )
    return CheckResult("scheduler", True, f"no schedule more than {lag:g} s late")


def late_schedules(
    db: str, now: datetime, limit: int = 1000
) -> list[tuple[str, str, datetime | None]]:
    """``(name, task, next_run_at)`` of enabled schedules more than
    ``HEALTH["SCHEDULE_LAG"]`` late, the latest first (the check and the notifications)."""
    lag = timedelta(seconds=jobs_settings.HEALTH.SCHEDULE_LAG)
    return list(
        Schedule.objects.using(db)
        .filter(enabled=True, next_run_at__lt=now - lag)
        .order_by("next_run_at")
        .values_list("name", "task_name", "next_run_at")[:limit]
    )


def check_queues(db: str) -> CheckResult:
    now = db_now(db)
    backlogged: dict[str, float] = {}
    oldest_age: dict[str, float] = {}
    for name, age, limit in queue_waits(db, now):
        oldest_age[name] = round(age, 1)
        if limit is not None and age > limit:
            backlogged[name] = round(age, 1)
    details = {"oldest_pending_age_seconds": oldest_age}
    if backlogged:
        listed = ", ".join(f"{name} ({age:.0f} s)" for name, age in sorted(backlogged.items()))
        return CheckResult(
            "queues",
            False,
            f"due jobs waiting longer than their queue allows: {listed}",
            {**details, "backlogged": sorted(backlogged)},
        )
    return CheckResult("queues", True, "no queue has a backlog over its limit", details)


def queue_waits(db: str, now: datetime) -> list[tuple[str, float, float | None]]:
    """``(queue, seconds its oldest due job has waited, the limit)`` of every unpaused
    queue with a due job; the limit is the queue's ``max_pending_age``, else
    ``HEALTH["MAX_PENDING_AGE"]`` (None: no limit). For the check and the notifications."""
    default_limit = jobs_settings.HEALTH.MAX_PENDING_AGE
    found = []
    queues = Queue.objects.using(db).filter(paused=False).values_list("name", "max_pending_age")
    for name, own_limit in queues:
        oldest = _oldest_due(db, name, now)
        if oldest is not None:
            limit = own_limit.total_seconds() if own_limit is not None else default_limit
            found.append((name, max(0.0, (now - oldest).total_seconds()), limit))
    return found


def _oldest_due(db: str, queue: str, now: datetime) -> datetime | None:
    return (
        Job.objects.using(db)
        .filter(status__in=CLAIMABLE_STATUSES, queue=queue, scheduled_at__lte=now)
        .aggregate(oldest=Min("scheduled_at"))["oldest"]
    )


_CHECKS: dict[str, Callable[[str], CheckResult]] = {
    "database": check_database,
    "migrations": check_migrations,
    "workers": check_workers,
    "scheduler": check_scheduler,
    "queues": check_queues,
}


def touch(path: str) -> None:
    """Mark a worker alive for :func:`worker_file_age` (create ``path`` if needed)."""
    with open(path, "a"):
        pass
    os.utime(path, None)


def worker_file_age(path: str) -> float | None:
    """Seconds since ``runworkers --health-file`` last touched ``path``; None if absent."""
    try:
        return max(0.0, time.time() - os.stat(path).st_mtime)
    except FileNotFoundError:
        return None
