"""Helpers shared by the tests of the job verbs, claiming, outcomes and rescue."""

import shutil
import uuid
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from django_jobs import JobStatus
from django_jobs.models import Job, Worker
from django_jobs.testing import run_jobs

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


def finished_job(status, age, **kwargs):
    now = timezone.now()
    return Job.objects.create(
        task_name="tests.testapp.tasks.noop",
        status=status,
        started_at=now - age - timedelta(seconds=1),
        finished_at=now - age,
        **kwargs,
    )


# The browser tests' Chromium (Debian's; never `playwright install`) and their marks.
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
BROWSER_TEST_MARKS = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.slow,
    pytest.mark.skipif(
        not Path(CHROMIUM).exists(),
        reason=f"no Chromium at {CHROMIUM} (apt-get install chromium; .ci/run does)",
    ),
]
