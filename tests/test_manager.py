"""The ``jobs`` verbs (SPEC 5.4-5.6): get_job, wait_for, cancel, retry, queues."""

from datetime import timedelta

import pytest

from django_jobs import JobStatus, jobs
from django_jobs.models import Job, Queue
from django_jobs.testing import run_jobs
from tests.helpers import (
    DLQ,
    claim_one,
    fail_for_good,
    finished_job,
    make_due,
    reload,
    unique_queue,
)
from tests.testapp.models import Execution
from tests.testapp.tasks import (
    add,
    always_transient,
    flaky_until,
    permanent_failure,
    progress_steps,
)

pytestmark = pytest.mark.django_db


# -- get_job / wait_for ------------------------------------------------------------------


def test_get_job_by_int_str_and_instance():
    job = jobs.enqueue(add, args=[1, 2])
    assert jobs.get_job(job.pk).pk == job.pk
    assert jobs.get_job(str(job.pk)).pk == job.pk
    assert jobs.get_job(f" {job.pk} ").pk == job.pk
    assert jobs.get_job(job).pk == job.pk
    assert isinstance(jobs.get_job(job.pk), Job)


@pytest.mark.parametrize(
    "garbage", ["abc", "", "1.5", "-1", "0", None, [], {}, "9" * 40, 2**70, "1; DROP TABLE"]
)
def test_get_job_garbage_ids(garbage):
    jobs.enqueue(add, args=[1, 2])
    with pytest.raises(Job.DoesNotExist):
        jobs.get_job(garbage)


def test_get_job_unknown_id():
    job = jobs.enqueue(add, args=[1, 2])
    with pytest.raises(Job.DoesNotExist):
        jobs.get_job(job.pk + 1000)
    with pytest.raises(Job.DoesNotExist):
        jobs.get_job(str(job.pk + 1000))


def test_wait_for_returns_finished_job():
    job = jobs.enqueue(add, args=[1, 2])
    run_jobs()
    done = jobs.wait_for(job.pk, timeout=5)
    assert isinstance(done, Job)
    assert done.status == JobStatus.COMPLETED
    assert done.result == 3
    assert jobs.wait_for(str(job.pk), timeout=0).result == 3


def test_wait_for_times_out():
    job = jobs.enqueue(add, args=[1, 2])
    with pytest.raises(TimeoutError):
        jobs.wait_for(job.pk, timeout=0.2, poll_interval=0.05)


def test_wait_for_unknown_job():
    with pytest.raises(Job.DoesNotExist):
        jobs.wait_for(123456789, timeout=0.1)


# -- cancel ------------------------------------------------------------------------------


def test_cancel_pending_job():
    job = jobs.enqueue(add, args=[1, 2])
    assert jobs.cancel(job.pk) is True
    job = reload(job)
    assert job.status == JobStatus.CANCELLED
    assert job.finished_at is not None
    # A cancelled job never runs.
    assert run_jobs() == 0


def test_cancel_by_string_id_and_delayed_job():
    job = jobs.enqueue(add, args=[1, 2], delay=3600)
    assert jobs.cancel(str(job.pk)) is True
    assert reload(job).status == JobStatus.CANCELLED


def test_cancel_retrying_job():
    job = jobs.enqueue(flaky_until, args=["c", 5], retry_delay=3600)
    run_jobs(max_jobs=1)
    assert reload(job).status == JobStatus.RETRYING
    assert jobs.cancel(job.pk) is True
    assert reload(job).status == JobStatus.CANCELLED


def test_cancel_finished_job_returns_false():
    job = jobs.enqueue(add, args=[1, 2])
    run_jobs()
    assert jobs.cancel(job.pk) is False
    job = reload(job)
    assert job.status == JobStatus.COMPLETED
    assert job.result == 3

    cancelled = jobs.enqueue(add, args=[1, 2])
    assert jobs.cancel(cancelled.pk) is True
    assert jobs.cancel(cancelled.pk) is False


def test_cancel_failed_job_returns_false():
    job = fail_for_good(jobs.enqueue(permanent_failure, args=["x"]))
    assert jobs.cancel(job.pk) is False
    assert reload(job).status == JobStatus.FAILED


def test_cancel_unknown_job_returns_false():
    assert jobs.cancel(987654321) is False


def test_cancel_running_job_flags_it():
    job = jobs.enqueue(add, args=[1, 2])
    claimed = claim_one("w1")
    assert claimed.pk == job.pk
    assert claimed.status == JobStatus.RUNNING

    assert jobs.cancel(job.pk) is True
    job = reload(job)
    assert job.status == JobStatus.RUNNING  # the worker stops it
    assert job.cancel_requested is True
    assert job.terminate_requested is False


def test_cancel_running_job_with_terminate():
    job = jobs.enqueue(add, args=[1, 2])
    claim_one("w1")
    assert jobs.cancel(job.pk, terminate=True) is True
    job = reload(job)
    assert job.cancel_requested is True
    assert job.terminate_requested is True


def test_cancelled_running_job_stops_at_next_progress():
    job = jobs.enqueue(progress_steps, args=["p"], kwargs={"steps": 3, "pause": 0})
    claimed = claim_one("w1")
    jobs.cancel(job.pk)
    from django_jobs.execution.runner import run_job

    run_job(claimed)
    job = reload(job)
    assert job.status == JobStatus.CANCELLED
    assert Execution.objects.count() == 0  # never got past its first progress call


# -- retry -------------------------------------------------------------------------------


def test_retry_failed_job():
    job = fail_for_good(jobs.enqueue(permanent_failure, args=["x"], queue="work"))
    assert job.queue == DLQ
    assert job.original_queue == "work"
    assert len(job.errors) == 1

    retried = jobs.retry(job.pk)
    assert isinstance(retried, Job)
    job = reload(job)
    assert job.status == JobStatus.PENDING
    assert job.queue == "work"
    assert job.original_queue == ""
    assert job.retry_count == 0
    assert job.finished_at is None
    assert len(job.errors) == 1  # history kept
    assert job.errors[0]["type"] == "ValueError"

    # It runs again, and its history grows.
    assert run_jobs(max_jobs=1) == 1
    job = reload(job)
    assert job.status == JobStatus.FAILED
    assert job.attempts == 2
    assert len(job.errors) == 2
    assert job.original_queue == "work"


def test_retry_gives_a_fresh_retry_budget():
    job = jobs.enqueue(always_transient, args=["t"], max_retries=1, retry_delay=3600)
    run_jobs(max_jobs=1)
    assert reload(job).status == JobStatus.RETRYING
    make_due(job)
    run_jobs(max_jobs=1)
    job = reload(job)
    assert job.status == JobStatus.FAILED
    assert job.retry_count == 1
    assert len(job.errors) == 2

    jobs.retry(job)
    job = reload(job)
    assert job.status == JobStatus.PENDING
    assert job.retry_count == 0
    assert len(job.errors) == 2
    # The fresh budget allows a retry again.
    run_jobs(max_jobs=1)
    assert reload(job).status == JobStatus.RETRYING


def test_retry_cancelled_job():
    job = jobs.enqueue(add, args=[1, 2], queue="cq")
    jobs.cancel(job.pk)
    jobs.retry(str(job.pk))
    job = reload(job)
    assert job.status == JobStatus.PENDING
    assert job.queue == "cq"
    assert job.finished_at is None
    assert run_jobs() == 1
    assert reload(job).result == 3


@pytest.mark.parametrize("prepare", ["pending", "running", "completed", "retrying"])
def test_retry_rejects_unfinished_or_completed_jobs(prepare):
    job = jobs.enqueue(flaky_until, args=["r", 99], retry_delay=3600)
    if prepare == "running":
        claim_one("w1")
    elif prepare == "completed":
        job = jobs.enqueue(add, args=[1, 2])
        Job.objects.filter(pk=job.pk).update(status=JobStatus.COMPLETED)
    elif prepare == "retrying":
        run_jobs(max_jobs=1)
        assert reload(job).status == JobStatus.RETRYING
    status = reload(job).status
    with pytest.raises(ValueError):
        jobs.retry(job.pk)
    assert reload(job).status == status


def test_retry_unknown_job():
    with pytest.raises(Job.DoesNotExist):
        jobs.retry(424242)


def test_retry_from_dead_letter_queue_restores_original_queue():
    job = fail_for_good(jobs.enqueue(permanent_failure, args=["d"], queue="mail"))
    dead = list(jobs.get_dead_letter_queue())
    assert [j.pk for j in dead] == [job.pk]
    assert dead[0].original_queue == "mail"

    jobs.retry(dead[0].pk)
    assert list(jobs.get_dead_letter_queue()) == []
    job = reload(job)
    assert (job.queue, job.status) == ("mail", JobStatus.PENDING)
    assert jobs.queue_length("mail") == 1


def test_custom_dead_letter_queue(settings):
    settings.DJANGO_JOBS = {**settings.DJANGO_JOBS, "DEAD_LETTER_QUEUE": "graveyard"}
    job = fail_for_good(jobs.enqueue(permanent_failure, args=["g"]))
    assert job.queue == "graveyard"
    assert job.original_queue == "default"
    assert [j.pk for j in jobs.get_dead_letter_queue()] == [job.pk]


def test_get_failed_jobs():
    failed = fail_for_good(jobs.enqueue(permanent_failure, args=["f"], queue="alpha"))
    jobs.enqueue(add, args=[1, 2], queue="alpha")
    assert [j.pk for j in jobs.get_failed_jobs()] == [failed.pk]
    assert [j.pk for j in jobs.get_failed_jobs(queue="alpha")] == [failed.pk]
    assert list(jobs.get_failed_jobs(queue="beta")) == []


# -- queues ------------------------------------------------------------------------------


def test_pause_and_resume_queue():
    paused = jobs.enqueue(add, args=[1, 2], queue="paused-q")
    other = jobs.enqueue(add, args=[3, 4], queue="open-q")
    queue = jobs.pause_queue("paused-q")
    assert isinstance(queue, Queue)
    assert Queue.objects.get(name="paused-q").paused is True

    # A paused queue keeps accepting jobs, but none is claimed from it.
    later = jobs.enqueue(add, args=[5, 6], queue="paused-q")
    claimed = Job.objects.claim("w1", 10)
    assert [j.pk for j in claimed] == [other.pk]
    assert Job.objects.claim("w1", 10, queues=["paused-q"]) == []
    assert run_jobs() == 0
    assert jobs.queue_length("paused-q") == 2

    resumed = jobs.resume_queue("paused-q")
    assert resumed.paused is False
    assert Queue.objects.get(name="paused-q").paused is False
    assert run_jobs(queues=["paused-q"]) == 2
    assert reload(paused).result == 3
    assert reload(later).result == 11


def test_pause_unknown_queue_creates_it():
    name = unique_queue()
    jobs.pause_queue(name)
    assert Queue.objects.get(name=name).paused is True
    assert name in jobs.get_queue_names()


def test_clear_queue_cancels_pending_only():
    name = "to-clear"
    pending = [jobs.enqueue(add, args=[i, i], queue=name) for i in range(3)]
    delayed = jobs.enqueue(add, args=[1, 1], queue=name, delay=3600)
    running = jobs.enqueue(add, args=[9, 9], queue=name, priority="critical")
    assert claim_one("w1").pk == running.pk
    done = finished_job(JobStatus.COMPLETED, timedelta(0), queue=name)
    elsewhere = jobs.enqueue(add, args=[1, 1], queue="keep-me")

    assert jobs.clear_queue(name) == 4
    for job in [*pending, delayed]:
        assert reload(job).status == JobStatus.CANCELLED
    assert reload(running).status == JobStatus.RUNNING
    assert reload(running).cancel_requested is False  # clearing never stops running jobs
    assert reload(done).status == JobStatus.COMPLETED
    assert reload(elsewhere).status == JobStatus.PENDING
    assert jobs.queue_length(name) == 0
    assert jobs.clear_queue(name) == 0


def test_queue_length_counts_pending_jobs():
    name = unique_queue()
    assert jobs.queue_length(name) == 0
    for i in range(3):
        jobs.enqueue(add, args=[i, i], queue=name)
    jobs.enqueue(add, args=[1, 1], queue="another")
    assert jobs.queue_length(name) == 3
    claim_one("w1", queues=[name])
    assert jobs.queue_length(name) == 2
    cancelled = jobs.enqueue(add, args=[1, 1], queue=name)
    jobs.cancel(cancelled.pk)
    assert jobs.queue_length(name) == 2


def test_get_queue_names():
    jobs.enqueue(add, args=[1, 2], queue="names-a")
    jobs.enqueue(add, args=[1, 2], queue="names-b")
    Queue.objects.create(name="names-c", description="declared, never used")
    names = jobs.get_queue_names()
    assert {"names-a", "names-b", "names-c"} <= set(names)
    assert names == sorted(names)
    assert len(names) == len(set(names))
