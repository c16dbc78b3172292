"""The notification log in the admin: deliveries with their attempts, resend, and a test
notification sent to a configured channel through a real HTTP receiver."""

import json

import pytest
from django.contrib.auth.models import Permission, User
from django.core import mail
from django.urls import reverse

from django_jobs import jobs
from django_jobs.models import AuditEntry, Delivery
from django_jobs.testing import run_jobs

pytestmark = pytest.mark.django_db(transaction=True)

FAIL = "tests.testapp.tasks.permanent_failure"
LIST = "admin:django_jobs_delivery_changelist"
TEST = "admin:django_jobs_delivery_test"


@pytest.fixture
def admin_client(client):
    client.force_login(User.objects.create_superuser("root", "r@x.com", "pw"))
    return client


@pytest.fixture
def viewer(client):
    user = User.objects.create_user("viewer", "v@x.com", "pw", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_delivery"))
    client.force_login(user)
    return client


def test_the_log_shows_each_delivery_and_its_attempts(admin_client, receiver, notify):
    notify(receiver.url)
    receiver.answers = [(500, {"Retry-After": "0"})]
    job = jobs.enqueue(FAIL, args=["x"])
    for _ in range(5):
        run_jobs()
    delivery = Delivery.objects.get()
    page = admin_client.get(reverse(LIST)).content.decode()
    assert "webhook" in page and receiver.url in page
    assert 'class="dj-status dj-status--delivered">Delivered</span>' in page
    assert "Send a test notification" in page
    detail = admin_client.get(reverse("admin:django_jobs_delivery_change", args=[delivery.pk]))
    text = detail.content.decode()
    assert detail.status_code == 200
    assert "HTTP 500" in text and "HTTP 200" in text
    assert reverse("admin:django_jobs_job_change", args=[job.pk]) in text
    assert "job.failed" in text  # the payload
    assert admin_client.get(reverse(LIST) + "?status__exact=failed").status_code == 200


def test_resend_sends_the_same_message_again(admin_client, receiver, notify):
    notify(receiver.url)
    jobs.enqueue(FAIL, args=["x"])
    for _ in range(3):
        run_jobs()
    delivery = Delivery.objects.get()
    response = admin_client.post(
        reverse(LIST), {"action": "resend_deliveries", "_selected_action": [delivery.pk]}
    )
    assert response.status_code == 302
    run_jobs(["notifications"])
    assert len(receiver.received) == 2
    first, second = ({k.lower(): v for k, v in h.items()} for h, _ in receiver.received)
    assert first["webhook-id"] == second["webhook-id"] == delivery.message_id
    delivery.refresh_from_db()
    assert delivery.status == Delivery.DELIVERED and len(delivery.attempts) == 2
    entry = AuditEntry.objects.get(action="resend")
    assert entry.targets == [delivery.pk] and entry.username == "root"


def test_send_a_test_notification_to_each_channel(admin_client, receiver, notify, settings):
    notify(receiver.url, email={"TO": ["ops@example.com"]})
    page = admin_client.get(reverse(TEST)).content.decode()
    assert receiver.url in page and "ops@example.com" in page

    response = admin_client.post(reverse(TEST), {"channel": receiver.url})
    delivery = Delivery.objects.get()
    assert response["Location"] == reverse("admin:django_jobs_delivery_change", args=[delivery.pk])
    admin_client.post(reverse(TEST), {"channel": "email"})
    run_jobs(["notifications"])
    (message,) = [json.loads(body) for _, body in receiver.received]
    assert message["type"] == "notification.test"
    assert [m.subject for m in mail.outbox] == ["[django_jobs] test notification"]
    assert AuditEntry.objects.filter(action="send_test").count() == 2

    response = admin_client.post(reverse(TEST), {"channel": "http://not.configured/"}, follow=True)
    assert "No webhook with the URL" in response.content.decode()


def test_the_test_page_without_channels_says_how_to_add_one(admin_client, settings):
    assert "No channel is configured" in admin_client.get(reverse(TEST)).content.decode()


def test_a_viewer_sees_the_log_but_sends_nothing(viewer, receiver, notify):
    notify(receiver.url)
    assert viewer.get(reverse(LIST)).status_code == 200
    page = viewer.get(reverse(TEST))
    assert page.status_code == 200 and "Send a test</button>" not in page.content.decode()
    assert viewer.post(reverse(TEST), {"channel": receiver.url}).status_code == 403
    assert Delivery.objects.count() == 0


def test_non_staff_are_sent_to_the_login_page(client):
    client.force_login(User.objects.create_user("someone", "s@x.com", "pw"))
    for name in (LIST, TEST):
        response = client.get(reverse(name))
        assert response.status_code == 302 and "login" in response["Location"]


def test_a_delivery_page_never_saves(admin_client, receiver, notify):
    notify(receiver.url)
    jobs.enqueue(FAIL, args=["x"])
    run_jobs(["default"])
    delivery = Delivery.objects.get()
    url = reverse("admin:django_jobs_delivery_change", args=[delivery.pk])
    page = admin_client.get(url).content.decode()
    assert 'name="_save"' not in page
    assert admin_client.post(url, {"status": "delivered"}).status_code == 403
    delivery.refresh_from_db()
    assert delivery.status == Delivery.PENDING
