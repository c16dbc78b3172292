"""SPEC 8 under faults: every job completed, none lost, none run twice at once, each
rescued in time; as real processes, real signals, a real PostgreSQL restarted under them.

Each test adds a row to the results table (``--reliability-report PATH`` or the
terminal summary); docs/reliability.md holds the table of a full run.
"""

from __future__ import annotations

import copy
import itertools
import os
import random
import time
from collections import Counter
from datetime import datetime, timedelta

import pytest
from django.db import connection
from django.db.models import Count
from django.utils import timezone

from django_jobs import JobStatus, jobs
from django_jobs.execution.rescue import MAX_LOST
from django_jobs.models import Job, Worker
from django_jobs.models.bulk import copy_jobs, insert_jobs
from tests.conftest import wait_until
from tests.testapp import tasks
from tests.testapp.models import Execution

from .conftest import (
    Hosts,
    children,
    ensure_postgresql_running,
    reconnect,
    restart_postgresql,
    runs_by_job,
    start_on_host,
)

pytestmark = [pytest.mark.reliability, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

FAST = {"JOBS_HEARTBEAT": "0.5", "JOBS_WORKER_TIMEOUT": "3"}
WORKER_TIMEOUT = 3.0


def counts():
    return dict(Job.objects.values_list("status").annotate(n=Count("id")))


def completed():
    return Job.objects.filter(status=JobStatus.COMPLETED).count()


def failed_at(job_id: int) -> list[float]:
    """When each failed attempt of the job was recorded (its run had ended by then)."""
    job = Job.objects.get(pk=job_id)
    return sorted(datetime.fromisoformat(e["at"]).timestamp() for e in job.errors)


def assert_no_overlap(runs, killed_at):
    """No two runs of one job at once: a run that recorded an end ended before the next
    began; one that did not either died with its process or failed (its failure was
    recorded), before the next began."""
    for job_id, job_runs in runs.items():
        for a, b in itertools.pairwise(job_runs):
            end = a.ended if a.ended is not None else killed_at(a)
            if end is None:
                end = next((t for t in failed_at(job_id) if t >= a.started), None)
            assert end is not None, (job_id, "a run that neither ended, died nor failed")
            assert end <= b.started, (job_id, a.started, end, b.started)


def completed_twice(runs) -> list[int]:
    """Jobs whose code ran to its end more than once."""
    return [job_id for job_id, r in runs.items() if sum(1 for x in r if x.ended) > 1]


@pytest.mark.timeout(1200)
def test_twenty_sigkills_while_ten_thousand_jobs_drain(cluster, reliability_report):
    n = 10_000
    jobs.enqueue_batch(tasks.tracked, items=[{"label": f"k{i}", "seconds": 0.01} for i in range(n)])
    workers = [cluster.start("--concurrency", "2", "--no-scheduler", env=FAST) for _ in range(3)]
    wait_until(lambda: completed() > 200, timeout=60, message="the drain to start")
    rng = random.Random(20)  # noqa: S311 - which process to kill, not secrets
    orphans: dict[int, float] = {}  # pid -> when its worker was killed
    started = time.monotonic()
    while len(cluster.kills) < 20:
        time.sleep(rng.uniform(0.3, 0.8))
        live = [p for p in workers if p.poll() is None]
        if len(cluster.kills) % 4 == 3:
            victim = rng.choice(live)
            kids = children(victim.pid)
            cluster.kill(victim.pid, "worker")
            for pid in kids:
                orphans[pid] = time.time()
            workers.append(cluster.start("--concurrency", "2", "--no-scheduler", env=FAST))
        else:
            busy = list(
                Execution.objects.filter(
                    ended__isnull=True,
                    parent_pid__in=[p.pid for p in live],
                    label__startswith="k",
                ).values_list("worker_pid", flat=True)
            )
            busy = [pid for pid in busy if pid in {c for p in live for c in children(p.pid)}]
            if busy:
                cluster.kill(rng.choice(busy), "executor")
    wait_until(
        lambda: completed() == n,
        timeout=600,
        interval=0.5,
        message=f"all {n} jobs completed ({counts()})",
    )
    took = time.monotonic() - started

    killed = {pid: at for at, pid, _ in cluster.kills} | orphans
    runs = runs_by_job("k")
    assert len(runs) == n  # none lost
    doubled = {job_id: r for job_id, r in runs.items() if len(r) > 1}
    for job_id, job_runs in doubled.items():
        for run in job_runs[:-1]:
            # Run again only because the process running it died.
            assert run.worker_pid in killed or run.parent_pid in killed, (job_id, run.worker_pid)
        job = Job.objects.get(pk=job_id)
        losses = [e for e in job.errors if e["type"] in ("WorkerLost", "ExecutorCrashed")]
        for a, b in itertools.pairwise(job_runs):
            died = killed.get(a.worker_pid) or killed.get(a.parent_pid)
            # Back in the queue (at its place) within 2 x WORKER_TIMEOUT of the kill...
            rescued = [
                datetime.fromisoformat(e["at"]).timestamp()
                for e in losses
                if datetime.fromisoformat(e["at"]).timestamp() >= died
            ]
            if rescued:
                assert rescued[0] - died <= 2 * WORKER_TIMEOUT, (job_id, rescued[0] - died)
            # ...and run again soon after.
            assert b.started - died <= 2 * WORKER_TIMEOUT + 5, (job_id, b.started - died)

    def killed_at(run):
        return killed.get(run.worker_pid) or killed.get(run.parent_pid)

    assert_no_overlap(runs, killed_at)
    assert not Job.objects.exclude(status=JobStatus.COMPLETED).exists()
    reliability_report(
        "20 SIGKILLs (15 executors mid-job, 5 workers) while 10,000 jobs drain, "
        "3 workers x 2 executors",
        took,
        n,
        len(cluster.kills),
        lost=n - len(runs),
        doubled=0,
        rerun=len(doubled),
        note=f"re-run: the job was running when its process was killed, or had finished "
        f"and its outcome was not written yet ({len(completed_twice(runs))}); each back "
        "within 2 x WORKER_TIMEOUT; no two runs of a job at once",
    )


@pytest.mark.postgresql
@pytest.mark.timeout(900)
def test_postgresql_restarted_and_connections_killed_mid_drain(cluster, reliability_report):
    n = 4000
    jobs.enqueue_batch(tasks.tracked, items=[{"label": f"r{i}", "seconds": 0.01} for i in range(n)])
    env = {"JOBS_HEARTBEAT": "1", "JOBS_WORKER_TIMEOUT": "10"}
    workers = [cluster.start("--concurrency", "2", env=env) for _ in range(3)]
    started = time.monotonic()
    try:
        wait_until(lambda: completed() > n // 4, timeout=120, message="a quarter done")
        restart = restart_postgresql()
        reconnect()
        wait_until(lambda: completed() > n // 2, timeout=120, message="half done")
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
            (terminated,) = cursor.fetchone()
        wait_until(
            lambda: completed() == n,
            timeout=300,
            interval=0.5,
            message=f"all {n} jobs completed ({counts()})",
        )
    finally:
        ensure_postgresql_running()
        reconnect()
    took = time.monotonic() - started
    assert all(p.poll() is None for p in workers), [cluster.output(p) for p in workers]
    assert not Job.objects.exclude(status=JobStatus.COMPLETED).exists()  # nothing stuck
    runs = runs_by_job("r")
    assert len(runs) == n  # nothing lost
    assert_no_overlap(runs, lambda run: None)
    doubled = completed_twice(runs)
    assert doubled == [], doubled
    # A job whose own code hit the outage failed like any job and was retried: every run
    # but the last is a recorded failed attempt.
    retried = {job_id: len(r) - 1 for job_id, r in runs.items() if len(r) > 1}
    for job_id, extra in retried.items():
        assert len(failed_at(job_id)) >= extra, job_id
    reliability_report(
        f"PostgreSQL restarted mid-drain ({restart:.1f}s), then {terminated} connections "
        "killed with pg_terminate_backend; 3 workers x 2 executors",
        took,
        n,
        2,
        lost=n - len(runs),
        doubled=len(doubled),
        rerun=len(retried),
        note="re-run: the job's own query hit the outage, it failed and was retried "
        "(retry_delay=0); no outcome lost, nothing left running",
    )


@pytest.mark.timeout(900)
def test_a_long_prune_under_a_stream_of_jobs_runs_nothing_twice(cluster, reliability_report):
    old = timezone.now() - timedelta(days=30)
    template = Job(
        task_name=tasks.add.name,
        queue="default",
        status=JobStatus.COMPLETED,
        created_at=old,
        scheduled_at=old,
        started_at=old,
        finished_at=old,
        args=[],
        kwargs={},
    )
    old_rows = 150_000
    if connection.vendor == "postgresql":
        copy_jobs(template, [("[]", "{}")] * old_rows, connection.alias)
    else:
        for _ in range(0, old_rows, 5000):
            insert_jobs([copy.copy(template) for _ in range(5000)], connection.alias)
    workers = [cluster.start("--concurrency", "2", env=FAST) for _ in range(2)]
    wait_until(
        lambda: Worker.objects.alive().filter(pid__in=[p.pid for p in workers]).count() == 2,
        timeout=60,
        message="both workers running",
    )
    started = time.monotonic()
    enqueued = 0
    stale_seen = 0
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        for _ in range(10):
            jobs.enqueue(tasks.tracked, kwargs={"label": f"s{enqueued}"})
            enqueued += 1
        alive = Worker.objects.alive().filter(pid__in=[p.pid for p in workers]).count()
        stale_seen += alive < len(workers)
        if (
            enqueued >= 400
            and not Job.objects.filter(finished_at__lt=old + timedelta(days=1)).exists()
        ):
            break
        time.sleep(0.2)
    assert not Job.objects.filter(finished_at__lt=old + timedelta(days=1)).exists(), (
        "the old jobs were not pruned"
    )
    wait_until(
        lambda: (
            not Job.objects.filter(task_name=tasks.tracked.name)
            .exclude(status=JobStatus.COMPLETED)
            .exists()
        ),
        timeout=60,
        message="the stream",
    )
    took = time.monotonic() - started
    runs = runs_by_job("s")
    doubled = [job_id for job_id, r in runs.items() if len(r) > 1]  # no fault: none at all
    assert len(runs) == enqueued
    assert doubled == []
    assert stale_seen == 0  # no worker ever looked dead
    lost_errors = [
        j.pk
        for j in Job.objects.filter(task_name=tasks.tracked.name)
        if any(e.get("type") == "WorkerLost" for e in j.errors)
    ]
    assert lost_errors == []
    assert all(p.poll() is None for p in workers)
    reliability_report(
        f"Prune of {old_rows:,} finished jobs under a stream of jobs; 2 workers",
        took,
        enqueued,
        0,
        lost=enqueued - len(runs),
        doubled=len(doubled),
        note="no heartbeat went stale",
    )


def test_a_poison_job_ends_in_the_dead_letter_queue(cluster, reliability_report):
    poison = jobs.enqueue(tasks.kills_its_process, args=["poison"])
    workers = [cluster.start("--concurrency", "1", env=FAST) for _ in range(2)]
    started = time.monotonic()
    wait_until(
        lambda: Job.objects.get(pk=poison.pk).status == JobStatus.FAILED,
        timeout=120,
        message="the poison job to fail for good",
    )
    took = time.monotonic() - started
    poison.refresh_from_db()
    assert poison.queue == "dead-letter" and poison.original_queue == "default"
    assert [e["type"] for e in poison.errors] == ["ExecutorCrashed"] * MAX_LOST
    assert Execution.objects.filter(label="poison").count() == MAX_LOST
    after = jobs.enqueue(tasks.add, args=[1, 2])
    wait_until(
        lambda: Job.objects.get(pk=after.pk).status == JobStatus.COMPLETED,
        message="a job after the poison one",
    )
    assert all(p.poll() is None for p in workers)
    reliability_report(
        "A job that kills its own process every time; 2 workers",
        took,
        2,
        MAX_LOST,
        lost=0,
        doubled=0,
        note=f"dead-lettered after {MAX_LOST} losses",
    )


@pytest.mark.postgresql
@pytest.mark.skipif(not Hosts.available(), reason="needs root and iproute2 (ip netns)")
@pytest.mark.timeout(3600)
def test_three_hosts_drain_a_hundred_thousand_jobs_exactly_once(
    cluster, tmp_path, reliability_report
):
    n = int(os.environ.get("JOBS_RELIABILITY_HOST_JOBS", "100000"))
    jobs.enqueue_batch(tasks.tracked_once, items=[{"label": f"h{i}"} for i in range(n)])
    hosts = Hosts(3, tmp_path)
    hosts.up()
    try:
        for i in (1, 2, 3):
            start_on_host(
                cluster,
                hosts,
                i,
                "--processes",
                "2",
                "--concurrency",
                "2",
                "--worker-id",
                f"host{i}",
                "--no-scheduler",
            )
        started = time.monotonic()
        wait_until(
            lambda: completed() == n,
            timeout=1800,
            interval=1.0,
            message=f"all {n} jobs completed ({counts()})",
        )
        took = time.monotonic() - started
    finally:
        cluster.stop_all()
        hosts.down()
    per_job = Counter(
        Execution.objects.filter(label__startswith="h").values_list("job_id", flat=True)
    )
    assert len(per_job) == n
    doubled = [job_id for job_id, c in per_job.items() if c > 1]
    assert doubled == []
    by_host = Counter(
        w.rsplit("-", 1)[0] for ids in Job.objects.values_list("worker_ids", flat=True) for w in ids
    )
    assert set(by_host) == {"host1", "host2", "host3"}, by_host
    reliability_report(
        f"3 hosts (network namespaces), 2 worker processes x 2 executors each, "
        f"{n:,} jobs from one PostgreSQL",
        took,
        n,
        0,
        lost=n - len(per_job),
        doubled=len(doubled),
        note=f"jobs per host {dict(sorted(by_host.items()))}",
    )


@pytest.mark.timeout(1200)
def test_five_schedulers_fire_every_due_time_exactly_once(cluster, reliability_report):
    seconds = float(os.environ.get("JOBS_RELIABILITY_SCHEDULE_SECONDS", "300"))
    env = {"JOBS_HEARTBEAT": "1", "JOBS_WORKER_TIMEOUT": "5"}
    workers = [cluster.start("--concurrency", "1", env=env) for _ in range(5)]
    wait_until(lambda: Worker.objects.alive().count() == 5, timeout=60, message="5 workers")
    interval = jobs.schedule_interval(tasks.scheduled_tick, interval=1, name="every-second")
    cron = jobs.schedule(tasks.scheduled_tick, cron="* * * * *", name="every-minute")
    started = time.monotonic()
    time.sleep(seconds)
    jobs.disable_schedule("every-second")
    jobs.disable_schedule("every-minute")
    took = time.monotonic() - started
    assert all(p.poll() is None for p in workers)

    def dues(schedule):
        return sorted(
            Job.objects.filter(schedule=schedule).values_list("schedule_due_at", flat=True)
        )

    every_second = dues(interval)
    assert len(every_second) == len(set(every_second))  # none twice
    steps = {b - a for a, b in itertools.pairwise(every_second)}
    assert steps == {timedelta(seconds=1)}, Counter(
        b - a for a, b in itertools.pairwise(every_second)
    )
    assert len(every_second) >= seconds - 5
    every_minute = dues(cron)
    assert len(every_minute) == len(set(every_minute))
    assert {b - a for a, b in itertools.pairwise(every_minute)} <= {timedelta(minutes=1)}
    assert len(every_minute) >= int(seconds // 60) - 1
    reliability_report(
        f"5 schedulers for {seconds:.0f}s: an every-second interval and a * * * * * cron",
        took,
        len(every_second) + len(every_minute),
        0,
        lost=0,
        doubled=0,
        note=f"{len(every_second)} + {len(every_minute)} due times, each fired once, none skipped",
    )
