"""The admin over HTTP (Django test client): pages, filters, actions, permissions."""

import pytest
from django.contrib.auth.models import Permission, User
from django.urls import reverse

from django_jobs import JobStatus, jobs
from django_jobs.models import Job, Queue, Worker
from tests.testapp.tasks import add, progress_steps

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client):
    u = User.objects.create_superuser("root", "r@x.com", "pw")
    client.force_login(u)
    return client


def make_jobs():
    a = jobs.enqueue(add, args=[1, 2])
    b = jobs.enqueue(add, args=[3, 4], queue="emails", priority="high")
    c = jobs.enqueue(progress_steps, args=["x"], queue="reports", metadata={"k": "<b>"})
    Job.objects.filter(pk=c.pk).update(
        status=JobStatus.FAILED,
        queue="dead-letter",
        original_queue="reports",
        errors=[
            {
                "type": "ValueError",
                "message": "<boom>",
                "traceback": "Traceback...\nValueError: <boom>",
            }
        ],
        progress=0.4,
        progress_message="step 2/5",
    )
    d = jobs.enqueue(add, args=[5, 6], queue="emails")
    Job.objects.filter(pk=d.pk).update(status=JobStatus.RUNNING, worker_id="w1", lease="l")
    return a, b, c, d


def test_changelist_and_detail(admin_client, django_assert_max_num_queries):
    a, b, c, _d = make_jobs()
    url = reverse("admin:django_jobs_job_changelist")
    r = admin_client.get(url)
    assert r.status_code == 200
    html = r.content.decode()
    assert "progress" in html
    for q in [
        "?status__exact=failed",
        "?queue=emails",
        "?priority_bucket=high",
        "?priority_bucket=low",
        f"?q={c.pk}",
        "?q=add",
        "?q=%23" + str(a.pk),
        "?q=99999999999999999999",
        "?o=5",
        "?o=4",
    ]:
        r = admin_client.get(url + q)
        assert r.status_code == 200, q
    r = admin_client.get(url + "?priority_bucket=high")
    assert f">{b.pk}<" in r.content.decode()
    assert f">{a.pk}<" not in r.content.decode()
    r = admin_client.get(url + f"?q={c.pk}")
    assert f"/{c.pk}/change/" in r.content.decode()
    r = admin_client.get(reverse("admin:django_jobs_job_change", args=[c.pk]))
    assert r.status_code == 200
    html = r.content.decode()
    assert "&lt;boom&gt;" in html and "<boom>" not in html
    assert "&quot;k&quot;: &quot;&lt;b&gt;&quot;" in html
    assert 'name="_save"' not in html
    r = admin_client.get(reverse("admin:django_jobs_job_add"))
    assert r.status_code == 403
    # queue list
    r = admin_client.get(reverse("admin:django_jobs_queue_changelist"))
    assert r.status_code == 200
    html = r.content.decode()
    r = admin_client.get(reverse("admin:django_jobs_queue_changelist") + "?o=4")
    assert r.status_code == 200
    qa = queue_admin_counts()
    assert qa["emails"] == (1, 1, 0), qa
    assert qa["reports"] == (0, 0, 1), qa
    assert qa["default"] == (1, 0, 0), qa
    r = admin_client.get(
        reverse("admin:django_jobs_queue_change", args=[Queue.objects.get(name="emails").pk])
    )
    assert r.status_code == 200
    r = admin_client.get(reverse("admin:django_jobs_queue_add"))
    assert r.status_code == 200


def queue_admin_counts():
    from django.contrib.admin.sites import site
    from django.test import RequestFactory

    req = RequestFactory().get("/")
    req.user = User.objects.get(username="root")
    qs = site._registry[Queue].get_queryset(req)
    return {q.name: (q.pending, q.running, q.failed) for q in qs}


def test_actions(admin_client):
    a, b, c, d = make_jobs()
    url = reverse("admin:django_jobs_job_changelist")
    r = admin_client.post(
        url, {"action": "cancel_jobs", "_selected_action": [a.pk, c.pk, d.pk]}, follow=True
    )
    assert r.status_code == 200
    msgs = [str(m) for m in r.context["messages"]]
    print(msgs)
    a.refresh_from_db()
    c.refresh_from_db()
    d.refresh_from_db()
    assert a.status == "cancelled"
    assert c.status == "failed"
    assert d.status == "running" and d.cancel_requested
    r = admin_client.post(
        url, {"action": "retry_jobs", "_selected_action": [a.pk, b.pk, c.pk]}, follow=True
    )
    msgs = [str(m) for m in r.context["messages"]]
    print(msgs)
    a.refresh_from_db()
    b.refresh_from_db()
    c.refresh_from_db()
    assert a.status == "pending" and c.status == "pending" and c.queue == "reports"
    assert c.errors  # kept
    # queues
    qurl = reverse("admin:django_jobs_queue_changelist")
    em = Queue.objects.get(name="emails")
    admin_client.post(qurl, {"action": "pause_queues", "_selected_action": [em.pk]})
    em.refresh_from_db()
    assert em.paused
    admin_client.post(qurl, {"action": "resume_queues", "_selected_action": [em.pk]})
    em.refresh_from_db()
    assert not em.paused
    r = admin_client.post(
        qurl, {"action": "clear_queues", "_selected_action": [em.pk], "post": "yes"}, follow=True
    )
    print([str(m) for m in r.context["messages"]])
    b.refresh_from_db()
    assert b.status == "cancelled"


def test_permissions(client):
    a, _b, _c, _d = make_jobs()
    u = User.objects.create_user("viewer", password="pw", is_staff=True)
    u.user_permissions.add(
        *Permission.objects.filter(codename__in=["view_job", "view_queue", "view_worker"])
    )
    client.force_login(u)
    url = reverse("admin:django_jobs_job_changelist")
    r = client.get(url)
    assert r.status_code == 200
    assert "cancel_jobs" not in r.content.decode()
    r = client.post(url, {"action": "cancel_jobs", "_selected_action": [a.pk]})
    a.refresh_from_db()
    assert a.status == "pending"
    r = client.get(reverse("admin:django_jobs_queue_changelist"))
    assert "pause_queues" not in r.content.decode()
    u.user_permissions.add(Permission.objects.get(codename="change_job"))
    u = User.objects.get(pk=u.pk)
    client.force_login(u)
    r = client.get(url)
    assert "cancel_jobs" in r.content.decode()
    client.post(url, {"action": "cancel_jobs", "_selected_action": [a.pk]})
    a.refresh_from_db()
    assert a.status == "cancelled"


def test_workers(admin_client):
    from datetime import timedelta

    from django.utils import timezone

    Worker.objects.create(id="w-alive", hostname="h", pid=1, queues=["a", "b"], current_jobs=[1, 2])
    Worker.objects.create(
        id="w-dead", hostname="h", pid=2, last_heartbeat_at=timezone.now() - timedelta(hours=1)
    )
    url = reverse("admin:django_jobs_worker_changelist")
    r = admin_client.get(url)
    assert r.status_code == 200
    html = r.content.decode()
    assert "#1" in html and "#2" in html and "a, b" in html
    r = admin_client.get(url + "?alive=yes")
    assert "w-alive" in r.content.decode() and "w-dead" not in r.content.decode()
    r = admin_client.get(url + "?alive=no")
    assert "w-dead" in r.content.decode() and "w-alive" not in r.content.decode()
    r = admin_client.get(reverse("admin:django_jobs_worker_change", args=["w-alive"]))
    assert r.status_code == 200
    assert 'name="_save"' not in r.content.decode()
    assert admin_client.get(reverse("admin:django_jobs_worker_add")).status_code == 403
    assert (
        admin_client.get(reverse("admin:django_jobs_worker_delete", args=["w-alive"])).status_code
        == 403
    )


def test_search_respects_filters(admin_client):
    a, _b, _c, _d = make_jobs()
    t = jobs.enqueue(add, args=[0, 0], tags=["signup"])
    url = reverse("admin:django_jobs_job_changelist")
    r = admin_client.get(url + f"?q={a.pk}&queue=emails")
    assert f"/{a.pk}/change/" not in r.content.decode()
    r = admin_client.get(url + f"?q={a.pk}")
    assert f"/{a.pk}/change/" in r.content.decode()
    r = admin_client.get(url + "?q=signup")
    html = r.content.decode()
    assert f"/{t.pk}/change/" in html and f"/{a.pk}/change/" not in html


def test_retry_unique_conflict(admin_client):
    a = jobs.enqueue(add, args=[1, 1], unique_key="k1")
    b = jobs.enqueue(add, args=[2, 2])
    jobs.cancel(a.pk)
    jobs.cancel(b.pk)
    c = jobs.enqueue(add, args=[3, 3], unique_key="k1")  # holds k1 now
    url = reverse("admin:django_jobs_job_changelist")
    r = admin_client.post(
        url, {"action": "retry_jobs", "_selected_action": [a.pk, b.pk, c.pk]}, follow=True
    )
    msgs = [str(m) for m in r.context["messages"]]
    print(msgs)
    a.refresh_from_db()
    b.refresh_from_db()
    assert a.status == "cancelled" and b.status == "pending"
    assert any("unique key" in m for m in msgs)
    r = admin_client.get(reverse("admin:django_jobs_job_change", args=[a.pk]))
    assert r.status_code == 200
    chain = jobs.chain([(add, (1, 2), {}), (add, (3, 4), {})])
    j = chain.jobs[1] if hasattr(chain, "jobs") else None
    if j is not None:
        r = admin_client.get(reverse("admin:django_jobs_job_change", args=[j.pk]))
        assert r.status_code == 200


def test_dependency_detail_and_system_checks(admin_client):
    from django.core.management import call_command

    call_command("check", fail_level="ERROR")
    a = jobs.enqueue(add, args=[1, 1])
    b = jobs.enqueue(add, args=[2, 2], depends_on=[a])
    r = admin_client.get(reverse("admin:django_jobs_job_change", args=[b.pk]))
    assert r.status_code == 200
    assert f"#{a.pk}" in r.content.decode()


def test_schedule_admin_validates_and_schedules(admin_client):
    from django_jobs.models import Schedule

    url = reverse("admin:django_jobs_schedule_add")
    base = {
        "name": "nightly",
        "task_name": "tests.testapp.tasks.add",
        "enabled": "on",
        "kind": "cron",
        "cron": "not a cron",
        "timezone": "Europe/Paris",
        "misfire_policy": "run_once",
        "args": "[1, 2]",
        "kwargs": "{}",
        "queue": "",
        "priority": "",
        "tags": "[]",
        "metadata": "{}",
        "description": "",
    }
    r = admin_client.post(url, base)
    assert r.status_code == 200 and Schedule.objects.count() == 0
    assert "errorlist" in r.content.decode() and "not a cron" in r.content.decode()
    r = admin_client.post(url, {**base, "cron": "0 3 * * *", "task_name": "no.such.task"})
    assert r.status_code == 200 and Schedule.objects.count() == 0
    assert "No task named" in r.content.decode()
    r = admin_client.post(url, {**base, "cron": "0 3 * * *"})
    assert r.status_code == 302, r.content.decode()[:2000]
    schedule = Schedule.objects.get(name="nightly")
    assert schedule.next_run_at is not None
    changelist = reverse("admin:django_jobs_schedule_changelist")
    assert "At 03:00" in admin_client.get(changelist).content.decode()
    r = admin_client.post(changelist, {"action": "run_now", "_selected_action": [schedule.pk]})
    assert r.status_code == 302
    schedule.refresh_from_db()
    assert schedule.run_count == 1 and schedule.last_job.task_name == "tests.testapp.tasks.add"
    admin_client.post(
        changelist, {"action": "disable_schedules", "_selected_action": [schedule.pk]}
    )
    schedule.refresh_from_db()
    assert not schedule.enabled
    admin_client.post(changelist, {"action": "enable_schedules", "_selected_action": [schedule.pk]})
    schedule.refresh_from_db()
    assert schedule.enabled


def test_batch_admin_lists_batches_read_only(admin_client):
    batch = jobs.enqueue_batch(add, items=[{"a": 1, "b": 2}] * 3)
    r = admin_client.get(reverse("admin:django_jobs_batch_changelist"))
    assert r.status_code == 200 and f">{batch.pk}<" in r.content.decode()
    assert admin_client.get(reverse("admin:django_jobs_batch_add")).status_code == 403


def test_schedule_admin_refuses_what_enqueue_would(admin_client):
    from django_jobs.models import Schedule

    url = reverse("admin:django_jobs_schedule_add")
    base = {
        "name": "bad",
        "task_name": "tests.testapp.tasks.add",
        "enabled": "on",
        "kind": "interval",
        "interval": "60",
        "timezone": "UTC",
        "misfire_policy": "run_once",
        "args": "[]",
        "kwargs": "{}",
        "queue": "",
        "priority": "",
        "tags": "[]",
        "metadata": "{}",
        "description": "",
    }
    for bad in ({"priority": "500"}, {"args": "{}"}, {"kwargs": "[]"}):
        r = admin_client.post(url, {**base, **bad})
        assert r.status_code == 200 and "errorlist" in r.content.decode(), bad
    assert Schedule.objects.count() == 0


def test_markup_comes_from_templates_and_the_stylesheet(admin_client):
    _a, _b, c, _d = make_jobs()
    html = admin_client.get(reverse("admin:django_jobs_job_changelist")).content.decode()
    assert "django_jobs/admin.css" in html
    assert 'class="dj-status dj-status--failed"' in html
    assert '<progress max="100" value="40"' in html and 'title="step 2/5"' in html
    assert "style=" not in html.split('id="result_list"')[1].split("</table>")[0]
    detail = admin_client.get(reverse("admin:django_jobs_job_change", args=[c.pk]))
    page = detail.content.decode()
    assert 'class="dj-failure"' in page and "ValueError: &lt;boom&gt;" in page
    assert "<boom>" not in page  # escaped everywhere
    assert 'class="dj-json"' in page and "&lt;b&gt;" in page


def test_retry_all_skips_only_unique_conflicts():
    first = jobs.enqueue(add, args=[1, 1], unique_key="k")
    jobs.cancel(first.pk)
    holder = jobs.enqueue(add, args=[1, 1], unique_key="k")  # holds the key now
    other = jobs.enqueue(add, args=[2, 2])
    jobs.cancel(other.pk)
    ids = [first.pk, other.pk, holder.pk]
    assert Job.objects.filter(pk__in=ids).retry_all() == (1, 1)
    statuses = dict(Job.objects.filter(pk__in=ids).values_list("pk", "status"))
    assert statuses == {
        first.pk: JobStatus.CANCELLED,
        other.pk: JobStatus.PENDING,
        holder.pk: JobStatus.PENDING,
    }


def test_admin_actions_are_audited_and_the_log_is_read_only(admin_client):
    from django_jobs.models import AuditEntry

    a, b, _c, _d = make_jobs()
    url = reverse("admin:django_jobs_job_changelist")
    admin_client.post(url, {"action": "cancel_jobs", "_selected_action": [a.pk, b.pk]})
    entry = AuditEntry.objects.get()
    assert (entry.source, entry.username, entry.action) == ("admin", "root", "cancel")
    assert sorted(entry.targets) == sorted([a.pk, b.pk]) and entry.count == 2
    log = admin_client.get(reverse("admin:django_jobs_auditentry_changelist"))
    assert log.status_code == 200 and "cancel" in log.content.decode()
    assert admin_client.get(reverse("admin:django_jobs_auditentry_add")).status_code == 403
