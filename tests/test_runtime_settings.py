"""Settings are read when used, not when a task is decorated."""

import pytest
from django.core import checks

from django_jobs import jobs
from django_jobs.models import Queue
from django_jobs.testing import run_jobs
from tests.testapp import tasks

pytestmark = pytest.mark.django_db


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


def test_django_tasks_enqueue_follows_default_queue_too(settings):
    settings.DJANGO_JOBS = {**settings.DJANGO_JOBS, "DEFAULT_QUEUE": "elsewhere"}
    result = tasks.django_task_add.enqueue(1, 2)
    assert jobs.get_job(result.id).queue == "elsewhere"


def test_deleted_queue_row_comes_back_on_next_enqueue():
    jobs.enqueue(tasks.add, args=[1, 1], queue="comes-back")
    Queue.objects.filter(name="comes-back").delete()
    jobs.enqueue(tasks.add, args=[1, 1], queue="comes-back")
    assert Queue.objects.filter(name="comes-back").count() == 1


def test_first_progress_write_is_never_throttled(settings):
    settings.DJANGO_JOBS = {**settings.DJANGO_JOBS, "PROGRESS_THROTTLE": 10_000_000}
    job = jobs.enqueue(tasks.progress_then_read)
    run_jobs()
    job.refresh_from_db()
    assert job.result == [0.25, "a quarter", {"item": "a"}]


def test_jitter_setting_must_be_boolean(settings):
    from django_jobs.checks import check_settings

    settings.DJANGO_JOBS = {"DEFAULT_RETRY_JITTER": "no"}
    assert "django_jobs.E021" in [m.id for m in check_settings()]
    settings.DJANGO_JOBS = {"DEFAULT_RETRY_JITTER": False}
    assert not [m for m in check_settings() if m.level >= checks.ERROR]


def test_no_driver_warning_with_psycopg3_or_other_databases():
    from django_jobs.checks import check_database_driver

    assert [m.id for m in check_database_driver()] == []


def test_database_clock_queries_work_with_debug_logging(settings):
    # DEBUG makes Django format every executed query for its log: DbNow must survive it.
    from django_jobs.models import Job, Worker

    settings.DEBUG = True
    jobs.enqueue(tasks.add, args=[1, 1])
    assert Job.objects.due().count() == 1
    assert Worker.objects.alive().count() == 0
    assert len(Job.objects.claim("w", 1)) == 1
