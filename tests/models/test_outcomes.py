"""Batched completion (``models/outcomes.py``, ``Job.objects.complete_many``) and the
edges batched claiming creates: a lost lease is never overwritten, a dependant that
appears after the claim is released, batches count each job once."""

import pytest
from django.utils import timezone

from django_jobs import JobStatus, jobs
from django_jobs.execution.runner import record_completed
from django_jobs.models import Batch, Job
from django_jobs.testing import run_jobs
from tests.testapp import tasks

pytestmark = pytest.mark.django_db(transaction=True)


def _claim_all(worker_id, n):
    claimed = Job.objects.claim(worker_id, n)
    for job in claimed:
        job.started_at = timezone.now()
    return claimed


def test_batched_completion_skips_a_lost_lease_and_writes_the_rest():
    a, b, c = (jobs.enqueue(tasks.add, args=[i, i]) for i in range(3))
    claimed = _claim_all("w1", 3)
    assert {j.pk for j in claimed} == {a.pk, b.pk, c.pk}
    # b's worker was declared dead and another worker claimed it before our flush.
    Job.objects.filter(pk=b.pk).update(status=JobStatus.PENDING, lease=None, worker_id=None)
    assert [j.pk for j in Job.objects.claim("w2", 1)] == [b.pk]

    written = Job.objects.complete_many([(j, j.args[0] * 2) for j in claimed])

    assert written == {a.pk, c.pk}
    b.refresh_from_db()
    assert b.status == JobStatus.RUNNING and b.worker_id == "w2" and b.result is None
    for job, expected in ((a, 0), (c, 4)):
        job.refresh_from_db()
        assert job.status == JobStatus.COMPLETED and job.result == expected
        assert job.lease is None and job.worker_ids == ["w1"] and job.progress == 1.0
        assert job.started_at <= job.finished_at


def test_batched_completion_leaves_a_job_that_gained_a_dependant_to_the_locked_path():
    first = jobs.enqueue(tasks.add, args=[1, 1])
    (claimed,) = _claim_all("w1", 1)
    # Enqueued after the claim: the claimed instance still says has_dependents=False.
    dependant = jobs.enqueue(tasks.add, args=[2, 2], depends_on=[first])
    assert dependant.status == JobStatus.WAITING

    assert Job.objects.complete_many([(claimed, 2)]) == set()
    assert Job.objects.get(pk=first.pk).status == JobStatus.RUNNING
    # What the executor does with a job the batch did not take: the single-job path.
    assert record_completed(claimed, 2)
    assert Job.objects.get(pk=first.pk).status == JobStatus.COMPLETED
    assert Job.objects.get(pk=dependant.pk).status == JobStatus.PENDING


def test_batched_completion_counts_each_batch_job_once_and_finishes_the_batch():
    batch = jobs.enqueue_batch(
        tasks.add, items=[{"a": i, "b": i} for i in range(4)], on_complete=tasks.noop
    )
    claimed = _claim_all("w1", 10)
    assert len(claimed) == 4
    assert Job.objects.complete_many([(j, 0) for j in claimed[:3]]) == {j.pk for j in claimed[:3]}
    batch = Batch.objects.get(pk=batch.pk)
    assert batch.completed == 3 and batch.finished_at is None
    # Written twice (a retried flush): the lease guard makes the second a no-op.
    assert Job.objects.complete_many([(claimed[0], 0)]) == set()
    assert Job.objects.complete_many([(claimed[3], 0)]) == {claimed[3].pk}
    batch = Batch.objects.get(pk=batch.pk)
    assert batch.completed == 4 and batch.finished_at is not None
    assert Job.objects.filter(task_name=tasks.noop.name).count() == 1


def test_a_result_the_database_cannot_store_fails_the_job_and_never_blocks_it():
    # PostgreSQL refuses NUL characters in JSON: found before the write, on every database,
    # so the job fails clearly instead of staying held by a write that can never land.
    nul = jobs.enqueue(tasks.returns_nul)
    fine = jobs.enqueue(tasks.add, args=[1, 2])
    assert run_jobs() == 2
    nul.refresh_from_db()
    assert nul.status == JobStatus.FAILED and nul.error["type"] == "TypeError"
    assert "NUL" in nul.error["message"]
    assert Job.objects.get(pk=fine.pk).result == 3
