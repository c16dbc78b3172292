"""``jobs.enqueue`` and friends (SPEC section 5.1)."""

import uuid
from contextlib import contextmanager
from datetime import datetime, timedelta

import pytest
from asgiref.sync import async_to_sync
from django.db import transaction
from django.utils import timezone

from django_jobs import JobStatus, Priority, TaskNotFound, jobs
from django_jobs.models import Job, Queue
from django_jobs.registry import job as job_decorator
from django_jobs.registry import registry
from django_jobs.signals import job_enqueued
from django_jobs.testing import run_jobs
from tests.testapp.tasks import add, configured, flaky_until, noop

pytestmark = pytest.mark.django_db


def unique_queue():
    return f"q-{uuid.uuid4().hex[:12]}"


def near(value, expected, tolerance=timedelta(seconds=10)):
    return abs(value - expected) <= tolerance


@contextmanager
def receiver_of(signal):
    calls = []

    def receiver(sender, **kwargs):
        calls.append((sender, kwargs))

    signal.connect(receiver, weak=False)
    try:
        yield calls
    finally:
        signal.disconnect(receiver)


# -- the task argument -------------------------------------------------------------------


def test_enqueue_task_object():
    job = jobs.enqueue(add, args=[2, 3])
    assert isinstance(job, Job)
    assert job.pk is not None
    row = Job.objects.get(pk=job.pk)
    assert row.task_name == "tests.testapp.tasks.add"
    assert row.args == [2, 3]
    assert row.kwargs == {}
    assert row.status == JobStatus.PENDING
    assert row.queue == "default"
    assert row.priority == Priority.NORMAL
    assert row.attempts == 0
    assert row.retry_count == 0
    assert row.scheduled_at is not None
    assert row.created_at is not None
    assert str(job.id) == str(row.pk)


def test_enqueue_registered_name():
    job = jobs.enqueue("tests.testapp.tasks.add", args=[1], kwargs={"b": 2})
    row = Job.objects.get(pk=job.pk)
    assert row.task_name == "tests.testapp.tasks.add"
    assert row.args == [1]
    assert row.kwargs == {"b": 2}


def test_enqueue_plain_function_of_a_task():
    job = jobs.enqueue(add.func, args=[1, 2])
    assert job.task_name == "tests.testapp.tasks.add"


def test_args_may_be_a_tuple_or_omitted():
    assert jobs.enqueue(add, args=(1, 2)).args == [1, 2]
    omitted = jobs.enqueue(noop)
    assert (omitted.args, omitted.kwargs) == ([], {})


def test_unknown_task_name_raises_task_not_found():
    with pytest.raises(TaskNotFound):
        jobs.enqueue("tests.testapp.tasks.does_not_exist")
    with pytest.raises(TaskNotFound):
        jobs.enqueue("nothing")
    assert Job.objects.count() == 0


def test_unregistered_function_raises_task_not_found():
    def not_a_task():
        pass

    with pytest.raises(TaskNotFound):
        jobs.enqueue(not_a_task)
    assert Job.objects.count() == 0


# -- options -----------------------------------------------------------------------------


def test_options_fall_back_to_settings(settings):
    settings.DJANGO_JOBS = {
        **settings.DJANGO_JOBS,
        "DEFAULT_MAX_RETRIES": 7,
        "DEFAULT_RETRY_DELAY": timedelta(seconds=42),
        "DEFAULT_RETRY_BACKOFF": 1.5,
        "DEFAULT_RETRY_JITTER": False,
        "MAX_RETRY_DELAY": 600,
        "DEFAULT_TIMEOUT": 90,
    }
    job = Job.objects.get(pk=jobs.enqueue(add, args=[1, 2]).pk)
    assert job.max_retries == 7
    assert job.retry_delay == 42.0
    assert job.retry_backoff == 1.5
    assert job.retry_jitter is False
    assert job.max_retry_delay == 600.0
    assert job.timeout == 90.0


def test_defaults_without_settings():
    job = Job.objects.get(pk=jobs.enqueue(add, args=[1, 2]).pk)
    assert job.max_retries == 3
    assert job.retry_delay == 60.0
    assert job.retry_backoff == 2.0
    assert job.retry_jitter is True
    assert job.max_retry_delay == 3600.0
    assert job.timeout is None
    assert job.tags == []
    assert job.metadata == {}


def test_default_queue_and_priority_from_settings(settings):
    settings.DJANGO_JOBS = {
        **settings.DJANGO_JOBS,
        "DEFAULT_QUEUE": "elsewhere",
        "DEFAULT_PRIORITY": "high",
    }
    task = job_decorator(name="tests.enqueue.settings-defaults")(add.func)
    try:
        job = jobs.enqueue(task, args=[1, 2])
    finally:
        registry.unregister(task.name)
    assert job.queue == "elsewhere"
    assert job.priority == 50


def test_options_fall_back_to_task_options(settings):
    # The task's options win over settings.
    settings.DJANGO_JOBS = {
        **settings.DJANGO_JOBS,
        "DEFAULT_MAX_RETRIES": 9,
        "DEFAULT_TIMEOUT": 1000,
    }
    job = Job.objects.get(pk=jobs.enqueue(configured).pk)
    assert job.queue == "configured"
    assert job.priority == Priority.HIGH
    assert job.max_retries == 5
    assert job.retry_delay == 7.0
    assert job.retry_backoff == 3.0
    assert job.retry_jitter is False
    assert job.max_retry_delay == 99.0
    assert job.timeout == 12.0
    assert job.tags == ["cfg"]


def test_explicit_options_win_over_task_options():
    job = jobs.enqueue(
        configured,
        queue="explicit",
        priority=Priority.LOW,
        max_retries=0,
        retry_delay=timedelta(seconds=3),
        timeout=timedelta(minutes=1),
        tags=["a", "b"],
        metadata={"user_id": 1, "nested": {"x": [1, 2]}},
        retry_backoff=1.0,
        retry_jitter=True,
        max_retry_delay=5,
    )
    row = Job.objects.get(pk=job.pk)
    assert row.queue == "explicit"
    assert row.priority == -50
    assert row.max_retries == 0
    assert row.retry_delay == 3.0
    assert row.timeout == 60.0
    assert row.tags == ["a", "b"]
    assert row.metadata == {"user_id": 1, "nested": {"x": [1, 2]}}
    assert row.retry_backoff == 1.0
    assert row.retry_jitter is True
    assert row.max_retry_delay == 5.0


def test_unknown_enqueue_option_raises_type_error():
    with pytest.raises(TypeError):
        jobs.enqueue(add, args=[1, 2], no_such_option=True)
    assert Job.objects.count() == 0


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("critical", 100),
        ("high", 50),
        ("normal", 0),
        ("low", -50),
        ("HIGH", 50),
        (Priority.CRITICAL, 100),
        (-100, -100),
        (100, 100),
        (17, 17),
    ],
)
def test_priority_values(value, expected):
    job = jobs.enqueue(add, args=[1, 2], priority=value)
    assert Job.objects.get(pk=job.pk).priority == expected


# -- validation: errors raise and write nothing ------------------------------------------


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [
        ([object()], None),
        ([{1, 2}], None),
        (None, {"when": datetime(2024, 1, 1)}),
        (None, {"blob": b"bytes"}),
        ([1, {"deep": [object()]}], None),
        ("not a list", None),
        (None, ["not", "a", "dict"]),
    ],
)
def test_non_json_arguments_raise_type_error_and_write_nothing(args, kwargs):
    queue = unique_queue()
    with pytest.raises(TypeError):
        jobs.enqueue(add, args=args, kwargs=kwargs, queue=queue)
    assert Job.objects.count() == 0
    assert not Queue.objects.filter(name=queue).exists()


def test_non_json_metadata_raises_type_error():
    with pytest.raises(TypeError):
        jobs.enqueue(add, args=[1, 2], metadata={"obj": object()})
    assert Job.objects.count() == 0


@pytest.mark.parametrize(
    "options",
    [
        {"priority": 101},
        {"priority": -101},
        {"priority": "urgent"},
        {"priority": 2.5},
        {"queue": ""},
        {"queue": "   "},
        {"queue": "x" * 256},
        {"queue": 42},
        {"delay": -1},
        {"delay": timedelta(seconds=-1)},
        {"delay": 5, "scheduled_at": timezone.now()},
        {"scheduled_at": datetime(2030, 1, 1)},  # naive while USE_TZ
        {"timeout": 0},
        {"timeout": -5},
        {"timeout": timedelta(0)},
        {"max_retries": -1},
        {"max_retries": 1.5},
        {"max_retries": True},
        {"retry_delay": -1},
        {"retry_backoff": 0.5},
    ],
)
def test_bad_options_raise_value_error_and_write_nothing(options):
    with pytest.raises(ValueError):
        jobs.enqueue(add, args=[1, 2], **options)
    assert Job.objects.count() == 0


def test_max_payload_bytes(settings):
    settings.DJANGO_JOBS = {**settings.DJANGO_JOBS, "MAX_PAYLOAD_BYTES": 200}
    with pytest.raises(ValueError, match="MAX_PAYLOAD_BYTES"):
        jobs.enqueue(add, args=["x" * 300, 1])
    with pytest.raises(ValueError):
        jobs.enqueue(add, kwargs={"a": "y" * 300, "b": 1})
    assert Job.objects.count() == 0
    # Under the limit is fine.
    jobs.enqueue(add, args=["x" * 50, "y"])
    assert Job.objects.count() == 1


def test_default_max_payload_bytes_accepts_ordinary_payloads():
    jobs.enqueue(add, args=["x" * 100_000, "y"])
    assert Job.objects.count() == 1


# -- scheduling --------------------------------------------------------------------------


def test_scheduled_at():
    when = timezone.now() + timedelta(hours=2)
    job = jobs.enqueue(add, args=[1, 2], scheduled_at=when)
    row = Job.objects.get(pk=job.pk)
    assert row.scheduled_at == when
    assert row.status == JobStatus.PENDING
    assert run_jobs() == 0  # not due yet
    assert Job.objects.get(pk=job.pk).status == JobStatus.PENDING


@pytest.mark.parametrize("delay", [300, 300.0, timedelta(minutes=5)])
def test_delay(delay):
    job = jobs.enqueue(add, args=[1, 2], delay=delay)
    row = Job.objects.get(pk=job.pk)
    assert near(row.scheduled_at, timezone.now() + timedelta(minutes=5))
    assert row.scheduled_at > row.created_at + timedelta(minutes=4)
    assert run_jobs() == 0


def test_enqueue_delayed():
    job = jobs.enqueue_delayed(add, timedelta(minutes=10), args=[1, 2], queue="later")
    assert isinstance(job, Job)
    row = Job.objects.get(pk=job.pk)
    assert near(row.scheduled_at, timezone.now() + timedelta(minutes=10))
    assert row.queue == "later"
    assert row.args == [1, 2]
    assert jobs.enqueue_delayed("tests.testapp.tasks.add", 60, args=[1, 2]).scheduled_at > (
        timezone.now() + timedelta(seconds=30)
    )
    assert run_jobs() == 0


def test_scheduled_in_the_past_is_due_at_once():
    job = jobs.enqueue(add, args=[1, 2], scheduled_at=timezone.now() - timedelta(hours=1))
    assert run_jobs() == 1
    assert Job.objects.get(pk=job.pk).result == 3


def test_without_schedule_the_job_is_due_now():
    before = timezone.now()
    job = jobs.enqueue(add, args=[1, 2])
    assert before - timedelta(seconds=1) <= job.scheduled_at <= timezone.now()
    assert run_jobs() == 1


# -- queues and signals ------------------------------------------------------------------


def test_queue_row_created_on_first_use():
    name = unique_queue()
    assert not Queue.objects.filter(name=name).exists()
    jobs.enqueue(add, args=[1, 2], queue=name)
    jobs.enqueue(add, args=[3, 4], queue=name)
    assert Queue.objects.filter(name=name).count() == 1
    assert name in jobs.get_queue_names()


def test_job_enqueued_signal():
    with receiver_of(job_enqueued) as calls:
        job = jobs.enqueue(add, args=[1, 2])
    assert len(calls) == 1
    sender, kwargs = calls[0]
    assert sender is Job
    assert kwargs["job"].pk == job.pk


def test_failing_job_enqueued_receiver_does_not_break_enqueue():
    def broken(sender, **kwargs):
        raise RuntimeError("receiver bug")

    job_enqueued.connect(broken, weak=False)
    try:
        job = jobs.enqueue(add, args=[1, 2])
    finally:
        job_enqueued.disconnect(broken)
    assert Job.objects.filter(pk=job.pk).exists()


def test_enqueue_does_not_run_the_job():
    job = jobs.enqueue(flaky_until, args=["x", 1])
    assert Job.objects.get(pk=job.pk).status == JobStatus.PENDING
    from tests.testapp.models import Execution

    assert Execution.objects.count() == 0


# -- transactions ------------------------------------------------------------------------


class Rollback(Exception):
    pass


@pytest.mark.django_db(transaction=True)
def test_enqueue_is_rolled_back_with_the_callers_transaction():
    name = unique_queue()
    with pytest.raises(Rollback):
        with transaction.atomic():
            job = jobs.enqueue(add, args=[1, 2], queue=name)
            assert Job.objects.filter(pk=job.pk).exists()
            raise Rollback
    assert Job.objects.count() == 0
    assert not Queue.objects.filter(name=name).exists()
    # The rolled-back queue is created again on its next use.
    jobs.enqueue(add, args=[1, 2], queue=name)
    assert Queue.objects.filter(name=name).exists()


@pytest.mark.django_db(transaction=True)
def test_enqueue_is_committed_with_the_callers_transaction():
    with transaction.atomic():
        job = jobs.enqueue(add, args=[1, 2])
    assert Job.objects.filter(pk=job.pk, status=JobStatus.PENDING).exists()


@pytest.mark.django_db(transaction=True)
def test_enqueue_in_autocommit_is_written_at_once():
    job = jobs.enqueue(add, args=[1, 2])
    assert Job.objects.filter(pk=job.pk).exists()


@pytest.mark.django_db(transaction=True)
def test_enqueue_on_commit_enqueues_after_commit():
    with receiver_of(job_enqueued) as calls:
        with transaction.atomic():
            assert jobs.enqueue_on_commit(add, args=[1, 2], queue="oncommit") is None
            assert Job.objects.count() == 0
            assert calls == []
        assert len(calls) == 1
    job = Job.objects.get()
    assert (job.task_name, job.args, job.queue) == ("tests.testapp.tasks.add", [1, 2], "oncommit")


@pytest.mark.django_db(transaction=True)
def test_enqueue_on_commit_nothing_after_rollback():
    with pytest.raises(Rollback):
        with transaction.atomic():
            jobs.enqueue_on_commit(add, args=[1, 2])
            raise Rollback
    assert Job.objects.count() == 0


@pytest.mark.django_db(transaction=True)
def test_enqueue_on_commit_outside_a_transaction_enqueues_at_once():
    jobs.enqueue_on_commit(add, args=[1, 2])
    assert Job.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_enqueue_on_commit_validates_at_once():
    with transaction.atomic():
        with pytest.raises(TaskNotFound):
            jobs.enqueue_on_commit("no.such.task")
        with pytest.raises(TypeError):
            jobs.enqueue_on_commit(add, args=[object()])
        with pytest.raises(TypeError):
            jobs.enqueue_on_commit(add, kwargs={"a": {1}})
    assert Job.objects.count() == 0


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "options",
    [
        {"priority": 500},
        {"queue": ""},
        {"delay": -1},
        {"timeout": 0},
        {"max_retries": -1},
        {"no_such_option": 1},
    ],
)
def test_enqueue_on_commit_validates_options_at_once(options):
    # Mistakes raise at the call, not out of the commit of the caller's transaction.
    with transaction.atomic():
        with pytest.raises((ValueError, TypeError)):
            jobs.enqueue_on_commit(add, args=[1, 2], **options)
    assert Job.objects.count() == 0


def test_enqueue_on_commit_in_test_transaction(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        jobs.enqueue_on_commit(add, args=[5, 6])
        assert Job.objects.count() == 0
    assert Job.objects.get().args == [5, 6]


# -- async twins -------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_aenqueue_and_aget_job():
    job = async_to_sync(jobs.aenqueue)(add, args=[4, 5], priority="high")
    assert isinstance(job, Job)
    fetched = async_to_sync(jobs.aget_job)(job.pk)
    assert fetched.pk == job.pk
    assert fetched.args == [4, 5]
    assert fetched.priority == 50
    assert async_to_sync(jobs.aget_job)(str(job.pk)).pk == job.pk


@pytest.mark.django_db(transaction=True)
def test_aenqueue_validation_errors_propagate():
    with pytest.raises(TypeError):
        async_to_sync(jobs.aenqueue)(add, args=[object()])
    with pytest.raises(TaskNotFound):
        async_to_sync(jobs.aenqueue)("no.such.task")
    assert Job.objects.count() == 0


def test_every_public_verb_has_an_async_twin():
    for name in [
        "enqueue",
        "enqueue_on_commit",
        "enqueue_delayed",
        "get_job",
        "wait_for",
        "cancel",
        "retry",
        "requeue_stuck",
        "prune",
        "get_queue_names",
        "queue_length",
        "pause_queue",
        "resume_queue",
        "clear_queue",
        "get_failed_jobs",
        "get_dead_letter_queue",
        "get_statistics",
    ]:
        assert callable(getattr(jobs, f"a{name}")), name
