"""Claiming due jobs: one lease per claim, skipping locked rows, paused queues and queues
at their concurrency limit (part of ``JobQuerySet``)."""

from __future__ import annotations

import functools
import time
import uuid
from collections.abc import Iterable
from contextlib import nullcontext
from datetime import UTC, datetime
from json import loads as _json_loads
from typing import TYPE_CHECKING

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import DatabaseError, connections, models, transaction
from django.db.models import F
from django.db.models.base import ModelState

from ..enums import CLAIMABLE_STATUSES, JobStatus
from ..wakeups import uses_psycopg3
from .filters import JobFilters
from .functions import DbNow
from .queue import Queue
from .rate import Rate, parse_rate, take

if TYPE_CHECKING:
    from .job import Job


def new_lease() -> str:
    return uuid.uuid4().hex


class JobClaiming(JobFilters):
    # -- claiming ---------------------------------------------------------------------

    def claim(
        self,
        worker_id: str,
        limit: int = 1,
        *,
        queues: Iterable[str] | None = None,
        exclude_queues: Iterable[str] | None = None,
        config=None,
        lease: str | None = None,
    ) -> list[Job]:
        """Atomically take up to ``limit`` due jobs for ``worker_id``, under ONE lease.

        Highest priority first, then ``scheduled_at``, then id; paused queues, queues at
        their concurrency limit and queues out of starts for their rate limit are
        skipped (``config.rate_wait`` then says when the next start is allowed). Claimed
        jobs are ``running`` with the lease token (``lease``, or a new one), one attempt
        more, and ``started_at`` set from the database clock. ``config`` is a recent
        ``Queue.objects.claim_config()`` (read now when not given).

        Every job a claim returns shares one lease, whichever queues it came from: the
        caller holds them as one batch, runs each or hands it back by that lease.
        """
        if limit <= 0:
            return []
        lease = lease or new_lease()
        db = self.db
        conf = config if config is not None else Queue.objects.using(db).claim_config()
        base = self.filter(scheduled_at__lte=DbNow()).for_queues(queues)
        base = base.excluding_queues(exclude_queues)
        if conf.paused:
            base = base.exclude(queue__in=conf.paused)
        throttled = conf.throttled()
        if queues:
            throttled &= set(queues)
        conf.rate_wait = None
        claimed: list[Job] = []
        if throttled:
            claimed += self._claim_ids(
                base.exclude(queue__in=sorted(throttled)), worker_id, limit, lease
            )
            for name in sorted(throttled):
                if len(claimed) >= limit:
                    break
                try:
                    claimed += self._claim_throttled(
                        base, worker_id, limit - len(claimed), name, conf, lease
                    )
                except DatabaseError:
                    if not claimed:
                        raise
                    break  # what was claimed (and committed) so far is the caller's
        else:
            claimed = self._claim_ids(base, worker_id, limit, lease)
        replied = time.monotonic()
        for job in claimed:
            job._claimed_mono = replied
        return claimed

    def _claim_throttled(self, base, worker_id, limit, name, conf, lease) -> list[Job]:
        """Claim from a queue with a concurrency or rate limit: its row locked, so that
        claims on it from every worker and host take turns and the limits hold."""
        with transaction.atomic(using=self.db):
            row = (
                Queue.objects.using(self.db)
                .select_for_update()
                .filter(name=name)
                .annotate(db_clock=DbNow())
                .values("concurrency_limit", "rate_limit", "rate_window", "db_clock")
                .first()
            )
            if row is None:
                return []  # deleted meanwhile: claimed again next time, unthrottled
            free = limit
            lim = row["concurrency_limit"]
            if lim is not None:
                free = min(free, lim - self.fresh().held().filter(queue=name).count())
            rate = _rate_of(row["rate_limit"], conf.rates.get(name))
            now = 0.0
            if rate is not None and free > 0:
                # A slice's share per claim: the jobs a claim takes start one after the
                # other, and a big batch's last ones would start well after the claim
                # that counted them. Small claims keep starts where they were counted.
                free = min(free, rate.per_claim)
                now = _epoch(row["db_clock"])
                free, _, wait = take(row["rate_window"], rate, now, free)
                if free <= 0 and self._any_due(base.filter(queue=name)):
                    # Due jobs held back by the rate only: the caller is not idle.
                    conf.rate_wait = min(wait, conf.rate_wait or wait)
            if free <= 0:
                return []
            claimed = self._claim_ids(base.filter(queue=name), worker_id, free, lease, atomic=False)
            if rate is not None and claimed:
                # Only what was claimed counts (fewer due jobs than allowed leave the
                # rest), and when it started: the row's clock was read when the locking
                # read began, maybe long before it got the lock (MySQL); starts counted
                # in that earlier slice would leave the window early. A little later
                # than the last start, for the runs that begin just after their claim.
                started = max(_epoch(job.started_at) for job in claimed)
                at = max(now, started + min(rate.slice_seconds / 2, 0.05))
                _, window, _ = take(row["rate_window"], rate, at, len(claimed))
                Queue.objects.using(self.db).filter(name=name).update(rate_window=window)
            return claimed

    def _any_due(self, candidates) -> bool:
        conn = connections[self.db]
        return any(q.exists() for q in claim_candidates(candidates, 1, conn, columns=("id",)))

    def _claim_ids(self, candidates, worker_id, limit, lease, atomic=True) -> list[Job]:
        db = self.db
        conn = connections[db]
        if conn.vendor == "postgresql":
            return self._claim_postgresql(candidates, worker_id, limit, lease)
        ctx = transaction.atomic(using=db) if atomic else nullcontext()
        with ctx:
            ids = []
            for query in claim_candidates(candidates, limit, conn):
                if conn.features.has_select_for_update_skip_locked:
                    query = query.select_for_update(skip_locked=True)
                ids += list(query)
            if len(ids) > limit:
                # MySQL: one ordered read per claimable status; the best of both win
                # (the others stay locked only until this short transaction ends).
                ids = [row[0] for row in sorted(ids, key=lambda r: (-r[1], r[2], r[0]))[:limit]]
            else:
                ids = [row[0] for row in ids]
            if not ids:
                return []
            # The status condition makes the claim safe where rows cannot be locked
            # (SQLite): only one conditional UPDATE can move a row out of pending.
            self.fresh(db).filter(id__in=ids, status__in=CLAIMABLE_STATUSES).update(
                status=JobStatus.RUNNING,
                worker_id=worker_id,
                lease=lease,
                attempts=F("attempts") + 1,
                started_at=DbNow(),
            )
            return list(self.fresh(db).filter(id__in=ids, lease=lease).in_claim_order())

    def _claim_postgresql(self, candidates, worker_id, limit, lease) -> list[Job]:
        """One statement: lock up to ``limit`` due rows (skipping locked ones), mark them
        running and return them. A single round trip and a single commit, whatever
        ``limit``; the inner SELECT is the one the partial claim index serves."""
        db = self.db
        conn = connections[db]
        [inner] = claim_candidates(candidates, limit, conn, columns=("id",))
        qn = conn.ops.quote_name
        table = qn(self.model._meta.db_table)
        columns = ", ".join(qn(str(f.column)) for f in self.model._meta.concrete_fields)
        inner_sql, inner_params = inner.query.get_compiler(using=db).as_sql()
        # FOR UPDATE goes after LIMIT on PostgreSQL. Added here rather than with
        # select_for_update(), which Django only compiles inside atomic(): the statement is
        # its own transaction, and BEGIN/COMMIT would be two more round trips per claim.
        sql = (
            f"UPDATE {table} SET status = %s, worker_id = %s, lease = %s, "
            "attempts = attempts + 1, started_at = CLOCK_TIMESTAMP() "
            f"WHERE id = ANY(ARRAY({inner_sql} FOR UPDATE SKIP LOCKED)) RETURNING {columns}"
        )
        params = [JobStatus.RUNNING, worker_id, lease, *inner_params]
        with conn.cursor() as cursor:
            fast_timestamps(conn, cursor)
            cursor.execute(sql, params)
            claimed = jobs_from_rows(self.model, db, cursor.fetchall())
        claimed.sort(key=lambda j: (-j.priority, j.scheduled_at, j.pk))
        return claimed


def _rate_of(text: str, known: Rate | None) -> Rate | None:
    """The queue's rate limit as its locked row says now (a change holds at once)."""
    if not text:
        return None
    if known is not None and str(known) == text:
        return known
    try:
        return parse_rate(text)
    except ValidationError:
        return None  # logged by claim_config()


def _epoch(moment) -> float:
    if isinstance(moment, str):  # SQLite, where the annotation's type is not applied
        moment = datetime.fromisoformat(moment)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def claim_candidates(candidates, limit: int, conn, columns=("id", "priority", "scheduled_at")):
    """The ordered, limited reads a claim locks its rows with (without the lock clause).

    PostgreSQL and SQLite: one read over both claimable statuses, which their partial
    claim index serves in order. MySQL/MariaDB have no partial indexes: their claim index
    starts with ``status``, and ``status IN (pending, retrying)`` would make them sort
    every due row (a filesort), locking ALL of them before the LIMIT, so that concurrent
    claimers find nothing to take. One read per status walks the index in claim order
    and locks only the rows it returns.
    """
    if conn.vendor == "mysql":
        reads = [candidates.filter(status=status) for status in CLAIMABLE_STATUSES]
    else:
        reads = [candidates.filter(status__in=CLAIMABLE_STATUSES)]
    return [read.in_claim_order().values_list(*columns)[:limit] for read in reads]


@functools.cache
def _row_plan(Job) -> tuple[list[str], tuple[int, ...], list]:  # noqa: N803 - the model class
    """(attnames, JSON column positions, (position, from_db_value) of the others)."""
    fields = Job._meta.concrete_fields
    names = [f.attname for f in fields]
    json_columns = tuple(i for i, f in enumerate(fields) if isinstance(f, models.JSONField))
    others = [
        (i, f.from_db_value)
        for i, f in enumerate(fields)
        if hasattr(f, "from_db_value") and i not in json_columns
    ]
    return names, json_columns, others


_EMPTY_JSON = {"[]": list, "{}": dict}


def jobs_from_rows(Job, db: str, rows) -> list[Job]:  # noqa: N803 - the model class
    """Job instances from rows of every concrete column in model order (what the claim
    RETURNs), built the cheap way: a worker builds thousands per second, and
    ``Model.__init__`` plus ``json.loads`` of every empty list/dict cost more than the
    no-op job they describe. Equivalent to ``Model.from_db`` for this model (no deferred
    fields, no post_init receivers)."""
    conn = connections[db]
    names, json_columns, others = _row_plan(Job)
    cheap = not models.signals.post_init.has_listeners(Job)
    jobs = []
    for row in rows:
        values = list(row)
        for i in json_columns:
            value = values[i]
            if value.__class__ is str:  # JSONField.from_db_value, the common cases first
                empty = _EMPTY_JSON.get(value)
                values[i] = empty() if empty is not None else _json_loads(value)
        for i, convert in others:
            values[i] = convert(values[i], None, conn)
        if not cheap:
            jobs.append(Job.from_db(db, names, values))
            continue
        job = Job.__new__(Job)
        job.__dict__.update(zip(names, values, strict=True))
        state = job._state = ModelState()
        state.adding = False
        state.db = db
        jobs.append(job)
    return jobs


def fast_timestamps(conn, cursor) -> None:
    """Let ``cursor`` read ``timestamptz`` with psycopg's own (C) loader where that gives
    what Django's would: Django wraps it in a Python loader that only replaces the
    tzinfo with the connection's, which is already ``UTC`` on a UTC session (the
    default). A claim reads three per job; Django's loader was ~9 % of the executors'
    py-spy samples in a drain."""
    if not uses_psycopg3(conn) or not settings.USE_TZ or conn.timezone is not UTC:
        return
    raw = cursor.cursor
    if raw.connection.info.timezone is not UTC:
        return
    raw.adapters.register_loader("timestamptz", _psycopg_timestamptz_loader())


@functools.cache
def _psycopg_timestamptz_loader():
    # psycopg is imported only where PostgreSQL is used through psycopg 3.
    import psycopg
    from psycopg.pq import Format

    oid = psycopg.postgres.types["timestamptz"].oid
    return psycopg.postgres.adapters.get_loader(oid, Format.TEXT)
