"""Statistics shared by the admin and the CLI."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.db.models import Avg, Count, F, Min, Q
from django.utils import timezone

from .models import Job, JobStatus, Priority, Worker
from .models.counts import job_counts


def get_statistics(db: str = "default") -> dict[str, Any]:
    """Counts by status, priority and queue, throughput, failure rate, durations."""
    qs = Job.objects.using(db)
    # Finished jobs on a big PostgreSQL table are estimated (django_jobs.models.counts).
    by_status, estimated = job_counts(db, by_queue=False)
    count = lambda *statuses: sum(by_status.get(s, 0) for s in statuses)  # noqa: E731

    by_priority = {"critical": 0, "high": 0, "normal": 0, "low": 0}
    claimable = qs.claimable()
    for priority, n in claimable.values_list("priority").annotate(n=Count("id")).order_by():
        by_priority[Priority.label_for(priority)] += n
    by_queue = dict(claimable.values_list("queue").annotate(n=Count("id")).order_by())

    now = timezone.now()
    last_hour = qs.filter(finished_at__gte=now - timedelta(hours=1))
    recent = last_hour.aggregate(
        done=Count("id", filter=Q(status=JobStatus.COMPLETED)),
        failed=Count("id", filter=Q(status=JobStatus.FAILED)),
        avg=Avg(F("finished_at") - F("started_at"), filter=Q(status=JobStatus.COMPLETED)),
    )
    last_minute = qs.filter(
        finished_at__gte=now - timedelta(minutes=1), status=JobStatus.COMPLETED
    ).count()
    finished = recent["done"] + recent["failed"]
    oldest = claimable.filter(scheduled_at__lte=now).aggregate(t=Min("scheduled_at"))["t"]
    avg = recent["avg"]
    if isinstance(avg, timedelta):
        avg_seconds = avg.total_seconds()
    elif avg is not None:  # some backends return microseconds
        avg_seconds = float(avg) / 1e6
    else:
        avg_seconds = None
    return {
        "total_jobs": sum(by_status.values()),
        "waiting_jobs": count(JobStatus.WAITING),
        "pending_jobs": count(JobStatus.PENDING),
        "reserved_jobs": count(JobStatus.RESERVED),
        "running_jobs": count(JobStatus.RUNNING, JobStatus.RESERVED),
        "completed_jobs": count(JobStatus.COMPLETED),
        "failed_jobs": count(JobStatus.FAILED),
        "retry_jobs": count(JobStatus.RETRYING),
        "cancelled_jobs": count(JobStatus.CANCELLED),
        "by_status": {s.value: by_status.get(s.value, 0) for s in JobStatus},
        "by_priority": by_priority,
        "by_queue": by_queue,
        "throughput_per_minute": last_minute,
        "completed_last_hour": recent["done"],
        "failed_last_hour": recent["failed"],
        "failure_rate": (recent["failed"] / finished) if finished else 0.0,
        "avg_duration_seconds": avg_seconds,
        "oldest_pending_age_seconds": (now - oldest).total_seconds() if oldest else None,
        "workers": Worker.objects.using(db).alive().count(),
        "counts_estimated": estimated,
    }
