"""Schedules (SPEC 5.7): validation, next-run computation, daylight saving, misfires, the
manager verbs, code-declared schedules, and exactly-once firing by five real workers."""

import io
import itertools
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from asgiref.sync import async_to_sync
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.core.management.sql import emit_post_migrate_signal

from django_jobs import TaskNotFound, jobs, register_task, scheduler
from django_jobs.checks import check_settings
from django_jobs.models import Job, MisfirePolicy, Schedule, ScheduleKind, Worker
from django_jobs.registry import registry
from django_jobs.scheduler import db_now, next_cron_time, run_due_schedules
from tests.conftest import wait_until
from tests.testapp import tasks

PARIS = ZoneInfo("Europe/Paris")
TICK = tasks.scheduled_tick


@pytest.fixture(autouse=True)
def _fresh_scheduler_state():
    # Broken-schedule back-off is per process; ids repeat across tests.
    scheduler._broken.clear()
    yield
    scheduler._broken.clear()


def minute_floor(value):
    return value.replace(second=0, microsecond=0)


def fired(schedule):
    return list(
        Job.objects.filter(schedule=schedule)
        .order_by("schedule_due_at")
        .values_list("schedule_due_at", flat=True)
    )


def set_next_run(schedule, value):
    Schedule.objects.filter(pk=schedule.pk).update(next_run_at=value)


# -- validation ----------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("call", "error", "fragment"),
    [
        (lambda: jobs.schedule(TICK, cron="61 * * * *"), ValueError, "'61 * * * *'"),
        (lambda: jobs.schedule(TICK, cron="* * * *"), ValueError, "expected 5 fields"),
        (lambda: jobs.schedule(TICK, cron="*/5 * * * * 30"), ValueError, "expected 5 fields"),
        (lambda: jobs.schedule(TICK, cron="0 0 30 2 *"), ValueError, "never matches"),
        (lambda: jobs.schedule(TICK, cron="@reboot"), ValueError, "'@reboot'"),
        (lambda: jobs.schedule(TICK, cron=""), ValueError, "cron expression"),
        (
            lambda: jobs.schedule(TICK, cron="0 9 * * *", timezone="Mars/Olympus_Mons"),
            ValueError,
            "'Mars/Olympus_Mons'",
        ),
        (
            lambda: jobs.schedule(TICK, cron="0 9 * * *", misfire_policy="sometimes"),
            ValueError,
            "misfire_policy",
        ),
        (lambda: jobs.schedule(TICK, cron="0 9 * * *", priority=1000), ValueError, "1000"),
        (lambda: jobs.schedule(TICK, cron="0 9 * * *", args="abc"), TypeError, "args"),
        (
            lambda: jobs.schedule(TICK, cron="0 9 * * *", kwargs={"x": object()}),
            TypeError,
            "kwargs",
        ),
        (lambda: jobs.schedule(TICK, cron="0 9 * * *", colour="red"), TypeError, "colour"),
        (lambda: jobs.schedule("no.such.task", cron="0 9 * * *"), TaskNotFound, "no.such"),
        (lambda: jobs.schedule_interval(TICK, interval=0), ValueError, "positive"),
        (lambda: jobs.schedule_interval(TICK, interval=-5), ValueError, "positive"),
        (lambda: jobs.schedule_interval(TICK, interval=timedelta(0)), ValueError, "positive"),
        (lambda: jobs.schedule_interval(TICK, interval="often"), ValueError, "interval"),
        (lambda: jobs.schedule_once(TICK, at=datetime(2030, 1, 1, 9)), ValueError, "aware"),
        (lambda: jobs.schedule_once(TICK, at="tomorrow"), TypeError, "datetime"),
    ],
)
def test_invalid_input_raises_and_saves_nothing(call, error, fragment):
    with pytest.raises(error) as info:
        call()
    assert fragment in str(info.value)
    assert not Schedule.objects.exists()


@pytest.mark.django_db
def test_an_invalid_update_leaves_the_schedule_as_it_was():
    before = jobs.schedule(TICK, cron="0 9 * * *", name="daily", timezone="Europe/Paris")
    with pytest.raises(ValueError, match="Europe/Nowhere"):
        jobs.schedule(TICK, cron="0 10 * * *", name="daily", timezone="Europe/Nowhere")
    with pytest.raises(ValueError, match="99"):
        jobs.schedule(TICK, cron="0 99 * * *", name="daily")
    after = jobs.get_schedule("daily")
    assert (after.cron, after.timezone, after.next_run_at) == (
        "0 9 * * *",
        "Europe/Paris",
        before.next_run_at,
    )


@pytest.mark.django_db
def test_model_clean_reports_bad_cron_and_zone_for_admin_forms():
    schedule = Schedule(
        name="x",
        task_name=TICK.name,
        kind=ScheduleKind.CRON,
        cron="0 25 * * *",
        timezone="Nowhere/Land",
    )
    with pytest.raises(ValidationError) as info:
        schedule.full_clean()
    assert set(info.value.message_dict) >= {"cron", "timezone"}
    assert "0 25 * * *" in info.value.message_dict["cron"][0]


@pytest.mark.django_db
def test_reschedule_sets_the_next_run_of_a_schedule_saved_directly():
    # The admin/API path: a validated model saved as is, then rescheduled.
    schedule = Schedule(
        name="form",
        task_name=TICK.name,
        kind=ScheduleKind.CRON,
        cron="15 6 * * *",
        timezone="Europe/Paris",
    )
    schedule.full_clean()
    schedule.save()
    assert schedule.next_run_at is None
    schedule.reschedule()
    stored = Schedule.objects.get(pk=schedule.pk).next_run_at
    assert stored == schedule.next_run_at and stored > db_now()
    assert stored.astimezone(PARIS).strftime("%H:%M") == "06:15"


@pytest.mark.django_db
def test_misfire_grace_setting_is_checked(settings):
    for bad in (-1, "soon", None):
        settings.DJANGO_JOBS = {"MISFIRE_GRACE": bad}
        assert [m.id for m in check_settings()] == ["django_jobs.E022"]
    settings.DJANGO_JOBS = {"MISFIRE_GRACE": timedelta(minutes=5)}
    assert check_settings() == []


# -- defining schedules ----------------------------------------------------------------------


@pytest.mark.django_db
def test_schedule_with_the_same_name_updates_it_idempotently():
    first = jobs.schedule(TICK, cron="*/5 * * * *", args=["a"])
    assert first.name == TICK.name and first.task_name == TICK.name  # name = the task's
    again = jobs.schedule(TICK, cron="*/5 * * * *", args=["a"])
    again.refresh_from_db()
    assert again.pk == first.pk and Schedule.objects.count() == 1
    assert (again.next_run_at, again.updated_at) == (first.next_run_at, first.updated_at)

    # Arguments change; the timing does not, so the next run stays.
    changed = jobs.schedule(TICK, cron="*/5 * * * *", args=["b"], queue="reports", priority="high")
    changed.refresh_from_db()
    assert (changed.args, changed.queue, changed.priority) == (["b"], "reports", 50)
    assert changed.next_run_at == first.next_run_at

    # A new expression recomputes the next run.
    now = db_now()
    hourly = jobs.schedule(TICK, cron="7 * * * *", args=["b"])
    assert hourly.next_run_at == next_cron_time("7 * * * *", "UTC", now)
    assert hourly.next_run_at.minute == 7 and hourly.next_run_at > now
    assert Schedule.objects.count() == 1


@pytest.mark.django_db
def test_cron_next_run_is_in_the_schedules_time_zone():
    before = db_now()
    schedule = jobs.schedule(
        TICK, cron="0 9 * * *", name="report", timezone="Europe/Paris", kwargs={"label": "report"}
    )
    local = schedule.next_run_at.astimezone(PARIS)
    assert (local.hour, local.minute) == (9, 0)
    assert before < schedule.next_run_at <= before + timedelta(days=1)
    assert schedule.kind == ScheduleKind.CRON and schedule.enabled
    assert schedule.describe() == "cron 0 9 * * * (Europe/Paris)"
    following = schedule.next_due_after(schedule.next_run_at).astimezone(PARIS)
    assert (following.hour, following.date()) == (9, local.date() + timedelta(days=1))


@pytest.mark.django_db
def test_interval_next_run_and_grid():
    before = db_now()
    schedule = jobs.schedule_interval(TICK, interval=timedelta(minutes=5), name="ping")
    after = db_now()
    assert before + timedelta(minutes=5) <= schedule.next_run_at <= after + timedelta(minutes=5)
    assert schedule.interval == 300 and schedule.describe() == "every 5m"

    start = after + timedelta(hours=1)
    later = jobs.schedule_interval(TICK, interval=90, name="later", start_at=start)
    assert later.next_run_at == start and later.describe() == "every 1m30s"

    # On time: the next run is one interval after the due time, not after "now".
    due = db_now() - timedelta(seconds=1)
    set_next_run(schedule, due)
    [job] = run_due_schedules()
    schedule.refresh_from_db()
    assert job.schedule_due_at == due and schedule.next_run_at == due + timedelta(minutes=5)
    assert schedule.run_count == 1 and schedule.last_job_id == job.pk


@pytest.mark.django_db
def test_once_fires_once_and_is_then_done():
    at = db_now() + timedelta(hours=2)
    pending = jobs.schedule_once(TICK, at=at, name="reminder-42", args=["hi"])
    assert pending.next_run_at == at and pending.describe().startswith("once at ")

    due = db_now() - timedelta(seconds=1)
    once = jobs.schedule_once(TICK, at=due.astimezone(PARIS), name="reminder-43", args=["x"])
    assert once.next_run_at == due and once.run_at == due
    [job] = run_due_schedules()
    once.refresh_from_db()
    assert job.args == ["x"] and job.schedule_due_at == due
    assert once.next_run_at is None and once.run_count == 1 and once.last_job_id == job.pk
    # Declaring it again (e.g. at every start-up) does not run it again.
    jobs.schedule_once(TICK, at=due, name="reminder-43", args=["x"])
    assert run_due_schedules() == []
    assert jobs.get_schedule("reminder-43").next_run_at is None
    assert len(fired(once)) == 1


@pytest.mark.django_db
def test_jobs_carry_the_schedules_options():
    schedule = jobs.schedule(
        TICK,
        cron="* * * * *",
        name="opts",
        args=["o"],
        queue="special",
        priority="low",
        tags=["nightly"],
        metadata={"k": 1},
    )
    set_next_run(schedule, db_now() - timedelta(seconds=2))
    [job] = run_due_schedules()
    assert (job.task_name, job.args, job.queue, job.priority) == (TICK.name, ["o"], "special", -50)
    assert job.tags == ["nightly"] and job.metadata == {"k": 1} and job.schedule_id == schedule.pk


# -- daylight saving (Europe/Paris: 2026-03-29 spring forward, 2026-10-25 fall back) -------------


def runs_between(expression, start, end, tz=PARIS):
    out, t = [], start
    while True:
        t = next_cron_time(expression, tz, t)
        if t >= end:
            return out
        assert t.tzinfo is not None and t.utcoffset() == timedelta(0)
        out.append(t)


def local_day(day):
    """[start, end) of a calendar day in Paris, as UTC instants."""
    start = datetime(day.year, day.month, day.day, tzinfo=PARIS).astimezone(UTC)
    nxt = day + timedelta(days=1)
    return start, datetime(nxt.year, nxt.month, nxt.day, tzinfo=PARIS).astimezone(UTC)


@pytest.mark.parametrize(
    ("day", "expected_utc", "expected_local"),
    [
        # 02:30 does not exist: it runs once, when the clocks jump (03:30 CEST).
        (datetime(2026, 3, 29), datetime(2026, 3, 29, 1, 30, tzinfo=UTC), "03:30+0200"),
        # 02:30 happens twice: it runs once, at the first (CEST) occurrence.
        (datetime(2026, 10, 25), datetime(2026, 10, 25, 0, 30, tzinfo=UTC), "02:30+0200"),
    ],
)
def test_daily_cron_runs_exactly_once_on_dst_change_days(day, expected_utc, expected_local):
    runs = runs_between(
        "30 2 * * *",
        (day - timedelta(days=2)).replace(tzinfo=PARIS),
        (day + timedelta(days=3)).replace(tzinfo=PARIS),
    )
    on_day = [t for t in runs if t.astimezone(PARIS).date() == day.date()]
    assert on_day == [expected_utc]
    assert on_day[0].astimezone(PARIS).strftime("%H:%M%z") == expected_local
    # Every other day runs at 02:30 local, once.
    local = [t.astimezone(PARIS) for t in runs]
    assert [t.day for t in local] == [(day + timedelta(days=d)).day for d in range(-2, 3)]
    assert all(t.strftime("%H:%M") == "02:30" for t in local if t.day != day.day)


def test_hourly_cron_on_the_spring_forward_day():
    start, end = local_day(datetime(2026, 3, 29))
    assert end - start == timedelta(hours=23)
    runs = runs_between("0 * * * *", start - timedelta(seconds=1), end)
    # 23 real hours, 23 runs: the missing 02:00 is the same instant as 03:00 and runs once.
    assert len(runs) == len(set(runs)) == 23
    assert all(b - a == timedelta(hours=1) for a, b in itertools.pairwise(runs))
    assert runs[0] == start and runs[2] == datetime(2026, 3, 29, 1, 0, tzinfo=UTC)


def test_hourly_cron_on_the_fall_back_day():
    start, end = local_day(datetime(2026, 10, 25))
    assert end - start == timedelta(hours=25)
    runs = runs_between("0 * * * *", start - timedelta(seconds=1), end)
    # 25 real hours, 24 wall-clock hours: the repeated 02:00 runs once (first occurrence).
    assert len(runs) == len(set(runs)) == 24
    gaps = [b - a for a, b in itertools.pairwise(runs)]
    assert gaps.count(timedelta(hours=2)) == 1 and gaps.count(timedelta(hours=1)) == 22
    assert sorted(t.astimezone(PARIS).hour for t in runs) == list(range(24))
    assert datetime(2026, 10, 25, 1, 0, tzinfo=UTC) not in runs  # 02:00 CET, the repeat


def test_next_run_from_inside_the_repeated_hour_is_strictly_later():
    # 02:40 CET is the second 02:40 of the night; "*/15" must not step back into CEST.
    second = datetime(2026, 10, 25, 2, 40, tzinfo=PARIS).replace(fold=1).astimezone(UTC)
    assert next_cron_time("*/15 * * * *", PARIS, second) == datetime(2026, 10, 25, 2, 0, tzinfo=UTC)
    first = datetime(2026, 10, 25, 0, 40, tzinfo=UTC)  # 02:40 CEST
    assert next_cron_time("*/15 * * * *", PARIS, first) == datetime(2026, 10, 25, 0, 45, tzinfo=UTC)


# -- misfires ----------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("kind", ["cron", "interval"])
@pytest.mark.parametrize("policy", [MisfirePolicy.RUN_ONCE, MisfirePolicy.SKIP])
def test_ten_missed_ticks_fire_once_or_not_at_all(kind, policy):
    now = db_now()
    if kind == "cron":
        schedule = jobs.schedule(TICK, cron="* * * * *", name="m", misfire_policy=policy)
        due = minute_floor(now) - timedelta(minutes=10)
    else:
        schedule = jobs.schedule_interval(TICK, interval=60, name="m", misfire_policy=policy)
        due = now - timedelta(minutes=10, seconds=5)
    set_next_run(schedule, due)

    jobs_fired = run_due_schedules()
    schedule.refresh_from_db()
    after = db_now()
    if policy == MisfirePolicy.RUN_ONCE:
        assert [j.schedule_due_at for j in jobs_fired] == [due] and fired(schedule) == [due]
        assert schedule.run_count == 1
    else:
        assert jobs_fired == [] and fired(schedule) == [] and schedule.run_count == 0
    # Either way it waits for the first future tick, on its own grid.
    assert now < schedule.next_run_at <= after + timedelta(minutes=1)
    if kind == "cron":
        assert schedule.next_run_at == minute_floor(schedule.next_run_at)
    else:
        assert (schedule.next_run_at - due) % timedelta(minutes=1) == timedelta(0)
    assert run_due_schedules() == []
    assert len(fired(schedule)) == (1 if policy == MisfirePolicy.RUN_ONCE else 0)


@pytest.mark.django_db
@pytest.mark.parametrize(("late", "runs"), [(timedelta(seconds=30), 1), (timedelta(minutes=2), 0)])
def test_skip_still_runs_a_due_time_that_is_late_within_the_grace(settings, late, runs):
    settings.DJANGO_JOBS = {**settings.DJANGO_JOBS, "MISFIRE_GRACE": 60}
    schedule = jobs.schedule(TICK, cron="0 0 * * *", name="nightly", misfire_policy="skip")
    due = db_now() - late
    set_next_run(schedule, due)
    run_due_schedules()
    assert len(fired(schedule)) == runs
    schedule.refresh_from_db()
    assert schedule.next_run_at > db_now()


@pytest.mark.django_db
def test_a_rewound_schedule_cannot_fire_a_due_time_twice(caplog):
    schedule = jobs.schedule(TICK, cron="* * * * *", name="rewind")
    due = minute_floor(db_now())
    set_next_run(schedule, due)
    with caplog.at_level("INFO", logger="django_jobs.scheduler"):
        [job] = run_due_schedules()
    [record] = [r for r in caplog.records if "fired" in r.getMessage()]
    assert (record.name, record.levelname, record.job_id) == (
        "django_jobs.scheduler",
        "INFO",
        job.pk,
    )
    set_next_run(schedule, due)  # e.g. restored from a backup
    assert run_due_schedules() == []
    schedule.refresh_from_db()
    assert fired(schedule) == [due] and schedule.next_run_at > due and schedule.run_count == 1


@pytest.mark.django_db
def test_a_schedule_that_cannot_fire_does_not_block_the_others():
    broken = jobs.schedule(TICK, cron="* * * * *", name="a-broken")
    healthy = jobs.schedule(TICK, cron="* * * * *", name="b-healthy")
    Schedule.objects.filter(pk=broken.pk).update(task_name="tests.gone")
    due = minute_floor(db_now())
    Schedule.objects.update(next_run_at=due)
    assert [j.schedule_id for j in run_due_schedules()] == [healthy.pk]
    broken.refresh_from_db()
    assert broken.next_run_at == due and fired(broken) == []  # left for a process that can


# -- enable, disable, run now, unschedule ----------------------------------------------------------


@pytest.mark.django_db
def test_enable_disable_and_run_now():
    schedule = jobs.schedule(TICK, cron="* * * * *", name="verbs", args=["v"])
    assert jobs.disable_schedule("verbs").enabled is False
    set_next_run(schedule, db_now() - timedelta(minutes=30))
    assert run_due_schedules() == [] and not Schedule.objects.due().exists()

    # Enabling does not catch up on the time it was off.
    enabled = jobs.enable_schedule("verbs")
    assert enabled.enabled and enabled.next_run_at > db_now()
    assert Schedule.objects.get(pk=schedule.pk).next_run_at == enabled.next_run_at
    assert run_due_schedules() == []

    next_run = enabled.next_run_at
    job = jobs.run_schedule_now("verbs")
    schedule.refresh_from_db()
    assert job.schedule_id == schedule.pk and job.schedule_due_at is None and job.args == ["v"]
    assert schedule.next_run_at == next_run and schedule.run_count == 1
    assert schedule.last_job_id == job.pk and schedule.last_run_at is not None
    jobs.run_schedule_now("verbs")  # no due time: "run now" can be repeated
    assert Job.objects.filter(schedule=schedule).count() == 2

    with pytest.raises(Schedule.DoesNotExist):
        jobs.run_schedule_now("nope")


@pytest.mark.django_db
def test_bulk_enable_disable_for_admin_actions():
    for name in ("a", "b", "c"):
        jobs.schedule(TICK, cron="0 * * * *", name=name)
    assert Schedule.objects.filter(name__in=["a", "b"]).disable() == 2
    assert Schedule.objects.disable() == 1
    assert Schedule.objects.enable() == 3
    assert Schedule.objects.enabled().count() == 3


@pytest.mark.django_db
def test_list_get_unschedule_and_async_twins():
    jobs.schedule_interval(TICK, interval=2, name="zeta")
    jobs.schedule(TICK, cron="0 9 * * 1-5", name="alpha", enabled=False)
    assert [s.name for s in jobs.list_scheduled()] == ["alpha", "zeta"]
    assert async_to_sync(jobs.aget_schedule)("zeta").interval == 2
    run = jobs.run_schedule_now("zeta")
    assert jobs.unschedule("zeta") is True and jobs.unschedule("zeta") is False
    assert Job.objects.get(pk=run.pk).schedule_id is None  # jobs outlive their schedule
    assert [s.name for s in jobs.list_scheduled()] == ["alpha"]


@pytest.mark.django_db
def test_cli_lists_schedules():
    jobs.schedule(TICK, cron="30 2 * * *", name="nightly", timezone="Europe/Paris")
    jobs.schedule_interval(TICK, interval=2, name="fast", enabled=False)
    out = io.StringIO()
    call_command("jobs", "schedules", stdout=out)
    lines = out.getvalue().splitlines()
    assert lines[0].split()[:3] == ["NAME", "TASK", "SCHEDULE"]
    assert lines[1].startswith("fast") and "every 2s" in lines[1] and lines[1].endswith("no")
    assert lines[2].startswith("nightly") and "cron 30 2 * * * (Europe/Paris)" in lines[2]
    assert lines[2].endswith("yes") and TICK.name in lines[2]


# -- schedules declared in code ---------------------------------------------------------------


def _code_task():
    return "code"


@pytest.fixture
def code_tasks():
    declared = []

    def declare(name, **options):
        registry.unregister(name)
        declared.append(name)
        return register_task(name, _code_task, **options)

    yield declare
    for name in declared:
        registry.unregister(name)


@pytest.mark.django_db
def test_code_declared_schedules_are_synced_idempotently(code_tasks):
    code_tasks("tests.code_every_5", cron="*/5 * * * *")
    code_tasks("tests.code_minutely", interval=timedelta(minutes=1))
    scheduler.sync_code_schedules()
    rows = {s.name: s for s in Schedule.objects.declared_in_code()}
    assert set(rows) == {"tests.code_every_5", "tests.code_minutely"}
    cron, interval = rows["tests.code_every_5"], rows["tests.code_minutely"]
    assert (cron.kind, cron.cron, cron.task_name) == ("cron", "*/5 * * * *", "tests.code_every_5")
    assert (interval.kind, interval.interval) == ("interval", 60)

    # Unchanged: nothing is written. A schedule disabled in the admin stays disabled.
    jobs.disable_schedule("tests.code_every_5")
    emit_post_migrate_signal(verbosity=0, interactive=False, db="default")
    again = {s.name: s for s in Schedule.objects.declared_in_code()}
    assert again["tests.code_minutely"].updated_at == interval.updated_at
    assert again["tests.code_minutely"].next_run_at == interval.next_run_at
    assert again["tests.code_every_5"].enabled is False

    # A changed declaration recomputes the next run; a removed one is deleted.
    code_tasks("tests.code_every_5", cron="0 3 * * *")
    registry.unregister("tests.code_minutely")
    scheduler.sync_code_schedules()
    [row] = Schedule.objects.declared_in_code()
    assert row.cron == "0 3 * * *" and (row.next_run_at.hour, row.next_run_at.minute) == (3, 0)


@pytest.mark.django_db
def test_a_bad_code_declaration_is_logged_not_raised(code_tasks, caplog):
    code_tasks("tests.code_bad", cron="0 0 31 2 *")
    scheduler.sync_code_schedules()
    assert not Schedule.objects.exists()
    assert "tests.code_bad" in caplog.text and "never matches" in caplog.text


# -- real workers -----------------------------------------------------------------------------


def worker_running(proc):
    """The worker's loop has started (its first heartbeat came after registering)."""
    row = Worker.objects.filter(pid=proc.pid, stopped_at__isnull=True).first()
    return row is not None and row.last_heartbeat_at > row.started_at


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_workers_sync_code_schedules_at_start(workers):
    env = {"JOBS_TEST_CODE_SCHEDULES": "1"}
    first = workers.start("--concurrency", "1", env=env)
    wait_until(
        lambda: Schedule.objects.declared_in_code().count() == 2,
        timeout=30,
        message="code schedules",
    )
    rows = {s.name: (s.next_run_at, s.updated_at) for s in Schedule.objects.all()}
    assert set(rows) == {"testapp.code_cron", "testapp.code_interval"}
    second = workers.start("--concurrency", "1", env=env)
    wait_until(
        lambda: worker_running(first) and worker_running(second),
        timeout=30,
        message="both workers running",
    )
    assert {s.name: (s.next_run_at, s.updated_at) for s in Schedule.objects.all()} == rows
    third = workers.start("--concurrency", "1", "--no-scheduler")
    wait_until(lambda: worker_running(third), timeout=30, message="third worker")
    assert Schedule.objects.count() == 2  # --no-scheduler does not sync (nor prune)


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_five_workers_fire_every_due_time_exactly_once(workers):
    """Five runworkers processes race on a cron and a 2-second interval schedule.

    The cron schedule is driven without waiting real minutes: it is repeatedly pointed at
    successive past minute boundaries while the five schedulers race for each. The
    heartbeat is 5 s here (the default), so the 2-second interval proves the scheduler runs
    on its own clock.
    """
    created = db_now()
    cron = jobs.schedule(TICK, cron="* * * * *", name="race-cron", args=["cron"])
    env = {"JOBS_HEARTBEAT": "5", "JOBS_WORKER_TIMEOUT": "30"}
    procs = [workers.start("--concurrency", "1", env=env) for _ in range(5)]
    wait_until(
        lambda: all(worker_running(p) for p in procs), timeout=60, message="five workers running"
    )
    test_start = db_now()

    interval = jobs.schedule_interval(TICK, interval=2, name="race-interval", args=["iv"])
    first_due = interval.next_run_at

    base = minute_floor(test_start) - timedelta(minutes=30)
    dues = [base + timedelta(minutes=k) for k in range(8)]
    for due in dues:
        set_next_run(cron, due)
        wait_until(
            lambda due=due: Schedule.objects.get(pk=cron.pk).next_run_at != due,
            timeout=20,
            message=f"cron due time {due} to be taken",
        )

    # Let the interval schedule run for about ten seconds in total.
    remaining = 10.5 - (db_now() - test_start).total_seconds()
    if remaining > 0:
        time.sleep(remaining)
    Schedule.objects.filter(pk=interval.pk).update(enabled=False)  # no fire after this
    stopped_at = db_now()
    assert all(p.poll() is None for p in procs), [workers.output(p) for p in procs]

    cron_counts = Counter(fired(cron))
    assert all(n == 1 for n in cron_counts.values()), cron_counts
    assert set(dues) <= set(cron_counts)
    # Anything else is a real minute boundary that passed during the test, fired once.
    extra = set(cron_counts) - set(dues)
    assert all(t == minute_floor(t) and t > created for t in extra), extra
    cron.refresh_from_db()
    assert cron.run_count == sum(cron_counts.values())

    interval_dues = fired(interval)
    assert len(interval_dues) == len(set(interval_dues)), Counter(interval_dues)
    assert interval_dues[0] == first_due and len(interval_dues) >= 4, interval_dues
    steps = {b - a for a, b in itertools.pairwise(interval_dues)}
    assert steps == {timedelta(seconds=2)}, interval_dues  # none skipped, none doubled
    assert interval_dues[-1] >= stopped_at - timedelta(seconds=4), (interval_dues, stopped_at)

    # Each fire is logged once, by the process that won it, and the wins are spread.
    wins = [
        sum(
            line.startswith("Schedule race-") and " fired for " in line
            for line in workers.output(p).splitlines()
        )
        for p in procs
    ]
    assert sum(wins) == sum(cron_counts.values()) + len(interval_dues), wins
    assert sum(1 for n in wins if n) >= 2, wins
