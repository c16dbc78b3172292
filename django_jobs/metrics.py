"""Prometheus metrics (SPEC 10), exposed with prometheus-client (``django-jobs[metrics]``).

Counters and histograms come from the running totals the workers and every other
process write to the ``Rollup`` table (``models/rollup.py``), so every web process shows
the same numbers and they survive restarts and pruning. Gauges are read from the job
tables at scrape time. No label carries a job id, a worker id or arguments; ``queue`` is
the queue a job ran in (a dead-lettered job counts under its original queue).

    from django_jobs.metrics import render
    text = render()           # the text exposition format, as GET /metrics/ serves it
"""

from __future__ import annotations

from collections.abc import Iterator

from django.db.models import Min
from django.utils import timezone
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from .enums import CLAIMABLE_STATUSES
from .models import Job, Schedule, Worker
from .models.counts import job_counts
from .models.job import jobs_db
from .models.rollup import BUCKETS, ENQUEUED, OUTCOMES, RAN, WAITED, Rollup, totals

__all__ = ["CONTENT_TYPE_LATEST", "JobsCollector", "render"]


class JobsCollector:
    """A prometheus-client collector over the job database ``db`` (the default: the job
    tables' alias)."""

    def __init__(self, db: str | None = None):
        self.db = db

    def collect(self) -> Iterator[Metric]:
        db = self.db or jobs_db()
        yield from self._gauges(db)
        yield from self._from_totals(db)

    def _gauges(self, db: str) -> Iterator[Metric]:
        jobs = GaugeMetricFamily(
            "django_jobs_jobs",
            "Jobs in the table, by queue and status.",
            labels=["queue", "status"],
        )
        # Finished jobs on a big PostgreSQL table are estimated (django_jobs.models.counts).
        counts, _ = job_counts(db, by_queue=True)
        for (queue, status), n in sorted(counts.items()):
            jobs.add_metric([queue, status], n)
        yield jobs

        oldest = GaugeMetricFamily(
            "django_jobs_queue_oldest_pending_age_seconds",
            "Seconds the oldest due job of each queue has waited.",
            labels=["queue"],
        )
        now = timezone.now()
        for queue, due in (
            Job.objects.using(db)
            .filter(status__in=CLAIMABLE_STATUSES, scheduled_at__lte=now)
            .order_by()
            .values_list("queue")
            .annotate(due=Min("scheduled_at"))
        ):
            oldest.add_metric([queue], max(0.0, (now - due).total_seconds()))
        yield oldest

        workers = GaugeMetricFamily(
            "django_jobs_workers", "Registered workers, alive or stale.", labels=["state"]
        )
        workers.add_metric(["alive"], Worker.objects.using(db).alive().count())
        # Stale: stopped heartbeating without stopping cleanly (killed, host lost).
        stale = Worker.objects.using(db).dead().filter(stopped_at__isnull=True)
        workers.add_metric(["stale"], stale.count())
        yield workers

        fired = GaugeMetricFamily(
            "django_jobs_schedule_last_fired_timestamp_seconds",
            "When each schedule last fired (Unix seconds).",
            labels=["schedule"],
        )
        for name, last in (
            Schedule.objects.using(db)
            .filter(last_run_at__isnull=False)
            .values_list("name", "last_run_at")
        ):
            if last is not None:  # never: filtered above; for the type checker
                fired.add_metric([name], last.timestamp())
        yield fired

    def _from_totals(self, db: str) -> Iterator[Metric]:
        rows = totals(db)
        enqueued = CounterMetricFamily(
            "django_jobs_jobs_enqueued", "Jobs enqueued, by queue.", labels=["queue"]
        )
        per_queue: dict[str, int] = {}
        finished = CounterMetricFamily(
            "django_jobs_jobs_finished",
            "Attempts ended, by queue, task and outcome (completed, failed for good, "
            "retried, cancelled).",
            labels=["queue", "task", "outcome"],
        )
        duration = HistogramMetricFamily(
            "django_jobs_job_duration_seconds",
            "How long attempts ran, from start to outcome.",
            labels=["queue", "task"],
        )
        waiting = HistogramMetricFamily(
            "django_jobs_job_wait_seconds",
            "How long attempts waited, from due to start.",
            labels=["queue"],
        )
        for row in sorted(rows, key=lambda r: (r.kind, r.queue, r.task)):
            if row.kind == ENQUEUED:
                per_queue[row.queue] = per_queue.get(row.queue, 0) + row.count
            elif row.kind in OUTCOMES:
                finished.add_metric([row.queue, row.task, row.kind], row.count)
            elif row.kind == RAN:
                duration.add_metric([row.queue, row.task], _buckets(row), row.seconds)
            elif row.kind == WAITED:
                waiting.add_metric([row.queue], _buckets(row), row.seconds)
        for queue, n in sorted(per_queue.items()):
            enqueued.add_metric([queue], n)
        yield from (enqueued, finished, duration, waiting)


def _buckets(row: Rollup) -> list[tuple[str, float]]:
    """Cumulative ``(le, count)`` pairs, ``+Inf`` last, from a row's per-bucket counts."""
    cumulative: list[tuple[str, float]] = []
    running = 0
    for bound, n in zip(BUCKETS, row.bucket_counts(), strict=True):
        running += n
        cumulative.append((repr(float(bound)), running))
    cumulative.append(("+Inf", row.count))
    return cumulative


def render(db: str | None = None) -> bytes:
    """The metrics in Prometheus' text exposition format."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(JobsCollector(db))
    return generate_latest(registry)
