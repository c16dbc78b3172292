"""Health checks (``django_jobs/health.py``; SPEC 9.2, 9.3): the five checks, their
settings, ``manage.py jobs health`` and the ``--health-file`` worker probe."""

import json
import os
import signal
import time
import urllib.error
import urllib.request
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.db.migrations.recorder import MigrationRecorder
from django.utils import timezone

from django_jobs import jobs
from django_jobs.health import CHECKS, run_checks
from django_jobs.models import Job, Queue, Schedule
from tests.conftest import wait_until
from tests.helpers import live_worker
from tests.testapp import tasks


def statuses(report):
    return {check.name: check.ok for check in report.checks}


@pytest.mark.django_db
def test_all_five_checks_pass_with_a_live_worker_and_nothing_late():
    live_worker("w1")
    report = run_checks()
    assert [c.name for c in report.checks] == list(CHECKS)
    assert report.ok, report.as_dict()
    shown = report.as_dict()
    assert shown["status"] == "ok" and shown["checks"]["workers"]["alive"] == 1
    # Without details (anonymous callers): each check's status and nothing else.
    assert report.as_dict(details=False)["checks"]["workers"] == {"status": "ok"}


@pytest.mark.django_db
def test_workers_check_counts_only_live_workers(settings):
    live_worker("stale", last_heartbeat_at=timezone.now() - timedelta(minutes=10))
    report = run_checks(["workers"])
    assert not report.ok and "0 worker(s) alive" in report.checks[0].message
    settings.DJANGO_JOBS = {"HEALTH": {"MIN_WORKERS": 0}}
    assert run_checks(["workers"]).ok
    live_worker("w1")
    settings.DJANGO_JOBS = {"HEALTH": {"MIN_WORKERS": 2}}
    assert not run_checks(["workers"]).ok


@pytest.mark.django_db
def test_scheduler_check_fails_on_a_late_enabled_schedule(settings):
    jobs.schedule_interval(tasks.noop, interval=timedelta(minutes=5), name="late-one")
    Schedule.objects.filter(name="late-one").update(
        next_run_at=timezone.now() - timedelta(minutes=3)
    )
    report = run_checks(["scheduler"])
    assert not report.ok
    assert report.checks[0].details["late"] == ["late-one"]
    settings.DJANGO_JOBS = {"HEALTH": {"SCHEDULE_LAG": timedelta(minutes=5)}}
    assert run_checks(["scheduler"]).ok
    settings.DJANGO_JOBS = {}
    Schedule.objects.filter(name="late-one").update(enabled=False)
    assert run_checks(["scheduler"]).ok


@pytest.mark.django_db
def test_queues_check_uses_the_queue_limit_then_the_setting(settings):
    job = jobs.enqueue(tasks.noop, queue="slowq")
    Job.objects.filter(pk=job.pk).update(scheduled_at=timezone.now() - timedelta(hours=2))
    report = run_checks(["queues"])
    assert not report.ok and report.checks[0].details["backlogged"] == ["slowq"]
    assert report.checks[0].details["oldest_pending_age_seconds"]["slowq"] >= 7200
    Queue.objects.filter(name="slowq").update(max_pending_age=timedelta(hours=3))
    assert run_checks(["queues"]).ok
    Queue.objects.filter(name="slowq").update(max_pending_age=timedelta(minutes=1))
    assert not run_checks(["queues"]).ok
    Queue.objects.filter(name="slowq").update(paused=True)  # a paused backlog is meant
    assert run_checks(["queues"]).ok
    Queue.objects.filter(name="slowq").update(paused=False, max_pending_age=None)
    settings.DJANGO_JOBS = {"HEALTH": {"MAX_PENDING_AGE": None}}
    assert run_checks(["queues"]).ok
    # A job delayed into the future is not waiting.
    settings.DJANGO_JOBS = {"HEALTH": {"MAX_PENDING_AGE": 1}}
    Job.objects.filter(pk=job.pk).update(scheduled_at=timezone.now() + timedelta(hours=1))
    assert run_checks(["queues"]).ok


@pytest.mark.django_db
def test_migrations_check_names_what_is_not_applied():
    assert run_checks(["migrations"]).ok
    latest = MigrationRecorder.Migration.objects.filter(app="django_jobs").order_by("-name").first()
    latest.delete()  # rolled back with the test's transaction
    report = run_checks(["migrations"])
    assert not report.ok and report.checks[0].details["unapplied"] == [latest.name]


@pytest.mark.django_db
def test_unknown_check_is_a_clear_error():
    with pytest.raises(ValueError, match="Unknown health check"):
        run_checks(["database", "nope"])


@pytest.mark.django_db
def test_health_settings_are_checked():
    from django_jobs.checks import check_settings

    for bad in [
        {"MIN_WORKERS": -1},
        {"SCHEDULE_LAG": 0},
        {"MAX_PENDING_AGE": "1h"},
        {"MIN_WORKER": 1},
        ["MIN_WORKERS"],
    ]:
        with pytest.MonkeyPatch.context() as mp:
            from django.conf import settings

            mp.setattr(settings, "DJANGO_JOBS", {"HEALTH": bad})
            assert "django_jobs.E024" in {m.id for m in check_settings()}, bad


@pytest.mark.django_db
def test_cli_health_exit_status_and_json(capsys):
    with pytest.raises(SystemExit) as exited:
        call_command("jobs", "health")
    assert exited.value.code == 1
    out = capsys.readouterr().out
    assert "fail  workers" in out and "ok    database" in out
    call_command("jobs", "health", "--check", "database", "--check", "migrations", "--json")
    report = json.loads(capsys.readouterr().out)
    assert report["status"] == "ok" and set(report["checks"]) == {"database", "migrations"}


def test_cli_worker_file_probe_needs_no_database(tmp_path, capsys):
    path = tmp_path / "alive"
    with pytest.raises(SystemExit):
        call_command("jobs", "health", "--worker-file", str(path))
    assert "does not exist" in capsys.readouterr().out
    path.touch()
    call_command("jobs", "health", "--worker-file", str(path), "--max-age", "5s", "--json")
    assert json.loads(capsys.readouterr().out)["status"] == "ok"
    old = time.time() - 60
    os.utime(path, (old, old))
    with pytest.raises(SystemExit):
        call_command("jobs", "health", "--worker-file", str(path), "--max-age", "30s")


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_health_follows_a_real_worker_and_its_health_file(workers, tmp_path, live_server):
    # tests/settings.py: heartbeats every 0.5 s, a worker is dead after 3 s without one.
    def http_status():  # GET /api/jobs/health/?check=workers over HTTP, anonymously
        url = f"{live_server.url}/api/jobs/health/?check=workers"
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                return response.status
        except urllib.error.HTTPError as error:
            return error.code

    assert http_status() == 503  # no worker yet
    path = tmp_path / "worker-alive"
    proc = workers.start("--health-file", str(path), "--concurrency", "1")
    wait_until(lambda: run_checks(["workers"]).ok, message="the worker to be alive")
    assert http_status() == 200
    wait_until(path.exists, message="the health file")
    first = path.stat().st_mtime
    wait_until(lambda: path.stat().st_mtime > first, message="the health file to be touched again")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    time.sleep(1.5)
    with pytest.raises(SystemExit):
        call_command("jobs", "health", "--worker-file", str(path), "--max-age", "1s")
    # Dead worker rows count once their heartbeat is older than WORKER_TIMEOUT.
    wait_until(lambda: not run_checks(["workers"]).ok, timeout=30, message="workers to fail")
    assert http_status() == 503
    workers.start("--concurrency", "1")
    wait_until(lambda: run_checks(["workers"]).ok, message="the new worker to count")
    assert http_status() == 200
