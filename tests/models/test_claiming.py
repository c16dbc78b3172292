"""Claiming (``models/claiming.py``): order, leases, queues and concurrency limits."""

from datetime import timedelta

import pytest
from django.utils import timezone

from django_jobs import JobStatus, Priority, jobs
from django_jobs.models import Job, Queue
from django_jobs.testing import run_jobs
from tests.helpers import (
    claim_one,
)
from tests.testapp.tasks import (
    add,
    noop,
)

pytestmark = pytest.mark.django_db


# -- claiming ----------------------------------------------------------------------------


def test_claim_sets_running_lease_and_attempt():
    job = jobs.enqueue(add, args=[1, 2])
    claimed = claim_one("w-claim")
    assert claimed.pk == job.pk
    assert claimed.status == JobStatus.RUNNING
    assert claimed.worker_id == "w-claim"
    assert claimed.lease
    assert claimed.attempts == 1
    assert claimed.started_at is not None
    assert Job.objects.claim("w-other", 1) == []


def test_claim_order_priority_then_fifo():
    now = timezone.now()
    early, late = now - timedelta(minutes=10), now - timedelta(minutes=5)
    low = jobs.enqueue(noop, priority="low", scheduled_at=early)
    normal_late = jobs.enqueue(noop, priority="normal", scheduled_at=late)
    normal_early = jobs.enqueue(noop, priority="normal", scheduled_at=early)
    critical = jobs.enqueue(noop, priority="critical", scheduled_at=late)
    high_b = jobs.enqueue(noop, priority="high", scheduled_at=early)
    high_a_first = jobs.enqueue(noop, priority="high", scheduled_at=early)
    high_c = jobs.enqueue(noop, priority=Priority.HIGH, scheduled_at=early)
    lowest = jobs.enqueue(noop, priority=-100, scheduled_at=early - timedelta(days=1))

    order = []
    while (job := claim_one("w1")) is not None:
        order.append(job.pk)
    assert order == [
        critical.pk,
        # Equal priority and scheduled_at: creation order.
        high_b.pk,
        high_a_first.pk,
        high_c.pk,
        normal_early.pk,
        normal_late.pk,
        low.pk,
        lowest.pk,
    ]


def test_claim_batch_is_in_claim_order():
    jobs_in_order = [jobs.enqueue(noop, priority=p) for p in (-50, 0, 50, 100)]
    claimed = Job.objects.claim("w1", 10)
    assert [j.pk for j in claimed] == [j.pk for j in reversed(jobs_in_order)]
    assert {j.worker_id for j in claimed} == {"w1"}


def test_claim_skips_future_jobs():
    jobs.enqueue(noop, delay=3600)
    assert Job.objects.claim("w1", 10) == []


def test_claim_respects_queues_and_excluded_queues():
    a = jobs.enqueue(noop, queue="qa")
    b = jobs.enqueue(noop, queue="qb")
    assert [j.pk for j in Job.objects.claim("w1", 10, exclude_queues=["qa"])] == [b.pk]
    assert [j.pk for j in Job.objects.claim("w1", 10, queues=["qa"])] == [a.pk]


def test_claim_respects_queue_concurrency_limit():
    Queue.objects.create(name="limited", concurrency_limit=2)
    limited = [jobs.enqueue(noop, queue="limited") for _ in range(4)]
    free = [jobs.enqueue(noop, queue="free") for _ in range(3)]

    claimed = Job.objects.claim("w1", 10)
    by_queue = {}
    for job in claimed:
        by_queue.setdefault(job.queue, []).append(job.pk)
    assert len(by_queue["limited"]) == 2
    assert sorted(by_queue["free"]) == sorted(j.pk for j in free)
    assert Job.objects.claim("w2", 10) == []

    # Finishing one frees one slot, across workers.
    running = Job.objects.get(pk=by_queue["limited"][0])
    assert running.set_completed(None)
    again = Job.objects.claim("w2", 10)
    assert len(again) == 1
    assert again[0].queue == "limited"
    assert Job.objects.held().filter(queue="limited").count() == 2
    assert Job.objects.filter(pk__in=[j.pk for j in limited], status=JobStatus.PENDING).count() == 1


def test_run_jobs_respects_concurrency_limit_of_one():
    Queue.objects.create(name="serial", concurrency_limit=1)
    for i in range(3):
        jobs.enqueue(add, args=[i, i], queue="serial")
    assert run_jobs() == 3
    assert Job.objects.filter(status=JobStatus.COMPLETED).count() == 3
