"""How many jobs there are, by status (and queue), fast at any table size.

Unfinished jobs (pending, running, ...) are few and always counted exactly, through the
``(status, queue)`` index. Finished jobs can be tens of millions: counting them is a scan
of that many index entries, seconds on every scrape and every dashboard refresh. So on
PostgreSQL, once the table holds more than :data:`ESTIMATE_ABOVE` rows, a group of
finished jobs is counted exactly only while it is small (up to :data:`EXACT_UP_TO` rows,
a bounded index-only count) and estimated from the planner's statistics beyond that (the
estimate ``EXPLAIN`` prints, which extended statistics objects on ``(queue, status)`` and
``(original_queue, status)``, migration 0009, keep accurate for the pairs). Estimates are
as fresh as the table's last ``ANALYZE``, which autovacuum runs after every 10,000 changed
rows (migration 0003).
Other databases always count exactly.
"""

from __future__ import annotations

import json
from typing import Any

from django.db import connections
from django.db.models import Case, Count, F, Max, Min, When

from ..conf import jobs_settings
from ..enums import FINISHED_STATUSES, UNFINISHED_STATUSES, JobStatus
from .job import Job
from .queue import Queue
from .rollup import TOTAL, Rollup

ESTIMATE_ABOVE = 1_000_000  # rows in the jobs table (PostgreSQL's reltuples)
EXACT_UP_TO = 10_000  # a finished group this small is counted exactly


def job_counts(db: str, *, by_queue: bool) -> tuple[dict, bool]:
    """``({(queue, status): n}, estimated)`` or, without ``by_queue``, ``({status: n},
    estimated)``; ``estimated`` says whether any number is an estimate. Groups with no
    job are left out. ``queue`` is the queue a job ran in: a failed job that was moved to
    the dead-letter queue counts under its original queue (SPEC 10)."""
    jobs = Job.objects.using(db).order_by()
    if not _big(db):
        return _grouped(jobs, by_queue), False
    counts = _grouped(jobs.filter(status__in=UNFINISHED_STATUSES), by_queue)
    estimated = False
    queues = _known_queues(db, counts) if by_queue else [None]
    for queue in queues:
        for status in FINISHED_STATUSES:
            n, guessed = _finished(db, status, queue)
            estimated |= guessed
            if n:
                counts[(queue, status.value) if by_queue else status.value] = n
    return counts, estimated


def failed_by_queue(db: str) -> tuple[dict[str, int], bool]:
    """``({queue: failed jobs}, estimated)``, by the queue each failed in."""
    failed_jobs = Job.objects.using(db).order_by().filter(status=JobStatus.FAILED)
    if not _big(db):
        rows = failed_jobs.annotate(origin=_origin()).values_list("origin").annotate(n=Count("id"))
        return dict(rows), False
    counts: dict[str, int] = {}
    estimated = False
    for queue in _known_queues(db, {}):
        n, guessed = _finished(db, JobStatus.FAILED, queue)
        estimated |= guessed
        if n:
            counts[queue] = n
    return counts, estimated


def _origin():
    """The queue a job ran in (dead-lettered jobs keep it in ``original_queue``)."""
    return Case(When(original_queue="", then=F("queue")), default=F("original_queue"))


def _grouped(jobs, by_queue: bool) -> dict:
    if not by_queue:
        return dict(jobs.values_list("status").annotate(n=Count("id")))
    rows = jobs.annotate(origin=_origin()).values_list("origin", "status").annotate(n=Count("id"))
    return {(queue, status): n for queue, status, n in rows}


def bounded_count(queryset, exact_up_to: int = EXACT_UP_TO) -> tuple[int, bool]:
    """``(count, estimated)`` of any job QuerySet: exact up to ``exact_up_to`` rows (a
    count that stops there), beyond that the planner's estimate on a big PostgreSQL
    table, else an exact ``COUNT(*)``. What the admin's paginator shows."""
    db = queryset.db
    exact = _bounded_count(db, queryset.order_by(), exact_up_to)
    if exact < exact_up_to:
        return exact, False
    if _big(db):
        return max(_planner_rows(db, queryset.order_by()), exact_up_to), True
    return queryset.order_by().count(), False


def _big(db: str) -> bool:
    connection = connections[db]
    if connection.vendor != "postgresql":
        return False
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT reltuples FROM pg_class WHERE oid = to_regclass(%s)", [Job._meta.db_table]
        )
        row = cursor.fetchone()
    # reltuples is -1 (PostgreSQL 14+) or 0 before the first ANALYZE
    return bool(row) and row[0] > ESTIMATE_ABOVE


def _known_queues(db: str, counts: dict) -> list[str]:
    """Every queue that may hold finished jobs: declared (enqueue declares its queue), the
    dead-letter queue, holding unfinished jobs, or with outcomes in the running totals."""
    names = set(Queue.objects.using(db).values_list("name", flat=True))
    names.add(jobs_settings.DEAD_LETTER_QUEUE)
    names.update(queue for queue, _ in counts)
    names.update(Rollup.objects.using(db).filter(resolution=TOTAL).values_list("queue", flat=True))
    return sorted(names)


def _finished(db: str, status: str, queue: str | None) -> tuple[int, bool]:
    """The jobs of one finished group, exact while few, else the planner's estimate.
    A queue's failed jobs are those dead-lettered from it plus those that failed in it
    (the dead-letter queue's own)."""
    jobs = Job.objects.using(db).order_by().filter(status=status)
    if queue is None:
        parts = [jobs]
    elif status == JobStatus.FAILED:
        parts = [jobs.filter(original_queue=queue), jobs.filter(queue=queue, original_queue="")]
    else:
        parts = [jobs.filter(queue=queue)]
    total, guessed = 0, False
    for part in parts:
        # Counting up to the bound reads at most that many index entries (the (status,
        # queue) index; migration 0009's for original_queue), whatever the table's size.
        exact = _bounded_count(db, part, EXACT_UP_TO)
        if exact < EXACT_UP_TO:
            total += exact
        else:
            total += max(_planner_rows(db, part), EXACT_UP_TO)
            guessed = True
    return total, guessed


def _planner_rows(db: str, jobs) -> int:
    sql, params = jobs.values("id").query.get_compiler(using=db).as_sql()
    with connections[db].cursor() as cursor:
        cursor.execute(f"EXPLAIN (FORMAT JSON) {sql}", params)
        plan = cursor.fetchone()[0]
    if isinstance(plan, str):  # a driver that does not decode json
        plan = json.loads(plan)
    return int(plan[0]["Plan"]["Plan Rows"])


def _bounded_count(db: str, jobs, limit: int) -> int:
    sql, params = jobs.values("id")[:limit].query.get_compiler(using=db).as_sql()
    with connections[db].cursor() as cursor:
        cursor.execute(f"SELECT COUNT(*) FROM ({sql}) AS bounded", params)
        return int(cursor.fetchone()[0])


def failure_groups(jobs, limit: int = 100) -> tuple[list[dict[str, Any]], bool]:
    """The failed jobs of ``jobs`` grouped by cause (``Job.error_group``), the largest
    first: ``group``, ``count``, ``first_seen``, ``last_seen`` and ``tasks`` (``{task
    name: count}``); and whether any count is an estimate (or, past
    :data:`MAX_FAILURE_PAIRS` (cause, task) pairs on a big table, the list partial).

    On a small table one ``GROUP BY``. On a big PostgreSQL table the (cause, task) pairs
    are walked through the index of failed jobs one lookup at a time (a loose index
    scan: as many lookups as pairs, not as many as failed jobs), then each pair is counted
    as :func:`job_counts` counts a group and its first and last failure are index
    lookups too.
    """
    db = jobs.db
    failed = jobs.failed().order_by()
    if not _big(db):
        rows = failed.values_list("error_group", "task_name").annotate(
            n=Count("id"), first=Min("finished_at"), last=Max("finished_at")
        )
        return _ranked(rows, limit), False
    pairs = _failed_pairs(db, MAX_FAILURE_PAIRS + 1)
    # Past the bound the walk stops (alphabetically): say the list is partial.
    estimated = len(pairs) > MAX_FAILURE_PAIRS
    rows = []
    for group, task in pairs[:MAX_FAILURE_PAIRS]:
        pair = failed.filter(error_group=group, task_name=task)
        n = _bounded_count(db, pair, EXACT_UP_TO)
        if n >= EXACT_UP_TO:
            n, estimated = max(_planner_rows(db, pair), EXACT_UP_TO), True
        if not n:  # the pairs are the whole table's; ``jobs`` may be filtered
            continue
        seen = pair.aggregate(first=Min("finished_at"), last=Max("finished_at"))
        rows.append((group, task, n, seen["first"], seen["last"]))
    return _ranked(rows, limit), estimated


MAX_FAILURE_PAIRS = 1000  # (cause, task) pairs a big table's failures page walks


def _failed_pairs(db: str, limit: int) -> list[tuple[str, str]]:
    table = connections[db].ops.quote_name(Job._meta.db_table)
    with connections[db].cursor() as cursor:
        cursor.execute(
            f"""
            WITH RECURSIVE pairs(error_group, task_name) AS (
                (SELECT error_group, task_name FROM {table} WHERE status = 'failed'
                 ORDER BY error_group, task_name LIMIT 1)
                UNION ALL
                SELECT later.error_group, later.task_name FROM pairs, LATERAL (
                    SELECT error_group, task_name FROM {table}
                    WHERE status = 'failed'
                      AND (error_group, task_name) > (pairs.error_group, pairs.task_name)
                    ORDER BY error_group, task_name LIMIT 1
                ) AS later
            )
            SELECT error_group, task_name FROM pairs LIMIT %s
            """,
            [limit],
        )
        return [(group, task) for group, task in cursor.fetchall()]


def _ranked(rows, limit: int) -> list[dict[str, Any]]:
    """``(group, task, count, first, last)`` rows folded per group, largest first."""
    groups: dict[str, dict[str, Any]] = {}
    for group, task, n, first, last in rows:
        found = groups.setdefault(
            group, {"group": group, "count": 0, "first_seen": first, "last_seen": last, "tasks": {}}
        )
        found["count"] += n
        found["tasks"][task] = n
        if first is not None and (found["first_seen"] is None or first < found["first_seen"]):
            found["first_seen"] = first
        if last is not None and (found["last_seen"] is None or last > found["last_seen"]):
            found["last_seen"] = last
    return sorted(groups.values(), key=lambda g: (-g["count"], g["group"]))[:limit]
