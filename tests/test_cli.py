"""manage.py jobs <subcommand>: thin callers of the manager."""

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from django_jobs import JobStatus, jobs
from django_jobs.models import Job, Queue
from django_jobs.testing import run_jobs
from tests.testapp import tasks

pytestmark = pytest.mark.django_db


def cli(*args):
    out = StringIO()
    call_command("jobs", *args, stdout=out)
    return out.getvalue()


def test_enqueue_show_list_and_stats():
    job_id = int(cli("enqueue", tasks.add.name, "--args", "[2, 5]").strip())
    run_jobs()
    job = Job.objects.get(pk=job_id)
    assert job.status == JobStatus.COMPLETED and job.result == 7
    shown = cli("show", str(job_id))
    assert "completed" in shown and "tests.testapp.tasks.add" in shown
    assert str(job_id) in cli("list", "--status", "completed")
    assert "completed_jobs" in cli("stats")


def test_enqueue_rejects_unknown_task_and_bad_json():
    with pytest.raises(CommandError, match="No task named"):
        cli("enqueue", "nope.nothing")
    with pytest.raises(CommandError):
        cli("enqueue", tasks.add.name, "--args", "{not json")
    assert Job.objects.count() == 0


def test_wait_prints_the_result():
    job = jobs.enqueue(tasks.add, args=[1, 1])
    run_jobs()
    out = cli("wait", str(job.pk))
    assert f"job {job.pk} completed" in out and "2" in out


def test_cancel_retry_and_queue_verbs():
    job = jobs.enqueue(tasks.add, args=[1, 1], queue="q1")
    assert "cancel requested" in cli("cancel", str(job.pk))
    assert Job.objects.get(pk=job.pk).status == JobStatus.CANCELLED
    with pytest.raises(CommandError, match="already finished"):
        cli("cancel", str(job.pk))
    assert "pending again" in cli("retry", str(job.pk))
    cli("pause", "q1")
    assert Queue.objects.get(name="q1").paused
    assert "(paused)" in cli("queues")
    Queue.objects.create(name="geo", concurrency_limit=4, rate_limit="50/s")
    assert "at most 4 running, at most 50/s starts" in cli("queues")
    cli("resume", "q1")
    assert not Queue.objects.get(name="q1").paused
    assert "1 job(s) cancelled" in cli("clear", "q1")


def test_show_unknown_job_is_a_clear_error():
    with pytest.raises(CommandError, match="No job"):
        cli("show", "999999")
    with pytest.raises(CommandError):
        cli("show", "abc")


def test_prune_and_requeue_stuck():
    assert "0 job(s) deleted" in cli("prune", "--older-than", "1d")
    assert "0 job(s) requeued" in cli("requeue-stuck")


def test_cancel_unknown_job_is_a_clear_error():
    with pytest.raises(CommandError, match="No job"):
        cli("cancel", "987654")


def test_state_changes_from_the_command_line_are_audited():
    import getpass

    from django_jobs.models import AuditEntry

    job = jobs.enqueue(tasks.add, args=[1, 2])
    cli("cancel", str(job.pk))
    cli("pause", "emails")
    cli("stats")  # reading is not logged
    entries = list(AuditEntry.objects.order_by("id").values_list("source", "username", "action"))
    me = getpass.getuser()
    assert entries == [("cli", me, "cancel"), ("cli", me, "pause")]
