"""Jobs owned by users (SPEC 5.10): every enqueue verb, the admin, the API."""

import pytest
from django.contrib.auth.models import AnonymousUser, Group, User
from django.db import transaction
from django.urls import reverse
from rest_framework.test import APIClient

from django_jobs import jobs
from django_jobs.models import Job
from django_jobs.testing import run_jobs
from tests.testapp.tasks import add, noop

pytestmark = pytest.mark.django_db


@pytest.fixture
def alice():
    return User.objects.create_user("alice", password="x")


def test_every_enqueue_verb_records_the_owner(alice, django_capture_on_commit_callbacks):
    one = jobs.enqueue(add, args=[1, 2], owner=alice)
    assert Job.objects.get(pk=one.pk).owner == alice
    by_pk = jobs.enqueue(add, args=[1, 2], owner=alice.pk)
    assert Job.objects.get(pk=by_pk.pk).owner_id == alice.pk
    later = jobs.enqueue_delayed(add, 60, args=[1, 2], owner=alice)
    assert Job.objects.get(pk=later.pk).owner_id == alice.pk
    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        jobs.enqueue_on_commit(add, args=[5, 5], owner=alice)
    assert Job.objects.filter(args=[5, 5], owner=alice).count() == 1
    batch = jobs.enqueue_batch(add, items=[([i, i], {}) for i in range(3)], owner=alice)
    assert set(batch.job_set.values_list("owner_id", flat=True)) == {alice.pk}
    chain = jobs.chain([(add, (1, 1)), (add, (2, 2))], owner=alice)
    assert set(chain.job_set.values_list("owner_id", flat=True)) == {alice.pk}


def test_a_batch_callback_belongs_to_the_batch_owner(alice):
    batch = jobs.enqueue_batch(add, items=[([1, 1], {})], on_complete=noop, owner=alice)
    run_jobs()
    batch.refresh_from_db()
    assert batch.on_complete_job is not None
    assert batch.on_complete_job.owner_id == alice.pk


def test_anonymous_and_no_owner_are_the_same():
    assert jobs.enqueue(add, args=[1, 1], owner=AnonymousUser()).owner_id is None
    assert jobs.enqueue(add, args=[1, 1]).owner_id is None


@pytest.mark.parametrize(
    "owner, error",
    [
        ("not-a-pk", TypeError),
        (1.5, TypeError),
        (True, TypeError),
        (object(), TypeError),
        (User(username="unsaved"), ValueError),
    ],
)
def test_a_bad_owner_is_refused_and_nothing_is_written(owner, error):
    before = Job.objects.count()
    with pytest.raises(error, match="owner"):
        jobs.enqueue(add, args=[1, 1], owner=owner)
    with pytest.raises(error, match="owner"):
        jobs.enqueue_on_commit(add, args=[1, 1], owner=owner)
    assert Job.objects.count() == before


def test_another_model_is_not_an_owner():
    group = Group.objects.create(name="g")
    with pytest.raises(TypeError, match=r"auth\.User"):
        jobs.enqueue(add, args=[1, 1], owner=group)


def test_deleting_the_user_keeps_the_jobs(alice):
    job = jobs.enqueue(add, args=[1, 2], owner=alice)
    alice.delete()
    job.refresh_from_db()
    assert job.owner_id is None


def test_admin_shows_and_filters_by_owner(client, alice):
    staff = User.objects.create_superuser("boss", password="x")
    client.force_login(staff)
    mine = jobs.enqueue(add, args=[7, 7], owner=staff)
    hers = jobs.enqueue(add, args=[8, 8], owner=alice)
    nobody = jobs.enqueue(add, args=[9, 9])
    url = reverse("admin:django_jobs_job_changelist")

    def listed(query):
        r = client.get(url + query)
        assert r.status_code == 200
        return {job.pk for job in r.context["cl"].result_list}

    assert listed("?owner=me") == {mine.pk}
    assert listed(f"?owner={alice.pk}") == {hers.pk}
    assert listed("?owner=any") == {mine.pk, hers.pk}
    assert listed("?owner=none") == {nobody.pk}
    assert listed("?owner=no-such-user") == set()
    page = client.get(reverse("admin:django_jobs_job_change", args=[hers.pk]))
    assert page.status_code == 200
    assert f'href="{url}?owner={alice.pk}">alice</a>' in page.content.decode()


def test_api_shows_filters_and_sets_owner(alice):
    staff = User.objects.create_user("staff", password="x", is_staff=True)
    api = APIClient()
    api.force_authenticate(staff)
    created = api.post("/api/jobs/jobs/", {"task": add.name, "args": [1, 2]}, format="json")
    assert created.status_code == 201, created.content
    assert created.json()["owner"] == staff.pk
    for_alice = api.post(
        "/api/jobs/jobs/", {"task": add.name, "args": [3, 4], "owner": alice.pk}, format="json"
    )
    assert for_alice.status_code == 201 and for_alice.json()["owner"] == alice.pk
    unknown = api.post("/api/jobs/jobs/", {"task": add.name, "owner": 999999}, format="json")
    assert unknown.status_code == 400 and "owner" in unknown.json()
    listed = api.get("/api/jobs/jobs/", {"owner": alice.pk}).json()
    assert [j["id"] for j in listed["results"]] == [for_alice.json()["id"]]
    mine = api.get("/api/jobs/jobs/", {"owner": "me"}).json()
    assert [j["id"] for j in mine["results"]] == [created.json()["id"]]
    assert api.get("/api/jobs/jobs/", {"owner": "x"}).status_code == 400


def test_a_key_that_names_nobody_is_refused():
    with pytest.raises(ValueError, match="no user with primary key 999999"):
        jobs.enqueue(add, args=[1, 1], owner=999999)


def test_a_batch_whose_owner_was_deleted_still_finishes_and_calls_back(alice):
    """The batch keeps its owner's id for the callback: once the user is gone the
    callback is enqueued without an owner, and the job finishing the batch is recorded
    (a foreign key to nobody would have failed its commit, again and again)."""
    batch = jobs.enqueue_batch(add, items=[([1, 1], {})], on_complete=noop, owner=alice)
    alice.delete()
    assert run_jobs() == 2
    batch.refresh_from_db()
    assert batch.on_complete_job is not None and batch.on_complete_job.owner_id is None
    assert set(batch.job_set.values_list("status", flat=True)) == {"completed"}
