"""Rescue of the jobs of dead workers (``execution/rescue.py``, ``jobs.requeue_stuck``)."""

from datetime import timedelta

import pytest
from django.utils import timezone

from django_jobs import JobStatus, jobs
from django_jobs.models import Worker
from django_jobs.testing import run_jobs
from tests.helpers import (
    claim_one,
    fail_for_good,
    live_worker,
    reload,
)
from tests.testapp.tasks import (
    add,
    permanent_failure,
)

pytestmark = pytest.mark.django_db


# -- requeue_stuck -----------------------------------------------------------------------


def test_requeue_stuck_rescues_jobs_of_unknown_workers():
    job = jobs.enqueue(add, args=[1, 2])
    claimed = claim_one("ghost-worker")
    assert claimed.pk == job.pk

    assert jobs.requeue_stuck() == 1
    job = reload(job)
    assert job.status == JobStatus.PENDING
    assert job.worker_id is None
    assert job.attempts == 1
    assert job.errors[-1]["type"] == "WorkerLost"
    assert "ghost-worker" in job.errors[-1]["message"]
    # Nothing left to rescue, and the job runs again.
    assert jobs.requeue_stuck() == 0
    assert run_jobs() == 1
    job = reload(job)
    assert job.status == JobStatus.COMPLETED
    assert job.attempts == 2


def test_requeue_stuck_rescues_jobs_of_stale_and_stopped_workers():
    live_worker("stale", last_heartbeat_at=timezone.now() - timedelta(hours=1))
    live_worker("stopped", stopped_at=timezone.now())
    first = jobs.enqueue(add, args=[1, 2])
    second = jobs.enqueue(add, args=[3, 4])
    assert claim_one("stale").pk == first.pk
    assert claim_one("stopped").pk == second.pk

    assert jobs.requeue_stuck() == 2
    assert {reload(first).status, reload(second).status} == {JobStatus.PENDING}


def test_requeue_stuck_leaves_jobs_of_live_workers():
    live_worker("alive")
    job = jobs.enqueue(add, args=[1, 2])
    claim_one("alive")
    assert jobs.requeue_stuck() == 0
    job = reload(job)
    assert job.status == JobStatus.RUNNING
    assert job.worker_id == "alive"
    assert job.errors == []


def test_requeue_stuck_older_than():
    Worker.objects.create(
        id="slow", hostname="h", pid=1, last_heartbeat_at=timezone.now() - timedelta(minutes=10)
    )
    job = jobs.enqueue(add, args=[1, 2])
    claim_one("slow")
    # With a one-hour allowance the worker still counts as alive.
    assert jobs.requeue_stuck(older_than=timedelta(hours=1)) == 0
    assert reload(job).status == JobStatus.RUNNING
    assert jobs.requeue_stuck(older_than=60) == 1
    assert reload(job).status == JobStatus.PENDING


def test_requeue_stuck_ignores_unheld_jobs():
    fail_for_good(jobs.enqueue(permanent_failure, args=["x"]))
    jobs.enqueue(add, args=[1, 2])
    assert jobs.requeue_stuck() == 0
