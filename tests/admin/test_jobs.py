"""The job list, detail and failures pages (SPEC 9.1): filters that stay cheap, the
actions filtered to the rows they apply to, progress for the self-updating bars, the
attempts timeline, failures grouped by cause, and an estimated count on big tables."""

import json
from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission, User
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from django_jobs import JobStatus, jobs
from django_jobs.models import AuditEntry, Job, counts
from django_jobs.testing import run_jobs
from tests.testapp import tasks

pytestmark = pytest.mark.django_db(transaction=True)

LIST = "/admin/django_jobs/job/"
FAILURES = "/admin/django_jobs/job/failures/"


def viewer(client, *extra):
    user = User.objects.create_user("viewer", password="pw", is_staff=True)
    codenames = ["view_job", *extra]
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    client.force_login(user)
    return client


def ids_on(response):
    return {job.pk for job in response.context["cl"].result_list}


def fail(n, label="boom"):
    """``n`` jobs that fail for good with messages differing only by a number."""
    made = [jobs.enqueue(tasks.permanent_failure, args=[f"{label}"]) for _ in range(n)]
    run_jobs()
    return made


def test_filters(superuser):
    a = jobs.enqueue(tasks.add, args=[1, 1], queue="mail", tags=["vip"])
    b = jobs.enqueue(tasks.noop, queue="reports")
    old = jobs.enqueue(tasks.add, args=[2, 2], queue="mail")
    Job.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=40))
    assert ids_on(superuser.get(LIST + "?queue__exact=mail")) == {a.pk, old.pk}
    assert ids_on(superuser.get(LIST + f"?task_name__exact={tasks.noop.name}")) == {b.pk}
    assert ids_on(superuser.get(LIST + "?tag=vip")) == {a.pk}
    day = (timezone.localdate() - timedelta(days=1)).isoformat()
    assert ids_on(superuser.get(LIST + f"?created_at__gte={day}")) == {a.pk, b.pk}
    assert ids_on(superuser.get(LIST + f"?created_at__lt={day}")) == {old.pk}
    # A bad date: a message on the page, nothing filtered, never a 500.
    response = superuser.get(LIST + "?created_at__gte=yesterday")
    assert response.status_code == 200 and "is not a date" in response.content.decode()
    # The filter choices come from the queue table and the registry, not the jobs table.
    html = superuser.get(LIST).content.decode()
    assert "?queue__exact=mail" in html and f"?task_name__exact={tasks.noop.name}" in html


def test_columns_and_links(superuser):
    job = jobs.enqueue(tasks.progress_steps, args=["x"], queue="mail")
    Job.objects.filter(pk=job.pk).update(
        status=JobStatus.RUNNING, started_at=timezone.now() - timedelta(seconds=10),
        progress=0.5, progress_message="half", worker_id="w", lease="l",
    )  # fmt: skip
    html = superuser.get(LIST).content.decode()
    assert f'data-job-progress="{job.pk}"' in html and "ETA" in html
    assert "django_jobs/progress.js" in html
    assert reverse("admin:django_jobs_job_failures") in html
    assert reverse("admin:django_jobs_dashboard") in html


def test_progress_json(superuser, client):
    job = jobs.enqueue(tasks.progress_steps, args=["x"])
    Job.objects.filter(pk=job.pk).update(
        status=JobStatus.RUNNING, started_at=timezone.now() - timedelta(seconds=10),
        progress=0.25, progress_message="a quarter", worker_id="w", lease="l",
    )  # fmt: skip
    done = jobs.enqueue(tasks.add, args=[1, 1])
    run_jobs(queues=["default"], max_jobs=0)
    url = reverse("admin:django_jobs_job_progress")
    body = superuser.get(f"{url}?id={job.pk}&id={done.pk}&id=x&id=999999").json()["jobs"]
    assert body[str(job.pk)]["percent"] == 25 and body[str(job.pk)]["running"] is True
    assert body[str(job.pk)]["message"] == "a quarter" and body[str(job.pk)]["eta"]
    assert body[str(done.pk)]["running"] is False and "999999" not in body
    superuser.logout()
    assert superuser.get(f"{url}?id={job.pk}").status_code == 302  # to the login page


def test_requeue_and_delete_apply_to_finished_jobs_only(superuser):
    done = jobs.enqueue(tasks.add, args=[1, 1])
    run_jobs()
    pending = jobs.enqueue(tasks.add, args=[2, 2], delay=3600)  # stays unfinished
    r = superuser.post(
        LIST, {"action": "requeue_jobs", "_selected_action": [done.pk, pending.pk]}, follow=True
    )
    messages = [str(m) for m in r.context["messages"]]
    assert "1 job requeued." in messages and any("only finished" in m for m in messages)
    done.refresh_from_db()
    assert done.status == JobStatus.PENDING and done.attempts == 1
    run_jobs()
    done.refresh_from_db()
    assert done.status == JobStatus.COMPLETED and done.attempts == 2  # a new attempt
    # delete_selected: the confirmation page, then only the finished job goes.
    selection = {"action": "delete_selected", "_selected_action": [done.pk, pending.pk]}
    r = superuser.post(LIST, selection)
    assert r.status_code == 200 and b"Are you sure" in r.content
    superuser.post(LIST, {**selection, "post": "yes"})
    assert not Job.objects.filter(pk=done.pk).exists()
    assert Job.objects.filter(pk=pending.pk).exists()
    assert AuditEntry.objects.filter(action="delete", count=1).exists()
    assert AuditEntry.objects.filter(action="requeue", count=1).exists()
    # An unfinished job's page offers no delete.
    page = superuser.get(reverse("admin:django_jobs_job_change", args=[pending.pk]))
    assert b"deletelink" not in page.content


def test_cancel_with_terminate(superuser):
    job = jobs.enqueue(tasks.add, args=[1, 1])
    Job.objects.filter(pk=job.pk).update(status=JobStatus.RUNNING, worker_id="w", lease="l")
    superuser.post(LIST, {"action": "cancel_jobs", "_selected_action": [job.pk], "terminate": "on"})
    job.refresh_from_db()
    assert job.cancel_requested and job.terminate_requested
    entry = AuditEntry.objects.get(action="cancel")
    assert entry.details.get("terminate") is True


def test_the_attempts_timeline(superuser):
    first = jobs.enqueue(tasks.add, args=[1, 1])
    flaky = jobs.enqueue(tasks.flaky_until, args=["fl", 2], depends_on=[first])
    run_jobs()
    Job.objects.filter(pk=flaky.pk).update(scheduled_at=timezone.now() - timedelta(seconds=1))
    run_jobs()
    flaky.refresh_from_db()
    assert flaky.status == JobStatus.COMPLETED
    page = superuser.get(reverse("admin:django_jobs_job_change", args=[flaky.pk]))
    html = page.content.decode()
    assert "Attempt 2" in html and "Attempt 1" in html
    assert "ConnectionError: temporary connection problem" in html and "Traceback" in html
    # Dependencies and dependants link to each other.
    assert reverse("admin:django_jobs_job_change", args=[first.pk]) in html
    html = superuser.get(reverse("admin:django_jobs_job_change", args=[first.pk])).content
    assert reverse("admin:django_jobs_job_change", args=[flaky.pk]).encode() in html


def test_failures_are_grouped_by_cause(superuser):
    fail(3)
    jobs.enqueue(tasks.returns_unserializable)  # fails for good, another cause
    run_jobs()
    for job in Job.objects.filter(status=JobStatus.FAILED):
        assert job.error_group  # set when it failed for good
    groups, estimated = counts.failure_groups(Job.objects.all())
    assert [g["count"] for g in groups] == [3, 1] and estimated is False
    assert groups[0]["tasks"] == {tasks.permanent_failure.name: 3}
    html = superuser.get(FAILURES).content.decode()
    assert groups[0]["group"] in html and "Retry all" in html and "Delete all" in html
    # Retry one group: its jobs go back to pending; the other group stays.
    r = superuser.post(FAILURES, {"action": "retry", "group": groups[0]["group"]}, follow=True)
    assert "3 jobs sent back to pending." in [str(m) for m in r.context["messages"]]
    assert Job.objects.filter(status=JobStatus.PENDING).count() == 3
    assert Job.objects.failed().count() == 1
    # Delete the other.
    superuser.post(FAILURES, {"action": "delete", "group": groups[1]["group"]})
    assert Job.objects.failed().count() == 0
    assert AuditEntry.objects.filter(action="retry", count=3).exists()
    assert AuditEntry.objects.filter(action="delete", count=1).exists()


def test_failures_page_permissions(client):
    fail(1)
    group = counts.failure_groups(Job.objects.all())[0][0]["group"]
    viewer(client)
    html = client.get(FAILURES).content.decode()
    assert group in html and "Retry all" not in html and "Delete all" not in html
    assert client.post(FAILURES, {"action": "retry", "group": group}).status_code == 403
    assert client.post(FAILURES, {"action": "delete", "group": group}).status_code == 403
    assert Job.objects.failed().count() == 1
    client.logout()
    assert client.get(FAILURES).status_code == 302


def test_a_view_only_user_sees_and_cannot_act(client):
    job = jobs.enqueue(tasks.add, args=[1, 1])
    viewer(client)
    html = client.get(LIST).content.decode()
    assert "cancel_jobs" not in html and "requeue_jobs" not in html
    client.post(LIST, {"action": "cancel_jobs", "_selected_action": [job.pk]})
    job.refresh_from_db()
    assert job.status == JobStatus.PENDING


def test_the_count_is_bounded_then_estimated(superuser, monkeypatch):
    Job.objects.bulk_create(Job(task_name=tasks.add.name) for _ in range(30))
    n, estimated = counts.bounded_count(Job.objects.all(), exact_up_to=100)
    assert (n, estimated) == (30, False)
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE django_jobs_job")
    monkeypatch.setattr(counts, "ESTIMATE_ABOVE", 10)
    n, estimated = counts.bounded_count(Job.objects.all(), exact_up_to=20)
    assert estimated is True and n == pytest.approx(30, abs=3)
    r = superuser.get(LIST)
    assert r.status_code == 200 and r.context["cl"].result_count >= 20


def test_error_groups_strip_per_job_details():
    from django_jobs.errorgroups import error_group, normalize

    assert normalize("user 42 at 10.0.0.7:5432 (id 3fa85f64-5717-4562-b3fc-2c963f66afa6)") == (
        "user <n> at <ip>:<n> (id <uuid>)"
    )
    assert normalize("object at 0x7f3a2b, mail bob@example.com") == "object at <hex>, mail <email>"
    assert error_group({"type": "KeyError", "message": "'k7'"}) == "KeyError: 'k<n>'"
    assert error_group({"type": "Boom", "message": ""}) == "Boom"
    assert error_group(None) == "" and len(error_group({"type": "E", "message": "x" * 999})) == 255
    assert json.dumps(error_group({"type": "E", "message": "a\nb"})) == '"E: a b"'


@pytest.mark.parametrize(
    "query",
    [
        "?created_at__gte=2024-02-30",  # looks like a date, is not one
        "?created_at__lt=2024-13-01",
        "?created_at__lt=9999-12-31",  # the day after does not exist
        "?q=%C2%B2",  # a digit to Python, not to int()
        "?q=" + "9" * 5000,
        "?q=99999999999999999999999",
    ],
)
def test_odd_query_strings_never_500(superuser, query):
    jobs.enqueue(tasks.add, args=[1, 1])
    response = superuser.get(LIST + query)
    assert response.status_code == 200
    if "created_at" in query:
        assert "is not a date" in response.content.decode()


def test_odd_progress_ids_are_ignored(superuser):
    job = jobs.enqueue(tasks.add, args=[1, 1])
    url = reverse("admin:django_jobs_job_progress")
    odd = ["%C2%B2", "9" * 5000, "99999999999999999999999", "-1", "0", ""]
    query = "&".join(f"id={v}" for v in odd) + f"&id={job.pk}"
    body = superuser.get(f"{url}?{query}").json()["jobs"]
    assert list(body) == [str(job.pk)]
