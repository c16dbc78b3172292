"""The queue, worker and schedule pages of the admin (SPEC 9.1, issue #12): what each list
shows, the schedule form's validation and preview of the next runs, every action (state
changed through the verbs, an audit entry written) and the permissions, for a superuser,
a view-only staff user and a non-staff user. One test runs a real ``runworkers`` to show
that a concurrency limit edited in the admin holds within a second."""

import json
import time
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from django_jobs import JobStatus, jobs, schedules
from django_jobs.models import AuditEntry, Job, Queue, Schedule, Worker
from tests.conftest import wait_until
from tests.testapp import tasks

pytestmark = pytest.mark.django_db

TASK = "tests.testapp.tasks.add"
PAGES = ("queue", "worker", "schedule")


def url(name: str, *args) -> str:
    return reverse(f"admin:django_jobs_{name}", args=args)


@pytest.fixture
def root(client):
    client.force_login(User.objects.create_superuser("root", "r@x.com", "pw"))
    return client


@pytest.fixture
def viewer():
    """A staff user who may look at everything and change nothing."""
    user = User.objects.create_user("viewer", password="pw", is_staff=True)
    codenames = [f"view_{model}" for model in ("job", "queue", "worker", "schedule")]
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def outsider():
    client = Client()
    client.force_login(User.objects.create_user("outsider", password="pw"))
    return client


def html(response) -> str:
    assert response.status_code == 200, response.status_code
    return response.content.decode()


def audited(action: str) -> list[AuditEntry]:
    return list(AuditEntry.objects.filter(action=action))


def schedule_form(**changes) -> dict:
    data = {
        "name": "nightly",
        "task_name": TASK,
        "enabled": "on",
        "kind": "cron",
        "cron": "0 9 * * 1-5",
        "interval": "",
        "run_at_0": "",
        "run_at_1": "",
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
    data.update(changes)
    return {k: v for k, v in data.items() if v is not None}


# -- schedule maths: words and the next runs -------------------------------------------


@pytest.mark.parametrize(
    ("expression", "words"),
    [
        ("0 9 * * 1-5", "At 09:00, Monday through Friday"),
        ("*/15 * * * *", "Every 15 minutes"),
        ("30 2 * * *", "At 02:30"),
        ("@daily", "At 00:00"),
        ("@hourly", "Every hour"),
        ("0 12 * * 1#2", "At 12:00, on the second Monday of the month"),
        ("not a cron", "not a cron"),  # what it cannot read comes back as it is
    ],
)
def test_cron_in_plain_words(expression, words):
    assert schedules.cron_in_words(expression) == words


def test_intervals_and_one_time_schedules_in_plain_words():
    words = schedules.interval_in_words
    assert [words(60), words(300), words(5400), words(86400), words(1.5)] == [
        "Every minute",
        "Every 5 minutes",
        "Every 1 hour 30 minutes",
        "Every day",
        "Every 1.5 seconds",
    ]
    once = SimpleNamespace(
        kind="once", run_at=datetime(2027, 1, 1, 8, tzinfo=UTC), timezone="Europe/Paris"
    )
    assert schedules.in_words(once) == "Once, on 2027-01-01 at 09:00"


def paris(kind="cron", **fields):
    return SimpleNamespace(kind=kind, timezone="Europe/Paris", **fields)


def test_the_next_runs_say_when_daylight_saving_skips_or_repeats_a_time():
    # Clocks go forward at 02:00 on 2026-03-29 and back at 03:00 on 2026-10-25 in Paris.
    spring = schedules.upcoming_runs(
        paris(cron="30 2 * * *"), datetime(2026, 3, 27, 12, tzinfo=UTC)
    )
    assert [r.local.strftime("%m-%d %H:%M %Z") for r in spring] == [
        "03-28 02:30 CET",
        "03-29 03:30 CEST",  # 02:30 does not exist that day
        "03-30 02:30 CEST",
        "03-31 02:30 CEST",
        "04-01 02:30 CEST",
    ]
    assert [r.gap for r in spring] == [False, True, False, False, False]
    assert spring[1].wall == datetime(2026, 3, 29, 2, 30)
    autumn = schedules.upcoming_runs(
        paris(cron="30 2 * * *"), datetime(2026, 10, 23, 12, tzinfo=UTC)
    )
    assert [r.repeat for r in autumn] == [False, True, False, False, False]
    assert autumn[1].local.tzname() == "CEST"  # once, at the first 02:30
    assert not any(r.gap for r in autumn)
    # An interval is an exact duration: the local time moves when the clocks do.
    daily = schedules.upcoming_runs(
        paris("interval", interval=86400), datetime(2026, 10, 23, 12, tzinfo=UTC)
    )
    assert [r.local.hour for r in daily] == [14, 13, 13, 13, 13]
    assert [r.shifted for r in daily] == [False, True, False, False, False]


def test_the_next_runs_start_from_a_saved_next_run_and_refuse_bad_timing():
    now = datetime(2026, 6, 1, 12, tzinfo=UTC)
    first = datetime(2026, 6, 1, 12, 3, tzinfo=UTC)
    runs = schedules.upcoming_runs(paris("interval", interval=600), now, first=first)
    assert [r.at - first for r in runs] == [timedelta(minutes=10 * i) for i in range(5)]
    fresh = schedules.upcoming_runs(paris("interval", interval=600), now)
    assert fresh[0].at == now + timedelta(minutes=10)
    cron = schedules.upcoming_runs(paris(cron="0 9 * * *"), now, count=2)
    assert [r.local.strftime("%d %H:%M") for r in cron] == ["02 09:00", "03 09:00"]
    once = schedules.upcoming_runs(paris("once", run_at=first), now)
    assert [r.at for r in once] == [first]
    for bad in (
        paris(cron="61 * * * *"),
        SimpleNamespace(kind="cron", cron="* * * * *", timezone="Mars/Base"),
        paris("interval", interval=0),
        paris("once", run_at=None),
    ):
        with pytest.raises(ValueError):
            schedules.upcoming_runs(bad, now)


# -- queues ------------------------------------------------------------------------------


def make_queues():
    """emails: 2 pending (one due for an hour), 1 running; reports: paused, limited, 1 failed."""
    old = jobs.enqueue(tasks.add, args=[1, 1], queue="emails")
    Job.objects.filter(pk=old.pk).update(scheduled_at=timezone.now() - timedelta(hours=2))
    jobs.enqueue(tasks.add, args=[2, 2], queue="emails")
    running = jobs.enqueue(tasks.add, args=[3, 3], queue="emails")
    Job.objects.filter(pk=running.pk).update(status=JobStatus.RUNNING, worker_id="w", lease="l")
    failed = jobs.enqueue(tasks.add, args=[4, 4], queue="reports")
    Job.objects.filter(pk=failed.pk).update(
        status=JobStatus.FAILED, queue="dead-letter", original_queue="reports"
    )
    Queue.objects.filter(name="emails").update(
        max_pending_age=timedelta(minutes=30), description="Transactional <email>"
    )
    Queue.objects.filter(name="reports").update(paused=True, concurrency_limit=2)
    return Queue.objects.get(name="emails"), Queue.objects.get(name="reports")


def row_of(page: str, name: str) -> str:
    """The changelist row whose first link is ``name``."""
    rows = page.split('id="result_list"')[1].split("<tr")[2:]
    return next(r for r in rows if f">{name}<" in r.replace("<wbr>", ""))


def test_queue_list_shows_counts_age_limits_and_links(root):
    make_queues()
    page = html(root.get(url("queue_changelist")))
    emails, reports = row_of(page, "emails"), row_of(page, "reports")
    # pending, running and failed link to the jobs they count
    assert "queue__exact=emails&amp;status__exact=pending" in emails and ">2</a>" in emails
    assert "queue__exact=emails&amp;status__exact=running" in emails and ">1</a>" in emails
    assert "status__exact=failed&amp;original_queue=reports" in reports
    # the oldest due job waited 2 h, past the queue's own 30 min
    assert "2h 00m" in emails and "over 30m" in emails and "dj-badge--bad" in emails
    assert "30m" in emails and "Transactional &lt;email&gt;" in emails
    assert "paused" in reports and "dj-badge--warn" in reports
    assert "1h (default)" in reports  # the HEALTH setting's MAX_PENDING_AGE
    assert ">2</td>" in reports  # the concurrency limit
    for link in ("queue__exact=emails&status__exact=pending", "original_queue=reports"):
        assert root.get(url("job_changelist") + "?" + link).status_code == 200


def test_queue_list_costs_the_same_queries_for_many_queues(root, django_assert_max_num_queries):
    make_queues()
    with django_assert_max_num_queries(12) as few:
        html(root.get(url("queue_changelist")))
    for i in range(15):
        jobs.enqueue(tasks.add, args=[i, i], queue=f"q{i}")
    with django_assert_max_num_queries(len(few.captured_queries)):
        page = html(root.get(url("queue_changelist")))
    assert ">q14<" in page


def test_pause_resume_and_clear_call_the_verbs_and_are_audited(root):
    emails, reports = make_queues()
    changelist = url("queue_changelist")
    root.post(changelist, {"action": "pause_queues", "_selected_action": [emails.pk, reports.pk]})
    assert Queue.objects.get(name="emails").paused
    [entry] = audited("pause")
    assert entry.targets == ["emails"] and entry.username == "root"  # reports was paused
    root.post(changelist, {"action": "resume_queues", "_selected_action": [emails.pk]})
    assert not Queue.objects.get(name="emails").paused
    assert audited("resume")[0].targets == ["emails"]
    # Clearing asks first, saying how many jobs it cancels...
    ask = html(root.post(changelist, {"action": "clear_queues", "_selected_action": [emails.pk]}))
    assert "Clearing cancels 2 jobs" in ask and 'name="post" value="yes"' in ask
    assert Job.objects.filter(queue="emails", status=JobStatus.PENDING).count() == 2
    assert not audited("clear")
    # ...then cancels the jobs no worker holds, and leaves running ones alone.
    done = root.post(
        changelist,
        {"action": "clear_queues", "_selected_action": [emails.pk], "post": "yes"},
        follow=True,
    )
    assert "2 pending jobs cancelled." in [str(m) for m in done.context["messages"]]
    statuses = sorted(Job.objects.filter(queue="emails").values_list("status", flat=True))
    assert statuses == ["cancelled", "cancelled", "running"]
    [entry] = audited("clear")
    assert entry.targets == ["emails"] and entry.details == {"jobs_cancelled": 2}


def test_editing_a_queue_goes_through_its_verb_and_is_audited(root):
    emails, _ = make_queues()
    form = {"description": "mail", "concurrency_limit": "3", "max_pending_age": "00:10:00"}
    r = root.post(url("queue_change", emails.pk), form)
    assert r.status_code == 302
    emails.refresh_from_db()
    assert (emails.concurrency_limit, emails.max_pending_age) == (3, timedelta(minutes=10))
    [entry] = audited("queue.change")
    assert entry.targets == ["emails"]
    assert entry.details == {"description": "mail", "concurrency_limit": 3, "max_pending_age": 600}
    root.post(url("queue_change", emails.pk), {**form, "concurrency_limit": ""})
    assert Queue.objects.get(pk=emails.pk).concurrency_limit is None
    assert audited("queue.change")[0].details == {"concurrency_limit": None}
    # Saving unchanged values changes nothing and logs nothing.
    root.post(url("queue_change", emails.pk), {**form, "concurrency_limit": ""})
    assert len(audited("queue.change")) == 2
    r = root.post(url("queue_add"), {"name": "fresh", "description": "", "concurrency_limit": "1"})
    assert r.status_code == 302 and Queue.objects.get(name="fresh").concurrency_limit == 1
    assert audited("queue.create")[0].targets == ["fresh"]
    r = root.post(url("queue_delete", Queue.objects.get(name="fresh").pk), {"post": "yes"})
    assert r.status_code == 302 and not Queue.objects.filter(name="fresh").exists()
    assert audited("queue.delete")[0].targets == ["fresh"]


def test_configure_changes_only_queue_settings():
    queue = jobs.get_queue("q")
    assert queue.configure(concurrency_limit=2, description="") == ["concurrency_limit"]
    assert Queue.objects.get(name="q").concurrency_limit == 2
    with pytest.raises(TypeError):
        queue.configure(paused=True)


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_concurrency_limit_edited_in_the_admin_holds_within_a_second(workers):
    """A real worker (POLL_INTERVAL at its default of 1 s) runs 1 job at a time of a
    queue limited to 1; raised to 3 in the admin, it runs 3 within a second."""
    client = Client()
    client.force_login(User.objects.create_superuser("root", "r@x.com", "pw"))
    queue = Queue.objects.create(name="limited", concurrency_limit=1)
    for i in range(4):
        jobs.enqueue(tasks.sleeper, args=[f"s{i}", 60], queue="limited")

    def running():
        return Job.objects.filter(queue="limited", status=JobStatus.RUNNING).count()

    settings = {"DJANGO_SETTINGS_MODULE": "tests.admin.worker_settings"}
    workers.start("--queues", "limited", "--concurrency", "4", env=settings)
    wait_until(lambda: running() == 1, timeout=60, message="the first job to start")
    time.sleep(2.5)  # two polls and more: the limit holds
    assert running() == 1
    started = time.monotonic()
    r = client.post(url("queue_change", queue.pk), {"description": "", "concurrency_limit": "3"})
    assert r.status_code == 302
    wait_until(lambda: running() == 3, timeout=10, interval=0.02, message="3 running jobs")
    took = time.monotonic() - started
    print(f"limit raised to 3: 3 jobs running {took:.2f} s after the admin's POST")
    # One poll interval (1 s) and the claim; a little slack for a loaded machine.
    assert took < 1.5
    time.sleep(2.5)
    assert running() == 3  # and no more


# -- workers -----------------------------------------------------------------------------


def make_workers():
    now = timezone.now()
    job = jobs.enqueue(tasks.progress_steps, args=["x"])
    Job.objects.filter(pk=job.pk).update(
        status=JobStatus.RUNNING,
        worker_id="w-alive",
        lease="l",
        progress=0.5,
        progress_message="half way",
        started_at=now - timedelta(seconds=30),
    )
    Worker.objects.create(
        id="w-alive",
        hostname="host-a",
        pid=11,
        queues=["a", "b"],
        concurrency=4,
        current_jobs=[job.pk, 999999],
    )
    Worker.objects.create(
        id="w-stale", hostname="host-b", pid=12, last_heartbeat_at=now - timedelta(minutes=5)
    )
    Worker.objects.create(
        id="w-stopped", hostname="host-c", pid=13, stopped_at=now, jobs_processed=42
    )
    return job


def test_worker_list_shows_state_heartbeat_and_current_jobs_with_progress(root):
    job = make_workers()
    page = html(root.get(url("worker_changelist")))
    alive, stale, stopped = (row_of(page, w) for w in ("w-alive", "w-stale", "w-stopped"))
    assert "dj-badge--good" in alive and ">alive<" in alive and "host-a · pid 11" in alive
    assert "a, b" in alive and ">4</td>" in alive
    assert f'href="{url("job_change", job.pk)}"' in alive and "progress_steps" in alive
    assert '<progress max="100" value="50"' in alive and 'title="half way"' in alive
    assert "s left" in alive  # the job's ETA
    assert "#999999" in alive and "finished" in alive  # no such job (any more)
    assert ">stale<" in stale and "dj-badge--bad" in stale and "5m 00s ago" in stale
    assert ">stopped<" in stopped and ">42</td>" in stopped
    # The detail page shows the same, read-only.
    detail = html(root.get(url("worker_change", "w-alive")))
    assert '<progress max="100" value="50"' in detail and 'name="_save"' not in detail


def test_worker_list_loads_every_current_job_in_one_query(root, django_assert_max_num_queries):
    make_workers()
    with django_assert_max_num_queries(12) as few:
        html(root.get(url("worker_changelist")))
    for i in range(10):
        job = jobs.enqueue(tasks.add, args=[i, i])
        Worker.objects.create(id=f"w{i}", hostname="h", pid=i, current_jobs=[job.pk])
    with django_assert_max_num_queries(len(few.captured_queries)):
        page = html(root.get(url("worker_changelist")))
    assert page.count("<progress") == 11


def test_workers_silent_for_a_day_are_forgotten_by_housekeeping():
    from django_jobs.worker.sidecar import FORGET_WORKERS_AFTER, Housekeeper

    long_ago = timezone.now() - FORGET_WORKERS_AFTER - timedelta(minutes=1)
    Worker.objects.create(id="gone", hostname="h", pid=1, last_heartbeat_at=long_ago)
    Worker.objects.create(
        id="stopped-long-ago", hostname="h", pid=2, last_heartbeat_at=long_ago, stopped_at=long_ago
    )
    Worker.objects.create(
        id="stopped-today",
        hostname="h",
        pid=3,
        last_heartbeat_at=timezone.now() - timedelta(hours=5),
        stopped_at=timezone.now(),
    )
    Worker.objects.create(id="alive", hostname="h", pid=4)
    Housekeeper({"database": "default", "id": "keeper"}, None).prune()
    assert sorted(Worker.objects.values_list("id", flat=True)) == ["alive", "stopped-today"]


# -- schedules ---------------------------------------------------------------------------


def test_schedule_list_shows_words_zone_next_and_last_run_with_its_outcome(root):
    weekday = jobs.schedule(tasks.add, cron="0 9 * * 1-5", name="weekday", timezone="Europe/Paris")
    jobs.schedule_interval(tasks.add, interval=300, name="often")
    jobs.schedule(tasks.add, cron="@daily", name="off", enabled=False)
    fired = jobs.run_schedule_now("weekday")
    Job.objects.filter(pk=fired.pk).update(status=JobStatus.FAILED)
    page = html(root.get(url("schedule_changelist")))
    row = row_of(page, "weekday")
    assert "At 09:00, Monday through Friday" in row and "0 9 * * 1-5" in row
    assert "Europe/Paris" in row and "tests.<wbr>testapp.<wbr>tasks.<wbr>add" in row
    weekday.refresh_from_db()
    local = weekday.next_run_at.astimezone(ZoneInfo("Europe/Paris"))
    assert f"{local:%Y-%m-%d} 09:00 {local.tzname()}" in row and "in " in row
    assert f'href="{url("job_change", fired.pk)}"' in row and "dj-status--failed" in row
    assert "under a minute ago" in row
    assert "Every 5 minutes" in row_of(page, "often")
    off = row_of(page, "off")
    assert "disabled" in off and "never" in off and "At 00:00" in off


def test_schedule_form_previews_the_next_five_runs_of_the_saved_timing(root):
    schedule = jobs.schedule(tasks.add, cron="0 9 * * 1-5", name="weekday", timezone="Asia/Tokyo")
    page = html(root.get(url("schedule_change", schedule.pk)))
    preview = page.split('id="dj-schedule-preview"')[1].split("</div>")[0]
    assert "At 09:00, Monday through Friday" in preview and "(Asia/Tokyo)" in preview
    assert preview.count("<li") == 5 and preview.count(" 09:00 JST") == 5
    assert preview.count("00:00 UTC") == 5
    schedule.refresh_from_db()
    assert schedule.next_run_at.isoformat() in preview  # starts at the saved next run
    assert f'data-url="{url("schedule_preview")}"' in page
    assert f'data-schedule="{schedule.pk}"' in page
    assert "django_jobs/schedule-preview.js" in page
    assert '<datalist id="id_timezone-zones">' in page and '<option value="Europe/Paris">' in page


def test_schedule_form_warns_of_daylight_saving_in_the_preview(root):
    # The fifth Sunday of March or October is the last one: the day clocks change in the EU.
    schedule = jobs.schedule(
        tasks.add, cron="30 2 * 3,10 sun#5", name="dst", timezone="Europe/Paris"
    )
    page = html(root.get(url("schedule_change", schedule.pk)))
    assert "(the clocks go forward): it runs at 03:30 CEST" in page
    assert "(the clocks go back): it runs once, at the first (CEST)" in page


def test_schedule_form_refuses_bad_cron_and_zone_naming_the_field(root):
    r = root.post(url("schedule_add"), schedule_form(cron="61 * * * *", timezone="Mars/Base"))
    page = html(r)
    assert Schedule.objects.count() == 0
    errors = r.context["adminform"].form.errors
    assert "Invalid cron expression '61 * * * *'" in errors["cron"][0]
    assert "Unknown time zone 'Mars/Base'" in errors["timezone"][0]
    # The preview says what keeps the schedule from running, too.
    assert "Time zone: Unknown time zone" in page.split('id="dj-schedule-preview"')[1]
    r = root.post(url("schedule_add"), schedule_form(cron="0 0 30 2 *"))
    assert "never matches a date" in r.context["adminform"].form.errors["cron"][0]
    # With a valid zone, the preview shows the runs of what was typed.
    r = root.post(url("schedule_add"), schedule_form(cron="0 7 * * *", task_name="no.such.task"))
    assert "task_name" in r.context["adminform"].form.errors
    preview = html(r).split('id="dj-schedule-preview"')[1].split("</div>")[0]
    assert preview.count(" 07:00 ") == 5


def test_saving_a_schedule_reschedules_and_is_audited_then_continue_shows_the_preview(root):
    r = root.post(url("schedule_add"), schedule_form(_continue="1"))
    schedule = Schedule.objects.get(name="nightly")
    assert r.status_code == 302 and r["Location"] == url("schedule_change", schedule.pk)
    assert audited("schedule.create")[0].targets == ["nightly"]
    page = html(root.get(r["Location"]))
    assert "At 09:00, Monday through Friday" in page.split('id="dj-schedule-preview"')[1]
    r = root.post(
        url("schedule_change", schedule.pk), schedule_form(cron="30 6 * * *", _continue="1")
    )
    assert r.status_code == 302
    schedule.refresh_from_db()
    local = schedule.next_run_at.astimezone(ZoneInfo("Europe/Paris"))
    assert (local.hour, local.minute) == (6, 30)
    [entry] = audited("schedule.change")
    # (A browser also posts the hidden initial values of the JSON fields, so that only
    # cron counts as changed; this test client does not.)
    assert "cron" in entry.details["fields"] and "name" not in entry.details["fields"]
    preview = html(root.get(r["Location"])).split('id="dj-schedule-preview"')[1]
    assert "At 06:30" in preview and preview.count(" 06:30 ") == 5
    r = root.post(url("schedule_delete", schedule.pk), {"post": "yes"})
    assert r.status_code == 302 and not Schedule.objects.exists()
    assert audited("schedule.delete")[0].targets == ["nightly"]


def preview_of(client, **params):
    r = client.get(url("schedule_preview"), params)
    assert r.status_code == 200, r.status_code
    return json.loads(r.content)


def test_the_live_preview_answers_for_the_timing_as_typed(root):
    data = preview_of(root, kind="cron", cron="0 9 * * 1-5", timezone="Europe/Paris")
    assert data["words"] == "At 09:00, Monday through Friday" and len(data["runs"]) == 5
    assert data["error"] == "" and "dj-preview__runs" in data["html"]
    data = preview_of(root, kind="cron", cron="61 * * * *", timezone="UTC")
    assert data["error"].startswith("Cron: Invalid cron expression") and not data["runs"]
    data = preview_of(root, kind="cron", cron="* * * * *", timezone="Nowhere/Land")
    assert data["error"].startswith("Time zone: Unknown time zone 'Nowhere/Land'")
    data = preview_of(root, kind="interval", interval="abc", timezone="UTC")
    assert data["error"] == "Interval: Enter a number."
    data = preview_of(root, kind="once", run_at_0="2030-01-01", run_at_1="09:00", timezone="UTC")
    assert data["runs"] == ["2030-01-01T09:00:00+00:00"]
    data = preview_of(root, timezone="UTC")
    assert "Choose cron, interval or once" in data["html"]
    # A saved interval schedule whose timing is unchanged keeps its grid (the saved next
    # run); a changed interval starts one interval from now, as saving it would.
    saved = jobs.schedule_interval(tasks.add, interval=3600, name="hourly")
    start = timezone.now() + timedelta(minutes=7)
    Schedule.objects.filter(pk=saved.pk).update(next_run_at=start)
    same = preview_of(
        root, kind="interval", interval="3600", timezone="UTC", enabled="on", schedule=saved.pk
    )
    assert same["runs"][0] == start.astimezone(UTC).isoformat()
    other = preview_of(
        root, kind="interval", interval="1800", timezone="UTC", enabled="on", schedule=saved.pk
    )
    first = datetime.fromisoformat(other["runs"][0])
    assert abs((first - timezone.now()).total_seconds() - 1800) < 60
    off = preview_of(
        root, kind="interval", interval="3600", timezone="UTC", schedule=saved.pk
    )  # not enabled
    assert "Disabled: no run happens until it is enabled" in off["html"]


def test_schedule_actions_call_the_verbs_and_are_audited(root):
    a = jobs.schedule(tasks.add, cron="0 9 * * *", name="a")
    b = jobs.schedule(tasks.add, cron="0 10 * * *", name="b", enabled=False)
    changelist = url("schedule_changelist")
    root.post(changelist, {"action": "run_now", "_selected_action": [a.pk, b.pk]})
    fired = Job.objects.filter(schedule__in=[a, b])
    assert fired.count() == 2 and Schedule.objects.get(pk=a.pk).run_count == 1
    [entry] = audited("schedule.run")
    assert sorted(entry.targets) == ["a", "b"]
    assert sorted(entry.details["jobs"]) == sorted(fired.values_list("pk", flat=True))
    root.post(changelist, {"action": "enable_schedules", "_selected_action": [a.pk, b.pk]})
    assert Schedule.objects.get(pk=b.pk).enabled
    [entry] = audited("schedule.enable")
    assert (entry.targets, entry.count) == (["b"], 1)  # a was enabled already
    root.post(changelist, {"action": "disable_schedules", "_selected_action": [a.pk, b.pk]})
    assert not Schedule.objects.filter(enabled=True).exists()
    [entry] = audited("schedule.disable")
    assert (sorted(entry.targets), entry.count) == (["a", "b"], 2)


# -- permissions -------------------------------------------------------------------------


@pytest.fixture
def objects():
    emails, _ = make_queues()
    make_workers()
    schedule = jobs.schedule(tasks.add, cron="0 9 * * *", name="a")
    return {"queue": emails.pk, "worker": "w-alive", "schedule": schedule.pk}


def test_every_page_asks_non_staff_users_to_log_in(outsider, objects):
    pages = [url(f"{m}_changelist") for m in PAGES]
    pages += [url(f"{m}_change", objects[m]) for m in PAGES]
    pages += [url("queue_add"), url("schedule_add"), url("schedule_preview")]
    for page in pages:
        r = outsider.get(page)
        assert r.status_code == 302 and r["Location"].startswith("/admin/login/"), page
    pause = {"action": "pause_queues", "_selected_action": [objects["queue"]]}
    r = outsider.post(url("queue_changelist"), pause)
    assert r.status_code == 302 and not Queue.objects.get(pk=objects["queue"]).paused


def test_a_view_only_user_sees_everything_and_changes_nothing(viewer, objects):
    for model in PAGES:
        page = html(viewer.get(url(f"{model}_changelist")))
        assert 'name="action"' not in page  # no action offered
        detail = html(viewer.get(url(f"{model}_change", objects[model])))
        assert 'name="_save"' not in detail and 'type="submit"' not in detail.split("<form")[-1]
    page = html(viewer.get(url("queue_changelist")))
    assert "emails" in page and "over 30m" in page
    assert "<progress" in html(viewer.get(url("worker_changelist")))
    detail = html(viewer.get(url("schedule_change", objects["schedule"])))
    assert detail.count("<li") >= 5 and "At 09:00" in detail  # the preview, read-only
    assert viewer.get(url("queue_add")).status_code == 403
    assert viewer.get(url("schedule_add")).status_code == 403
    assert viewer.get(url("schedule_preview"), {"kind": "cron"}).status_code == 403
    assert viewer.get(url("queue_delete", objects["queue"])).status_code == 403
    # Forms and actions posted anyway change nothing.
    r = viewer.post(url("queue_change", objects["queue"]), {"concurrency_limit": "9"})
    assert r.status_code == 403
    r = viewer.post(url("schedule_change", objects["schedule"]), schedule_form(name="x"))
    assert r.status_code == 403
    attempts = {
        "queue": ("pause_queues", "resume_queues", "clear_queues"),
        "schedule": ("run_now", "enable_schedules", "disable_schedules"),
    }
    for model, actions in attempts.items():
        for action in actions:
            viewer.post(
                url(f"{model}_changelist"),
                {"action": action, "_selected_action": [objects[model]], "post": "yes"},
            )
    queue = Queue.objects.get(pk=objects["queue"])
    assert not queue.paused and queue.concurrency_limit is None
    assert Job.objects.filter(queue="emails", status=JobStatus.PENDING).count() == 2
    schedule = Schedule.objects.get(pk=objects["schedule"])
    assert schedule.enabled and schedule.run_count == 0 and schedule.name == "a"
    assert not AuditEntry.objects.exists()


def test_a_superuser_is_offered_every_action(root, objects):
    for model, actions in {
        "queue": ("pause_queues", "resume_queues", "clear_queues"),
        "schedule": ("run_now", "enable_schedules", "disable_schedules"),
    }.items():
        page = html(root.get(url(f"{model}_changelist")))
        assert all(f'value="{action}"' in page for action in actions), model
        assert 'name="_save"' in html(root.get(url(f"{model}_change", objects[model])))
    assert html(root.get(url("worker_changelist")))  # read-only for everyone
    assert root.get(url("worker_add")).status_code == 403


def test_change_permission_alone_unlocks_the_actions_of_its_model(viewer, objects):
    user = User.objects.get(username="viewer")
    user.user_permissions.add(Permission.objects.get(codename="change_queue"))
    viewer.force_login(User.objects.get(pk=user.pk))
    assert 'value="pause_queues"' in html(viewer.get(url("queue_changelist")))
    assert 'name="action"' not in html(viewer.get(url("schedule_changelist")))
    pause = {"action": "pause_queues", "_selected_action": [objects["queue"]]}
    viewer.post(url("queue_changelist"), pause)
    assert Queue.objects.get(pk=objects["queue"]).paused
    assert audited("pause")[0].username == "viewer"


def test_the_lists_load_both_stylesheets(root):
    for model in PAGES:
        page = html(root.get(url(f"{model}_changelist")))
        assert "django_jobs/admin.css" in page and "django_jobs/admin-lists.css" in page
