"""System events that are conditions: schedule_missed and queue_backlog, notified once
per incident and again only after the condition cleared; worker_lost once per worker."""

import json
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from django_jobs import jobs
from django_jobs.execution.rescue import rescue_stalled
from django_jobs.models import Delivery, Incident, Job, Queue, Schedule
from django_jobs.notifications import alerts
from django_jobs.testing import run_jobs
from tests.helpers import claim_one, live_worker
from tests.testapp import tasks

from .conftest import SECRET

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def hook(receiver, settings):
    def configure(*events, **extra):
        settings.DJANGO_JOBS = {
            **settings.DJANGO_JOBS,
            "NOTIFICATIONS": {
                "WEBHOOKS": [{"URL": receiver.url, "SECRET": SECRET, "EVENTS": list(events)}],
                **extra,
            },
        }

    return configure


def sent(receiver):
    run_jobs(["notifications"])
    return [json.loads(body) for _, body in receiver.received]


def test_a_late_schedule_is_notified_once_per_incident(hook, receiver):
    hook("schedule_missed")
    jobs.schedule_interval(tasks.noop, interval=timedelta(minutes=5), name="nightly")
    late = timezone.now() - timedelta(minutes=3)
    Schedule.objects.filter(name="nightly").update(next_run_at=late)

    assert alerts.check(connection.alias)["schedule_missed"] == ["nightly"]
    assert alerts.check(connection.alias)["schedule_missed"] == []  # still the same incident
    (message,) = sent(receiver)
    assert message["type"] == "schedule.missed"
    assert message["data"]["schedule"] == "nightly"
    assert message["data"]["late_seconds"] >= 170

    Schedule.objects.filter(name="nightly").update(
        next_run_at=timezone.now() + timedelta(minutes=5)
    )
    assert alerts.check(connection.alias)["cleared"] == ["nightly"]
    Schedule.objects.filter(name="nightly").update(next_run_at=late)
    assert alerts.check(connection.alias)["schedule_missed"] == ["nightly"]  # a new incident
    assert [m["type"] for m in sent(receiver)] == ["schedule.missed"] * 2


def test_a_backlog_is_notified_once_per_incident(hook, receiver):
    hook("queue_backlog")
    job = jobs.enqueue(tasks.noop, queue="slowq")
    Queue.objects.filter(name="slowq").update(max_pending_age=timedelta(minutes=1))
    Job.objects.filter(pk=job.pk).update(scheduled_at=timezone.now() - timedelta(minutes=10))

    assert alerts.check(connection.alias)["queue_backlog"] == ["slowq"]
    assert alerts.check(connection.alias)["queue_backlog"] == []
    (message,) = sent(receiver)
    assert message["type"] == "queue.backlog"
    assert message["data"]["queue"] == "slowq"
    assert message["data"]["due_jobs"] == 1
    assert message["data"]["allowed_seconds"] == 60

    run_jobs(["slowq"])  # the backlog is worked off
    assert alerts.check(connection.alias)["cleared"] == ["slowq"]
    assert not Incident.objects.filter(cleared_at=None).exists()


def test_nothing_is_checked_or_sent_without_a_channel_for_it(hook, receiver):
    hook("failed")
    job = jobs.enqueue(tasks.noop, queue="slowq")
    Job.objects.filter(pk=job.pk).update(scheduled_at=timezone.now() - timedelta(days=2))
    assert alerts.check(connection.alias)["queue_backlog"] == []
    assert Incident.objects.count() == 0 and Delivery.objects.count() == 0


def test_worker_lost_once_per_lost_worker(hook, receiver):
    hook("worker_lost")
    a = jobs.enqueue(tasks.noop)
    b = jobs.enqueue(tasks.noop)
    claim_one("dead-1")
    claim_one("dead-1")
    assert rescue_stalled(connection.alias, worker_id="dead-1") == 2
    # The same worker id rescued again (it held more jobs later): still one incident.
    Job.objects.filter(pk=a.pk).update(status="running", worker_id="dead-1", lease="x")
    rescue_stalled(connection.alias, worker_id="dead-1")
    (message,) = sent(receiver)
    assert message["type"] == "worker.lost"
    assert message["data"]["worker_id"] == "dead-1"
    assert sorted(message["data"]["jobs"]) == sorted([a.pk, b.pk])
    # Over once the worker holds no job any more: a later loss of that id is new.
    assert alerts.check(connection.alias)["cleared"] == ["dead-1"]
    Job.objects.filter(pk=a.pk).update(status="running", worker_id="dead-1", lease="y")
    rescue_stalled(connection.alias, worker_id="dead-1")
    assert [m["type"] for m in sent(receiver)] == ["worker.lost", "worker.lost"]


def test_a_lost_worker_that_heartbeats_again_clears_its_incident(hook, receiver):
    hook("worker_lost")
    jobs.enqueue(tasks.noop)
    jobs.enqueue(tasks.noop)
    claim_one("cut-off")
    claim_one("cut-off")
    first = Job.objects.filter(worker_id="cut-off").order_by("pk").first()
    rescue_stalled(connection.alias, worker_id="cut-off", chunk=1)
    # Cut off, not dead: it still holds a job (say its rescue chunk stopped short).
    Job.objects.filter(pk=first.pk).update(status="running", worker_id="cut-off", lease="z")
    assert alerts.check(connection.alias)["cleared"] == []
    live_worker("cut-off")
    assert alerts.check(connection.alias)["cleared"] == ["cut-off"]


def test_an_email_for_a_system_event(settings):
    from django.core import mail

    settings.DJANGO_JOBS = {
        **settings.DJANGO_JOBS,
        "NOTIFICATIONS": {"EMAIL": {"TO": ["ops@example.com"], "EVENTS": ["queue_backlog"]}},
    }
    job = jobs.enqueue(tasks.noop, queue="slowq")
    Queue.objects.filter(name="slowq").update(max_pending_age=timedelta(minutes=1))
    Job.objects.filter(pk=job.pk).update(scheduled_at=timezone.now() - timedelta(minutes=10))
    alerts.check(connection.alias)
    run_jobs(["notifications"])
    (message,) = mail.outbox
    assert message.subject == "[django_jobs] queue backlog: slowq"
    assert "its oldest due job has waited" in message.body and "1 job(s) are due" in message.body


def test_old_finished_deliveries_are_pruned_and_pending_ones_kept():
    from django_jobs.notifications.deliveries import prune

    old = timezone.now() - timedelta(days=10)
    kept = Delivery.objects.create(event="failed", channel="webhook", target="http://x/")
    pending = Delivery.objects.create(
        event="failed", channel="webhook", target="http://x/", created_at=old
    )
    for status in ("delivered", "failed"):
        Delivery.objects.create(
            event="failed", channel="webhook", target="http://x/", created_at=old, status=status
        )
    assert prune(connection.alias, timedelta(days=7).total_seconds(), chunk=1) == 2
    assert set(Delivery.objects.values_list("pk", flat=True)) == {kept.pk, pending.pk}
