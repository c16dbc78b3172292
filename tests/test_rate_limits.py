"""Queue rate limits (SPEC 5.6): at most N job starts per period across every worker,
kept in the queue's row; editable in the admin and the API; never stranding a job."""

import random
import time
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.urls import reverse
from rest_framework.test import APIClient

from django_jobs import JobStatus, jobs
from django_jobs.models import Job, Queue
from django_jobs.models.rate import SLICES, Rate, parse_rate, take
from tests.testapp import tasks
from tests.testapp.tasks import noop

# -- the rate and its window (no database) -----------------------------------------------


@pytest.mark.parametrize(
    "text, limit, period",
    [
        ("100/s", 100, 1),
        ("600/m", 600, 60),
        ("1000/h", 1000, 3600),
        (" 5 / 10s ", 5, 10),
        ("30/min", 30, 60),
        ("2/minutes", 2, 60),
        ("1/hour", 1, 3600),
        ("100/sec", 100, 1),
    ],
)
def test_rates_people_write(text, limit, period):
    assert parse_rate(text) == Rate(limit, float(period))


@pytest.mark.parametrize("text", ["100/ms", "0/s", "abc", "10", "-1/s", "1.5/s", "5/0s", "5/d"])
def test_a_bad_rate_says_how_to_write_one(text):
    with pytest.raises(ValidationError, match=r'"100/s"|at least one'):
        parse_rate(text)


@pytest.mark.parametrize("spec", ["20/s", "3/s", "100/m", "7/10s"])
def test_the_window_is_never_exceeded_in_any_period(spec):
    rate = parse_rate(spec)
    rng = random.Random(spec)  # noqa: S311 - a reproducible test sequence
    window, now, starts = None, 1_000_000.0, []
    while now < 1_000_000.0 + 30 * rate.period:
        allowed, window, wait = take(window, rate, now, rng.randint(1, 2 * rate.limit))
        starts += [now] * allowed
        if allowed == 0:
            assert wait > 0
            now += wait + rng.random() * rate.slice_seconds
        else:
            now += rng.random() * rate.period / rate.limit
    worst = max(sum(1 for t in starts if s <= t < s + rate.period) for s in starts)
    assert worst <= rate.limit
    # Saturated, it runs close to the limit (SLICES / (SLICES + 1) at worst).
    assert len(starts) >= 30 * rate.limit * SLICES / (SLICES + 1) - rate.limit


def test_a_changed_limit_starts_a_fresh_window_and_a_clock_going_back_keeps_it():
    allowed, window, _ = take(None, parse_rate("5/s"), 100.0, 5)
    assert allowed == 5
    assert take(window, parse_rate("5/s"), 100.5, 1)[0] == 0
    assert take(window, parse_rate("5/m"), 100.5, 9)[0] == 5  # other slices: new window
    assert take(window, parse_rate("5/s"), 99.0, 1)[0] == 0  # the clock went back


# -- the claim ---------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_claim_takes_only_what_the_rate_allows_and_says_when_more_is():
    Queue.objects.create(name="api-calls", rate_limit="3/m")
    limited = [jobs.enqueue(noop, queue="api-calls") for _ in range(5)]
    free = [jobs.enqueue(noop, queue="free") for _ in range(2)]
    config = Queue.objects.claim_config()
    claimed = claim_all("w1", config)
    assert sorted(j.pk for j in claimed if j.queue == "api-calls") == [j.pk for j in limited[:3]]
    assert sorted(j.pk for j in claimed if j.queue == "free") == [j.pk for j in free]
    assert Job.objects.claim("w2", 10, config=config) == []
    assert 55 < config.rate_wait <= 60 + 60 / SLICES  # the first start's slice leaves
    # The held-back jobs wait, pending: nothing is stranded.
    assert Job.objects.filter(queue="api-calls", status=JobStatus.PENDING).count() == 2


def test_a_claim_takes_one_slice_share_so_starts_stay_where_they_were_counted():
    assert parse_rate("3/m").per_claim == 1
    assert parse_rate("20/s").per_claim == 1
    assert parse_rate("1000/h").per_claim == 50
    assert parse_rate("1001/h").per_claim == 51


def claim_all(worker_id, config=None):
    claimed = []
    while batch := Job.objects.claim(worker_id, 10, config=config):
        claimed += batch
    return claimed


@pytest.mark.django_db
def test_a_finished_job_frees_no_start_only_time_does():
    Queue.objects.create(name="slow-api", rate_limit="2/h")
    for _ in range(3):
        jobs.enqueue(noop, queue="slow-api")
    claimed = claim_all("w1")
    assert len(claimed) == 2
    for job in claimed:
        assert job.set_completed(None)
    assert Job.objects.claim("w1", 10) == []


@pytest.mark.django_db
def test_a_new_limit_holds_at_the_next_claim():
    queue = Queue.objects.create(name="tuned")
    for _ in range(6):
        jobs.enqueue(noop, queue="tuned")
    queue.configure(rate_limit="2/m")
    assert len(claim_all("w1")) == 2
    queue.configure(rate_limit="")
    assert len(Job.objects.claim("w1", 10)) == 4


@pytest.mark.django_db
def test_concurrency_and_rate_limits_together():
    Queue.objects.create(name="both", concurrency_limit=1, rate_limit="5/m")
    for _ in range(3):
        jobs.enqueue(noop, queue="both")
    [one] = Job.objects.claim("w1", 10)
    assert Job.objects.claim("w1", 10) == []  # the concurrency limit
    assert one.set_completed(None)
    assert len(claim_all("w1")) == 1


@pytest.mark.django_db
def test_a_bad_rate_is_refused_before_anything_is_written():
    queue = Queue.objects.create(name="careful", rate_limit="10/s")
    with pytest.raises(ValidationError, match="not a rate limit"):
        queue.configure(rate_limit="lots")
    queue.refresh_from_db()
    assert queue.rate_limit == "10/s"
    # A value written around the validation is logged and ignored, never a crash.
    Queue.objects.filter(pk=queue.pk).update(rate_limit="lots")
    jobs.enqueue(noop, queue="careful")
    assert len(Job.objects.claim("w1", 10)) == 1


# -- the admin and the API ---------------------------------------------------------------


@pytest.mark.django_db
def test_the_admin_edits_the_rate_limit(client):
    client.force_login(User.objects.create_superuser("boss", password="x"))
    queue = Queue.objects.create(name="mail")
    url = reverse("admin:django_jobs_queue_change", args=[queue.pk])
    form = {"description": "", "concurrency_limit": "", "max_pending_age": ""}
    bad = client.post(url, {**form, "rate_limit": "fast"})
    assert bad.status_code == 200 and "not a rate limit" in bad.content.decode()
    queue.refresh_from_db()
    assert queue.rate_limit == ""
    good = client.post(url, {**form, "rate_limit": "600/m"})
    assert good.status_code == 302
    queue.refresh_from_db()
    assert queue.rate_limit == "600/m"
    listing = client.get(reverse("admin:django_jobs_queue_changelist")).content.decode()
    assert "600/m" in listing


@pytest.mark.django_db
def test_the_api_edits_the_rate_limit():
    api = APIClient()
    api.force_authenticate(User.objects.create_user("staff", password="x", is_staff=True))
    Queue.objects.create(name="sms")
    url = "/api/jobs/queues/sms/"
    r = api.patch(url, {"rate_limit": "100/s", "max_pending_age": 90}, format="json")
    assert r.status_code == 200, r.content
    assert r.json()["rate_limit"] == "100/s"
    queue = Queue.objects.get(name="sms")
    assert queue.rate_limit == "100/s" and queue.max_pending_age == timedelta(seconds=90)
    bad = api.patch(url, {"rate_limit": "1.5/s"}, format="json")
    assert bad.status_code == 400 and "rate_limit" in bad.json()
    assert api.patch(url, {"concurrency_limit": 0}, format="json").status_code == 400
    assert api.patch("/api/jobs/queues/nope/", {}, format="json").status_code == 404
    cleared = api.patch(url, {"rate_limit": None}, format="json")
    assert cleared.status_code == 200 and cleared.json()["rate_limit"] == ""
    nobody = APIClient().patch(url, {"rate_limit": "1/s"}, format="json")
    assert nobody.status_code in (401, 403)


# -- real workers ------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_two_worker_processes_never_start_more_than_the_limit(workers):
    """200 jobs on a queue limited to 20/s, two worker processes: about 10 s, and never
    more than 20 starts in any second (the jobs' start times, the database clock)."""
    Queue.objects.create(name="limited", rate_limit="20/s")
    Job.objects.bulk_create(
        Job(task_name=tasks.record_label.name, args=[f"r{i}"], queue="limited") for i in range(200)
    )
    began = time.monotonic()
    code, out = workers.run("--processes", "2", "--queues", "limited", "--burst", timeout=120)
    took = time.monotonic() - began
    assert code == 0, out
    assert Job.objects.filter(status=JobStatus.COMPLETED).count() == 200
    starts = sorted(
        s.timestamp() for s in Job.objects.values_list("started_at", flat=True) if s is not None
    )
    worst = max(sum(1 for t in starts if s <= t < s + 1.0) for s in starts)
    assert worst <= 20, worst
    # 180 starts after the first second's 20 take at least 9 s; a saturated queue runs
    # at 95 % of its limit or better, plus the workers' start-up.
    assert starts[-1] - starts[0] >= 9.0
    assert took < 30, took


@pytest.mark.django_db(transaction=True)
def test_an_executor_waiting_for_a_start_still_serves_other_queues(workers):
    """One executor, a queue allowed one start an hour with a second job due: the
    executor waits for that start (not idle), yet a job of another queue enqueued
    meanwhile runs at once, not an hour later."""
    from tests.conftest import wait_until

    Queue.objects.create(name="hourly", rate_limit="1/h")
    first = jobs.enqueue(tasks.record_label, args=["hourly-1"], queue="hourly")
    jobs.enqueue(tasks.record_label, args=["hourly-2"], queue="hourly")
    workers.start("--concurrency", "1", "--queues", "hourly,other")
    wait_until(lambda: Job.objects.get(pk=first.pk).status == JobStatus.COMPLETED)
    other = jobs.enqueue(tasks.add, args=[1, 2], queue="other")
    wait_until(
        lambda: Job.objects.get(pk=other.pk).status == JobStatus.COMPLETED,
        timeout=10,
        message="the other queue's job",
    )
    assert Job.objects.filter(queue="hourly", status=JobStatus.PENDING).count() == 1
