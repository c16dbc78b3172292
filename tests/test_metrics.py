"""Prometheus metrics (``metrics.py``; SPEC 10): counters from the rollups, the same from
a fresh process and after pruning; histograms with buckets; gauges from the tables."""

import os
import subprocess
import sys
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from django_jobs import jobs
from django_jobs.metrics import render
from django_jobs.models import Job, Worker
from django_jobs.models.rollup import rollups
from django_jobs.testing import run_jobs
from tests.conftest import ROOT
from tests.testapp import tasks

pytestmark = pytest.mark.django_db(transaction=True)


def samples(text):
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def value(found, name, **labels):
    return found.get((name, tuple(sorted(labels.items()))), 0)


def finished(found, queue, task, outcome):
    labels = {"queue": queue, "task": task.name, "outcome": outcome}
    return value(found, "django_jobs_jobs_finished_total", **labels)


def fresh_process_metrics():
    """``manage.py jobs metrics`` in a new process on the test database."""
    env = dict(os.environ)
    env["JOBS_TEST_DB_NAME"] = str(connection.settings_dict["NAME"])
    env["DJANGO_SETTINGS_MODULE"] = "tests.settings"
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    out = subprocess.run(
        [sys.executable, "-m", "django", "jobs", "metrics"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return out.stdout


def test_counters_survive_a_new_process_and_pruning():
    for i in range(5):
        jobs.enqueue(tasks.add, args=[i, i], queue="mq")
    for i in range(3):
        jobs.enqueue(tasks.permanent_failure, args=[f"f{i}"], queue="mq")
    flaky = jobs.enqueue(tasks.flaky_until, args=["fl", 2], queue="mq")
    cancelled = jobs.enqueue(tasks.noop, queue="mq", delay=3600)
    jobs.cancel(cancelled.pk)
    run_jobs(queues=["mq"])
    # In the past by the database clock too (SQLite keeps milliseconds: "now" in Python
    # can be ahead of the database's now within the same millisecond).
    Job.objects.filter(pk=flaky.pk).update(scheduled_at=timezone.now() - timedelta(seconds=1))
    run_jobs(queues=["mq"])
    assert Job.objects.get(pk=flaky.pk).status == "completed"
    rollups.flush()

    for text in (render().decode(), fresh_process_metrics()):
        found = samples(text)
        assert value(found, "django_jobs_jobs_enqueued_total", queue="mq") == 10
        assert finished(found, "mq", tasks.add, "completed") == 5
        # Failed for good: counted under the queue it ran in, not the dead-letter queue.
        assert finished(found, "mq", tasks.permanent_failure, "failed") == 3
        assert finished(found, "mq", tasks.flaky_until, "retried") == 1
        assert finished(found, "mq", tasks.flaky_until, "completed") == 1
        assert finished(found, "mq", tasks.noop, "cancelled") == 1
        add = {"queue": "mq", "task": tasks.add.name}
        assert value(found, "django_jobs_job_duration_seconds_count", **add) == 5
        assert value(found, "django_jobs_job_duration_seconds_bucket", le="+Inf", **add) == 5
        assert value(found, "django_jobs_job_wait_seconds_count", queue="mq") == 10  # attempts
        assert value(found, "django_jobs_jobs", queue="mq", status="completed") == 6

    assert jobs.prune(older_than=timedelta(0)) > 0
    found = samples(fresh_process_metrics())
    assert value(found, "django_jobs_jobs_enqueued_total", queue="mq") == 10
    assert finished(found, "mq", tasks.add, "completed") == 5
    assert value(found, "django_jobs_jobs", queue="mq", status="completed") == 0


def test_no_label_carries_an_id_or_arguments():
    job = jobs.enqueue(tasks.add, args=[123456789, 987654321], queue="labels")
    run_jobs(queues=["labels"])
    Worker.objects.create(
        id="worker-secret-id", hostname="h", pid=1, last_heartbeat_at=timezone.now()
    )
    rollups.flush()
    text = render().decode()
    label_values = {
        value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        for value in sample.labels.values()
    }
    assert str(job.pk) not in label_values
    for needle in ("123456789", "987654321", "worker-secret-id"):
        assert needle not in text
    found = samples(text)
    assert value(found, "django_jobs_workers", state="alive") == 1
    names = {family.name for family in text_string_to_metric_families(text)}
    assert {
        "django_jobs_jobs",
        "django_jobs_queue_oldest_pending_age_seconds",
        "django_jobs_workers",
        "django_jobs_jobs_enqueued",
        "django_jobs_jobs_finished",
        "django_jobs_job_duration_seconds",
        "django_jobs_job_wait_seconds",
        "django_jobs_schedule_last_fired_timestamp_seconds",
    } <= names


def test_oldest_pending_age_and_schedule_gauges():
    job = jobs.enqueue(tasks.noop, queue="aged")
    Job.objects.filter(pk=job.pk).update(scheduled_at=timezone.now() - timedelta(minutes=10))
    jobs.schedule_interval(tasks.noop, interval=timedelta(minutes=1), name="every-minute")
    from django_jobs.models import Schedule

    Schedule.objects.filter(name="every-minute").update(last_run_at=timezone.now())
    found = samples(render().decode())
    assert 590 < value(found, "django_jobs_queue_oldest_pending_age_seconds", queue="aged") < 700
    fired = value(
        found, "django_jobs_schedule_last_fired_timestamp_seconds", schedule="every-minute"
    )
    assert abs(fired - timezone.now().timestamp()) < 60


@pytest.mark.slow
def test_a_real_worker_writes_its_counts_before_it_exits(workers):
    for i in range(20):
        jobs.enqueue(tasks.add, args=[i, 1], queue="wq")
    rollups.flush()  # what a web process's flush thread does every few seconds
    code, out = workers.run("--burst", "--queues", "wq", "--concurrency", "2")
    assert code == 0, out
    found = samples(fresh_process_metrics())
    assert finished(found, "wq", tasks.add, "completed") == 20
    assert value(found, "django_jobs_jobs_enqueued_total", queue="wq") == 20


def test_the_shipped_grafana_dashboard_uses_only_metrics_that_exist():
    import json
    import re

    dashboard = json.loads((ROOT / "docs" / "grafana" / "django_jobs.json").read_text())
    used = {
        re.sub(r"_(bucket|total|count|sum)$", "", name)
        for panel in dashboard["panels"]
        for target in panel["targets"]
        for name in re.findall(r"django_jobs_\w+", target["expr"])
    }
    families = {family.name for family in text_string_to_metric_families(render().decode())}
    assert used and used <= families, used - families
