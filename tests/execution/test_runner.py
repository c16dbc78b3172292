"""Running one job (``execution/runner.py``) through ``run_jobs``: outcomes, retries,
dead letters (SPEC 7)."""

from datetime import timedelta

import pytest
from django.utils import timezone

from django_jobs import JobStatus, TaskNotFound, jobs
from django_jobs.models import Job
from django_jobs.signals import (
    job_dead_lettered,
    job_failed,
    job_retrying,
)
from django_jobs.testing import run_jobs
from tests.helpers import (
    DLQ,
    make_due,
    receiver_of,
    reload,
)
from tests.testapp.models import Execution
from tests.testapp.tasks import (
    add,
    always_transient,
    flaky_until,
    forced_retry,
    permanent_failure,
    raises_permanent,
    report_current_job,
    retried_key_error,
    retry_in_30s,
    returns_unserializable,
    transient_by_message,
    unretried_connection_reset,
)

pytestmark = pytest.mark.django_db


# -- run_jobs: outcomes, retries, dead letters -------------------------------------------


def test_run_jobs_completes_jobs():
    job = jobs.enqueue(add, args=[2, 3])
    assert run_jobs() == 1
    job = reload(job)
    assert job.status == JobStatus.COMPLETED
    assert job.result == 5
    assert job.attempts == 1
    assert job.progress == 1.0
    assert job.started_at <= job.finished_at
    assert job.errors == []
    assert job.worker_ids == ["run_jobs"]


def test_run_jobs_queues_and_max_jobs():
    a = jobs.enqueue(add, args=[1, 1], queue="ra")
    jobs.enqueue(add, args=[2, 2], queue="rb")
    jobs.enqueue(add, args=[3, 3], queue="rb")
    assert run_jobs(queues=["ra"]) == 1
    assert reload(a).status == JobStatus.COMPLETED
    assert run_jobs(max_jobs=1) == 1
    assert run_jobs() == 1
    assert run_jobs() == 0


def test_transient_error_is_retried_later():
    before = timezone.now()
    job = jobs.enqueue(flaky_until, args=["t", 2], retry_delay=60)
    with receiver_of(job_retrying) as retrying:
        assert run_jobs() == 1  # the retry is not due yet
    job = reload(job)
    assert job.status == JobStatus.RETRYING
    assert job.retry_count == 1
    assert job.attempts == 1
    assert job.scheduled_at >= before + timedelta(seconds=55)
    assert job.worker_id is None
    assert len(job.errors) == 1
    entry = job.errors[0]
    assert entry["type"] == "ConnectionError"
    assert entry["message"] == "temporary connection problem"
    assert "Traceback" in entry["traceback"]
    assert job.error["type"] == "ConnectionError"
    assert len(retrying) == 1
    assert retrying[0]["delay"] == pytest.approx(60.0)

    # Once due it runs again and succeeds on its second attempt.
    make_due(job)
    assert run_jobs() == 1
    job = reload(job)
    assert job.status == JobStatus.COMPLETED
    assert job.result == 2
    assert job.attempts == 2
    assert len(job.errors) == 1


def test_retry_delay_uses_backoff():
    job = jobs.enqueue(
        flaky_until,
        args=["b", 9],
        max_retries=5,
        retry_delay=100,
        retry_backoff=3.0,
        retry_jitter=False,
    )
    delays = []
    for _ in range(3):
        make_due(job)
        started = timezone.now()
        run_jobs(max_jobs=1)
        job = reload(job)
        delays.append((job.scheduled_at - started).total_seconds())
    assert delays[0] == pytest.approx(100, abs=5)
    assert delays[1] == pytest.approx(300, abs=5)
    assert delays[2] == pytest.approx(900, abs=5)


def test_retries_exhausted_fails_into_dead_letter_queue():
    job = jobs.enqueue(
        always_transient, args=["e"], max_retries=2, retry_delay=3600, queue="fragile"
    )
    with receiver_of(job_failed) as failed, receiver_of(job_dead_lettered) as dead:
        for _ in range(3):
            make_due(job)
            assert run_jobs(max_jobs=1) == 1
    job = reload(job)
    assert job.status == JobStatus.FAILED
    assert job.attempts == 3
    assert job.retry_count == 2
    assert [e["type"] for e in job.errors] == ["TimeoutError"] * 3
    assert job.queue == DLQ
    assert job.original_queue == "fragile"
    assert job.finished_at is not None
    assert len(failed) == 1
    assert len(dead) == 1
    assert [j.pk for j in jobs.get_dead_letter_queue()] == [job.pk]


def test_permanent_error_fails_at_once_into_dead_letter_queue():
    job = jobs.enqueue(permanent_failure, args=["v"], queue="orders")
    assert run_jobs() == 1
    job = reload(job)
    assert job.status == JobStatus.FAILED
    assert job.attempts == 1
    assert job.retry_count == 0
    assert job.queue == DLQ
    assert job.original_queue == "orders"
    assert job.error["type"] == "ValueError"
    assert job.error["message"] == "bad input, never retry"
    assert "Traceback" in job.error["traceback"]
    assert len(job.errors) == 1
    assert [j.pk for j in jobs.get_dead_letter_queue()] == [job.pk]
    assert Execution.objects.filter(label="v").count() == 1


def test_raising_permanent_error_forbids_retry():
    job = jobs.enqueue(raises_permanent, args=["p"])
    run_jobs()
    job = reload(job)
    assert job.status == JobStatus.FAILED
    assert job.error["type"] == "PermanentError"
    assert job.retry_count == 0
    assert job.original_queue == "default"


def test_raising_retry_with_delay():
    before = timezone.now()
    job = jobs.enqueue(retry_in_30s, retry_delay=3600)
    assert run_jobs() == 1
    job = reload(job)
    assert job.status == JobStatus.RETRYING
    assert job.retry_count == 1
    assert job.error["type"] == "Retry"
    latest = timezone.now() + timedelta(seconds=35)
    assert before + timedelta(seconds=25) <= job.scheduled_at <= latest


def test_raising_retry_then_succeeding():
    job = jobs.enqueue(forced_retry, args=["f"])
    assert run_jobs(max_jobs=1) == 1
    assert reload(job).status == JobStatus.RETRYING
    make_due(job)
    assert run_jobs(max_jobs=1) == 1
    job = reload(job)
    assert job.status == JobStatus.COMPLETED
    assert job.result == "second time"
    assert job.attempts == 2


def test_retry_on_and_dont_retry_on_task_options():
    retried = jobs.enqueue(retried_key_error)
    not_retried = jobs.enqueue(unretried_connection_reset)
    by_message = jobs.enqueue(transient_by_message)
    assert run_jobs() == 3
    assert reload(retried).status == JobStatus.RETRYING
    assert reload(by_message).status == JobStatus.RETRYING
    not_retried = reload(not_retried)
    assert not_retried.status == JobStatus.FAILED
    assert not_retried.error["type"] == "ConnectionResetError"


def test_unknown_task_name_fails_with_task_not_found():
    job = Job.objects.create(
        task_name="tests.testapp.tasks.vanished", args=[1], queue="legacy", max_retries=3
    )
    assert run_jobs() == 1
    job = reload(job)
    assert job.status == JobStatus.FAILED
    assert job.error["type"] == "TaskNotFound"
    assert "tests.testapp.tasks.vanished" in job.error["message"]
    assert job.retry_count == 0
    assert job.queue == DLQ
    assert job.original_queue == "legacy"
    assert TaskNotFound.__name__ == job.errors[0]["type"]


def test_non_json_return_value_fails():
    job = jobs.enqueue(returns_unserializable, max_retries=3)
    assert run_jobs() == 1
    job = reload(job)
    assert job.status == JobStatus.FAILED
    assert job.result is None
    assert "JSON" in job.error["message"]
    assert job.retry_count == 0


def test_result_is_stored_as_json():
    job = jobs.enqueue(report_current_job)
    run_jobs()
    job = reload(job)
    assert job.result == {
        "id": job.pk,
        "task": "tests.testapp.tasks.report_current_job",
        "attempts": 1,
        "status": "running",
    }
