"""``DJANGO_JOBS = {"EAGER": True}``: jobs run inline at enqueue (SPEC section 12)."""

import pytest

from django_jobs import JobStatus, jobs
from django_jobs._compat import TaskResultStatus
from django_jobs.models import Job
from django_jobs.signals import job_completed
from django_jobs.testing import run_jobs
from tests.testapp.models import Execution
from tests.testapp.tasks import (
    add,
    always_transient,
    async_add,
    django_task_add,
    django_task_fail,
    flaky_until,
    permanent_failure,
    progress_steps,
    record_label,
    report_current_job,
)

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def eager(settings):
    settings.DJANGO_JOBS = {**settings.DJANGO_JOBS, "EAGER": True}


def test_enqueue_runs_the_job_inline():
    job = jobs.enqueue(add, args=[2, 3])
    # The returned instance already describes the outcome.
    assert job.status == JobStatus.COMPLETED
    assert job.result == 5
    row = Job.objects.get(pk=job.pk)
    assert row.status == JobStatus.COMPLETED
    assert row.result == 5
    assert row.attempts == 1
    assert row.started_at is not None
    assert row.finished_at is not None
    # Nothing is left for a worker.
    assert run_jobs() == 0


def test_enqueue_by_name_runs_inline():
    job = jobs.enqueue("tests.testapp.tasks.record_label", args=["eager"])
    assert job.status == JobStatus.COMPLETED
    assert job.result == "eager"
    execution = Execution.objects.get()
    assert execution.label == "eager"
    assert execution.job_id == job.pk


def test_failing_job_fails_without_retries():
    job = jobs.enqueue(permanent_failure, args=["p"])
    assert job.status == JobStatus.FAILED
    row = Job.objects.get(pk=job.pk)
    assert row.status == JobStatus.FAILED
    assert row.error["type"] == "ValueError"
    assert row.attempts == 1
    assert len(row.errors) == 1


def test_transient_failure_is_not_retried():
    job = jobs.enqueue(always_transient, args=["t"])
    row = Job.objects.get(pk=job.pk)
    assert row.status == JobStatus.FAILED
    assert row.retry_count == 0
    assert row.attempts == 1
    assert row.error["type"] == "TimeoutError"
    assert Execution.objects.count() == 1
    assert run_jobs() == 0


def test_flaky_job_is_not_retried():
    job = jobs.enqueue(flaky_until, args=["f", 2])
    assert Job.objects.get(pk=job.pk).status == JobStatus.FAILED
    assert Execution.objects.count() == 1


def test_failure_does_not_raise_into_the_caller():
    # Errors are recorded on the job, as a worker would; enqueue itself succeeds.
    job = jobs.enqueue(permanent_failure, args=["quiet"])
    assert job.pk is not None


def test_validation_still_raises():
    with pytest.raises(TypeError):
        jobs.enqueue(add, args=[object()])
    assert Job.objects.count() == 0


def test_eager_async_task():
    job = jobs.enqueue(async_add, args=[1, 2])
    assert job.status == JobStatus.COMPLETED
    assert job.result == 3


def test_eager_current_job_and_progress():
    job = jobs.enqueue(report_current_job)
    assert job.result["id"] == job.pk
    steps = jobs.enqueue(progress_steps, args=["s"], kwargs={"steps": 2, "pause": 0})
    row = Job.objects.get(pk=steps.pk)
    assert row.status == JobStatus.COMPLETED
    assert row.progress == 1.0
    assert row.progress_message == "step 2/2"


def test_eager_sends_signals():
    calls = []

    def receiver(sender, job, **kwargs):
        calls.append(job.pk)

    job_completed.connect(receiver)
    try:
        job = jobs.enqueue(record_label, args=["sig"])
    finally:
        job_completed.disconnect(receiver)
    assert calls == [job.pk]


def test_django_tasks_enqueue_runs_eagerly():
    result = django_task_add.enqueue(2, 3)
    assert result.status == TaskResultStatus.SUCCESSFUL
    assert result.return_value == 5
    job = Job.objects.get(pk=int(result.id))
    assert job.status == JobStatus.COMPLETED
    assert job.result == 5
    refreshed = django_task_add.get_result(result.id)
    assert refreshed.status == TaskResultStatus.SUCCESSFUL
    assert refreshed.return_value == 5


def test_django_tasks_enqueue_of_a_job_task_runs_eagerly():
    result = add.enqueue(4, 5)
    assert result.status == TaskResultStatus.SUCCESSFUL
    assert result.return_value == 9


def test_django_tasks_failure_eagerly():
    result = django_task_fail.enqueue()
    assert result.status == TaskResultStatus.FAILED
    assert len(result.errors) == 1
    assert result.errors[0].exception_class_path.endswith("ValueError")
    assert Job.objects.get(pk=int(result.id)).status == JobStatus.FAILED


def test_not_eager_by_default(settings):
    settings.DJANGO_JOBS = {**settings.DJANGO_JOBS, "EAGER": False}
    job = jobs.enqueue(add, args=[1, 2])
    assert job.status == JobStatus.PENDING
    assert run_jobs() == 1
