"""What the admin dashboard shows, computed once for everyone watching.

The numbers come from places that stay cheap on a table of ten million jobs and survive
pruning and restarts: job counts from :mod:`django_jobs.models.counts` (exact for
unfinished jobs, estimated for big groups of finished ones on PostgreSQL), throughput,
failures and run/wait-time percentiles from the rollup rows the workers write every few
seconds (:mod:`django_jobs.models.rollup`), queues from ``with_counts``, workers from their
heartbeats. A snapshot is cached for :data:`CACHE_SECONDS` in Django's default cache, so
every open dashboard (each refreshing every :data:`REFRESH_SECONDS`) costs one set of
queries per interval, per process with the default local-memory cache and for the whole
site with a shared one.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from django.core.cache import cache
from django.db.models import Count, Sum

from .enums import JobStatus
from .models import Job, Queue, Worker
from .models.counts import job_counts
from .models.job import jobs_db
from .models.queue_counts import with_counts
from .models.rollup import (
    BUCKET_FIELDS,
    BUCKETS,
    CANCELLED,
    COMPLETED,
    FAILED,
    MINUTE,
    OUTCOMES,
    RAN,
    RETRIED,
    WAITED,
    Rollup,
    per_minute,
    rollups,
)

REFRESH_SECONDS = 5  # how often an open dashboard asks again
CACHE_SECONDS = 2  # how long one snapshot serves every dashboard
PERCENTILES = (0.5, 0.95, 0.99)
MAX_WORKERS_SHOWN = 50


def dashboard(db: str | None = None) -> dict[str, Any]:
    """The dashboard's numbers, from the cache when a snapshot is fresh enough."""
    db = db or jobs_db()
    key = f"django_jobs:dashboard:{db}"
    found = cache.get(key)
    if found is None:
        found = snapshot(db)
        cache.set(key, found, CACHE_SECONDS)
    return found


def snapshot(db: str, now: datetime | None = None) -> dict[str, Any]:
    """Every number on the dashboard, read now."""
    rollups.flush()  # what this process counted is in the charts too
    now = now or datetime.now(UTC)
    counts, estimated = job_counts(db, by_queue=True)
    by_status: dict[str, int] = {}
    for (_, status), n in counts.items():
        by_status[status] = by_status.get(status, 0) + n
    minutes = _minutes(db, now)
    hours = _hours(db, now)
    last_hour = {kind: sum(m[kind] for m in minutes) for kind in OUTCOMES}
    ended = last_hour[COMPLETED] + last_hour[FAILED]
    return {
        "generated_at": now,
        "estimated": estimated,
        "statuses": [
            {"status": s.value, "label": str(s.label), "count": by_status.get(s.value, 0)}
            for s in JobStatus
        ],
        "total": sum(by_status.values()),
        "last_hour": {
            **last_hour,
            "per_minute": round(last_hour[COMPLETED] / 60, 1),
            "failure_rate": (last_hour[FAILED] / ended) if ended else 0.0,
        },
        "minutes": minutes,
        "hours": hours,
        "queues": _queues(db, counts, now),
        "workers": _workers(db, now),
    }


def _outcome_series(db: str, since: datetime) -> dict[datetime, dict[str, int]]:
    found: dict[datetime, dict[str, int]] = {}
    for (_, kind, minute), n in per_minute(db, since, by_queue=False).items():
        found.setdefault(minute, {})[kind] = n
    return found


def _minutes(db: str, now: datetime) -> list[dict[str, Any]]:
    """Outcomes per minute over the last hour, oldest first, the current minute last."""
    current = now.replace(second=0, microsecond=0)
    start = current - timedelta(minutes=59)
    found = _outcome_series(db, start)
    return [_slot(start + timedelta(minutes=i), found) for i in range(60)]


def _hours(db: str, now: datetime) -> list[dict[str, Any]]:
    """Outcomes per hour over the last day (summed from minute rows, which are kept for
    26 hours), oldest first, the current hour last."""
    current = now.replace(minute=0, second=0, microsecond=0)
    start = current - timedelta(hours=23)
    by_hour: dict[datetime, dict[str, int]] = {}
    for period, kinds in _outcome_series(db, start).items():
        hour = by_hour.setdefault(period.replace(minute=0), {})
        for kind, n in kinds.items():
            hour[kind] = hour.get(kind, 0) + n
    return [_slot(start + timedelta(hours=i), by_hour) for i in range(24)]


def _slot(period: datetime, found: dict[datetime, dict[str, int]]) -> dict[str, Any]:
    kinds = found.get(period, {})
    return {"period": period, **{kind: kinds.get(kind, 0) for kind in OUTCOMES}}


def _queues(db: str, counts: dict, now: datetime) -> list[dict[str, Any]]:
    """Each queue: counts, oldest pending age, outcomes and run/wait percentiles over the
    last hour."""
    since = now.replace(second=0, microsecond=0) - timedelta(minutes=59)
    timed = (
        Rollup.objects.using(db)
        .filter(resolution=MINUTE, period__gte=since, kind__in=(RAN, WAITED, *OUTCOMES))
        .values_list("queue", "kind")
        .annotate(n=Sum("count"), **{f"sum_{name}": Sum(name) for name in BUCKET_FIELDS})
        .order_by()
    )
    hour: dict[tuple[str, str], tuple[int, list[int]]] = {}
    for queue, kind, n, *buckets in timed:
        hour[(queue, kind)] = (int(n or 0), [int(b or 0) for b in buckets])
    shown = []
    queues: Any = with_counts(Queue.objects.using(db).all()).order_by("name")  # annotated
    for queue in queues:
        oldest = queue.oldest_due
        shown.append(
            {
                "name": queue.name,
                "paused": queue.paused,
                "concurrency_limit": queue.concurrency_limit,
                "pending": queue.pending,
                "running": queue.running,
                "failed": queue.failed,
                "completed": counts.get((queue.name, JobStatus.COMPLETED.value), 0),
                "oldest_pending_seconds": (
                    max(0.0, (now - oldest).total_seconds()) if oldest else None
                ),
                "completed_last_hour": hour.get((queue.name, COMPLETED), (0, []))[0],
                "failed_last_hour": hour.get((queue.name, FAILED), (0, []))[0],
                "retried_last_hour": hour.get((queue.name, RETRIED), (0, []))[0],
                "cancelled_last_hour": hour.get((queue.name, CANCELLED), (0, []))[0],
                "run": _percentiles(*hour.get((queue.name, RAN), (0, []))),
                "wait": _percentiles(*hour.get((queue.name, WAITED), (0, []))),
            }
        )
    return shown


def _percentiles(count: int, buckets: list[int]) -> dict[str, float | None]:
    """p50/p95/p99 from histogram buckets, interpolated inside the bucket (as Prometheus'
    ``histogram_quantile``); the open last bucket reports its lower bound."""
    observed = sum(buckets)
    shown: dict[str, float | None] = {}
    for q in PERCENTILES:
        name = f"p{round(q * 100)}"
        if not observed:
            shown[name] = None
            continue
        rank = q * observed
        cumulative = 0
        value: float | None = None
        for index, n in enumerate(buckets):
            if cumulative + n >= rank and n:
                lower = BUCKETS[index - 1] if index else 0.0
                upper = BUCKETS[index] if index < len(BUCKETS) else lower
                value = lower + (upper - lower) * ((rank - cumulative) / n)
                break
            cumulative += n
        if value is None:  # above every bound: the last one is all that is known
            value = BUCKETS[-1]
        shown[name] = value
    return shown


def _workers(db: str, now: datetime) -> dict[str, Any]:
    alive = list(Worker.objects.using(db).alive().order_by("hostname", "pid")[:MAX_WORKERS_SHOWN])
    held = dict(
        Job.objects.using(db)
        .held()
        .filter(worker_id__in=[w.pk for w in alive])
        .order_by()
        .values_list("worker_id")
        .annotate(n=Count("id"))
    )
    stale = Worker.objects.using(db).dead().filter(stopped_at__isnull=True).count()
    return {
        "alive": [
            {
                "id": w.pk,
                "hostname": w.hostname,
                "pid": w.pid,
                "queues": w.queues or ["*"],
                "concurrency": w.concurrency,
                "running": held.get(w.pk, 0),
                "processed": w.jobs_processed,
                "heartbeat_seconds": max(0.0, (now - w.last_heartbeat_at).total_seconds()),
            }
            for w in alive
        ],
        "alive_count": Worker.objects.using(db).alive().count(),
        "stale_count": stale,
    }
