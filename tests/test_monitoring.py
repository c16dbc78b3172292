"""Statistics (``monitoring.py``, ``jobs.statistics``; SPEC 5.8)."""

from datetime import timedelta

import pytest
from django.utils import timezone

from django_jobs import JobStatus, jobs
from django_jobs.models import Job, Worker
from django_jobs.testing import run_jobs
from tests.helpers import (
    DLQ,
    claim_one,
    live_worker,
)
from tests.testapp.tasks import (
    add,
    noop,
    permanent_failure,
)

pytestmark = pytest.mark.django_db


# -- statistics --------------------------------------------------------------------------


def test_statistics_keys():
    stats = jobs.get_statistics()
    for key in [
        "total_jobs",
        "pending_jobs",
        "running_jobs",
        "completed_jobs",
        "failed_jobs",
        "retry_jobs",
        "cancelled_jobs",
        "by_priority",
        "by_queue",
        "throughput_per_minute",
        "failure_rate",
        "avg_duration_seconds",
        "oldest_pending_age_seconds",
        "workers",
    ]:
        assert key in stats, key
    assert set(stats["by_priority"]) == {"critical", "high", "normal", "low"}
    assert stats["total_jobs"] == 0
    assert stats["failure_rate"] == 0.0
    assert stats["oldest_pending_age_seconds"] is None


def test_statistics_counts():
    now = timezone.now()
    jobs.enqueue(noop, priority="critical", queue="s1", scheduled_at=now - timedelta(seconds=120))
    jobs.enqueue(noop, priority="high", queue="s1")
    jobs.enqueue(noop, priority="low", queue="s2")
    jobs.enqueue(noop, priority=10, queue="s2", delay=3600)
    running = jobs.enqueue(noop, priority=-100, queue="s3", scheduled_at=now - timedelta(days=1))
    assert claim_one("w1").pk != running.pk  # the critical one
    Job.objects.filter(pk=running.pk).update(status=JobStatus.RUNNING, worker_id="w9")
    for seconds in (2, 4):
        Job.objects.create(
            task_name="x",
            status=JobStatus.COMPLETED,
            started_at=now - timedelta(seconds=seconds + 5),
            finished_at=now - timedelta(seconds=5),
        )
    Job.objects.create(
        task_name="x",
        status=JobStatus.FAILED,
        queue=DLQ,
        started_at=now - timedelta(seconds=30),
        finished_at=now - timedelta(seconds=20),
    )
    Job.objects.create(
        task_name="x",
        status=JobStatus.FAILED,
        queue=DLQ,
        started_at=now - timedelta(days=2),
        finished_at=now - timedelta(days=2),
    )
    Job.objects.create(
        task_name="x",
        status=JobStatus.RETRYING,
        queue="s2",
        priority=60,
        scheduled_at=now + timedelta(hours=1),
    )
    Job.objects.create(task_name="x", status=JobStatus.CANCELLED, finished_at=now)
    live_worker("alive-1")
    live_worker("alive-2")
    Worker.objects.create(
        id="dead", hostname="h", pid=1, last_heartbeat_at=now - timedelta(hours=1)
    )
    live_worker("stopped", stopped_at=now)

    stats = jobs.get_statistics()
    assert stats["total_jobs"] == 11
    assert stats["pending_jobs"] == 3  # high, low, delayed
    assert stats["running_jobs"] == 2
    assert stats["completed_jobs"] == 2
    assert stats["failed_jobs"] == 2
    assert stats["retry_jobs"] == 1
    assert stats["cancelled_jobs"] == 1
    # Priorities and queues of jobs waiting to run (pending or awaiting a retry).
    assert stats["by_priority"] == {"critical": 0, "high": 2, "normal": 1, "low": 1}
    assert stats["by_queue"] == {"s1": 1, "s2": 3}
    assert stats["throughput_per_minute"] == 2
    assert stats["failure_rate"] == pytest.approx(1 / 3)
    assert stats["avg_duration_seconds"] == pytest.approx(3.0, abs=0.01)
    assert stats["workers"] == 2
    # The oldest due pending job is the "high" one enqueued just now.
    assert 0 <= stats["oldest_pending_age_seconds"] < 60


def test_statistics_oldest_pending_age():
    jobs.enqueue(noop, scheduled_at=timezone.now() - timedelta(seconds=300))
    jobs.enqueue(noop)
    age = jobs.get_statistics()["oldest_pending_age_seconds"]
    assert 299 <= age < 360


def test_statistics_after_run_jobs():
    for i in range(3):
        jobs.enqueue(add, args=[i, i])
    jobs.enqueue(permanent_failure, args=["s"])
    run_jobs()
    stats = jobs.get_statistics()
    assert stats["completed_jobs"] == 3
    assert stats["failed_jobs"] == 1
    assert stats["pending_jobs"] == 0
    assert stats["failure_rate"] == pytest.approx(0.25)
    assert stats["throughput_per_minute"] == 3
    assert stats["avg_duration_seconds"] is not None
    assert stats["avg_duration_seconds"] >= 0
