"""``manage.py jobs notifications``: the channels and the latest deliveries, a test sent
to a channel, a delivery sent again; both audited."""

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from django_jobs import jobs
from django_jobs.models import AuditEntry, Delivery
from django_jobs.testing import run_jobs

pytestmark = pytest.mark.django_db(transaction=True)


def cli(*args):
    out = StringIO()
    call_command("jobs", "notifications", *args, stdout=out)
    return out.getvalue()


def test_lists_channels_and_deliveries_sends_a_test_and_resends(receiver, notify):
    notify(receiver.url, email={"TO": ["ops@example.com"]})
    jobs.enqueue("tests.testapp.tasks.permanent_failure", args=["x"])
    run_jobs()
    run_jobs()
    text = cli()
    assert f"webhook  {receiver.url}  events: failed" in text
    assert "email    ops@example.com  events: failed" in text
    assert "HTTP 200" in text and "delivered" in text

    assert "enqueued on the 'notifications' queue" in cli("--test", receiver.url)
    run_jobs(["notifications"])
    assert json.loads(receiver.received[-1][1])["type"] == "notification.test"

    webhook = Delivery.objects.filter(channel="webhook", event="failed").get()
    assert "1 delivery(ies) will be sent again" in cli("--resend", str(webhook.pk))
    run_jobs(["notifications"])
    webhook.refresh_from_db()
    assert len(webhook.attempts) == 2
    assert sorted(AuditEntry.objects.values_list("action", flat=True)) == ["resend", "send_test"]


def test_bad_input_is_a_clear_error(notify):
    notify(None)
    assert "No channel is configured" in cli()
    with pytest.raises(CommandError, match="No email channel is configured"):
        cli("--test", "email")
    with pytest.raises(CommandError, match="No delivery with id 999"):
        cli("--resend", "999")
