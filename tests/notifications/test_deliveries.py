"""Notifications end to end in the test process (SPEC 10): job events become deliveries
in the outcome's transaction, webhooks reach a real HTTP receiver signed as Standard
Webhooks says, emails go through Django's mail backend and are digested, failing
receivers are retried without touching the reported job."""

import base64
import hashlib
import hmac
import json
import socket
import time
from datetime import timedelta

import pytest
from django.core import mail
from django.db import connection, transaction
from django.utils import timezone

from django_jobs import JobStatus, jobs
from django_jobs.conf import DIGEST_TASK
from django_jobs.models import Delivery, Job
from django_jobs.notifications import WebhookVerificationError, verify
from django_jobs.notifications.sending import _retry_after
from django_jobs.testing import run_jobs

from .conftest import KEY, SECRET

pytestmark = pytest.mark.django_db(transaction=True)

FAIL = "tests.testapp.tasks.permanent_failure"
TRANSIENT = "tests.testapp.tasks.always_transient"
NOTIFICATIONS = ["notifications"]


def run_all(rounds=20):
    """Run the project's jobs, then the deliveries they made, until nothing is due."""
    for _ in range(rounds):
        if not run_jobs():
            return


def own_signature(headers: dict, body: bytes) -> str:
    """Standard Webhooks' v1 signature, computed here, not with the project's code."""
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(KEY, signed, hashlib.sha256).digest()).decode()


def lower(headers: dict) -> dict:
    return {k.lower(): v for k, v in headers.items()}


def test_a_job_failing_for_good_posts_one_signed_webhook(receiver, notify):
    notify(receiver.url)
    job = jobs.enqueue(FAIL, args=["x"])
    run_all()

    assert len(receiver.received) == 1
    headers, body = receiver.received[0]
    headers = lower(headers)
    assert headers["webhook-signature"] == own_signature(headers, body)
    assert abs(int(headers["webhook-timestamp"]) - time.time()) < 60
    assert headers["content-type"] == "application/json"
    message = json.loads(body)
    assert message["type"] == "job.failed"
    assert message["timestamp"]
    reported = message["data"]["job"]
    assert reported["id"] == job.pk
    assert reported["task"] == FAIL
    assert reported["queue"] == "default"  # the queue it ran in, not the dead-letter queue
    assert reported["status"] == "failed"
    assert reported["attempts"] == 1
    assert reported["error"]["type"] == "ValueError"
    assert "bad input" in reported["error"]["message"]
    assert "Traceback" in reported["error"]["traceback"]
    assert reported["metadata"] == {}

    verify(SECRET, headers, body)  # the project's receiver-side check agrees
    with pytest.raises(WebhookVerificationError):
        verify(SECRET, headers, body.replace(b"failed", b"fooled"))
    with pytest.raises(WebhookVerificationError):
        verify("whsec_" + base64.b64encode(b"another key entirely").decode(), headers, body)

    delivery = Delivery.objects.get()
    assert delivery.status == Delivery.DELIVERED
    assert delivery.message_id == headers["webhook-id"]
    assert delivery.job_id == job.pk
    assert [a["status_code"] for a in delivery.attempts] == [200]


def test_events_and_filters_choose_what_is_sent(receiver, notify):
    notify(receiver.url, events=["failed", "retrying", "completed"], QUEUES=["default"])
    jobs.enqueue("tests.testapp.tasks.noop")
    jobs.enqueue("tests.testapp.tasks.noop", queue="elsewhere")  # filtered out
    jobs.enqueue(FAIL, args=["y"], queue="elsewhere")  # filtered out
    retried = jobs.enqueue(TRANSIENT, args=["z"], max_retries=1, retry_delay=0)
    run_all()
    types = sorted(json.loads(body)["type"] for _, body in receiver.received)
    assert types == ["job.completed", "job.failed", "job.retrying"]
    failed = next(json.loads(b) for _, b in receiver.received if b"job.failed" in b)
    assert failed["data"]["job"]["id"] == retried.pk
    assert failed["data"]["job"]["attempts"] == 2


def test_tasks_filter(receiver, notify):
    notify(receiver.url, events=["completed"], TASKS=["tests.testapp.tasks.add"])
    jobs.enqueue("tests.testapp.tasks.noop")
    added = jobs.enqueue("tests.testapp.tasks.add", args=[1, 2])
    run_all()
    assert [json.loads(b)["data"]["job"]["id"] for _, b in receiver.received] == [added.pk]


def test_cancelled_jobs_notify_and_a_rolled_back_cancel_notifies_nobody(receiver, notify):
    notify(receiver.url, events=["cancelled"])
    kept = jobs.enqueue("tests.testapp.tasks.noop", delay=3600)
    with pytest.raises(RuntimeError), transaction.atomic():
        assert jobs.cancel(kept)
        assert Delivery.objects.count() == 1  # recorded with the outcome...
        raise RuntimeError("roll back")
    assert Delivery.objects.count() == 0  # ...and gone with it
    assert Job.objects.filter(queue=NOTIFICATIONS[0]).count() == 0

    gone = jobs.enqueue("tests.testapp.tasks.noop", delay=3600)
    assert jobs.cancel(gone)
    run_jobs(NOTIFICATIONS)
    (message,) = [json.loads(b) for _, b in receiver.received]
    assert message["type"] == "job.cancelled"
    assert message["data"]["job"]["id"] == gone.pk
    assert message["data"]["job"]["status"] == "cancelled"


def test_500_twice_then_200_is_delivered_on_the_third_try(receiver, notify):
    notify(receiver.url)
    receiver.answers = [(500, {"Retry-After": "0"}), (503, {"Retry-After": "0"})]
    job = jobs.enqueue(FAIL, args=["x"])
    run_jobs(["default"])
    before = Job.objects.get(pk=job.pk)
    run_all()

    delivery = Delivery.objects.get()
    assert delivery.status == Delivery.DELIVERED
    assert [a["status_code"] for a in delivery.attempts] == [500, 503, 200]
    assert [a["error"] for a in delivery.attempts][:2] == ["HTTP 500", "HTTP 503"]
    assert len(receiver.received) == 3
    assert len({lower(h)["webhook-id"] for h, _ in receiver.received}) == 1  # one message
    sender = Job.objects.get(pk=delivery.sender_job_id)
    assert sender.status == JobStatus.COMPLETED and sender.attempts == 3
    after = Job.objects.get(pk=job.pk)  # the reported job is untouched
    assert (after.status, after.finished_at, after.attempts, after.errors) == (
        before.status,
        before.finished_at,
        before.attempts,
        before.errors,
    )


def test_429_waits_as_long_as_retry_after_says(receiver, notify):
    notify(receiver.url)
    receiver.answers = [(429, {"Retry-After": "120"})]
    jobs.enqueue(FAIL, args=["x"])
    run_all()
    delivery = Delivery.objects.get()
    assert delivery.status == Delivery.PENDING
    sender = Job.objects.get(pk=delivery.sender_job_id)
    assert sender.status == JobStatus.RETRYING
    wait = (sender.scheduled_at - timezone.now()).total_seconds()
    assert 100 < wait <= 121


def test_other_4xx_is_given_up_at_once(receiver, notify):
    notify(receiver.url)
    receiver.answers = [(410, {})]
    jobs.enqueue(FAIL, args=["x"])
    run_all()
    delivery = Delivery.objects.get()
    assert delivery.status == Delivery.FAILED
    assert [a["status_code"] for a in delivery.attempts] == [410]
    assert Job.objects.get(pk=delivery.sender_job_id).status == JobStatus.COMPLETED
    assert len(receiver.received) == 1


def closed_port() -> int:
    """A local port nobody listens on."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def closed_port_url():
    return f"http://127.0.0.1:{closed_port()}/nobody"


def test_nobody_listening_is_retried_later_and_other_jobs_go_on(notify):
    notify(closed_port_url())
    jobs.enqueue(FAIL, args=["x"])
    other = jobs.enqueue("tests.testapp.tasks.add", args=[2, 3])
    run_all()
    assert Job.objects.get(pk=other.pk).status == JobStatus.COMPLETED
    delivery = Delivery.objects.get()
    assert delivery.status == Delivery.PENDING
    assert "Connection refused" in delivery.attempts[0]["error"]
    sender = Job.objects.get(pk=delivery.sender_job_id)
    assert sender.status == JobStatus.RETRYING
    assert sender.scheduled_at > timezone.now()  # the job's backoff, not a busy loop


def test_a_delivery_that_never_succeeds_ends_failed_without_a_dead_letter(notify):
    notify(closed_port_url())
    jobs.enqueue(FAIL, args=["x"])
    run_jobs(["default"])
    delivery = Delivery.objects.get()
    sender = Job.objects.get(pk=delivery.sender_job_id)
    for _ in range(sender.max_retries + 1):
        Job.objects.filter(pk=sender.pk).update(scheduled_at=timezone.now() - timedelta(seconds=1))
        run_jobs(NOTIFICATIONS)
    delivery.refresh_from_db()
    assert delivery.status == Delivery.FAILED
    assert len(delivery.attempts) == sender.max_retries + 1
    sender.refresh_from_db()
    assert sender.status == JobStatus.COMPLETED  # the dead-letter queue is for the project's jobs
    # And the delivery jobs themselves never notify (no alerts about alerts).
    assert Delivery.objects.count() == 1


def test_email_through_django_mail_with_the_admin_link(notify, settings):
    settings.SERVER_EMAIL = "jobs@example.com"
    notify(email={"TO": ["ops@example.com"], "EVENTS": ["failed"]})
    job = jobs.enqueue(FAIL, args=["x"], queue="mail")
    run_all()
    (message,) = mail.outbox
    assert message.to == ["ops@example.com"]
    assert message.from_email == "jobs@example.com"
    assert (
        "failed" in message.subject and FAIL in message.subject and str(job.pk) in message.subject
    )
    assert "queue: mail" in message.body
    assert "attempts: 1" in message.body
    assert "ValueError: bad input, never retry" in message.body
    assert "Traceback (most recent call last)" in message.body
    assert f"https://jobs.example.com/admin/django_jobs/job/{job.pk}/change/" in message.body
    assert Delivery.objects.get().status == Delivery.DELIVERED


def test_email_from_overrides_server_email(notify, settings):
    notify(email={"TO": ["ops@example.com"], "FROM": "alerts@example.com"})
    jobs.enqueue(FAIL, args=["x"])
    run_all()
    assert [m.from_email for m in mail.outbox] == ["alerts@example.com"]


def test_a_thousand_failures_make_one_digest_email_and_a_thousand_webhooks(
    receiver, notify, settings
):
    notify(receiver.url, email={"TO": ["ops@example.com"], "EVENTS": ["failed"]})
    batch = jobs.enqueue_batch(FAIL, [{"label": str(i)} for i in range(1000)])
    assert run_jobs(["default"]) == 1000
    assert Delivery.objects.filter(channel="webhook").count() == 1000
    run_jobs(NOTIFICATIONS)

    assert len(mail.outbox) == 1
    (message,) = mail.outbox
    assert message.subject == f"[django_jobs] 1000 jobs failed: {FAIL}"
    assert "1000 jobs of" in message.body and "... and 950 more." in message.body
    assert len(receiver.received) == 1000
    ids = {json.loads(b)["data"]["job"]["id"] for _, b in receiver.received}
    assert ids == set(Job.objects.filter(batch=batch).values_list("pk", flat=True))


def test_events_after_an_email_wait_for_the_end_of_its_window(notify):
    notify(email={"TO": ["ops@example.com"]})  # DIGEST: 60 s
    jobs.enqueue(FAIL, args=["first"])
    run_all()
    assert len(mail.outbox) == 1  # the first email of a quiet task goes at once

    for label in ("a", "b", "c"):
        jobs.enqueue(FAIL, args=[label])
    run_all()
    assert len(mail.outbox) == 1  # gathered for the next email, due when the window ends
    waiting = Delivery.objects.filter(status="pending")
    assert waiting.count() == 3 and set(waiting.values_list("due_at", flat=True)) == {None}
    (sender,) = Job.objects.filter(task_name=DIGEST_TASK, status=JobStatus.PENDING)
    wait = (sender.scheduled_at - timezone.now()).total_seconds()
    assert 50 < wait <= 60
    Job.objects.filter(pk=sender.pk).update(scheduled_at=timezone.now())
    run_all()
    assert len(mail.outbox) == 2
    assert mail.outbox[1].subject == f"[django_jobs] 3 jobs failed: {FAIL}"
    assert "3 jobs of" in mail.outbox[1].body and "within a minute" in mail.outbox[1].body
    assert set(Delivery.objects.values_list("status", flat=True)) == {"delivered"}


def test_digest_zero_sends_one_email_per_event(notify, settings):
    notify(email={"TO": ["ops@example.com"], "DIGEST": 0})
    for label in ("a", "b"):
        jobs.enqueue(FAIL, args=[label])
    run_all()
    assert len(mail.outbox) == 2


def test_a_broken_mail_backend_is_retried(notify, mail_backend):
    port = closed_port()
    mail_backend("django.core.mail.backends.smtp.EmailBackend", host="127.0.0.1", port=port)
    notify(email={"TO": ["ops@example.com"]})
    job = jobs.enqueue(FAIL, args=["x"])
    run_all()
    assert Job.objects.get(pk=job.pk).status == JobStatus.FAILED
    delivery = Delivery.objects.get()
    assert delivery.status == Delivery.PENDING and "Connection" in delivery.attempts[0]["error"]


def test_nothing_is_written_when_no_channel_wants_the_event(receiver, notify):
    notify(receiver.url, events=["failed"])
    jobs.enqueue("tests.testapp.tasks.noop")
    run_all()
    assert Delivery.objects.count() == 0
    assert receiver.received == []


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("0", 0.0), ("30", 30.0), ("99999", 3600.0), ("-5", 0.0), ("soon", None), (None, None)],
)
def test_retry_after_values(value, seconds):
    assert _retry_after(value) == seconds


def test_retry_after_as_an_http_date():
    from email.utils import format_datetime

    when = format_datetime(timezone.now() + timedelta(seconds=90), usegmt=True)
    assert 80 < _retry_after(when) <= 91


def test_eager_mode_sends_at_once(receiver, notify, settings):
    notify(receiver.url)
    settings.DJANGO_JOBS = {**settings.DJANGO_JOBS, "EAGER": True}
    job = jobs.enqueue(FAIL, args=["x"])
    assert Job.objects.get(pk=job.pk).status == JobStatus.FAILED
    (message,) = [json.loads(body) for _, body in receiver.received]
    assert message["data"]["job"]["id"] == job.pk
    assert Delivery.objects.get().status == Delivery.DELIVERED


def test_no_link_without_base_url_or_sites(notify, settings):
    notify(email={"TO": ["ops@example.com"]})
    settings.DJANGO_JOBS = {**settings.DJANGO_JOBS, "BASE_URL": None}
    jobs.enqueue(FAIL, args=["x"])
    run_all()
    assert "/admin/django_jobs/job/" not in mail.outbox[0].body


def test_long_digest_and_incident_keys_stay_unique_within_255_characters():
    from django_jobs.notifications.deliveries import _bounded, incident_key

    long_a, long_b = "t" * 300 + "a", "t" * 300 + "b"
    keys = {_bounded(f"failed:{long_a}"), _bounded(f"failed:{long_b}")}
    assert len(keys) == 2 and all(len(k) <= 255 for k in keys)
    assert incident_key("queue_backlog", "q") == "queue_backlog:q"
    assert len(incident_key("schedule_missed", "s" * 255)) <= 255


def test_a_cancelled_digest_sender_strands_nothing(notify):
    from django_jobs.notifications import alerts

    notify(email={"TO": ["ops@example.com"]})
    failed = jobs.enqueue(FAIL, args=["a"])
    run_jobs(["default"])
    (sender,) = Job.objects.filter(task_name=DIGEST_TASK)
    assert jobs.cancel(sender.pk)  # an operator clearing the notifications queue
    # Its rows wait, untaken; the workers' sweep gives them a new sender.
    Delivery.objects.update(created_at=timezone.now() - timedelta(minutes=1))
    assert alerts.sweep(connection.alias) == {"failed": 0, "digests": 1}
    run_jobs(["notifications"])
    assert [m.subject for m in mail.outbox] == [f"[django_jobs] failed: {FAIL} (job {failed.pk})"]


def test_a_sender_ended_without_sending_leaves_its_rows_failed_not_pending(notify, mail_backend):
    from django_jobs.notifications import alerts

    port = closed_port()
    mail_backend("django.core.mail.backends.smtp.EmailBackend", host="127.0.0.1", port=port)
    notify(email={"TO": ["ops@example.com"]})
    jobs.enqueue(FAIL, args=["a"])
    run_all()
    (row,) = Delivery.objects.all()
    assert row.status == "pending" and row.sender_job_id and len(row.attempts) == 1
    assert jobs.cancel(row.sender_job_id)  # retrying after the SMTP error: cancelled
    alerts.sweep(connection.alias)
    row.refresh_from_db()
    assert row.status == "failed"
    assert "ended without sending it" in row.attempts[-1]["error"]


def test_new_events_after_a_sender_started_get_the_next_sender(notify):
    """The sender gives its unique key up when it starts: an event that comes while it
    sends is not left to it."""
    from django_jobs.notifications.sending import send_digest

    notify(email={"TO": ["ops@example.com"]})
    jobs.enqueue(FAIL, args=["a"])
    run_jobs(["default"])
    group = Delivery.objects.get().digest_key
    claimed = Job.objects.claim("w", 1, queues=["notifications"])[0]
    from django_jobs.execution.context import activate

    with activate(claimed):
        jobs.enqueue(FAIL, args=["b"])  # fails while the sender runs (EAGER off: queued)
        run_jobs(["default"])
        assert send_digest(group)["count"] == 2  # it takes what is there when it starts
    jobs.enqueue(FAIL, args=["c"])
    run_jobs(["default"])
    waiting = Job.objects.filter(task_name=DIGEST_TASK, status=JobStatus.PENDING)
    assert waiting.count() == 1  # the next sender, due when the window ends


def test_a_receiver_error_after_the_database_undid_the_transaction_fails_the_write(notify):
    """A MySQL deadlock inside the notification code rolls the whole transaction back:
    the outcome is gone too, so its write must raise (and be tried again), never look
    done."""
    from django.db import DatabaseError

    from django_jobs import signals

    notify("http://127.0.0.1:9/x", events=["cancelled"])

    def deadlock(sender, using, **kwargs):
        connection.needs_rollback = True  # what Django marks when the savepoint is gone
        raise DatabaseError("Deadlock found when trying to get lock")

    kept = jobs.enqueue("tests.testapp.tasks.noop", delay=3600)
    signals.job_events_recorded.connect(deadlock)
    try:
        with pytest.raises(DatabaseError):
            jobs.cancel(kept)
    finally:
        signals.job_events_recorded.disconnect(deadlock)
    assert Job.objects.get(pk=kept.pk).status == JobStatus.PENDING


def test_a_failing_receiver_is_logged_and_the_outcome_stands(notify, caplog):
    from django_jobs import signals

    notify("http://127.0.0.1:9/x", events=["cancelled"])

    def broken(sender, **kwargs):
        raise RuntimeError("a bug in a receiver")

    kept = jobs.enqueue("tests.testapp.tasks.noop", delay=3600)
    signals.job_events_recorded.connect(broken)
    try:
        assert jobs.cancel(kept)
    finally:
        signals.job_events_recorded.disconnect(broken)
    assert Job.objects.get(pk=kept.pk).status == JobStatus.CANCELLED
    assert Delivery.objects.count() == 1  # our own receiver still recorded it
    assert "a bug in a receiver" in caplog.text


def test_a_removed_email_channel_is_given_up(notify, settings):
    notify(email={"TO": ["ops@example.com"]})
    jobs.enqueue(FAIL, args=["a"])
    run_jobs(["default"])
    notify(None)  # the EMAIL channel is gone before the email goes out
    run_jobs(["notifications"])
    assert mail.outbox == []
    row = Delivery.objects.get()
    assert row.status == "failed" and "no email channel" in row.attempts[-1]["error"]


def test_resend_leaves_pending_deliveries_to_their_job(receiver, notify):
    from django_jobs.notifications.deliveries import resend

    notify(receiver.url)
    jobs.enqueue(FAIL, args=["a"])
    run_jobs(["default"])
    pending = Delivery.objects.get()
    assert resend([pending], connection.alias) == 0
    assert Job.objects.filter(task_name="django_jobs.notifications.deliver").count() == 1
