"""The end-user progress widget's JSON views (SPEC 6.1): ``django_jobs:job-progress`` and
``django_jobs:job-cancel``. Only staff and the job's owner get anything; for anyone else
a job answers exactly like a job that does not exist."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from django_jobs import JobStatus, jobs
from django_jobs.models import AuditEntry, Job
from django_jobs.testing import run_jobs
from django_jobs.views import eta_text
from tests.helpers import reload
from tests.testapp.tasks import add

pytestmark = pytest.mark.django_db

SPEC_KEYS = {"id", "status", "progress", "message", "eta_seconds", "finished"}
STATE_KEYS = SPEC_KEYS | {"status_text", "percent", "eta_text", "cancel_requested"}


@pytest.fixture
def alice():
    return User.objects.create_user("alice", password="x")


@pytest.fixture
def bob():
    return User.objects.create_user("bob", password="x")


@pytest.fixture
def staff():
    return User.objects.create_user("staff", password="x", is_staff=True)


@pytest.fixture
def job(alice):
    return jobs.enqueue(add, args=[1, 2], owner=alice, kwargs={}, metadata={"secret": "s3"})


def client_for(user=None, csrf=False):
    client = Client(enforce_csrf_checks=csrf)
    if user is not None:
        client.force_login(user)
    return client


def progress_url(pk):
    return reverse("django_jobs:job-progress", args=[pk])


def cancel_url(pk):
    return reverse("django_jobs:job-cancel", args=[pk])


def make_running(job, progress=0.25, message="part 1/4", seconds=30):
    Job.objects.filter(pk=job.pk).update(
        status=JobStatus.RUNNING,
        started_at=timezone.now() - timedelta(seconds=seconds),
        progress=progress,
        progress_message=message,
        worker_id="w1",
        lease="lease-1",
        attempts=1,
    )


def test_the_urls_are_mounted_under_jobs():
    assert progress_url(5) == "/jobs/5/progress/"
    assert cancel_url(5) == "/jobs/5/cancel/"


def test_the_owner_gets_the_job_state(alice, job):
    make_running(job)
    response = client_for(alice).get(progress_url(job.pk))
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert "no-store" in response["Cache-Control"]
    data = response.json()
    assert set(data) == STATE_KEYS
    assert data["id"] == job.pk
    assert data["status"] == "running"
    assert data["progress"] == 0.25
    assert data["percent"] == 25
    assert data["message"] == "part 1/4"
    assert data["finished"] is False
    assert data["cancel_requested"] is False
    assert data["status_text"] == ""  # running: its message speaks
    # 30 s for a quarter: about 90 s to go.
    assert 85 <= data["eta_seconds"] <= 91
    assert data["eta_text"] in ("about 1 minute left", "about 2 minutes left")


def test_nothing_but_the_progress_is_shown(alice, job):
    """Never arguments, results, errors, metadata or tracebacks: an exception's message may
    hold what the owner should not see."""
    error = {"type": "OperationalError", "message": "db-7.internal refused", "traceback": "…"}
    Job.objects.filter(pk=job.pk).update(
        status=JobStatus.FAILED, error=error, errors=[error], result={"x": 1}, progress=0.5,
        finished_at=timezone.now(), progress_message="half way",
    )  # fmt: skip
    response = client_for(alice).get(progress_url(job.pk))
    data = response.json()
    assert set(data) == STATE_KEYS
    assert data["status"] == "failed"
    assert data["status_text"] == "Failed"
    assert data["finished"] is True
    assert data["eta_seconds"] is None and data["eta_text"] == ""
    for secret in ("db-7", "OperationalError", "s3", "args", "kwargs", "result"):
        assert secret not in response.content.decode()


def test_staff_gets_any_job(staff, job):
    response = client_for(staff).get(progress_url(job.pk))
    assert response.status_code == 200
    assert response.json()["status"] == "pending"
    assert response.json()["status_text"] == "Waiting to start"


def test_a_completed_job_is_finished_at_full_progress(alice, job):
    run_jobs()
    data = client_for(alice).get(progress_url(job.pk)).json()
    assert data["status"] == "completed"
    assert data["status_text"] == "Completed"
    assert (data["progress"], data["percent"], data["finished"]) == (1.0, 100, True)


def not_found_answers(pk, user=None):
    response = client_for(user).get(progress_url(pk))
    return response.status_code, response["Content-Type"], response.content


MALFORMED = ["abc", "0", "-1", "1.0", "1e3", "0x10", "\u0663", "9" * 19, "9" * 5000, "%20", "1 "]


def test_nobody_else_learns_anything(alice, bob, job):
    missing = not_found_answers(job.pk + 1000, bob)
    assert missing[0] == 404
    assert missing == not_found_answers(job.pk, bob)  # exists, not bob's
    assert missing == not_found_answers(job.pk)  # anonymous
    assert missing == not_found_answers(job.pk + 1000)
    for bad in MALFORMED:
        assert missing == not_found_answers(bad, alice), bad
    # No-store on a 404 too: a shared cache must not keep one user's answer for another.
    assert "no-store" in client_for(bob).get(progress_url(job.pk))["Cache-Control"]


def test_an_inactive_owner_gets_nothing(alice, job):
    client = client_for(alice)
    User.objects.filter(pk=alice.pk).update(is_active=False)
    assert client.get(progress_url(job.pk)).status_code == 404


def test_progress_is_read_only(alice, job):
    response = client_for(alice).post(progress_url(job.pk))
    assert response.status_code == 405
    assert "no-store" in response["Cache-Control"]


def csrf_client(user=None):
    """A client that checks CSRF like a browser, with the token cookie a page gave it."""
    client = client_for(user, csrf=True)
    client.get(reverse("testapp-job-page", args=["1"]))
    return client, client.cookies["csrftoken"].value


def test_cancel_needs_a_post(alice, job):
    response = client_for(alice).get(cancel_url(job.pk))
    assert response.status_code == 405
    assert reload(job).status == JobStatus.PENDING


def test_cancel_needs_the_csrf_token(alice, job):
    client, _ = csrf_client(alice)
    response = client.post(cancel_url(job.pk))
    assert response.status_code == 403
    assert reload(job).status == JobStatus.PENDING


def test_the_owner_cancels_a_pending_job(alice, job):
    client, token = csrf_client(alice)
    response = client.post(cancel_url(job.pk), HTTP_X_CSRFTOKEN=token)
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    data = response.json()
    assert set(data) == STATE_KEYS | {"cancelled"}
    assert (data["status"], data["finished"], data["cancelled"]) == ("cancelled", True, True)
    assert data["status_text"] == "Cancelled"
    assert reload(job).status == JobStatus.CANCELLED
    # A person changed a job's state: the audit log says who.
    entry = AuditEntry.objects.get()
    assert (entry.action, entry.targets, entry.username) == ("cancel", [job.pk], "alice")
    # Again: nothing left to cancel.
    again = client.post(cancel_url(job.pk), HTTP_X_CSRFTOKEN=token).json()
    assert (again["status"], again["cancelled"]) == ("cancelled", False)
    assert AuditEntry.objects.count() == 1


def test_a_running_job_is_flagged(staff, job):
    make_running(job)
    client, token = csrf_client(staff)
    data = client.post(cancel_url(job.pk), HTTP_X_CSRFTOKEN=token).json()
    assert (data["status"], data["cancelled"], data["cancel_requested"]) == (
        "running", True, True,
    )  # fmt: skip
    assert data["status_text"] == "Cancelling…"
    assert data["finished"] is False
    assert reload(job).cancel_requested is True


def test_nobody_else_cancels(alice, bob, job):
    for user in (bob, None):
        client, token = csrf_client(user)
        response = client.post(cancel_url(job.pk), HTTP_X_CSRFTOKEN=token)
        missing = client.post(cancel_url(job.pk + 1000), HTTP_X_CSRFTOKEN=token)
        malformed = client.post(cancel_url("x"), HTTP_X_CSRFTOKEN=token)
        assert response.status_code == missing.status_code == malformed.status_code == 404
        assert response.content == missing.content == malformed.content
        assert response.content == client_for(user).get(progress_url(job.pk)).content
    assert reload(job).status == JobStatus.PENDING
    assert not AuditEntry.objects.exists()


def test_a_form_posted_without_the_script_goes_back(alice, job):
    client, token = csrf_client(alice)
    response = client.post(cancel_url(job.pk), {"csrfmiddlewaretoken": token, "next": "/a/page/"})
    assert response.status_code == 302
    assert response["Location"] == "/a/page/"
    assert reload(job).status == JobStatus.CANCELLED


def test_next_never_leaves_the_site(alice, job):
    client, token = csrf_client(alice)
    for elsewhere in ("https://evil.example/", "//evil.example/", "javascript:alert(1)"):
        response = client.post(
            cancel_url(job.pk), {"csrfmiddlewaretoken": token, "next": elsewhere}
        )
        assert response.status_code == 200, elsewhere
        assert response["Content-Type"] == "application/json"


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (None, ""),
        (0.2, "almost done"),
        (1, "1 second left"),
        (12.2, "13 seconds left"),
        (89, "about 1 minute left"),
        (600, "about 10 minutes left"),
        (3 * 3600 + 5 * 60, "about 3 h 05 min left"),
    ],
)
def test_eta_in_words(seconds, text):
    assert eta_text(seconds) == text


def test_a_tiny_fraction_after_a_long_run_has_no_eta_and_no_500(alice, job):
    """elapsed / 1e-9 is past any date: the ETA is unknown, not a 500 (nor a crash of
    the owner's page, the admin or the API, which share Job.eta)."""
    Job.objects.filter(pk=job.pk).update(
        status=JobStatus.RUNNING,
        started_at=timezone.now() - timedelta(seconds=300),
        progress=1e-9,
    )
    response = client_for(alice).get(progress_url(job.pk))
    assert response.status_code == 200
    assert response.json()["eta_seconds"] is None
    assert reload(job).eta is None
