"""django_jobs.conf: one typed attribute per DJANGO_JOBS key, read by the same reader as
the system checks, a bad value never breaking anything at run time."""

from datetime import timedelta

import pytest
from django.core import checks

from django_jobs import jobs
from django_jobs.checks import check_settings
from django_jobs.conf import JobsSettings, Setting, jobs_settings
from django_jobs.models import Queue
from django_jobs.testing import run_jobs
from tests.testapp import tasks

SPEC_KEYS = {  # SPEC section 11, plus the worker's tuning keys
    "DEFAULT_QUEUE", "DEFAULT_PRIORITY", "DEFAULT_MAX_RETRIES", "DEFAULT_RETRY_DELAY",
    "DEFAULT_RETRY_BACKOFF", "MAX_RETRY_DELAY", "DEFAULT_TIMEOUT", "DEAD_LETTER_QUEUE",
    "HEARTBEAT_INTERVAL", "WORKER_TIMEOUT", "RETENTION", "NOTIFICATIONS",
    "NOTIFICATIONS_QUEUE", "HEALTH", "API_PERMISSION_CLASSES", "MAX_PAYLOAD_BYTES", "EAGER",
    "DATABASE",
}  # fmt: skip


def test_every_spec_key_is_a_typed_setting_and_there_is_no_catch_all():
    names = {setting.name for setting in JobsSettings.keys()}
    assert SPEC_KEYS <= names
    assert "__getattr__" not in vars(JobsSettings)
    with pytest.raises(AttributeError):
        jobs_settings.NO_SUCH_KEY  # noqa: B018
    assert isinstance(JobsSettings.WORKER_TIMEOUT, Setting)


def test_values_are_typed_and_durations_are_seconds(settings):
    settings.DJANGO_JOBS = {
        "WORKER_TIMEOUT": timedelta(minutes=1),
        "DEFAULT_TIMEOUT": 5,
        "DEFAULT_PRIORITY": "high",
        "RETENTION": timedelta(days=1),
    }
    assert jobs_settings.WORKER_TIMEOUT == 60.0 and isinstance(jobs_settings.WORKER_TIMEOUT, float)
    assert jobs_settings.DEFAULT_TIMEOUT == 5.0
    assert jobs_settings.DEFAULT_PRIORITY == 50
    assert jobs_settings.RETENTION == 86_400.0
    assert jobs_settings.HEARTBEAT_INTERVAL == 5.0  # absent: the default
    assert jobs_settings.MAX_PAYLOAD_BYTES == 1_048_576  # SPEC: 1 MiB
    assert jobs_settings.NOTIFICATIONS_QUEUE == "notifications"


def test_a_bad_value_reads_as_the_default_and_is_reported_by_check(settings):
    settings.DJANGO_JOBS = {
        "WORKER_TIMEOUT": "thirty",
        "DEFAULT_QUEUE": "",
        "RETENTION": "a week",
        "NOTIFICATIONS_QUEUE": 7,
        "HEALTH": ["MIN_WORKERS"],
    }
    assert jobs_settings.WORKER_TIMEOUT == 30.0
    assert jobs_settings.DEFAULT_QUEUE == "default"
    assert jobs_settings.RETENTION is None  # a typo never deletes jobs
    ids = {m.id for m in check_settings()}
    assert {"django_jobs.E011", "django_jobs.E002", "django_jobs.E012"} <= ids
    assert {"django_jobs.E023", "django_jobs.E024"} <= ids


def test_check_and_run_time_read_a_value_the_same_way(settings):
    # A value the check accepts is the value the worker uses; one it refuses, it does not.
    for value, accepted in [
        (0, True),
        (2.5, True),
        (timedelta(seconds=3), True),
        (-1, False),
        (float("nan"), False),
        ("1", False),
        (True, False),
    ]:
        settings.DJANGO_JOBS = {"POLL_INTERVAL": value}
        reported = "django_jobs.E018" in {m.id for m in check_settings()}
        assert reported is not accepted, value
        if accepted:
            assert jobs_settings.POLL_INTERVAL == (
                value.total_seconds() if isinstance(value, timedelta) else value
            )
        else:
            assert jobs_settings.POLL_INTERVAL == 1.0


def test_changed_settings_are_seen_at_once(settings):
    settings.DJANGO_JOBS = {"DEFAULT_MAX_RETRIES": 1}
    assert jobs_settings.DEFAULT_MAX_RETRIES == 1
    settings.DJANGO_JOBS = {"DEFAULT_MAX_RETRIES": 7}
    assert jobs_settings.DEFAULT_MAX_RETRIES == 7


@pytest.mark.django_db
def test_payload_limit_counts_metadata_too(settings):
    settings.DJANGO_JOBS = {"MAX_PAYLOAD_BYTES": 300}
    jobs.enqueue(tasks.add, args=[1, 2], metadata={"note": "x" * 100})
    with pytest.raises(ValueError, match="MAX_PAYLOAD_BYTES"):
        jobs.enqueue(tasks.add, args=[1, 2], metadata={"note": "x" * 400})


# -- settings are read when used, not when a task is decorated ---------------------------


@pytest.mark.django_db
def test_default_queue_and_priority_apply_to_tasks_declared_before(settings):
    settings.DJANGO_JOBS = {
        **settings.DJANGO_JOBS,
        "DEFAULT_QUEUE": "elsewhere",
        "DEFAULT_PRIORITY": "high",
    }
    job = jobs.enqueue(tasks.add, args=[1, 2])
    assert job.queue == "elsewhere" and job.priority == 50
    explicit = jobs.enqueue(tasks.add, args=[1, 2], queue="default", priority=0)
    assert explicit.queue == "default" and explicit.priority == 0
    declared = jobs.enqueue(tasks.record_label, args=["x"])  # @job(queue="records")
    assert declared.queue == "records"


@pytest.mark.django_db
def test_django_tasks_enqueue_follows_default_queue_too(settings):
    settings.DJANGO_JOBS = {**settings.DJANGO_JOBS, "DEFAULT_QUEUE": "elsewhere"}
    result = tasks.django_task_add.enqueue(1, 2)
    assert jobs.get_job(result.id).queue == "elsewhere"


@pytest.mark.django_db
def test_deleted_queue_row_comes_back_on_next_enqueue():
    jobs.enqueue(tasks.add, args=[1, 1], queue="comes-back")
    Queue.objects.filter(name="comes-back").delete()
    jobs.enqueue(tasks.add, args=[1, 1], queue="comes-back")
    assert Queue.objects.filter(name="comes-back").count() == 1


@pytest.mark.django_db
def test_first_progress_write_is_never_throttled(settings):
    settings.DJANGO_JOBS = {**settings.DJANGO_JOBS, "PROGRESS_THROTTLE": 10_000_000}
    job = jobs.enqueue(tasks.progress_then_read)
    run_jobs()
    job.refresh_from_db()
    assert job.result == [0.25, "a quarter", {"item": "a"}]


@pytest.mark.django_db
def test_jitter_setting_must_be_boolean(settings):
    from django_jobs.checks import check_settings

    settings.DJANGO_JOBS = {"DEFAULT_RETRY_JITTER": "no"}
    assert "django_jobs.E021" in [m.id for m in check_settings()]
    settings.DJANGO_JOBS = {"DEFAULT_RETRY_JITTER": False}
    assert not [m for m in check_settings() if m.level >= checks.ERROR]


@pytest.mark.django_db
def test_no_driver_warning_with_psycopg3_or_other_databases():
    from django_jobs.checks import check_database_driver

    assert [m.id for m in check_database_driver()] == []


@pytest.mark.django_db
def test_database_clock_queries_work_with_debug_logging(settings):
    # DEBUG makes Django format every executed query for its log: DbNow must survive it.
    from django_jobs.models import Job, Worker

    settings.DEBUG = True
    jobs.enqueue(tasks.add, args=[1, 1])
    assert Job.objects.due().count() == 1
    assert Worker.objects.alive().count() == 0
    assert len(Job.objects.claim("w", 1)) == 1
