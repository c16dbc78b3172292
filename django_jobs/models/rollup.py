"""Counts that survive restarts and pruning: how many jobs were enqueued, completed,
failed, retried and cancelled, and how long they ran and waited, per queue and task.

Whoever writes an outcome records it in this process's :data:`rollups` buffer (memory
only: no write per job). The buffer is flushed to :class:`Rollup` rows about every few
seconds (by the worker's executors, and by a daemon thread in any other process) with
one upsert per (queue, task, kind) and period: a per-minute row for the dashboard's
charts and a running total for Prometheus. Minute rows older than a day are folded into
hour rows; hour rows older than ``HOURS_KEPT`` are deleted; totals are kept forever.
"""

from __future__ import annotations

import atexit
import bisect
import logging
import os
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from django.db import DatabaseError, connections, models, router, transaction

logger = logging.getLogger("django_jobs.rollups")

# Upper bounds (seconds) of the histogram buckets for run and wait times; one more bucket
# holds everything above the last bound.
BUCKETS = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    300.0,
    900.0,
    3600.0,
)
BUCKET_FIELDS = tuple(f"b{i}" for i in range(len(BUCKETS)))

MINUTE, HOUR, TOTAL = "m", "h", "t"
TOTAL_PERIOD = datetime(2000, 1, 1, tzinfo=UTC)  # the one period of the running totals
MINUTES_KEPT = timedelta(hours=26)  # per-minute rows: a day for the charts, and some
HOURS_KEPT = timedelta(days=35)
FLUSH_SECONDS = 5.0
COMPACT_CHUNK = 5000  # minute rows folded per transaction
MAX_PENDING_KEYS = 50_000  # what a buffer keeps while the database is unreachable

# What is counted: jobs enqueued, and the outcome of every attempt (a count each); and
# two timed observations of every attempt that started: "ran" (start to outcome, per
# queue and task) and "waited" (due to start, per queue; task "").
ENQUEUED, COMPLETED, FAILED, RETRIED, CANCELLED = (
    "enqueued",
    "completed",
    "failed",
    "retried",
    "cancelled",
)
OUTCOMES = (COMPLETED, FAILED, RETRIED, CANCELLED)
RAN, WAITED = "ran", "waited"
KINDS = (ENQUEUED, *OUTCOMES, RAN, WAITED)


class Rollup(models.Model):
    """One (period, queue, task, kind): a count and, for timed kinds, a histogram."""

    resolution = models.CharField(
        max_length=1, choices=[(MINUTE, "minute"), (HOUR, "hour"), (TOTAL, "total")]
    )
    period = models.DateTimeField()  # the minute or hour it starts; TOTAL_PERIOD for totals
    queue = models.CharField(max_length=255)
    task = models.CharField(max_length=255, blank=True, default="")
    kind = models.CharField(max_length=16)
    count = models.BigIntegerField(default=0)
    seconds = models.FloatField(default=0.0)  # sum of the observed durations
    # Observations per bucket (not cumulative): b0 counts those <= BUCKETS[0], ...
    b0 = models.BigIntegerField(default=0)
    b1 = models.BigIntegerField(default=0)
    b2 = models.BigIntegerField(default=0)
    b3 = models.BigIntegerField(default=0)
    b4 = models.BigIntegerField(default=0)
    b5 = models.BigIntegerField(default=0)
    b6 = models.BigIntegerField(default=0)
    b7 = models.BigIntegerField(default=0)
    b8 = models.BigIntegerField(default=0)
    b9 = models.BigIntegerField(default=0)
    b10 = models.BigIntegerField(default=0)
    b11 = models.BigIntegerField(default=0)
    b12 = models.BigIntegerField(default=0)
    b13 = models.BigIntegerField(default=0)
    b14 = models.BigIntegerField(default=0)
    b15 = models.BigIntegerField(default=0)

    class Meta:
        verbose_name = "rollup"
        verbose_name_plural = "rollups"
        constraints = [
            models.UniqueConstraint(
                fields=["resolution", "period", "queue", "task", "kind"],
                name="django_jobs_rollup_key",
            )
        ]
        indexes = [models.Index(fields=["resolution", "period"], name="django_jobs_rollup_period")]

    def __str__(self) -> str:
        where = f"{self.queue}/{self.task or '-'}"
        return f"{self.kind} {where} @ {self.period:%Y-%m-%d %H:%M} x{self.count}"

    def bucket_counts(self) -> list[int]:
        return [getattr(self, name) for name in BUCKET_FIELDS]


@dataclass
class Tally:
    count: int = 0
    seconds: float = 0.0
    buckets: list[int] = field(default_factory=lambda: [0] * len(BUCKETS))

    def add(self, seconds: float | None, n: int = 1) -> None:
        self.count += n
        if seconds is not None:
            seconds = max(0.0, seconds)
            self.seconds += seconds * n
            index = bisect.bisect_left(BUCKETS, seconds)
            if index < len(BUCKETS):
                self.buckets[index] += n

    def merge(self, other: Tally) -> None:
        self.count += other.count
        self.seconds += other.seconds
        self.buckets = [a + b for a, b in zip(self.buckets, other.buckets, strict=True)]


Key = tuple[str, datetime, str, str, str]  # (db, minute, queue, task, kind)
Observation = tuple[str, str, str, float | None]  # (queue, task, kind, seconds)


class RollupBuffer:
    """This process's counts not yet written, by database and minute."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.pending: dict[Key, Tally] = {}
        self.flusher: threading.Thread | None = None
        # A thread flushes every FLUSH_SECONDS once something was recorded. Tests turn it
        # off and flush by hand, so that nothing writes behind a test's back.
        self.autoflush = True

    def after_fork(self) -> None:
        """In a forked child: what the parent buffered is the parent's to write, and its
        lock and flush thread did not come along."""
        self.lock = threading.Lock()
        self.pending = {}
        self.flusher = None

    def record(
        self,
        db: str,
        queue: str,
        task: str,
        kind: str,
        seconds: float | None = None,
        n: int = 1,
        at: float | None = None,
    ) -> None:
        if n <= 0:
            return
        minute = _minute(at if at is not None else time.time())
        key = (db, minute, queue, task, kind)
        with self.lock:
            tally = self.pending.get(key)
            if tally is None:
                if len(self.pending) >= MAX_PENDING_KEYS:
                    return
                tally = self.pending[key] = Tally()
            tally.add(seconds, n)
        if self.flusher is None and self.autoflush:
            self._start_flusher()

    def record_many(self, db: str, observations: Iterable[Observation]) -> None:
        """Several ``(queue, task, kind, seconds)`` at once, under one lock: what the
        worker's batched completion records."""
        minute = _minute(time.time())
        with self.lock:
            for queue, task, kind, seconds in observations:
                key = (db, minute, queue, task, kind)
                tally = self.pending.get(key)
                if tally is None:
                    if len(self.pending) >= MAX_PENDING_KEYS:
                        continue
                    tally = self.pending[key] = Tally()
                tally.add(seconds)
        if self.flusher is None and self.autoflush:
            self._start_flusher()

    def record_many_on_commit(self, db: str, observations: list[Observation]) -> None:
        if observations:
            transaction.on_commit(lambda: self.record_many(db, observations), using=db)

    def record_on_commit(self, db: str, *args, **kwargs) -> None:
        """``record`` once the current transaction of ``db`` commits (at once outside one)."""
        transaction.on_commit(lambda: self.record(db, *args, **kwargs), using=db)

    def take(self) -> dict[Key, Tally]:
        with self.lock:
            taken, self.pending = self.pending, {}
        return taken

    def give_back(self, taken: dict[Key, Tally]) -> None:
        with self.lock:
            for key, tally in taken.items():
                if key in self.pending:
                    self.pending[key].merge(tally)
                elif len(self.pending) < MAX_PENDING_KEYS:
                    self.pending[key] = tally

    def flush(self) -> int:
        """Write what was recorded; returns the number of keys written. On a database
        error the counts stay buffered for the next flush."""
        taken = self.take()
        if not taken:
            return 0
        by_db: dict[str, dict[Key, Tally]] = {}
        for key, tally in taken.items():
            by_db.setdefault(key[0], {})[key] = tally
        written = 0
        for db, part in by_db.items():
            try:
                write_tallies(db, part)
                written += len(part)
            except DatabaseError as exc:
                logger.warning("Could not write job counts (%s); keeping them for later", exc)
                self.give_back(part)
        return written

    def _start_flusher(self) -> None:
        with self.lock:
            if self.flusher is not None:
                return
            self.flusher = threading.Thread(
                target=self._flush_forever, name="django_jobs-rollups", daemon=True
            )
        self.flusher.start()

    def _flush_forever(self) -> None:
        while True:
            time.sleep(FLUSH_SECONDS)
            try:
                self.flush()
            except Exception:  # never let the thread die; the next round tries again
                logger.exception("Could not write job counts")
            finally:
                for conn in connections.all(initialized_only=True):
                    conn.close_if_unusable_or_obsolete()


rollups = RollupBuffer()


def flush_counts() -> None:
    """Write this process's buffered counts now, as it exits; never raises (a database
    outage at that moment loses those few seconds of counts, and is logged)."""
    try:
        rollups.flush()
    except Exception:  # the process is exiting: log, never fail its shutdown
        logger.exception("Could not write the last job counts")


os.register_at_fork(after_in_child=rollups.after_fork)
# A process that exits normally writes what it buffered; a forked worker process, which
# skips atexit, calls rollups.flush() itself before it exits.
atexit.register(lambda: flush_counts() if rollups.pending else None)


def write_tallies(db: str, tallies: dict[Key, Tally]) -> None:
    """One upsert for the minute rows and one for the totals, in one transaction."""
    minute_rows = []
    totals: dict[tuple[str, str, str], Tally] = {}
    for (_db, minute, queue, task, kind), tally in tallies.items():
        minute_rows.append((MINUTE, minute, queue, task, kind, tally))
        totals.setdefault((queue, task, kind), Tally()).merge(tally)
    total_rows = [(TOTAL, TOTAL_PERIOD, q, t, k, tally) for (q, t, k), tally in totals.items()]
    with transaction.atomic(using=db):
        _upsert(db, minute_rows + total_rows)


def _upsert(db: str, rows: list[tuple[str, datetime, str, str, str, Tally]]) -> None:
    conn = connections[db]
    qn = conn.ops.quote_name
    table = qn(Rollup._meta.db_table)
    keys = ["resolution", "period", "queue", "task", "kind"]
    sums = ["count", "seconds", *BUCKET_FIELDS]
    columns = ", ".join(qn(c) for c in keys + sums)
    one = "(" + ", ".join(["%s"] * (len(keys) + len(sums))) + ")"
    if conn.vendor == "mysql":
        update = ", ".join(f"{qn(c)} = {qn(c)} + VALUES({qn(c)})" for c in sums)
        conflict = f"ON DUPLICATE KEY UPDATE {update}"
    else:
        update = ", ".join(f"{qn(c)} = {table}.{qn(c)} + excluded.{qn(c)}" for c in sums)
        conflict = f"ON CONFLICT ({', '.join(qn(c) for c in keys)}) DO UPDATE SET {update}"
    # Sorted: every writer takes the row locks in one order, so two flushes never deadlock.
    rows = sorted(rows, key=lambda r: (r[0], r[1], r[2], r[3], r[4]))
    with conn.cursor() as cursor:
        for start in range(0, len(rows), 200):
            chunk = rows[start : start + 200]
            params: list = []
            for resolution, period, queue, task, kind, tally in chunk:
                params += [
                    resolution,
                    conn.ops.adapt_datetimefield_value(period),
                    queue,
                    task,
                    kind,
                    tally.count,
                    tally.seconds,
                    *tally.buckets,
                ]
            sql = (
                f"INSERT INTO {table} ({columns}) VALUES {', '.join([one] * len(chunk))} {conflict}"
            )
            cursor.execute(sql, params)


def compact(db: str | None = None, now: datetime | None = None) -> int:
    """Fold minute rows older than ``MINUTES_KEPT`` into hour rows and delete hour rows
    older than ``HOURS_KEPT``; returns the minute rows folded. Rows another worker is
    folding are skipped (row locks), so nothing is counted twice."""
    db = db or router.db_for_write(Rollup)
    now = now or datetime.now(UTC)
    folded = 0
    with transaction.atomic(using=db):
        old = (
            Rollup.objects.using(db)
            .filter(resolution=MINUTE, period__lt=now - MINUTES_KEPT)
            .order_by("pk")
        )
        if connections[db].features.has_select_for_update_skip_locked:
            old = old.select_for_update(skip_locked=True)
        rows = list(old[:COMPACT_CHUNK])
        if rows:
            hours: dict[tuple[datetime, str, str, str], Tally] = {}
            for row in rows:
                hour = row.period.replace(minute=0, second=0, microsecond=0)
                tally = Tally(row.count, row.seconds, row.bucket_counts())
                hours.setdefault((hour, row.queue, row.task, row.kind), Tally()).merge(tally)
            _upsert(db, [(HOUR, h, q, t, k, tally) for (h, q, t, k), tally in hours.items()])
            Rollup.objects.using(db).filter(pk__in=[row.pk for row in rows]).delete()
            folded = len(rows)
        Rollup.objects.using(db).filter(resolution=HOUR, period__lt=now - HOURS_KEPT).delete()
    return folded


def totals(db: str, kinds: Iterable[str] = KINDS) -> list[Rollup]:
    """The running totals (what Prometheus counters show), this process's buffer first
    written so that what it recorded is included."""
    rollups.flush()
    return list(Rollup.objects.using(db).filter(resolution=TOTAL, kind__in=list(kinds)))


def per_minute(
    db: str, since: datetime, kinds: Iterable[str] = OUTCOMES, *, by_queue: bool = True
) -> dict[tuple[str, str, datetime], int]:
    """``{(queue, kind, minute): count}`` from the minute rows from ``since`` on, summed
    over tasks (minutes in UTC; a minute nothing happened in is left out); without
    ``by_queue``, summed over queues too (``queue`` is ""). What was written, not this
    process's buffer: read by processes that count nothing themselves (``manage.py jobs
    top``). Served by the ``(resolution, period)`` index, so its cost does not depend on
    the size of the job table."""
    grouped = (
        Rollup.objects.using(db)
        .filter(resolution=MINUTE, period__gte=since, kind__in=list(kinds))
        .values_list(*(("queue",) if by_queue else ()), "kind", "period")
        .annotate(n=models.Sum("count"))
        .order_by()
    )
    rows = [row if by_queue else ("", *row) for row in grouped]
    return {(queue, kind, period.astimezone(UTC)): int(n or 0) for queue, kind, period, n in rows}


def _minute(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch - epoch % 60, tz=UTC)
