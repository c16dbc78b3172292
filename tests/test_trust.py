"""Regression tests for the promises of SPEC 8 (issue #9): no job stranded, run twice at
once or resurrected after a cancel; a heartbeat that never stalls; one clock.

Each test names the defect it guards. Worker tests run ``runworkers`` as real
subprocesses on the test database.
"""

import math
import os
import signal
import threading
import time
from collections import Counter
from contextlib import contextmanager
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.db.models.signals import pre_delete
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from django_jobs import JobStatus, jobs
from django_jobs.checks import check_settings
from django_jobs.execution.runner import record_failed
from django_jobs.models import Job, Queue, Worker
from django_jobs.registry import job as job_decorator
from django_jobs.testing import run_jobs
from tests.conftest import wait_until
from tests.testapp import tasks
from tests.testapp.models import Execution


def labels():
    return list(Execution.objects.order_by("id").values_list("label", flat=True))


def status_of(job):
    return Job.objects.values_list("status", flat=True).get(pk=job.pk)


def worker_row(proc):
    return Worker.objects.filter(pid=proc.pid, stopped_at__isnull=True).first()


def running(proc):
    """The worker's loop runs: it heartbeated after registering."""
    row = worker_row(proc)
    return row is not None and row.last_heartbeat_at > row.started_at


def waiting_on_a_lock() -> int:
    """Sessions of the test database waiting for a row lock right now."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = "
                "'Lock' AND datname = current_database()"
            )
        else:
            cursor.execute(
                "SELECT count(*) FROM information_schema.innodb_trx WHERE trx_state = 'LOCK WAIT'"
            )
        return cursor.fetchone()[0]


@contextmanager
def in_open_transaction(work):
    """Run ``work()`` in a transaction on another thread (its own connection) and keep
    the transaction open, its locks held, until the block ends; yields what it returned."""
    done, release, result = threading.Event(), threading.Event(), []

    def hold():
        try:
            with transaction.atomic():
                result.append(work())
                done.set()
                release.wait(30)
                transaction.set_rollback(True)
        finally:
            connection.close()

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert done.wait(10), "the transaction did not start"
        yield result[0]
    finally:
        release.set()
        holder.join()


# -- 1. one lease per claim ------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_one_claim_over_limited_and_unlimited_queues_holds_one_lease():
    Queue.objects.create(name="limited", concurrency_limit=2)
    for i in range(3):
        jobs.enqueue(tasks.add, args=[i, i], queue="free")
        jobs.enqueue(tasks.add, args=[i, i], queue="limited")
    claimed = Job.objects.claim("w1", 10)
    assert len(claimed) == 5  # three free, two limited
    assert len({job.lease for job in claimed}) == 1
    assert set(Job.objects.held().values_list("lease", flat=True)) == {claimed[0].lease}


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_mixed_claim_with_a_limited_queue_strands_nothing(workers):
    Queue.objects.create(name="limited", concurrency_limit=1)
    workers.start("--concurrency", "1")
    # Warm the executor up so it claims many jobs at once.
    warm = [jobs.enqueue(tasks.add, args=[i, 1]) for i in range(30)]
    wait_until(
        lambda: all(status_of(j) == JobStatus.COMPLETED for j in warm),
        timeout=30,
        message="warm-up jobs",
    )
    with transaction.atomic():
        batch = [jobs.enqueue(tasks.sleeper, args=["slow", 1.5], priority=10)]
        batch += [jobs.enqueue(tasks.add, args=[i, 2]) for i in range(2)]
        batch += [jobs.enqueue(tasks.add, args=[i, 3], queue="limited") for i in range(3)]
    wait_until(
        lambda: all(status_of(j) == JobStatus.COMPLETED for j in batch),
        timeout=30,
        message="every job of the mixed claim",
    )
    assert not Job.objects.held().exists()


# -- 2. the heartbeat never waits behind housekeeping -------------------------------------


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(
    "os.environ.get('DATABASE_URL', '').startswith('sqlite') or not os.environ.get('DATABASE_URL')",
    reason="needs row locks",
)
def test_a_blocked_scheduler_never_stops_the_heartbeat(workers):
    """The scheduler's enqueue waits on a queue row another transaction is inserting: the
    worker must keep heartbeating (and running jobs) while its housekeeping is stuck."""
    jobs.schedule_interval(tasks.scheduled_tick, interval=1, name="blocked", queue="jammed")
    # An uncommitted queue row: the worker's insert of the same name waits on it.
    with in_open_transaction(lambda: Queue.objects.create(name="jammed")):
        proc = workers.start("--concurrency", "1")
        wait_until(lambda: running(proc), timeout=30, message="worker running")
        # The scheduler fires the due schedule within a second or two and blocks; stay
        # blocked for three worker timeouts.
        deadline = time.monotonic() + 3 * 3.0 + 2
        while time.monotonic() < deadline:
            assert Worker.objects.alive().filter(pid=proc.pid).exists(), workers.output(proc)
            time.sleep(0.25)
        assert waiting_on_a_lock() == 1  # the scheduler's insert, still blocked
        probe = jobs.enqueue(tasks.add, args=[1, 1])
        wait_until(
            lambda: status_of(probe) == JobStatus.COMPLETED,
            timeout=10,
            message="a job run while housekeeping is blocked",
        )


@pytest.mark.django_db(transaction=True)
def test_prune_deletes_in_chunks_without_loading_rows():
    old = timezone.now() - timedelta(days=30)
    Job.objects.bulk_create(
        Job(
            task_name="t",
            status=JobStatus.COMPLETED,
            finished_at=old,
            created_at=old,
            scheduled_at=old,
        )
        for _ in range(2500)
    )
    keep = jobs.enqueue(tasks.add, args=[1, 1])
    seen = []

    def receiver(sender, instance, **kwargs):
        seen.append(instance.pk)

    pre_delete.connect(receiver, sender=Job)
    try:
        with CaptureQueriesContext(connection) as queries:
            assert jobs.prune(older_than=timedelta(days=7)) == 2500
    finally:
        pre_delete.disconnect(receiver, sender=Job)
    assert seen == []  # no row was loaded to be deleted
    assert len(queries) < 40, len(queries)
    assert list(Job.objects.values_list("pk", flat=True)) == [keep.pk]


# -- 3. a cancel that said True is never lost -----------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_cancel_survives_a_hand_back():
    job = jobs.enqueue(tasks.add, args=[1, 1])
    Job.objects.claim("w1", 1)
    assert jobs.cancel(job.pk)
    Job.objects.filter(pk=job.pk).hand_back_held()
    assert status_of(job) == JobStatus.CANCELLED
    assert run_jobs() == 0


@pytest.mark.django_db(transaction=True)
def test_cancel_survives_the_rescue_of_a_dead_worker():
    job = jobs.enqueue(tasks.add, args=[1, 1])
    Job.objects.claim("gone-worker", 1)  # no Worker row: stalled at once
    assert jobs.cancel(job.pk)
    assert jobs.requeue_stuck() == 1
    job.refresh_from_db()
    assert job.status == JobStatus.CANCELLED and job.finished_at is not None
    assert run_jobs() == 0


@pytest.mark.django_db(transaction=True)
def test_cancel_survives_a_failed_attempt_that_would_retry():
    job = jobs.enqueue(tasks.always_transient, args=["x"])
    [held] = Job.objects.claim("w1", 1)
    assert jobs.cancel(job.pk)
    assert record_failed(held, ConnectionError("reset"), held.get_task())
    job.refresh_from_db()
    assert job.status == JobStatus.CANCELLED
    assert job.errors and job.errors[-1]["type"] == "ConnectionError"
    assert run_jobs() == 0


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_cancel_of_a_running_job_survives_sigkill_of_its_worker(workers):
    job = jobs.enqueue(tasks.sleeper, args=["doomed", 3])
    victim = workers.start("--no-scheduler")
    wait_until(lambda: "doomed" in labels(), message="job start")
    os.kill(victim.pid, signal.SIGSTOP)  # the worker cannot act on the cancel
    assert jobs.cancel(job.pk)
    os.killpg(victim.pid, signal.SIGKILL)
    victim.wait(timeout=10)
    workers.start()
    wait_until(
        lambda: status_of(job) == JobStatus.CANCELLED,
        timeout=30,
        message="cancelled after the rescue",
    )
    time.sleep(1)
    assert labels().count("doomed") == 1 and "doomed:done" not in labels()


# -- 4. held jobs are reconciled ------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_job_held_under_a_live_worker_that_no_executor_runs_is_handed_back(workers):
    proc = workers.start("--concurrency", "1")
    wait_until(lambda: running(proc), timeout=30, message="worker running")
    worker_id = worker_row(proc).pk
    job = jobs.enqueue(tasks.record_label, args=["orphan"], delay=3600)
    # As a claim whose reply was lost leaves it: running, under this worker, a lease
    # none of its executors knows.
    Job.objects.filter(pk=job.pk).update(
        status=JobStatus.RUNNING,
        worker_id=worker_id,
        lease="f" * 32,
        attempts=1,
        started_at=timezone.now(),
        scheduled_at=timezone.now(),
    )
    wait_until(
        lambda: status_of(job) == JobStatus.COMPLETED,
        timeout=20,
        message="the orphaned job handed back and run",
    )
    assert labels() == ["orphan"]


# -- 5. an interrupted database query is never reused ------------------------------------


@pytest.mark.slow
@pytest.mark.postgresql
@pytest.mark.django_db(transaction=True)
def test_cooperative_cancel_inside_a_query_is_recorded(workers):
    job = jobs.enqueue(tasks.sql_sleeper, args=["in-query", 30])
    proc = workers.start("--concurrency", "1")
    wait_until(lambda: "in-query" in labels(), message="job start")
    time.sleep(0.3)
    assert jobs.cancel(job.pk)
    wait_until(
        lambda: status_of(job) == JobStatus.CANCELLED,
        timeout=10,
        message="cancelled in the middle of its query",
    )

    def sleeping_queries():
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE query LIKE "
                "'SELECT pg_sleep%%' AND pid <> pg_backend_pid()"
            )
            return cursor.fetchone()[0]

    # The interrupted query was stopped on the server too, not left running for 30 s.
    wait_until(lambda: sleeping_queries() == 0, timeout=5, message="the query cancelled")
    after = jobs.enqueue(tasks.add, args=[2, 2])
    wait_until(lambda: status_of(after) == JobStatus.COMPLETED, timeout=10, message="next job")
    assert proc.poll() is None


# -- 6. batch counts add up when a job is retried ------------------------------------------


def batch_job(batch, key):
    return next(j for j in Job.objects.filter(batch=batch) if j.kwargs == {"key": key})


@pytest.mark.django_db(transaction=True)
def test_retrying_a_failed_batch_job_moves_it_out_of_failed():
    batch = jobs.enqueue_batch(
        tasks.fails_unless_marked,
        items=[{"key": k} for k in "abc"],
        on_complete=tasks.batch_callback,
        queue="imports",
    )
    assert run_jobs(queues=["imports"]) == 4  # the three, then on_complete in their queue
    batch.refresh_from_db()
    assert (batch.completed, batch.failed, batch.progress) == (0, 3, 1.0)
    assert batch.is_finished
    callbacks = Job.objects.filter(task_name=tasks.batch_callback.name)
    assert [c.queue for c in callbacks] == ["imports"]  # the batch's queue, not "default"

    Execution.objects.create(label="ok:a")
    first = batch_job(batch, "a")
    jobs.retry(first.pk)
    batch.refresh_from_db()
    assert (batch.completed, batch.failed) == (0, 2)
    assert batch.progress == pytest.approx(2 / 3) and not batch.is_finished
    run_jobs(queues=["imports"])
    batch.refresh_from_db()
    assert (batch.completed, batch.failed, batch.cancelled) == (1, 2, 0)
    assert batch.progress == 1.0 and batch.is_finished
    assert callbacks.count() == 1  # on_complete never runs twice


@pytest.mark.django_db(transaction=True)
def test_on_complete_waits_for_every_job_when_failures_are_retried():
    batch = jobs.enqueue_batch(
        tasks.fails_unless_marked,
        items=[{"key": k} for k in "abc"],
        on_complete=tasks.batch_callback,
    )
    first = batch_job(batch, "a")
    # a fails, is retried and fails again; b completes; c never ran yet.
    run_jobs(max_jobs=1)
    jobs.retry(first.pk)
    Job.objects.filter(batch=batch).exclude(pk=first.pk).update(priority=-1)
    run_jobs(max_jobs=1)
    assert status_of(first) == JobStatus.FAILED
    Execution.objects.create(label="ok:b")
    run_jobs(max_jobs=1)
    batch.refresh_from_db()
    assert batch.completed + batch.failed + batch.cancelled <= batch.total
    pending = Job.objects.filter(batch=batch, status=JobStatus.PENDING).count()
    assert pending == 1 and not batch.is_finished
    assert not Job.objects.filter(task_name=tasks.batch_callback.name).exists()


# -- 7. a slow job holds no neighbour back ---------------------------------------------------


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_slow_job_never_holds_its_batch_neighbours(workers):
    workers.start("--concurrency", "2")
    warm = [jobs.enqueue(tasks.add, args=[i, 1]) for i in range(50)]
    wait_until(
        lambda: all(status_of(j) == JobStatus.COMPLETED for j in warm),
        timeout=30,
        message="warm-up jobs",
    )
    time.sleep(1)  # both executors idle, sized for fast jobs
    with transaction.atomic():
        before = jobs.enqueue(tasks.record_label, args=["before"], priority=20)
        slow = jobs.enqueue(tasks.sleeper, args=["slow", 20], priority=10)
        after = [jobs.enqueue(tasks.record_label, args=[f"after-{i}"]) for i in range(20)]
    started = time.monotonic()
    wait_until(lambda: "slow" in labels(), timeout=10, message="slow job start")
    wait_until(
        lambda: status_of(before) == JobStatus.COMPLETED,
        timeout=5,
        message="the job before the slow one recorded",
    )
    wait_until(
        lambda: all(status_of(j) == JobStatus.COMPLETED for j in after),
        timeout=5,
        message="the jobs after the slow one run by the other executor",
    )
    assert time.monotonic() - started < 10
    assert status_of(slow) == JobStatus.RUNNING


# -- 8. one clock --------------------------------------------------------------------------


def assert_ordered(job):
    if job.started_at is not None:
        assert job.created_at <= job.started_at, (job.pk, job.created_at, job.started_at)
    if job.finished_at is not None:
        assert job.created_at <= job.finished_at, (job.pk, job.created_at, job.finished_at)
        if job.started_at is not None:
            assert job.started_at <= job.finished_at, (job.pk, job.started_at, job.finished_at)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("skew", [3600, -3600])
def test_timestamps_come_from_one_clock_whatever_the_hosts_clock(monkeypatch, skew):
    """This process's clock runs an hour fast (or slow), as a web server's may: every
    timestamp of a job still comes from the database, in order, and a job enqueued
    without a delay is due at once."""
    real_now = timezone.now
    monkeypatch.setattr(timezone, "now", lambda: real_now() + timedelta(seconds=skew))
    made = []
    for _ in range(5):
        made.append(jobs.enqueue(tasks.fails_at_once))
        made.append(jobs.enqueue(tasks.add, args=[1, 2]))
        made.append(jobs.enqueue(tasks.transient_by_message))
    assert run_jobs() == 15
    cancelled = jobs.enqueue(tasks.add, args=[1, 1])
    jobs.cancel(cancelled.pk)
    for job in Job.objects.all():
        assert_ordered(job)
        assert abs((job.created_at - real_now()).total_seconds()) < 600, job.created_at
    # The instances enqueue() returned carry the stored values.
    stored = {j.pk: j.created_at for j in Job.objects.all()}
    assert all(stored[j.pk] == j.created_at for j in made)
    retrying = Job.objects.filter(status=JobStatus.RETRYING)
    assert retrying.count() == 5
    assert all(abs((j.scheduled_at - real_now()).total_seconds()) < 600 for j in retrying)


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_timestamps_come_from_one_clock_in_workers(workers):
    for i in range(40):
        jobs.enqueue(tasks.add, args=[i, i])
        jobs.enqueue(tasks.permanent_failure, args=[f"f{i}"])
        jobs.enqueue(tasks.flaky_until, args=[f"r{i}", 2])
    code, out = workers.run("--burst", "--concurrency", "2", timeout=120)
    assert code == 0, out
    for job in Job.objects.all():
        assert_ordered(job)
    from django_jobs.results import result_from_job

    for job in Job.objects.filter(status=JobStatus.COMPLETED):
        result = result_from_job(job)
        assert result.enqueued_at <= result.started_at <= result.finished_at


@pytest.mark.django_db(transaction=True)
def test_a_delay_is_counted_on_the_database_clock():
    job = jobs.enqueue(tasks.add, args=[1, 1], delay=120)
    job.refresh_from_db()
    assert timedelta(seconds=119) <= job.scheduled_at - job.created_at <= timedelta(seconds=121)


# -- 9. django.tasks conformance -------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_non_json_result_fails_with_type_error():
    from django_jobs.results import result_from_job

    job = jobs.enqueue(tasks.returns_unserializable)
    run_jobs()
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED and job.error["type"] == "TypeError"
    assert result_from_job(job).errors[0].exception_class is TypeError


# -- 10. NaN and infinity --------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    "option", ["timeout", "retry_delay", "delay", "max_retry_delay", "retry_backoff"]
)
@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_enqueue_refuses_non_finite_numbers(option, value):
    with pytest.raises(ValueError, match=option):
        jobs.enqueue(tasks.add, args=[1, 2], **{option: value})
    assert not Job.objects.exists()


@pytest.mark.parametrize("option", ["timeout", "retry_delay", "max_retry_delay", "retry_backoff"])
def test_the_decorator_refuses_non_finite_numbers(option):
    with pytest.raises(ValueError, match=option):

        @job_decorator(name=f"tests.nonfinite_{option}", **{option: math.nan})
        def nonfinite():
            return None


@pytest.mark.parametrize(
    "key",
    [
        "DEFAULT_RETRY_DELAY",
        "MAX_RETRY_DELAY",
        "DEFAULT_TIMEOUT",
        "HEARTBEAT_INTERVAL",
        "WORKER_TIMEOUT",
        "POLL_INTERVAL",
        "DEFAULT_RETRY_BACKOFF",
        "SHUTDOWN_TIMEOUT",
    ],
)
def test_settings_checks_refuse_non_finite_numbers(settings, key):
    settings.DJANGO_JOBS = {key: math.nan}
    errors = check_settings()
    assert errors and all(e.id.startswith("django_jobs.E") for e in errors), errors
    assert key in errors[0].msg


# -- 11. concurrent claims get disjoint jobs without waiting -----------------------------


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(
    "os.environ.get('DATABASE_URL', '').startswith('sqlite') or not os.environ.get('DATABASE_URL')",
    reason="needs row locks",
)
def test_concurrent_claims_get_disjoint_jobs_without_waiting():
    for i in range(10):
        jobs.enqueue(tasks.add, args=[i, i], priority=i % 3)
    for i in range(5):  # awaiting a retry: claimable too, in the same order
        job = jobs.enqueue(tasks.add, args=[i, 0])
        Job.objects.filter(pk=job.pk).update(status=JobStatus.RETRYING, priority=5)
    with in_open_transaction(lambda: Job.objects.claim("holder", 3)) as first:
        started = time.monotonic()
        second = Job.objects.claim("other", 3)
        took = time.monotonic() - started
    assert len(first) == 3 and len(second) == 3
    assert not {j.pk for j in first} & {j.pk for j in second}
    assert took < 2, took
    # Highest priority first: the retrying jobs (5), then the rest.
    assert [j.priority for j in first] == [5, 5, 5]
    if connection.vendor == "mysql":
        # MySQL's claim reads each status apart and keeps the best of both: the rows of
        # the other read stay locked until its (normally milliseconds long) transaction
        # ends, so the holder still holds three pending jobs of priority 2 here.
        assert [j.priority for j in second] == [5, 5, 1]
    else:
        assert [j.priority for j in second] == [5, 5, 2]


@pytest.mark.mysql
@pytest.mark.django_db
def test_mysql_claim_reads_the_index_in_order():
    from django_jobs.models import DbNow
    from django_jobs.models.job import claim_candidates

    for i in range(50):
        jobs.enqueue(tasks.add, args=[i, i], priority=i % 5)
    base = Job.objects.filter(scheduled_at__lte=DbNow()).exclude(queue__in=["paused"])
    reads = claim_candidates(base, 10, connection)
    assert len(reads) == 2  # pending, then retrying
    for read in reads:
        sql, params = read.query.sql_with_params()
        with connection.cursor() as cursor:
            cursor.execute(f"EXPLAIN {sql} FOR UPDATE SKIP LOCKED", params)
            plan = cursor.fetchall()
        assert "django_jobs_job_claim_idx" in str(plan), plan
        assert "filesort" not in str(plan).lower(), plan


# -- 12. SQLite lock contention -------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.sqlite
@pytest.mark.django_db(transaction=True)
def test_workers_starting_while_sqlite_is_busy_all_survive(workers):
    """Four workers start together while another connection writes for a few seconds.
    With SQLite's default deferred BEGIN, a transaction that read before the other writer
    committed cannot write at all ('database is locked' at once, whatever the busy
    timeout): a worker must retry, never exit."""
    import sqlite3

    env = {"JOBS_TEST_SQLITE_DEFERRED": "1"}  # BEGIN DEFERRED, as a project may have it
    busy = sqlite3.connect(connection.settings_dict["NAME"], timeout=30, isolation_level=None)
    try:
        busy.execute("BEGIN IMMEDIATE")
        busy.execute(
            "INSERT INTO testapp_execution (label, attempt, created_at) "
            "VALUES ('busy', 0, '2026-01-01 00:00:00')"
        )
        procs = [workers.start("--concurrency", "1", env=env) for _ in range(4)]
        time.sleep(4)  # the workers start, read, and wait to write
        busy.execute("COMMIT")
    finally:
        busy.close()
    for i in range(40):
        jobs.enqueue(tasks.record_label, args=[f"c{i}"])
    wait_until(
        lambda: len(labels()) == 41 or any(p.poll() is not None for p in procs),
        timeout=60,
        message="jobs run",
    )
    assert all(p.poll() is None for p in procs), [workers.output(p) for p in procs]
    wait_until(lambda: all(running(p) for p in procs), timeout=30, message="all registered")
    assert sorted(Counter(labels()).values()) == [1] * 41


def test_sqlite_without_immediate_transactions_is_reported():
    from django_jobs.checks import sqlite_transaction_warnings

    databases = {
        "default": {"ENGINE": "django.db.backends.sqlite3", "NAME": "a.sqlite3"},
        "ok": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": "b.sqlite3",
            "OPTIONS": {"transaction_mode": "IMMEDIATE"},
        },
        "pg": {"ENGINE": "django.db.backends.postgresql", "NAME": "x"},
    }
    warnings = sqlite_transaction_warnings(databases)
    assert [w.id for w in warnings] == ["django_jobs.W004"]
    assert "'default'" in warnings[0].msg and "IMMEDIATE" in warnings[0].hint


# -- found in review ---------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_prune_clears_a_schedules_last_job():
    schedule = jobs.schedule_interval(tasks.scheduled_tick, interval=3600, name="weekly-ish")
    job = jobs.run_schedule_now("weekly-ish")
    old = timezone.now() - timedelta(days=30)
    Job.objects.filter(pk=job.pk).update(status=JobStatus.COMPLETED, finished_at=old)
    schedule.refresh_from_db()
    assert schedule.last_job_id == job.pk
    assert jobs.prune(older_than=timedelta(days=7)) == 1
    schedule.refresh_from_db()
    assert schedule.last_job_id is None and not Job.objects.filter(pk=job.pk).exists()


@pytest.mark.django_db(transaction=True)
def test_a_cancel_arriving_while_the_job_starts_is_not_lost():
    from django_jobs.execution.context import interrupt_current
    from django_jobs.execution.runner import run_job

    job = jobs.enqueue(tasks.add, args=[1, 1])
    [held] = Job.objects.claim("w1", 1)
    interrupt_current(job_id=held.pk)  # the signal lands before the job's code runs
    assert run_job(held) == JobStatus.CANCELLED
    assert status_of(job) == JobStatus.CANCELLED


@pytest.mark.django_db(transaction=True)
def test_a_cancel_landing_in_a_progress_write_stops_the_job():
    """The worker's cancel signal can arrive while progress() is in its UPDATE; the
    JobCancelled it raises there must stop the job, not be logged as a failed write."""
    from django.db import connection

    from django_jobs.execution.context import interrupt_current
    from django_jobs.execution.runner import run_job

    job = jobs.enqueue(tasks.cooperative, args=["coop"], kwargs={"seconds": 20})
    [held] = Job.objects.claim("w1", 1)

    def signal_lands_mid_write(execute, sql, params, many, context):
        result = execute(sql, params, many, context)
        if "progress" in sql and sql.lstrip().upper().startswith("UPDATE"):
            interrupt_current(job_id=held.pk)
        return result

    started = time.monotonic()
    with connection.execute_wrapper(signal_lands_mid_write):
        assert run_job(held) == JobStatus.CANCELLED
    assert time.monotonic() - started < 10
    assert status_of(job) == JobStatus.CANCELLED


@pytest.mark.django_db(transaction=True)
def test_a_flagged_job_that_fails_for_good_ends_cancelled():
    job = jobs.enqueue(tasks.raises_permanent, args=["x"])
    [held] = Job.objects.claim("w1", 1)
    assert jobs.cancel(job.pk)
    assert record_failed(held, ValueError("boom"), held.get_task())
    job.refresh_from_db()
    assert job.status == JobStatus.CANCELLED and job.errors[-1]["type"] == "ValueError"


@pytest.mark.django_db(transaction=True)
def test_enqueue_and_batched_completion_without_time_zones():
    from django.test import override_settings

    with override_settings(USE_TZ=False):
        job = jobs.enqueue(tasks.add, args=[2, 3])
        assert job.created_at.tzinfo is None and job.scheduled_at.tzinfo is None
        [held] = Job.objects.claim("w1", 1)
        assert Job.objects.complete_many([(held, 5)]) == {job.pk}
        assert held.finished_at.tzinfo is None and held.finished_at >= held.started_at
    job.refresh_from_db()
    assert job.status == JobStatus.COMPLETED and job.result == 5


@pytest.mark.django_db(transaction=True)
def test_a_job_is_due_the_moment_it_is_enqueued():
    """Its scheduled_at and the claim's "now" come from one clock: on SQLite, where they
    are compared as text, a job enqueued and claimed within the same millisecond was not
    due (six digits of microseconds stored, three in the clock's text)."""
    missed = 0
    for _ in range(200):
        job = jobs.enqueue(tasks.noop)
        missed += not Job.objects.filter(pk=job.pk).due().exists()
    assert missed == 0, f"{missed} of 200 jobs were not due at once"
