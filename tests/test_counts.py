"""Job counts by status and queue (``models/counts.py``): exact on a small table; on a big
PostgreSQL table, finished groups estimated from the planner's statistics unless small,
unfinished ones always exact. "Big" is lowered here so a few hundred rows qualify."""

from collections import Counter

import pytest
from django.db import connection
from django.utils import timezone

from django_jobs import jobs
from django_jobs.metrics import render
from django_jobs.models import Job, Queue, counts
from django_jobs.models.queue_counts import with_counts
from django_jobs.monitoring import get_statistics

pytestmark = pytest.mark.django_db(transaction=True)


DLQ = "dead-letter"


def exact():
    """By the queue a job ran in, counted row by row in Python."""
    found = Counter(
        (original or queue, status)
        for queue, original, status in Job.objects.values_list("queue", "original_queue", "status")
    )
    return dict(found)


def make(n, queue, status):
    now = timezone.now()
    finished = status in ("completed", "failed", "cancelled")
    dead = status == "failed" and queue != DLQ  # failed for good: moved, origin kept
    Job.objects.bulk_create(
        Job(
            task_name="tests.testapp.tasks.add",
            queue=DLQ if dead else queue,
            original_queue=queue if dead else "",
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
    make(2, DLQ, "failed")  # a job that failed again after being retried in the DLQ
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE django_jobs_job")
    return exact()


def test_a_small_table_is_counted_exactly(table):
    shown, estimated = counts.job_counts("default", by_queue=True)
    assert shown == table and estimated is False
    assert table[("bulk", "failed")] == 150 and table[(DLQ, "failed")] == 2
    by_status, estimated = counts.job_counts("default", by_queue=False)
    assert by_status == {"completed": 400, "failed": 155, "pending": 7, "running": 2}
    assert estimated is False
    assert counts.failed_by_queue("default") == ({"bulk": 150, "rare": 3, DLQ: 2}, False)


@pytest.mark.skipif("connection.vendor != 'postgresql'")
def test_a_big_table_estimates_only_big_finished_groups(table, monkeypatch):
    jobs.pause_queue("rare")  # a declared queue: its groups are looked at
    monkeypatch.setattr(counts, "ESTIMATE_ABOVE", 100)
    monkeypatch.setattr(counts, "EXACT_UP_TO", 50)
    shown, estimated = counts.job_counts("default", by_queue=True)
    assert estimated is True
    # Unfinished groups and small finished ones: exact.
    assert shown[("bulk", "running")] == 2 and shown[("rare", "pending")] == 7
    assert shown[("rare", "failed")] == 3 and shown[(DLQ, "failed")] == 2
    assert ("rare", "completed") not in shown and ("bulk", "cancelled") not in shown
    # Big finished groups: the planner's estimate (ANALYZE read every row of this table).
    assert shown[("bulk", "completed")] == pytest.approx(400, rel=0.1)
    assert shown[("bulk", "failed")] == pytest.approx(150, rel=0.1)

    stats = get_statistics()
    assert stats["counts_estimated"] is True
    assert stats["completed_jobs"] == pytest.approx(400, rel=0.1)
    assert stats["pending_jobs"] == 7
    assert 'django_jobs_jobs{queue="rare",status="failed"} 3.0' in render().decode()
    # The queue list (admin, API) shows the same failed counts, in one constant each.
    Queue.objects.get_or_create(name="bulk")
    failed = dict(with_counts(Queue.objects.all()).values_list("name", "failed"))
    assert failed["rare"] == 3 and failed["bulk"] == pytest.approx(150, rel=0.1)


def test_statistics_say_when_counts_are_exact(table):
    stats = get_statistics()
    assert stats["counts_estimated"] is False
    assert stats["completed_jobs"] == 400 and stats["failed_jobs"] == 155
    for name in ("bulk", "rare", DLQ):
        Queue.objects.get_or_create(name=name)
    failed = dict(with_counts(Queue.objects.all()).values_list("name", "failed"))
    assert failed == {"bulk": 150, "rare": 3, DLQ: 2}
    assert stats["total_jobs"] == sum(table.values())


@pytest.mark.skipif("connection.vendor != 'postgresql'")
def test_failure_groups_on_a_big_table_walk_the_index(monkeypatch):
    from django_jobs.errorgroups import error_group

    now = timezone.now()
    causes = {"ValueError: bad <n>": 60, "KeyError: 'k<n>'": 3}
    for group, n in causes.items():
        Job.objects.bulk_create(
            Job(task_name=f"t.{i % 2}", status="failed", error_group=group, finished_at=now)
            for i in range(n)
        )
    make(100, "bulk", "completed")
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE django_jobs_job")
    small, estimated = counts.failure_groups(Job.objects.all())
    assert estimated is False
    assert [(g["group"], g["count"]) for g in small] == list(causes.items())
    monkeypatch.setattr(counts, "ESTIMATE_ABOVE", 50)
    monkeypatch.setattr(counts, "EXACT_UP_TO", 20)
    big, estimated = counts.failure_groups(Job.objects.all())
    assert estimated is True
    assert [g["group"] for g in big] == list(causes)
    assert big[0]["count"] == pytest.approx(60, rel=0.2) and big[1]["count"] == 3
    assert big[0]["tasks"].keys() == {"t.0", "t.1"} and big[0]["last_seen"] == now
    # A filtered QuerySet: the pairs of the other task are left out, not shown empty.
    only, _ = counts.failure_groups(Job.objects.filter(task_name="t.1"))
    assert all(g["tasks"].keys() == {"t.1"} and g["count"] > 0 for g in only)
    assert error_group({"type": "KeyError", "message": "'k7'"}) == "KeyError: 'k<n>'"
