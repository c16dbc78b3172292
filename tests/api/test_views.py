"""The REST API over HTTP (SPEC 9.2): permissions, jobs, queues, batches, workers,
stats, health, metrics and schema; bad input gets a 400 and writes nothing."""

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from django_jobs import JobStatus, jobs
from django_jobs.models import Job, Queue
from django_jobs.testing import run_jobs
from tests.helpers import live_worker
from tests.testapp import tasks

pytestmark = pytest.mark.django_db

API = "/api/jobs/"


def post(client, path, body=None):
    return client.post(API + path, data=json.dumps(body or {}), content_type="application/json")


PROTECTED = ["jobs/", "jobs/1/", "batches/1/", "queues/", "queues/default/", "workers/",
             "stats/", "schema/", "schedules/", "schedules/nightly/"]  # fmt: skip


@pytest.mark.parametrize("path", PROTECTED)
def test_anonymous_and_non_staff_get_no_data(anonymous, user, path):
    job = jobs.enqueue(tasks.add, args=[1, 2])
    path = path.replace("/1/", f"/{job.pk}/") if path.startswith("jobs") else path
    for client, codes in ((anonymous, {401, 403}), (user, {403})):
        response = client.get(API + path)
        assert response.status_code in codes, (path, response.status_code)
        assert "add" not in response.content.decode()
    assert post(anonymous, "jobs/", {"task": tasks.add.name}).status_code in {401, 403}
    assert post(user, f"jobs/{job.pk}/cancel/").status_code == 403
    every_minute = {"name": "x", "task": tasks.add.name, "cron": "* * * * *"}
    assert post(user, "schedules/", every_minute).status_code == 403
    assert Job.objects.count() == 1


def test_enqueue_run_and_read_back(staff):
    response = post(staff, "jobs/", {"task": tasks.add.name, "args": [2, 3], "queue": "api",
                                     "priority": "high", "tags": ["t1"]})  # fmt: skip
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["status"] == "pending" and body["priority"] == 50 and body["queue"] == "api"
    run_jobs(queues=["api"])
    job = staff.get(f"{API}jobs/{body['id']}/").json()
    assert job["status"] == "completed" and job["result"] == 5 and job["progress"] == 1.0
    assert "eta" in job and job["errors"] == []


@pytest.mark.parametrize(
    "body, field",
    [
        ({"task": "no.such.task"}, "task"),
        ({"task": tasks.add.name, "args": "not a list"}, "args"),
        ({"task": tasks.add.name, "kwargs": [1]}, "kwargs"),
        ({"task": tasks.add.name, "priority": 500}, "priority"),
        ({"task": tasks.add.name, "priority": "urgent"}, "priority"),
        ({"task": tasks.add.name, "delay": -5}, "delay"),
        ({"task": tasks.add.name, "scheduled_at": "yesterday"}, "scheduled_at"),
        ({"task": tasks.add.name, "max_retries": -1}, "max_retries"),
        ({"task": tasks.add.name, "timeout": 0}, "timeout"),
        ({"task": tasks.add.name, "depends_on": [999999]}, "depends_on"),
        ({"task": tasks.add.name, "args": ["x" * 2_000_000]}, "MAX_PAYLOAD_BYTES"),
        ({}, "task"),
    ],
)
def test_bad_input_is_a_400_naming_the_field_and_writes_nothing(staff, body, field):
    response = post(staff, "jobs/", body)
    assert response.status_code == 400, response.content
    assert field.lower() in response.content.decode().lower()
    assert not Job.objects.exists()


def test_malformed_json_is_a_400(staff):
    response = staff.post(API + "jobs/", data="{not json", content_type="application/json")
    assert response.status_code == 400
    assert not Job.objects.exists()


def test_cancel_retry_delete_and_their_409s(staff):
    job = jobs.enqueue(tasks.add, args=[1, 1], delay=3600)
    assert post(staff, f"jobs/{job.pk}/cancel/").json()["status"] == "cancelled"
    assert post(staff, f"jobs/{job.pk}/cancel/").status_code == 409
    assert post(staff, f"jobs/{job.pk}/retry/").json()["status"] == "pending"
    assert post(staff, f"jobs/{job.pk}/retry/").status_code == 409  # pending: nothing to retry
    assert staff.delete(f"{API}jobs/{job.pk}/").status_code == 409  # unfinished
    jobs.cancel(job.pk)
    assert staff.delete(f"{API}jobs/{job.pk}/").status_code == 204
    for path in (f"jobs/{job.pk}/", "jobs/abc/", "jobs/99999999999999999999/"):
        assert staff.get(API + path).status_code == 404
    assert post(staff, f"jobs/{job.pk}/cancel/").status_code == 404


def test_filters_and_cursor_pagination(staff):
    for i in range(120):
        queue = "even" if i % 2 else "odd"
        priority = "high" if i % 3 == 0 else "normal"
        jobs.enqueue(tasks.add, args=[i, i], queue=queue, priority=priority, tags=["t"][: i < 10])
    five = list(Job.objects.filter(queue="even").values_list("pk", flat=True)[:5])
    Job.objects.filter(pk__in=five).update(status=JobStatus.FAILED)
    seen, url = [], f"{API}jobs/?queue=odd&page_size=25"
    while url:
        page = staff.get(url).json()
        assert "count" not in page  # cursor pagination: no COUNT(*)
        seen += [job["id"] for job in page["results"]]
        url = page["next"]
    assert len(seen) == 60 == len(set(seen)) and seen == sorted(seen, reverse=True)
    assert len(staff.get(f"{API}jobs/?status=failed").json()["results"]) == 5
    assert len(staff.get(f"{API}jobs/?priority=high&page_size=500").json()["results"]) == 40
    assert len(staff.get(f"{API}jobs/?priority=50&page_size=500").json()["results"]) == 40
    assert len(staff.get(f"{API}jobs/?tag=t").json()["results"]) == 10
    assert staff.get(f"{API}jobs/?priority=urgent").status_code == 400
    after = (timezone.now() + timedelta(hours=1)).isoformat()
    assert staff.get(f"{API}jobs/", {"created_after": after}).json()["results"] == []
    assert staff.get(f"{API}jobs/?created_before=garbage").status_code == 400
    assert staff.get(f"{API}jobs/?status=nonsense").status_code == 400


def test_queues_batches_workers_and_stats(staff):
    jobs.enqueue(tasks.add, args=[1, 1], queue="emails")
    late = jobs.enqueue(tasks.add, args=[1, 2], queue="emails")
    Job.objects.filter(pk=late.pk).update(scheduled_at=timezone.now() - timedelta(minutes=5))
    queues = {q["name"]: q for q in staff.get(f"{API}queues/").json()}
    assert queues["emails"]["pending"] == 2 and queues["emails"]["oldest_pending_age_seconds"] > 250
    assert post(staff, "queues/emails/pause/").json()["paused"] is True
    assert Queue.objects.get(name="emails").paused
    assert post(staff, "queues/emails/resume/").json()["paused"] is False
    assert post(staff, "queues/emails/clear/").json()["pending"] == 0
    assert post(staff, "queues/nope/pause/").status_code == 404
    assert not Queue.objects.filter(name="nope").exists()
    batch = jobs.enqueue_batch(tasks.add, items=[{"a": 1, "b": 2}] * 3)
    body = staff.get(f"{API}batches/{batch.pk}/").json()
    assert body["total"] == 3 and body["progress"] == 0.0
    live_worker("w-api")
    assert staff.get(f"{API}workers/").json()[0]["alive"] is True
    stats = staff.get(f"{API}stats/").json()
    assert {"total_jobs", "pending_jobs", "by_queue", "workers"} <= set(stats)


def test_health_for_anyone_details_for_staff(anonymous, staff):
    response = anonymous.get(f"{API}health/")
    assert response.status_code == 503  # no worker
    assert response.json()["checks"]["workers"] == {"status": "fail"}
    live_worker("w1")
    response = staff.get(f"{API}health/")
    assert response.status_code == 200 and "alive" in response.json()["checks"]["workers"]
    only = anonymous.get(f"{API}health/?check=database&check=migrations").json()
    assert set(only["checks"]) == {"database", "migrations"}
    assert anonymous.get(f"{API}health/?check=nope").status_code == 400


def test_metrics_for_anyone(anonymous):
    response = anonymous.get(f"{API}metrics/")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    assert b"django_jobs_workers" in response.content


def test_schema_documents_every_endpoint(staff):
    response = staff.get(f"{API}schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200, response.content[:500]
    schema = json.loads(response.content)
    assert schema["servers"] == [{"url": "/api/jobs"}]
    paths = set(schema["paths"])
    for path in ["/jobs/", "/jobs/{id}/", "/jobs/{id}/cancel/", "/jobs/{id}/retry/",
                 "/batches/{id}/", "/queues/", "/queues/{name}/", "/queues/{name}/pause/",
                 "/workers/", "/stats/", "/health/", "/metrics/"]:  # fmt: skip
        assert path in paths, (path, paths)


def test_schedules_create_read_change_control_and_delete(staff):
    from django_jobs.models import Schedule

    nightly = {"name": "nightly", "task": tasks.add.name, "cron": "0 3 * * *",
               "timezone": "Europe/Paris", "args": [1, 2], "queue": "night"}  # fmt: skip
    response = post(staff, "schedules/", nightly)
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["kind"] == "cron" and body["next_run_at"] and body["enabled"] is True
    assert post(staff, "schedules/", nightly).status_code == 409
    every = {"name": "often", "task": tasks.noop.name, "interval": 30}
    assert post(staff, "schedules/", every).json()["interval"] == 30.0
    names = [s["name"] for s in staff.get(f"{API}schedules/").json()]
    assert names == ["nightly", "often"]

    changed = staff.patch(
        f"{API}schedules/nightly/", data=json.dumps({"cron": "30 4 * * 1-5"}),
        content_type="application/json",
    )  # fmt: skip
    assert changed.status_code == 200, changed.content
    assert changed.json()["cron"] == "30 4 * * 1-5" and changed.json()["args"] == [1, 2]
    assert changed.json()["timezone"] == "Europe/Paris"

    assert post(staff, "schedules/nightly/disable/").json()["enabled"] is False
    assert post(staff, "schedules/nightly/enable/").json()["enabled"] is True
    job = post(staff, "schedules/nightly/run/").json()
    assert job["status"] == "pending" and job["args"] == [1, 2] and job["queue"] == "night"

    assert staff.delete(f"{API}schedules/nightly/").status_code == 204
    assert staff.get(f"{API}schedules/nightly/").status_code == 404
    assert post(staff, "schedules/nightly/run/").status_code == 404
    assert list(Schedule.objects.values_list("name", flat=True)) == ["often"]


@pytest.mark.parametrize(
    "body, field",
    [
        ({"name": "b", "task": tasks.add.name, "cron": "61 * * * *"}, "cron"),
        (
            {"name": "b", "task": tasks.add.name, "cron": "* * * * *", "timezone": "Mars/Base"},
            "zone",
        ),
        ({"name": "b", "task": "no.such.task", "cron": "* * * * *"}, "task"),
        ({"name": "b", "task": tasks.add.name}, "cron"),
        ({"name": "b", "task": tasks.add.name, "cron": "* * * * *", "interval": 5}, "interval"),
        ({"name": "b", "task": tasks.add.name, "interval": -1}, "interval"),
        ({"name": "b", "task": tasks.add.name, "run_at": "soon"}, "run_at"),
        ({"name": "b", "task": tasks.add.name, "cron": "* * * * *", "priority": 101}, "priority"),
        ({"task": tasks.add.name, "cron": "* * * * *"}, "name"),
    ],
)
def test_bad_schedules_are_400s_and_write_nothing(staff, body, field):
    from django_jobs.models import Schedule

    response = post(staff, "schedules/", body)
    assert response.status_code == 400, response.content
    assert field.lower() in response.content.decode().lower()
    assert not Schedule.objects.exists()


def test_every_state_change_is_in_the_audit_log(staff):
    from django_jobs.models import AuditEntry

    job = post(staff, "jobs/", {"task": tasks.add.name, "args": [1, 1], "delay": 60}).json()
    post(staff, f"jobs/{job['id']}/cancel/", {"terminate": True})
    post(staff, f"jobs/{job['id']}/retry/")
    post(staff, "queues/default/pause/")
    post(staff, "schedules/", {"name": "s", "task": tasks.noop.name, "interval": 60})
    staff.get(f"{API}jobs/")  # reading is not logged
    columns = ("source", "username", "action", "target_type", "targets")
    entries = list(AuditEntry.objects.order_by("id").values_list(*columns))
    assert entries == [
        ("api", "staff", "enqueue", "job", [job["id"]]),
        ("api", "staff", "cancel", "job", [job["id"]]),
        ("api", "staff", "retry", "job", [job["id"]]),
        ("api", "staff", "pause", "queue", ["default"]),
        ("api", "staff", "schedule.create", "schedule", ["s"]),
    ]
    assert AuditEntry.objects.get(action="cancel").details == {"terminate": True}
