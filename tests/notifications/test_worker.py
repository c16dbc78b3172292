"""Notifications sent by real ``runworkers`` processes: email through the file backend,
``worker_lost`` after a SIGKILLed worker held a job (once), and a receiver nobody
listens on never holding up the other jobs."""

import email
import email.policy
import json
import os
import signal
import socket
import time

import pytest

from django_jobs import JobStatus, jobs
from django_jobs.conf import DELIVERY_TASK
from django_jobs.models import Delivery, Job
from tests.conftest import wait_until
from tests.testapp import tasks

from .conftest import SECRET
from .test_deliveries import FAIL

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

SETTINGS = "tests.notifications.worker_settings"


def notifying(notifications, **extra):
    return {
        "DJANGO_SETTINGS_MODULE": SETTINGS,
        "JOBS_TEST_NOTIFY": json.dumps(notifications),
        **extra,
    }


def test_a_real_worker_emails_a_failure_through_the_file_backend(workers, tmp_path):
    outbox = tmp_path / "mail"
    job = jobs.enqueue(FAIL, args=["by-mail"], queue="mailq")
    workers.start(
        "--no-scheduler",
        env=notifying({"EMAIL": {"TO": ["ops@example.com"]}}, JOBS_TEST_EMAIL_DIR=str(outbox)),
    )
    end = "-" * 79 + "\n"  # the file backend's line after each message

    def written():
        return [f for f in outbox.glob("*.log") if f.read_text().endswith(end)]

    files = wait_until(lambda: outbox.exists() and written(), timeout=30, message="an email")
    message = email.message_from_string(
        files[0].read_text().split("\n" + "-" * 79)[0], policy=email.policy.default
    )  # the default policy unfolds a long Subject (Django 6.1 folds it)
    # Folded right after "Subject:" (Django 6.1), the value keeps the fold's space.
    assert message["Subject"].strip() == f"[django_jobs] failed: {FAIL} (job {job.pk})"
    assert message["To"] == "ops@example.com" and message["From"] == "jobs@example.com"
    body = message.get_payload(decode=True).decode()
    assert "queue: mailq" in body and "ValueError: bad input, never retry" in body
    assert f"https://jobs.example.com/admin/django_jobs/job/{job.pk}/change/" in body
    wait_until(
        lambda: Delivery.objects.filter(status=Delivery.DELIVERED).exists(),
        message="the delivery recorded",
    )


def test_worker_lost_is_sent_once_after_a_sigkilled_worker_held_a_job(workers, receiver):
    settings = {"WEBHOOKS": [{"URL": receiver.url, "SECRET": SECRET, "EVENTS": ["worker_lost"]}]}
    job = jobs.enqueue(tasks.sleeper, args=["held", 2])
    victim = workers.start("--no-scheduler", "--concurrency", "1")
    wait_until(
        lambda: Job.objects.filter(pk=job.pk, status=JobStatus.RUNNING).exists(),
        timeout=30,
        message="the job running",
    )
    lost_id = Job.objects.get(pk=job.pk).worker_id
    os.killpg(victim.pid, signal.SIGKILL)
    victim.wait(timeout=10)
    rescuers = [workers.start("--no-scheduler", env=notifying(settings)) for _ in range(2)]
    wait_until(lambda: receiver.received, timeout=40, message="worker.lost")
    wait_until(
        lambda: Job.objects.filter(pk=job.pk, status=JobStatus.COMPLETED).exists(),
        timeout=30,
        message="the job run again",
    )
    time.sleep(3)  # more rescue rounds and alert checks: still one message
    (message,) = [json.loads(body) for _, body in receiver.received]
    assert message["type"] == "worker.lost"
    assert message["data"]["worker_id"] == lost_id
    assert message["data"]["jobs"] == [job.pk]
    for proc in rescuers:  # their housekeeping ran its checks without an error
        assert "could not" not in workers.output(proc).lower()


def test_a_receiver_that_never_answers_never_holds_up_the_other_jobs(workers):
    # A listening socket that never accepts: the POST is sent, no answer ever comes.
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)
    url = f"http://127.0.0.1:{silent.getsockname()[1]}/hooks"
    settings = {"WEBHOOKS": [{"URL": url, "SECRET": SECRET, "EVENTS": ["failed"]}]}
    try:
        failed = jobs.enqueue(FAIL, args=["x"])
        workers.start("--no-scheduler", "--concurrency", "2", env=notifying(settings))
        wait_until(
            lambda: Job.objects.filter(task_name=DELIVERY_TASK, status=JobStatus.RUNNING).exists(),
            timeout=30,
            message="the delivery under way",
        )
        others = [jobs.enqueue(tasks.add, args=[i, i]) for i in range(20)]
        wait_until(
            lambda: (
                Job.objects.filter(
                    pk__in=[o.pk for o in others], status=JobStatus.COMPLETED
                ).count()
                == 20
            ),
            timeout=8,  # well within the receiver's 10 s timeout
            message="the other jobs done while the delivery waits",
        )
        assert Job.objects.filter(task_name=DELIVERY_TASK, status=JobStatus.RUNNING).exists()
        wait_until(
            lambda: Delivery.objects.exclude(attempts=[]).exists(), timeout=30, message="timeout"
        )
        delivery = Delivery.objects.get()
        assert delivery.job_id == failed.pk and delivery.status == Delivery.PENDING
        assert "timed out" in delivery.attempts[0]["error"]
        assert Job.objects.get(pk=failed.pk).status == JobStatus.FAILED
    finally:
        silent.close()


def test_a_real_worker_reports_a_backlog_once(workers, receiver):
    from datetime import timedelta

    from django.utils import timezone

    from django_jobs.models import Queue

    settings = {"WEBHOOKS": [{"URL": receiver.url, "SECRET": SECRET, "EVENTS": ["queue_backlog"]}]}
    job = jobs.enqueue(tasks.noop, queue="slowq")
    Queue.objects.filter(name="slowq").update(max_pending_age=timedelta(seconds=30))
    Job.objects.filter(pk=job.pk).update(scheduled_at=timezone.now() - timedelta(minutes=5))
    # Two workers that do not take jobs from slowq: both check, one message.
    procs = [
        workers.start(
            "--no-scheduler", "--queues", "default,notifications", env=notifying(settings)
        )
        for _ in range(2)
    ]
    wait_until(lambda: receiver.received, timeout=30, message="queue.backlog")
    time.sleep(2)
    (message,) = [json.loads(body) for _, body in receiver.received]
    assert message["type"] == "queue.backlog" and message["data"]["queue"] == "slowq"
    for proc in procs:
        assert "could not" not in workers.output(proc).lower()
