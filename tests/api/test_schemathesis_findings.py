"""Regression tests for what schemathesis (.ci/schemathesis.sh) found over HTTP: each was a
500 or an answer the schema did not describe."""

import json
import threading

import pytest
from django.contrib.auth.models import User
from django.db import connections
from rest_framework.test import APIClient

from django_jobs import jobs
from django_jobs.models import Job, Schedule
from tests.testapp import tasks

API = "/api/jobs/"


def staff_client():
    user, _ = User.objects.get_or_create(username="staff", defaults={"is_staff": True})
    client = APIClient()
    client.force_authenticate(user)
    return client


def post(client, path, body=None):
    return client.post(API + path, data=json.dumps(body or {}), content_type="application/json")


@pytest.mark.django_db
@pytest.mark.parametrize(
    "body, field",
    [
        # delay=6.9e16: timedelta overflowed in the INSERT (OverflowError, a 500).
        ({"delay": 6.868041469083665e16}, "delay"),
        ({"max_retries": 2**31}, "max_retries"),  # past PositiveIntegerField
        ({"depends_on": [2**63]}, "depends_on"),  # past BigAutoField
    ],
)
def test_numbers_past_what_can_be_stored_are_400s(body, field):
    response = post(staff_client(), "jobs/", {"task": tasks.add.name, **body})
    assert response.status_code == 400, response.content
    assert field in response.json()
    assert not Job.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    "moment",
    [
        "2000-01-01T00:00:00.435755+19:40",  # PostgreSQL: "time zone displacement out of range"
        "0001-01-01T00:00:00+14:00",  # no UTC equivalent (OverflowError)
        "9999-12-31T23:59:59-14:00",
    ],
)
def test_created_after_and_before_take_any_offset_python_takes(moment):
    client = staff_client()
    job = jobs.enqueue(tasks.add, args=[1, 2])
    for name in ("created_after", "created_before"):
        response = client.get(API + "jobs/", {name: moment})
        assert response.status_code in (200, 400), (name, response.status_code)
        if response.status_code == 400:
            assert name in response.json()
    after = client.get(API + "jobs/", {"created_after": "2000-01-01T00:00:00+19:40"}).json()
    assert [found["id"] for found in after["results"]] == [job.pk]


@pytest.mark.django_db
def test_an_interval_past_what_a_timedelta_holds_is_a_400():
    body = {"name": "s", "task": tasks.noop.name, "interval": 1e16}
    response = post(staff_client(), "schedules/", body)
    assert response.status_code == 400, response.content
    assert "interval" in response.json()
    assert not Schedule.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["jobs/0.5/", "jobs/1e3/cancel/", "batches/2.5/"])
def test_an_id_with_a_dot_is_a_json_404(path):
    client = staff_client()
    response = client.post(API + path) if path.endswith("cancel/") else client.get(API + path)
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"  # was Django's HTML page


@pytest.mark.django_db
def test_a_cursor_that_is_not_ours_is_a_400_naming_it():
    response = staff_client().get(API + "jobs/?cursor=%2B")
    assert response.status_code == 400  # was a 404, a status the schema did not list
    assert "cursor" in response.json()


@pytest.mark.django_db
def test_every_error_status_is_in_the_schema():
    response = staff_client().get(API + "schema/", HTTP_ACCEPT="application/json")
    paths = response.json()["paths"]
    assert set(paths["/jobs/"]["post"]["responses"]) == {"201", "400", "401", "403"}
    assert set(paths["/jobs/{id}/cancel/"]["post"]["responses"]) == {
        "200", "400", "401", "403", "404", "409"
    }  # fmt: skip
    assert set(paths["/health/"]["get"]["responses"]) == {"200", "400", "503"}
    assert set(paths["/metrics/"]["get"]["responses"]) == {"200"}
    job_id = paths["/jobs/{id}/"]["get"]["parameters"][0]
    assert job_id["schema"]["type"] == "integer"  # any segment routes; the id is still one
    conflict = paths["/jobs/{id}/"]["delete"]["responses"]["409"]
    assert conflict["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Error"
    }


@pytest.mark.django_db(transaction=True)
def test_running_and_enabling_a_schedule_at_once_never_deadlocks():
    """MariaDB: POST run/ inserted the job (its foreign key check share-locks the
    schedule's row) and then updated the schedule, so two runs, or a run and an enable,
    each waited for the other's lock: "Deadlock found", a 500."""
    jobs.schedule(tasks.add, "0 3 * * *", name="nightly", args=[1, 2])
    staff_client()  # the user, before the threads
    codes: list[int] = []
    start = threading.Barrier(4)

    def hammer(path):
        try:
            client = staff_client()
            client.raise_request_exception = False  # a 500 is counted, not raised
            start.wait()
            for _ in range(15):
                codes.append(post(client, path).status_code)
        finally:
            connections.close_all()

    threads = [
        threading.Thread(target=hammer, args=(path,))
        for path in ["schedules/nightly/run/"] * 2 + ["schedules/nightly/enable/"] * 2
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert codes == [200] * 60, sorted(set(codes))
    assert Schedule.objects.get(name="nightly").run_count == 30
