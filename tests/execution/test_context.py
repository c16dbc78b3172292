"""Inside a running job (``execution/context.py``): progress, ``current_job``, signals
(SPEC 6)."""

import pytest

from django_jobs import JobStatus, current_job, jobs
from django_jobs.signals import (
    job_completed,
    job_failed,
    job_progress,
)
from django_jobs.testing import run_jobs
from tests.helpers import (
    receiver_of,
    reload,
)
from tests.testapp.tasks import (
    add,
    async_add,
    async_report_current_job,
    permanent_failure,
    progress_steps,
    progress_then_read,
    report_current_job,
)

pytestmark = pytest.mark.django_db


# -- inside a running job ----------------------------------------------------------------


def test_progress_callback_updates_job():
    job = jobs.enqueue(progress_steps, args=["p"], kwargs={"steps": 4, "pause": 0})
    with receiver_of(job_progress) as calls:
        assert run_jobs() == 1
    job = reload(job)
    assert job.status == JobStatus.COMPLETED
    assert [c["progress"] for c in calls] == [0.25, 0.5, 0.75, 1.0]
    assert [c["message"] for c in calls][-1] == "step 4/4"
    assert calls[0]["details"] == {"step": 1}
    assert job.progress == 1.0
    assert job.progress_message == "step 4/4"
    assert job.progress_details == {"step": 4}


def test_progress_is_written_to_the_database_while_running():
    job = jobs.enqueue(progress_then_read)
    run_jobs()
    job = reload(job)
    assert job.status == JobStatus.COMPLETED
    assert job.result == [0.25, "a quarter", {"item": "a"}]


def test_progress_is_throttled(settings):
    settings.DJANGO_JOBS = {**settings.DJANGO_JOBS, "PROGRESS_THROTTLE": 3600}
    job = jobs.enqueue(progress_steps, args=["p"], kwargs={"steps": 5, "pause": 0})
    with receiver_of(job_progress) as calls:
        run_jobs()
    # The final 100% always gets through; the writes in between are dropped.
    progresses = [c["progress"] for c in calls]
    assert progresses[-1] == 1.0
    assert len(progresses) <= 2
    assert reload(job).status == JobStatus.COMPLETED


def test_progress_outside_a_job_does_nothing():
    from django_jobs import progress

    assert progress(0.5, "nothing") is None
    assert current_job() is None


def test_current_job_inside_a_job():
    job = jobs.enqueue(report_current_job)
    run_jobs()
    job = reload(job)
    assert job.result["id"] == job.pk
    assert job.result["task"] == "tests.testapp.tasks.report_current_job"
    assert current_job() is None


def test_async_task_runs():
    job = jobs.enqueue(async_add, args=[20, 22])
    assert run_jobs() == 1
    job = reload(job)
    assert job.status == JobStatus.COMPLETED
    assert job.result == 42


def test_current_job_inside_an_async_job():
    job = jobs.enqueue(async_report_current_job)
    run_jobs()
    assert reload(job).result == {
        "id": job.pk,
        "task": "tests.testapp.tasks.async_report_current_job",
    }


def test_failing_signal_receiver_does_not_break_run_jobs():
    def broken(**kwargs):
        raise RuntimeError("receiver bug")

    job = jobs.enqueue(add, args=[1, 2])
    failing = jobs.enqueue(permanent_failure, args=["x"])
    with receiver_of(job_completed, broken) as completed, receiver_of(job_failed, broken):
        assert run_jobs() == 2
    assert len(completed) == 1
    job = reload(job)
    assert job.status == JobStatus.COMPLETED
    assert job.result == 3
    assert reload(failing).status == JobStatus.FAILED


def test_signals_receive_the_job():
    job = jobs.enqueue(add, args=[1, 2])
    with receiver_of(job_completed) as completed:
        run_jobs()
    assert completed[0]["job"].pk == job.pk
    assert completed[0]["result"] == 3
