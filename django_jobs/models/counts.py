"""How many jobs there are, by status (and queue), fast at any table size.

Unfinished jobs (pending, running, ...) are few and always counted exactly, through the
``(status, queue)`` index. Finished jobs can be tens of millions: counting them is a scan
of that many index entries, seconds on every scrape and every dashboard refresh. So on
PostgreSQL, once the table holds more than :data:`ESTIMATE_ABOVE` rows, a group of
finished jobs is counted exactly only while it is small (up to :data:`EXACT_UP_TO` rows,
a bounded index-only count) and estimated from the planner's statistics beyond that (the
estimate ``EXPLAIN`` prints, which an extended statistics object on ``(queue, status)``,
migration 0009, keeps accurate for the pair). Estimates are as fresh as the table's last
``ANALYZE``: autovacuum runs it after a few per cent of the rows changed (migration 0003).
Other databases always count exactly.
"""

from __future__ import annotations

import json

from django.db import connections
from django.db.models import Count

from ..enums import FINISHED_STATUSES, UNFINISHED_STATUSES
from .job import Job
from .queue import Queue
from .rollup import TOTAL, Rollup

ESTIMATE_ABOVE = 1_000_000  # rows in the jobs table (PostgreSQL's reltuples)
EXACT_UP_TO = 10_000  # a finished group this small is counted exactly


def job_counts(db: str, *, by_queue: bool) -> tuple[dict, bool]:
    """``({(queue, status): n}, estimated)`` or, without ``by_queue``, ``({status: n},
    estimated)``; ``estimated`` says whether any number is an estimate. Groups with no
    job are left out."""
    jobs = Job.objects.using(db).order_by()
    keys = ("queue", "status") if by_queue else ("status",)
    if not _big(db):
        return _grouped(jobs, keys), False
    counts = _grouped(jobs.filter(status__in=UNFINISHED_STATUSES), keys)
    estimated = False
    queues = _known_queues(db, counts) if by_queue else [None]
    for queue in queues:
        for status in FINISHED_STATUSES:
            n, guessed = _finished(db, status, queue)
            estimated |= guessed
            if n:
                counts[(queue, status.value) if by_queue else status.value] = n
    return counts, estimated


def _grouped(jobs, keys: tuple[str, ...]) -> dict:
    rows = jobs.values_list(*keys).annotate(n=Count("id"))
    if len(keys) == 1:
        return dict(rows)
    return {(queue, status): n for queue, status, n in rows}


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
    """Every queue that may hold finished jobs: declared, holding unfinished jobs, or with
    outcomes in the running totals."""
    names = set(Queue.objects.using(db).values_list("name", flat=True))
    names.update(queue for queue, _ in counts)
    names.update(Rollup.objects.using(db).filter(resolution=TOTAL).values_list("queue", flat=True))
    return sorted(names)


def _finished(db: str, status: str, queue: str | None) -> tuple[int, bool]:
    """The jobs of one finished group: exact while few, else the planner's estimate."""
    jobs = Job.objects.using(db).order_by().filter(status=status)
    if queue is not None:
        jobs = jobs.filter(queue=queue)
    estimate = _planner_rows(db, jobs)
    if estimate < EXACT_UP_TO:
        exact = _bounded_count(db, jobs, EXACT_UP_TO)
        if exact < EXACT_UP_TO:
            return exact, False
    return max(estimate, EXACT_UP_TO), True


def _planner_rows(db: str, jobs) -> int:
    sql, params = jobs.values("id").query.sql_with_params()
    with connections[db].cursor() as cursor:
        cursor.execute(f"EXPLAIN (FORMAT JSON) {sql}", params)
        plan = cursor.fetchone()[0]
    if isinstance(plan, str):  # a driver that does not decode json
        plan = json.loads(plan)
    return int(plan[0]["Plan"]["Plan Rows"])


def _bounded_count(db: str, jobs, limit: int) -> int:
    sql, params = jobs.values("id")[:limit].query.sql_with_params()
    with connections[db].cursor() as cursor:
        cursor.execute(f"SELECT COUNT(*) FROM ({sql}) AS bounded", params)
        return int(cursor.fetchone()[0])


def statuses_total(counts: dict) -> dict[str, int]:
    """``{(queue, status): n}`` folded to ``{status: n}``."""
    total: dict[str, int] = {}
    for (_, status), n in counts.items():
        total[status] = total.get(status, 0) + n
    return total
