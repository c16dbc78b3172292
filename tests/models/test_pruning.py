"""Pruning finished jobs (``models/pruning.py``, ``jobs.prune``)."""

from datetime import timedelta

import pytest

from django_jobs import JobStatus, jobs
from django_jobs.models import Job
from tests.helpers import finished_job
from tests.testapp.tasks import (
    noop,
)

pytestmark = pytest.mark.django_db


# -- prune -------------------------------------------------------------------------------


def test_prune_by_age():
    old = finished_job(JobStatus.COMPLETED, timedelta(days=8))
    recent = finished_job(JobStatus.COMPLETED, timedelta(days=1))
    old_failed = finished_job(JobStatus.FAILED, timedelta(days=30))
    old_cancelled = finished_job(JobStatus.CANCELLED, timedelta(days=10))
    pending = jobs.enqueue(noop)

    assert jobs.prune() == 3
    remaining = set(Job.objects.values_list("pk", flat=True))
    assert remaining == {recent.pk, pending.pk}
    assert not {old.pk, old_failed.pk, old_cancelled.pk} & remaining


def test_prune_older_than():
    finished_job(JobStatus.COMPLETED, timedelta(hours=3))
    keep = finished_job(JobStatus.COMPLETED, timedelta(minutes=30))
    assert jobs.prune(older_than=timedelta(hours=1)) == 1
    assert jobs.prune(older_than=3600) == 0
    assert list(Job.objects.values_list("pk", flat=True)) == [keep.pk]


def test_prune_by_status():
    completed = finished_job(JobStatus.COMPLETED, timedelta(days=8))
    failed = finished_job(JobStatus.FAILED, timedelta(days=8))
    cancelled = finished_job(JobStatus.CANCELLED, timedelta(days=8))
    assert jobs.prune(statuses=["failed"]) == 1
    assert set(Job.objects.values_list("pk", flat=True)) == {completed.pk, cancelled.pk}
    assert jobs.prune(statuses=("completed", "cancelled")) == 2
    assert Job.objects.count() == 0
    assert failed.pk  # deleted above


def test_prune_never_touches_unfinished_jobs():
    for status in (JobStatus.PENDING, JobStatus.RUNNING, JobStatus.RETRYING):
        finished_job(status, timedelta(days=30))
    assert jobs.prune() == 0
    with pytest.raises(ValueError):
        jobs.prune(statuses=["pending"])
    with pytest.raises(ValueError):
        jobs.prune(statuses=["completed", "running"])
    assert Job.objects.count() == 3
