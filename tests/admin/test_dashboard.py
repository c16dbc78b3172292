"""The admin dashboard (SPEC 9.1): who may see it, what it shows, that its history comes
from the rollups (so it survives pruning), and one cached snapshot for every viewer."""

import re
from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.auth.models import Permission, User
from django.core.cache import cache
from django.urls import reverse
from django.utils import timezone

from django_jobs import jobs
from django_jobs.dashboard import _percentiles, dashboard, snapshot
from django_jobs.models import Worker
from django_jobs.models.rollup import BUCKETS, rollups
from django_jobs.testing import run_jobs
from tests.testapp import tasks

pytestmark = pytest.mark.django_db(transaction=True)

URL = "/admin/django_jobs/dashboard/"


@pytest.fixture(autouse=True)
def fresh_cache():
    cache.clear()
    yield
    cache.clear()


def staff_with(client, *codenames):
    user = User.objects.create_user("staff", password="pw", is_staff=True)
    for codename in codenames:
        user.user_permissions.add(Permission.objects.get(codename=codename))
    client.force_login(user)
    return client


def work():
    """Jobs finished in two queues (one failure), one pending, a live worker."""
    for i in range(4):
        jobs.enqueue(tasks.add, args=[i, i], queue="mail")
    jobs.enqueue(tasks.permanent_failure, args=["x"], queue="mail")
    jobs.enqueue(tasks.add, args=[1, 1], queue="reports")
    run_jobs()
    jobs.enqueue(tasks.add, args=[2, 2], queue="reports", delay=0)
    Worker.objects.create(
        id="w-live", hostname="box-1", pid=4242, concurrency=4, last_heartbeat_at=timezone.now()
    )
    rollups.flush()


def test_url_name_and_the_admin_index_link():
    assert reverse("admin:django_jobs_dashboard") == URL


def test_the_index_links_the_dashboard(superuser):
    html = superuser.get("/admin/").content.decode()
    assert f'href="{URL}"' in html
    html = superuser.get("/admin/django_jobs/").content.decode()
    assert f'href="{URL}"' in html


def test_a_superuser_sees_counts_charts_queues_and_workers(superuser):
    work()
    response = superuser.get(URL)
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]  # admin_view: never cached
    html = response.content.decode()
    # Counts by status link to the filtered job list.
    assert "?status__exact=completed" in html and "?status__exact=pending" in html
    # Two charts drawn as SVG, with stacked bars for the completed and failed jobs.
    assert html.count('<svg viewBox="0 0 720') == 2
    assert 'class="dj-bar dj-bar--completed"' in html
    assert 'class="dj-bar dj-bar--failed"' in html
    # Queues with their counts; the worker with its host and pid.
    assert "?queue__exact=mail" in html and "?queue__exact=reports" in html
    assert "box-1" in html and "4242" in html
    # Assets ship with the app: nothing from another host.
    assert not re.search(r'(src|href)="(https?:)?//', html)
    assert "django_jobs/dashboard.js" in html and "django_jobs/dashboard.css" in html


def test_the_numbers(superuser):
    work()
    data = snapshot("default")
    by_status = {s["status"]: s["count"] for s in data["statuses"]}
    assert by_status["completed"] == 5 and by_status["failed"] == 1
    assert by_status["pending"] == 1
    mail = next(q for q in data["queues"] if q["name"] == "mail")
    assert mail["completed_last_hour"] == 4 and mail["failed_last_hour"] == 1
    assert mail["failed"] == 1  # dead-lettered, counted where it ran
    assert mail["run"]["p50"] is not None and mail["wait"]["p99"] is not None
    reports = next(q for q in data["queues"] if q["name"] == "reports")
    assert reports["pending"] == 1 and reports["oldest_pending_seconds"] is not None
    assert sum(m["completed"] for m in data["minutes"]) == 5
    assert sum(m["failed"] for m in data["minutes"]) == 1
    assert sum(h["completed"] for h in data["hours"]) == 5
    assert len(data["minutes"]) == 60 and len(data["hours"]) == 24
    assert data["last_hour"]["failure_rate"] == pytest.approx(1 / 6)
    assert [w["hostname"] for w in data["workers"]["alive"]] == ["box-1"]


def test_history_survives_pruning(superuser):
    work()
    assert jobs.prune(older_than=timedelta(0)) > 0
    data = snapshot("default")
    assert sum(m["completed"] for m in data["minutes"]) == 5
    assert {s["status"]: s["count"] for s in data["statuses"]}["completed"] == 0


def test_the_fragment_is_the_body_alone(superuser):
    work()
    html = superuser.get(URL + "?fragment=1").content.decode()
    assert "<svg" in html and "<html" not in html and "dj-dashboard" not in html


def test_view_permission_is_enough_and_needed(client):
    staff_with(client, "view_job")
    assert client.get(URL).status_code == 200
    client.logout()
    staff_with_nothing = User.objects.create_user("other", password="pw", is_staff=True)
    client.force_login(staff_with_nothing)
    assert client.get(URL).status_code == 403
    client.logout()
    response = client.get(URL)
    assert response.status_code == 302 and "/login/" in response["Location"]


def test_one_snapshot_serves_every_viewer():
    work()
    first = dashboard("default")
    jobs.enqueue(tasks.add, args=[9, 9], queue="mail")
    assert dashboard("default")["generated_at"] == first["generated_at"]
    cache.clear()
    assert dashboard("default")["generated_at"] > first["generated_at"]


def test_percentiles_from_buckets():
    buckets = [0] * (len(BUCKETS) + 1)
    assert _percentiles(0, buckets) == {"p50": None, "p95": None, "p99": None}
    index = BUCKETS.index(0.1)
    buckets[index] = 100  # 100 observations in (0.05, 0.1]
    found = _percentiles(100, buckets)
    assert 0.05 < found["p50"] <= 0.1 and found["p50"] == pytest.approx(0.075)
    buckets[-1] = 100  # as many again above the last bound
    assert _percentiles(200, buckets)["p99"] == BUCKETS[-1]


def test_an_empty_site_renders(superuser):
    html = superuser.get(URL).content.decode()
    assert "No worker is alive" in html and "No job finished in this period." in html


def test_minutes_line_up_with_the_clock():
    now = datetime(2026, 1, 1, 12, 30, 15, tzinfo=UTC)
    data = snapshot("default", now=now)
    assert data["minutes"][-1]["period"] == datetime(2026, 1, 1, 12, 30, tzinfo=UTC)
    assert data["hours"][-1]["period"] == datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
