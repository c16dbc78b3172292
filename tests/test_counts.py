"""Job counts by status and queue (``models/counts.py``): exact on a small table; on a big
PostgreSQL table, finished groups estimated from the planner's statistics unless small,
unfinished ones always exact. "Big" is lowered here so a few hundred rows qualify."""

import pytest
from django.db import connection
from django.db.models import Count
from django.utils import timezone

from django_jobs import jobs
from django_jobs.metrics import render
from django_jobs.models import Job, counts
from django_jobs.monitoring import get_statistics

pytestmark = pytest.mark.django_db(transaction=True)


def exact():
    rows = Job.objects.order_by().values_list("queue", "status").annotate(n=Count("id"))
    return {(q, s): n for q, s, n in rows}


def make(n, queue, status):
    now = timezone.now()
    finished = status in ("completed", "failed", "cancelled")
    Job.objects.bulk_create(
        Job(
            task_name="tests.testapp.tasks.add",
            queue=queue,
            status=status,
            started_at=now if finished else None,
            finished_at=now if finished else None,
        )
        for _ in range(n)
    )


@pytest.fixture
def table():
    make(400, "bulk", "completed")
    make(150, "bulk", "failed")
    make(3, "rare", "failed")
    make(7, "rare", "pending")
    make(2, "bulk", "running")
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE django_jobs_job")
    return exact()


def test_a_small_table_is_counted_exactly(table):
    shown, estimated = counts.job_counts("default", by_queue=True)
    assert shown == table and estimated is False
    by_status, estimated = counts.job_counts("default", by_queue=False)
    assert by_status == {"completed": 400, "failed": 153, "pending": 7, "running": 2}
    assert estimated is False


@pytest.mark.skipif("connection.vendor != 'postgresql'")
def test_a_big_table_estimates_only_big_finished_groups(table, monkeypatch):
    jobs.pause_queue("rare")  # a declared queue: its groups are looked at
    monkeypatch.setattr(counts, "ESTIMATE_ABOVE", 100)
    monkeypatch.setattr(counts, "EXACT_UP_TO", 50)
    shown, estimated = counts.job_counts("default", by_queue=True)
    assert estimated is True
    # Unfinished groups and small finished ones: exact.
    assert shown[("bulk", "running")] == 2 and shown[("rare", "pending")] == 7
    assert shown[("rare", "failed")] == 3
    assert ("rare", "completed") not in shown and ("bulk", "cancelled") not in shown
    # Big finished groups: the planner's estimate (ANALYZE read every row of this table).
    assert shown[("bulk", "completed")] == pytest.approx(400, rel=0.1)
    assert shown[("bulk", "failed")] == pytest.approx(150, rel=0.1)

    stats = get_statistics()
    assert stats["counts_estimated"] is True
    assert stats["completed_jobs"] == pytest.approx(400, rel=0.1)
    assert stats["pending_jobs"] == 7
    assert 'django_jobs_jobs{queue="rare",status="failed"} 3.0' in render().decode()


def test_statistics_say_when_counts_are_exact(table):
    stats = get_statistics()
    assert stats["counts_estimated"] is False
    assert stats["completed_jobs"] == 400 and stats["failed_jobs"] == 153
    assert stats["total_jobs"] == sum(table.values())
