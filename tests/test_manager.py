"""The ``jobs`` verbs, claiming, statistics and in-process execution with ``run_jobs``
(SPEC sections 4, 5.4-5.6, 5.8, 6 and 7)."""

import uuid
from contextlib import contextmanager
from datetime import timedelta

import pytest
from django.utils import timezone

from django_jobs import JobStatus, Priority, TaskNotFound, current_job, jobs
from django_jobs.models import Job, Queue, Worker
from django_jobs.signals import (
    job_completed,
    job_dead_lettered,
    job_failed,
    job_progress,
    job_retrying,
)
from django_jobs.testing import run_jobs
from tests.testapp.models import Execution
from tests.testapp.tasks import (
    add,
    always_transient,
    async_add,
    async_report_current_job,
    flaky_until,
    forced_retry,
    noop,
    permanent_failure,
    progress_steps,
    progress_then_read,
    raises_permanent,
    report_current_job,
    retried_key_error,
    retry_in_30s,
    returns_unserializable,
    transient_by_message,
    unretried_connection_reset,
)

pytestmark = pytest.mark.django_db

DLQ = "dead-letter"


def unique_queue():
    return f"q-{uuid.uuid4().hex[:12]}"


def reload(job):
    return Job.objects.get(pk=job.pk)


def make_due(job):
    """Let a retrying or delayed job run now instead of waiting for its delay."""
    Job.objects.filter(pk=job.pk).update(scheduled_at=timezone.now() - timedelta(seconds=1))


def claim_one(worker_id="w1", **kwargs):
    claimed = Job.objects.claim(worker_id, 1, **kwargs)
    return claimed[0] if claimed else None


def fail_for_good(job):
    """Run ``job`` (a permanent_failure job) so it lands in the dead-letter queue."""
    assert run_jobs(max_jobs=1) == 1
    job = reload(job)
    assert job.status == JobStatus.FAILED
    return job


def live_worker(worker_id, **kwargs):
    kwargs.setdefault("last_heartbeat_at", timezone.now())
    return Worker.objects.create(id=worker_id, hostname="host", pid=1, **kwargs)


@contextmanager
def receiver_of(signal, func=None):
    calls = []

    def receiver(sender, **kwargs):
        calls.append(kwargs)
        if func is not None:
            func(**kwargs)

    signal.connect(receiver, weak=False)
    try:
        yield calls
    finally:
        signal.disconnect(receiver)


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


# -- prune -------------------------------------------------------------------------------


def finished_job(status, age, **kwargs):
    now = timezone.now()
    return Job.objects.create(
        task_name="tests.testapp.tasks.noop",
        status=status,
        started_at=now - age - timedelta(seconds=1),
        finished_at=now - age,
        **kwargs,
    )


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


# -- statistics --------------------------------------------------------------------------


def test_statistics_keys():
    stats = jobs.get_statistics()
    for key in [
        "total_jobs",
        "pending_jobs",
        "running_jobs",
        "completed_jobs",
        "failed_jobs",
        "retry_jobs",
        "cancelled_jobs",
        "by_priority",
        "by_queue",
        "throughput_per_minute",
        "failure_rate",
        "avg_duration_seconds",
        "oldest_pending_age_seconds",
        "workers",
    ]:
        assert key in stats, key
    assert set(stats["by_priority"]) == {"critical", "high", "normal", "low"}
    assert stats["total_jobs"] == 0
    assert stats["failure_rate"] == 0.0
    assert stats["oldest_pending_age_seconds"] is None


def test_statistics_counts():
    now = timezone.now()
    jobs.enqueue(noop, priority="critical", queue="s1", scheduled_at=now - timedelta(seconds=120))
    jobs.enqueue(noop, priority="high", queue="s1")
    jobs.enqueue(noop, priority="low", queue="s2")
    jobs.enqueue(noop, priority=10, queue="s2", delay=3600)
    running = jobs.enqueue(noop, priority=-100, queue="s3", scheduled_at=now - timedelta(days=1))
    assert claim_one("w1").pk != running.pk  # the critical one
    Job.objects.filter(pk=running.pk).update(status=JobStatus.RUNNING, worker_id="w9")
    for seconds in (2, 4):
        Job.objects.create(
            task_name="x",
            status=JobStatus.COMPLETED,
            started_at=now - timedelta(seconds=seconds + 5),
            finished_at=now - timedelta(seconds=5),
        )
    Job.objects.create(
        task_name="x",
        status=JobStatus.FAILED,
        queue=DLQ,
        started_at=now - timedelta(seconds=30),
        finished_at=now - timedelta(seconds=20),
    )
    Job.objects.create(
        task_name="x",
        status=JobStatus.FAILED,
        queue=DLQ,
        started_at=now - timedelta(days=2),
        finished_at=now - timedelta(days=2),
    )
    Job.objects.create(
        task_name="x",
        status=JobStatus.RETRYING,
        queue="s2",
        priority=60,
        scheduled_at=now + timedelta(hours=1),
    )
    Job.objects.create(task_name="x", status=JobStatus.CANCELLED, finished_at=now)
    live_worker("alive-1")
    live_worker("alive-2")
    Worker.objects.create(
        id="dead", hostname="h", pid=1, last_heartbeat_at=now - timedelta(hours=1)
    )
    live_worker("stopped", stopped_at=now)

    stats = jobs.get_statistics()
    assert stats["total_jobs"] == 11
    assert stats["pending_jobs"] == 3  # high, low, delayed
    assert stats["running_jobs"] == 2
    assert stats["completed_jobs"] == 2
    assert stats["failed_jobs"] == 2
    assert stats["retry_jobs"] == 1
    assert stats["cancelled_jobs"] == 1
    # Priorities and queues of jobs waiting to run (pending or awaiting a retry).
    assert stats["by_priority"] == {"critical": 0, "high": 2, "normal": 1, "low": 1}
    assert stats["by_queue"] == {"s1": 1, "s2": 3}
    assert stats["throughput_per_minute"] == 2
    assert stats["failure_rate"] == pytest.approx(1 / 3)
    assert stats["avg_duration_seconds"] == pytest.approx(3.0, abs=0.01)
    assert stats["workers"] == 2
    # The oldest due pending job is the "high" one enqueued just now.
    assert 0 <= stats["oldest_pending_age_seconds"] < 60


def test_statistics_oldest_pending_age():
    jobs.enqueue(noop, scheduled_at=timezone.now() - timedelta(seconds=300))
    jobs.enqueue(noop)
    age = jobs.get_statistics()["oldest_pending_age_seconds"]
    assert 299 <= age < 360


def test_statistics_after_run_jobs():
    for i in range(3):
        jobs.enqueue(add, args=[i, i])
    jobs.enqueue(permanent_failure, args=["s"])
    run_jobs()
    stats = jobs.get_statistics()
    assert stats["completed_jobs"] == 3
    assert stats["failed_jobs"] == 1
    assert stats["pending_jobs"] == 0
    assert stats["failure_rate"] == pytest.approx(0.25)
    assert stats["throughput_per_minute"] == 3
    assert stats["avg_duration_seconds"] is not None
    assert stats["avg_duration_seconds"] >= 0


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
