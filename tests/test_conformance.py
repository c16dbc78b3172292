"""django.tasks conformance of ``JobsBackend``, with a real worker.

Every behaviour Django's own test suite checks for a task backend (tests/tasks/ in
django/django: test_tasks.py, test_immediate_backend.py, test_dummy_backend.py,
test_custom_backend.py, plus the DB-backend checks of the django-tasks backport), checked
against ``django_jobs.backend.JobsBackend``: tasks are enqueued in this process and run by
``manage.py runworkers --burst`` subprocesses (the ``workers`` fixture) or, where the test
must observe something only the running process sees (signal receivers, log records), by
``django_jobs.testing.run_jobs()`` in this process, which runs jobs exactly as a worker.

Django test → our test
----------------------
test_tasks.py (TaskTestCase)
  test_using_correct_backend ............ test_default_backend_is_jobs_backend
  test_task_decorator ................... test_task_decorator_returns_tasks
  test_enqueue_task(_async) ............. test_enqueue_returns_ready_result,
                                          test_aenqueue_returns_ready_result
  test_enqueue_with_invalid_argument,
  test_aenqueue_with_invalid_argument ... test_non_json_arguments_rejected
  test_using_priority / _queue_name /
  _run_after, test_using_creates_new_instance,
  test_chained_using .................... test_using_returns_modified_copies
  test_using_unknown_backend,
  test_using_missing_backend ............ test_using_unknown_backend
  test_refresh_result ................... test_refresh_without_changes_keeps_result
  test_naive_datetime ................... test_naive_run_after_rejected
  test_invalid_priority ................. test_priority_validation,
                                          test_priority_out_of_range_never_enqueued,
                                          test_priority_range_accepted
  test_unknown_queue_name ............... test_queue_validation_with_queues_setting
  test_call_task, test_call_task_async,
  test_call_async_task(_sync) ........... test_call_and_acall
  test_get_result(_async) ............... test_get_result_round_trip
  test_get_missing_result ............... test_missing_result_ids
  test_get_incorrect_result(_async) ..... test_get_result_of_another_task_mismatch
  test_invalid_function ................. test_task_function_must_be_module_level
  test_get_backend ...................... test_get_backend_per_alias,
                                          test_task_of_another_backend_moved_here
  test_name, test_module_path ........... test_task_name_and_module_path
  test_pickle_task, test_pickle_task_result
                                          test_pickle_task_and_result
  test_no_backends ...................... test_no_backends_configured
  test_task_error_invalid_exception,
  test_task_error_unknown_module ........ test_task_error_exception_class_resolution
  test_takes_context_without_taking_context
                                          test_takes_context_needs_context_argument
  test_run_after_in_decorator ........... test_run_after_not_allowed_in_decorator
test_immediate_backend.py / test_dummy_backend.py
  test_using_correct_backend ............ test_default_backend_is_jobs_backend
  test_enqueue_task(_async) (immediate: runs; dummy: READY)
                                          test_enqueue_returns_ready_result,
                                          test_aenqueue_returns_ready_result,
                                          test_worker_runs_successful_tasks,
                                          test_eager_mode_runs_at_enqueue_like_immediate_backend
  test_catches_exception ................ test_worker_records_failures (ValueError,
                                          SystemExit, exit(1)), test_eager_mode_...
  test_complex_exception ................ test_worker_records_failures (nested)
  test_complex_return_value ............. test_worker_records_failures (unserialisable),
                                          test_unserialisable_return_fails_with_type_error
  test_result(_async) ................... test_worker_runs_successful_tasks
  (result statuses READY/RUNNING/FAILED)  test_status_mapping_in_process (retrying,
                                          cancelled), test_takes_context_tasks (RUNNING)
  test_cannot_get_result /
  test_cannot_refresh_result (immediate:
  unsupported; dummy: supported) ........ test_get_result_round_trip,
                                          test_worker_runs_successful_tasks (refresh,
                                          arefresh), test_supports_flags
  test_refresh_result(_async) (dummy) ... test_worker_runs_successful_tasks
  test_get_missing_result ............... test_missing_result_ids
  test_cannot_pass_run_after ............ test_supports_flags (supported here),
                                          test_run_after_defers_execution
  test_enqueue_logs, test_failed_logs,
  test_successful_task_no_none_type_in_logs
                                          test_django_signals_and_logs_in_process
  test_takes_context, test_context ...... test_takes_context_tasks,
                                          test_context_attempt_counts_retries
  test_validate_on_enqueue / _aenqueue .. test_queue_validation_with_queues_setting
  test_doesnt_wait_until_transaction_commit(_by_default)
                                          test_enqueue_writes_in_callers_transaction
  test_throws_keyboard_interrupt ........ test_worker_records_failures (see below)
test_custom_backend.py
  test_using_correct_backend (options) .. test_default_backend_is_jobs_backend
  test_enqueue_async_task_on_non_async_backend
                                          test_async_task_validation_follows_flag
  test_backend_does_not_support_priority  test_priority_range_accepted (we support it)
django-tasks backport, DatabaseBackend tests (a database backend, like ours)
  test_invalid_uuid / test_get_missing_result (uuid4)
                                          test_missing_result_ids
  test_run_enqueued_task, test_batch_processes_all_tasks
                                          test_worker_runs_successful_tasks,
                                          test_worker_records_failures
  test_doesnt_process_different_queue ... test_priority_order_and_queue_selection
  test_check, test_database_backend_app_missing
                                          test_backend_check
Signals (django.tasks.signals, no dedicated Django test module)
  task_enqueued ......................... test_task_enqueued_signal
  task_started / task_finished .......... test_django_signals_and_logs_in_process,
                                          test_worker_sends_started_and_finished
Also covered (the brief, SPEC 5.4):
  results readable after the queue left QUEUES  test_results_readable_after_queue_removed
  JSON normalisation of args ............ test_arguments_are_json_normalised,
                                          test_non_finite_floats_rejected_as_type_error

Known deviations
----------------
- result.task.run_after after a retry: retries rewrite scheduled_at, which is what
  run_after is read from, so a retried job reports its latest due time.

Deliberately not covered
------------------------
- test_throws_keyboard_interrupt: the ImmediateBackend runs tasks in the caller's process
  and re-raises Ctrl-C there. A worker runs tasks elsewhere; a task raising
  KeyboardInterrupt is recorded as a failure instead (checked), and the worker goes on.
- ENQUEUE_ON_COMMIT / enqueue_on_commit tests of older Django branches: the option was
  removed before Django 6.0 and is not in the backport 0.12 API; our enqueue writes in
  the caller's transaction (checked), ``jobs.enqueue_on_commit`` is ours.
- test_metadata.py and the TaskResult equality/hash/ordering tests
  (test_task_result_equality, _hash_*, _lt_*, _comparability_in_priority_queue): they test
  APIs of Django's main branch that neither Django 6.1 nor the backport have.
- test_utils.py (normalize_json, is_module_level_function, exception serialisation):
  Django's own helpers, not backend behaviour; their effect is covered through the backend
  (JSON normalisation, module-level validation, error tracebacks).
- test_no_enqueue (abstract ``enqueue``) and the custom-backend OPTIONS logging test: they
  test BaseTaskBackend itself; we only check that OPTIONS reach ``backend.options``.
- test_unpickle_arbitrary_string / test_unpickle_non_task_object: Task._reconstruct is
  Django's code, untouched by the backend (pickling itself is covered).
- test_name: Django's Task.name is the function name; JobTask.name is the registered
  dotted path on purpose (SPEC 3: it is what a worker resolves). Checked as such.
- assertNumQueries counts of the backport's DatabaseBackend: implementation details.
- test_pickle_task / test_pickle_task_result on Django 5.2: the backport's Task has no
  __reduce__, so no task pickles there whatever the backend (skipped on 5.2 only).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import pickle
import time
import uuid
from datetime import UTC, datetime, timedelta
from unittest import mock

import pytest
from asgiref.sync import async_to_sync
from django.core import checks
from django.db import transaction
from django.test import override_settings
from django.utils import timezone
from django.utils.module_loading import import_string

from django_jobs import jobs
from django_jobs._compat import (
    TASKS_MODULE,
    InvalidTask,
    InvalidTaskBackend,
    Task,
    TaskError,
    TaskResult,
    TaskResultDoesNotExist,
    TaskResultMismatch,
    TaskResultStatus,
    task,
    task_backends,
    task_enqueued,
    task_finished,
    task_started,
)
from django_jobs.backend import JobsBackend
from django_jobs.models import Job, Worker
from django_jobs.registry import JobTask
from django_jobs.testing import run_jobs
from tests.testapp import conformance_tasks as ct
from tests.testapp.models import Execution

pytestmark = pytest.mark.django_db(transaction=True)

JOBS_BACKEND = "django_jobs.backend.JobsBackend"
ON_DJANGO_TASKS = TASKS_MODULE == "django.tasks"  # Django 6; else the 5.2 backport


def backend() -> JobsBackend:
    return task_backends["default"]


def burst(workers, *args):
    code, out = workers.run("--burst", *args)
    assert code == 0, out
    return out


def sync(coroutine_function):
    """Run an async callable from this (sync) test: its sync_to_async calls run on this
    thread, with this test's database connection."""
    return async_to_sync(coroutine_function)


def tasks_setting(**queues_by_alias):
    return {
        alias: {"BACKEND": JOBS_BACKEND, "QUEUES": queues}
        for alias, queues in queues_by_alias.items()
    }


def signal_rows(result_id):
    return list(
        Execution.objects.filter(job_id=int(result_id), label__startswith="signal:")
        .order_by("id")
        .values_list("label", flat=True)
    )


def assert_ready(result, task_obj, args=(), kwargs=None):
    assert isinstance(result, TaskResult)
    assert isinstance(result.id, str) and result.id
    assert result.status == TaskResultStatus.READY
    assert result.is_finished is False
    assert result.task == task_obj
    assert result.args == list(args)
    assert result.kwargs == (kwargs or {})
    assert result.backend == "default"
    assert result.enqueued_at is not None
    assert result.started_at is None
    assert result.finished_at is None
    assert result.last_attempted_at is None
    assert result.errors == []
    assert result.worker_ids == []
    assert result.attempts == 0
    with pytest.raises(ValueError, match="Task has not finished yet"):
        result.return_value  # noqa: B018


def assert_timestamps_ordered(result):
    assert result.enqueued_at is not None
    assert result.started_at is not None
    assert result.last_attempted_at is not None
    assert result.finished_at is not None
    assert result.started_at >= result.enqueued_at
    assert result.last_attempted_at >= result.started_at
    assert result.finished_at >= result.started_at


# -- the backend -------------------------------------------------------------------------


def test_default_backend_is_jobs_backend():
    b = backend()
    assert isinstance(b, JobsBackend)
    assert b.alias == "default"
    assert b.options == {}
    assert b.queues == set()  # QUEUES [] accepts every queue
    assert JobsBackend("custom", {"OPTIONS": {"prefix": "x"}}).options == {"prefix": "x"}


def test_supports_flags():
    b = backend()
    assert b.supports_defer is True
    assert b.supports_async_task is True
    assert b.supports_get_result is True
    assert b.supports_priority is True
    assert b.task_class is JobTask and issubclass(JobTask, Task)


def test_async_task_validation_follows_flag():
    b = backend()
    b.validate_task(ct.noop_async)
    with mock.patch.object(JobsBackend, "supports_async_task", False):
        with pytest.raises(InvalidTask, match=r"(?i)Backend does not support async tasks"):
            b.validate_task(ct.noop_async)
        b.validate_task(ct.noop)


def test_backend_check():
    assert list(backend().check()) == []
    # Django's check framework runs the backend's check (check_tasks): no error of ours.
    ours = [
        m for m in checks.run_checks() if m.is_serious() and str(m.id).startswith("django_jobs.")
    ]
    assert ours == []
    apps = ["django.contrib.auth", "django.contrib.contenttypes"]
    with mock.patch("django_jobs.backend._installed_apps", return_value=apps):
        errors = list(backend().check())
    assert len(errors) == 1
    assert errors[0].level == checks.ERROR
    assert "django_jobs" in errors[0].hint


# -- tasks -------------------------------------------------------------------------------


def test_task_decorator_returns_tasks():
    for t in (ct.noop, ct.noop_async, ct.meaning_of_life, ct.context_task_id):
        assert isinstance(t, Task) and isinstance(t, JobTask)
        assert t.backend == "default"
    assert ct.noop.priority == 0 and ct.noop.queue_name == "default"
    assert ct.noop.run_after is None and ct.noop.takes_context is False
    assert ct.context_task_id.takes_context is True
    assert ct.in_named_queue.priority == 10 and ct.in_named_queue.queue_name == "conformance-q"


def test_task_name_and_module_path():
    assert ct.noop.module_path == "tests.testapp.conformance_tasks.noop"
    assert ct.noop_async.module_path == "tests.testapp.conformance_tasks.noop_async"
    assert import_string(ct.noop.module_path) is ct.noop
    assert import_string(ct.noop_async.module_path) is ct.noop_async
    # django.tasks' ``name`` is the function name; ours is the registered dotted path
    # (SPEC 3), which is what the worker resolves and what Job.task_name stores.
    assert ct.noop.name == ct.noop.module_path


def test_using_returns_modified_copies():
    now = timezone.now()
    copy = ct.noop.using()
    assert copy == ct.noop and copy is not ct.noop

    assert ct.noop.using(priority=1).priority == 1
    assert ct.noop.using(queue_name="queue_1").queue_name == "queue_1"
    assert ct.noop.using(run_after=now).run_after == now
    assert ct.noop.priority == 0
    assert ct.noop.queue_name == "default"
    assert ct.noop.run_after is None

    later = ct.noop.using(run_after=now)
    chained = later.using(priority=10)
    assert chained.priority == 10 and chained.run_after == now
    assert later.priority == 0


def test_using_unknown_backend():
    with pytest.raises(InvalidTaskBackend, match="The connection 'unknown' doesn't exist"):
        ct.noop.using(backend="unknown")
    with override_settings(
        TASKS={**tasks_setting(default=[]), "missing": {"BACKEND": "does.not.exist"}}
    ):
        with pytest.raises(InvalidTaskBackend, match=r"Could not find backend 'does\.not\.exist'"):
            ct.noop.using(backend="missing")


def test_get_backend_per_alias():
    assert ct.noop.get_backend() is backend()
    with override_settings(TASKS=tasks_setting(default=[], other=[])):
        other = ct.noop.using(backend="other")
        assert other.backend == "other"
        assert isinstance(other.get_backend(), JobsBackend)
        assert other.get_backend().alias == "other"
        result = other.enqueue()
        assert result.backend == "other"
        assert task_backends["other"].get_result(result.id).backend == "other"


def test_task_of_another_backend_moved_here():
    # A plain django Task declared for another backend, moved with using(backend=...).
    immediate = f"{TASKS_MODULE}.backends.immediate.ImmediateBackend"
    with override_settings(
        TASKS={**tasks_setting(default=[]), "immediate": {"BACKEND": immediate, "QUEUES": []}}
    ):
        elsewhere = Task(func=ct.meaning_of_life.func, backend="immediate")
        assert elsewhere.enqueue().return_value == 42  # runs in the ImmediateBackend
        result = elsewhere.using(backend="default").enqueue()
        assert result.status == TaskResultStatus.READY
        assert run_jobs() == 1
        result.refresh()
        assert result.return_value == 42


def test_naive_run_after_rejected():
    with pytest.raises(InvalidTask, match="run_after must be an aware datetime"):
        ct.noop.using(run_after=datetime.now())  # noqa: DTZ005


@pytest.mark.parametrize("priority", [-101, 101, 3.1])
def test_priority_validation(priority):
    with pytest.raises(InvalidTask, match="priority must be a whole number between -100 and 100"):
        ct.noop.using(priority=priority)


def test_priority_range_accepted():
    for priority in (100, -100, 0, 10):
        assert ct.noop.using(priority=priority).priority == priority
    result = ct.noop.using(priority=-100).enqueue()
    assert result.task.priority == -100
    assert Job.objects.get(pk=result.id).priority == -100


def test_priority_out_of_range_never_enqueued():
    # Whatever the exception class (see test_priority_validation), nothing is written.
    for priority in (-101, 101, 3.1):
        with pytest.raises((InvalidTask, ValueError)):
            ct.noop.using(priority=priority).enqueue()
    with pytest.raises((InvalidTask, ValueError)):
        task(priority=101)(ct.meaning_of_life.func)
    assert Job.objects.count() == 0


def test_queue_validation_with_queues_setting():
    unknown_queue_task = ct.noop.using(queue_name="unknown_queue")  # valid with QUEUES []
    with override_settings(TASKS=tasks_setting(default=["default", "queue-1"], open=[])):
        with pytest.raises(InvalidTask, match="Queue 'queue-2' is not valid for backend"):
            ct.noop.using(queue_name="queue-2")
        # Validation is bypassed when the backend's QUEUES is empty.
        assert ct.noop.using(queue_name="queue-2", backend="open").queue_name == "queue-2"
        with pytest.raises(InvalidTask, match="Queue 'unknown_queue' is not valid for backend"):
            unknown_queue_task.enqueue()
        with pytest.raises(InvalidTask, match="Queue 'unknown_queue' is not valid for backend"):
            sync(unknown_queue_task.aenqueue)()
        with pytest.raises(InvalidTask, match="Queue 'unknown_queue' is not valid for backend"):
            task_backends["default"].enqueue(unknown_queue_task, (), {})
        assert Job.objects.count() == 0
        ok = ct.noop.using(queue_name="queue-1").enqueue()
    assert Job.objects.get(pk=ok.id).queue == "queue-1"


def test_takes_context_needs_context_argument():
    with pytest.raises(InvalidTask, match="does not have a first argument of 'context'"):
        task(takes_context=True)(ct.meaning_of_life.func)


def test_run_after_not_allowed_in_decorator():
    # Django 6 says why; the backport fails on the duplicated keyword argument.
    message = "run_after cannot be defined statically" if ON_DJANGO_TASKS else "run_after"
    with pytest.raises(TypeError, match=message):
        task(run_after=timezone.now())(ct.meaning_of_life.func)


def _not_module_level():
    def inner():
        return None

    return inner


def test_task_function_must_be_module_level():
    for func in (any, _not_module_level(), lambda: None):
        with pytest.raises(InvalidTask, match="Task function must be defined at a module level"):
            task()(func)


def test_call_and_acall():
    assert ct.meaning_of_life.call() == 42
    assert ct.async_meaning_of_life.call() == 42
    assert ct.noop_async.call() is None
    assert sync(ct.meaning_of_life.acall)() == 42
    assert sync(ct.async_meaning_of_life.acall)() == 42
    assert sync(ct.noop_async.acall)() is None
    assert Job.objects.count() == 0  # calling never enqueues


def test_no_backends_configured():
    with override_settings(TASKS={}):
        with pytest.raises(InvalidTaskBackend):
            ct.noop.enqueue()


# -- enqueue and results -----------------------------------------------------------------


def test_enqueue_returns_ready_result():
    for t in (ct.noop, ct.noop_async):
        result = t.enqueue(1, two=3)
        assert_ready(result, t, args=[1], kwargs={"two": 3})
        job = Job.objects.get(pk=result.id)
        assert job.task_name == t.name
        assert job.args == [1] and job.kwargs == {"two": 3}
    direct = backend().enqueue(ct.meaning_of_life, (), {})
    assert_ready(direct, ct.meaning_of_life)


def test_aenqueue_returns_ready_result():
    for t in (ct.noop, ct.noop_async):
        result = sync(t.aenqueue)()
        assert_ready(result, t)
        assert Job.objects.filter(pk=result.id).exists()
    direct = sync(backend().aenqueue)(ct.meaning_of_life, [], {})
    assert_ready(direct, ct.meaning_of_life)


def test_get_result_round_trip():
    for t in (ct.noop, ct.noop_async):
        result = backend().enqueue(t, (1,), {"a": [2]})
        assert backend().get_result(result.id) == result
        assert sync(backend().aget_result)(result.id) == result
        assert t.get_result(result.id) == result
        assert sync(t.aget_result)(result.id) == result
    later = ct.noop.using(
        run_after=timezone.now() + timedelta(hours=1), priority=7, queue_name="round-trip"
    )
    result = later.enqueue()
    fetched = backend().get_result(result.id)
    assert fetched == result
    assert fetched.task.run_after == later.run_after
    assert fetched.task.priority == 7 and fetched.task.queue_name == "round-trip"
    # A run_after already past when enqueued (using(run_after=timezone.now())) too.
    past = ct.noop.using(run_after=timezone.now()).enqueue()
    assert backend().get_result(past.id) == past
    assert backend().get_result(past.id).task.run_after == past.task.run_after


def test_refresh_without_changes_keeps_result():
    result = sync(ct.noop.aenqueue)()
    original = dataclasses.asdict(result)
    result.refresh()
    assert dataclasses.asdict(result) == original
    sync(result.arefresh)()
    assert dataclasses.asdict(result) == original


@pytest.mark.parametrize(
    "result_id",
    [
        "<next id>",
        "abc",
        "",
        " ",
        "-1",
        "0",
        "1.5",
        "99999999999999999999999",
        "None",
        str(uuid.uuid4()),
        uuid.uuid4().hex,
    ],
)
def test_missing_result_ids(result_id):
    existing = ct.noop.enqueue()  # the table is not empty
    if result_id == "<next id>":  # a well-formed id that no job has (yet)
        result_id = str(int(existing.id) + 1)
    with pytest.raises(TaskResultDoesNotExist):
        backend().get_result(result_id)
    with pytest.raises(TaskResultDoesNotExist):
        sync(backend().aget_result)(result_id)
    with pytest.raises(TaskResultDoesNotExist):
        ct.noop.get_result(result_id)
    with pytest.raises(TaskResultDoesNotExist):
        sync(ct.noop.aget_result)(result_id)


def test_get_result_of_another_task_mismatch():
    result = backend().enqueue(ct.noop_async, (), {})
    with pytest.raises(TaskResultMismatch, match="Task does not match"):
        ct.noop.get_result(result.id)
    with pytest.raises(TaskResultMismatch, match="Task does not match"):
        sync(ct.noop.aget_result)(result.id)
    assert ct.noop_async.get_result(result.id) == result


def test_non_json_arguments_rejected():
    for args, kwargs in [
        ((datetime.now(UTC),), {}),
        ((), {"when": object()}),
        ((b"bytes",), {}),
        (({1, 2},), {}),
    ]:
        with pytest.raises(TypeError):
            ct.noop.enqueue(*args, **kwargs)
        with pytest.raises(TypeError):
            sync(ct.noop.aenqueue)(*args, **kwargs)
    assert Job.objects.count() == 0


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_floats_rejected_as_type_error(value):
    with pytest.raises(TypeError):
        ct.noop.enqueue(value)


def test_arguments_are_json_normalised(workers):
    result = ct.echo.enqueue((1, 2), [3, (4,)], nested={"t": (5, 6)}, n=None)
    assert result.args == [[1, 2], [3, [4]]]
    assert result.kwargs == {"nested": {"t": [5, 6]}, "n": None}
    assert backend().get_result(result.id).args == result.args
    burst(workers)
    result.refresh()
    assert result.status == TaskResultStatus.SUCCESSFUL
    # The task received lists, exactly what the result reports.
    assert result.return_value == {
        "args": [[1, 2], [3, [4]]],
        "kwargs": {"nested": {"t": [5, 6]}, "n": None},
    }


def test_enqueue_writes_in_callers_transaction():
    with transaction.atomic():
        result = ct.noop.enqueue()
        assert result.enqueued_at is not None
        assert Job.objects.filter(pk=result.id).exists()
    assert backend().get_result(result.id).status == TaskResultStatus.READY

    class Rollback(Exception):
        pass

    with pytest.raises(Rollback), transaction.atomic():
        gone = ct.noop.enqueue()
        raise Rollback
    with pytest.raises(TaskResultDoesNotExist):
        backend().get_result(gone.id)


@pytest.mark.skipif(
    not ON_DJANGO_TASKS,
    reason="the django-tasks backport's Task has no __reduce__: tasks (and so results) "
    "cannot be pickled on Django 5.2, whatever the backend",
)
def test_pickle_task_and_result():
    assert pickle.loads(pickle.dumps(ct.noop)) == ct.noop
    result = ct.noop.enqueue(1, k="v")
    unpickled = pickle.loads(pickle.dumps(result))
    assert unpickled == result
    assert unpickled.task == ct.noop


def test_task_error_exception_class_resolution():
    error = TaskError(exception_class_path="builtins.ValueError", traceback="")
    assert error.exception_class is ValueError
    with pytest.raises(ValueError, match="does not reference a valid exception"):
        TaskError(exception_class_path="subprocess.run", traceback="").exception_class  # noqa: B018
    with pytest.raises(ImportError):
        TaskError(exception_class_path="does.not.exist", traceback="").exception_class  # noqa: B018


# -- running: a real worker --------------------------------------------------------------


def test_worker_runs_successful_tasks(workers):
    noop_sync = ct.noop.enqueue(1, two=3)
    noop_async = ct.noop_async.enqueue()
    meaning = backend().enqueue(ct.meaning_of_life, [], {})
    meaning_async = sync(backend().aenqueue)(ct.async_meaning_of_life, [], {})
    named = ct.in_named_queue.enqueue()

    burst(workers)

    # A TaskResult is a snapshot: it changes on refresh() only.
    assert noop_sync.status == TaskResultStatus.READY
    for result in (noop_sync, noop_async, meaning, named):
        result.refresh()
    sync(meaning_async.arefresh)()
    for result in (noop_sync, noop_async, meaning, meaning_async, named):
        assert result.status == TaskResultStatus.SUCCESSFUL, result.errors
        assert result.is_finished is True
        assert_timestamps_ordered(result)
        assert result.finished_at <= timezone.now()
        assert result.errors == []
        assert result.attempts == 1
        assert len(result.worker_ids) == 1 and isinstance(result.worker_ids[0], str)
        assert result.worker_ids[0]
    assert noop_sync.return_value is None and noop_async.return_value is None
    assert meaning.return_value == 42 and meaning_async.return_value == 42
    assert named.return_value == "named queue"
    assert noop_sync.args == [1] and noop_sync.kwargs == {"two": 3}
    # Every job was run by the same burst worker, and worker ids name Worker rows.
    assert len({r.worker_ids[0] for r in (noop_sync, meaning, named)}) == 1
    assert Worker.objects.filter(pk=noop_sync.worker_ids[0]).exists()

    # A fresh read agrees with the refreshed one, and keeps the task as enqueued.
    for result, t in ((meaning, ct.meaning_of_life), (named, ct.in_named_queue)):
        fetched = t.get_result(result.id)
        assert fetched.status == TaskResultStatus.SUCCESSFUL
        assert fetched.return_value == result.return_value
        assert fetched.task == t
        assert fetched.worker_ids == result.worker_ids
        assert fetched.finished_at == result.finished_at


def test_worker_records_failures(workers):
    failing = {
        "value_error": (
            ct.fail_value_error.enqueue(),
            ValueError,
            "conformance task failed with ValueError",
        ),
        "system_exit": (
            ct.fail_system_exit.enqueue(),
            SystemExit,
            "conformance task failed with SystemExit",
        ),
        "exit": (ct.fail_exit.enqueue(), SystemExit, "1"),
        "keyboard_interrupt": (
            ct.fail_keyboard_interrupt.enqueue(),
            KeyboardInterrupt,
            "conformance task failed with KeyboardInterrupt",
        ),
        "nested": (ct.fail_nested_exception.enqueue(), ValueError, "inner conformance failure"),
    }
    unserialisable = ct.return_unserializable.enqueue()
    survivor = ct.meaning_of_life.enqueue()  # the worker goes on after all of these

    burst(workers)

    for name, (result, exc_class, message) in failing.items():
        result.refresh()
        assert result.status == TaskResultStatus.FAILED, name
        assert result.is_finished is True
        with pytest.raises(ValueError, match="Task failed"):
            result.return_value  # noqa: B018
        assert result._return_value is None
        assert_timestamps_ordered(result)
        assert len(result.errors) == 1, (name, result.errors)
        error = result.errors[0]
        assert isinstance(error, TaskError)
        assert error.exception_class is exc_class, name
        assert error.exception_class_path == f"{exc_class.__module__}.{exc_class.__qualname__}"
        assert error.traceback.startswith("Traceback (most recent call last):"), name
        assert error.traceback.endswith(f"{exc_class.__name__}: {message}\n"), error.traceback
        assert result.attempts == 1 and len(result.worker_ids) == 1
        # The task is still described as enqueued (not as the dead-letter queue).
        fetched = backend().get_result(result.id)
        assert fetched.task.queue_name == "default"
        assert fetched.errors == result.errors

    nested = failing["nested"][0]
    assert 'raise ValueError(ValueError("inner conformance failure"))' in nested.errors[0].traceback

    unserialisable.refresh()
    assert unserialisable.status == TaskResultStatus.FAILED
    assert unserialisable._return_value is None
    assert len(unserialisable.errors) == 1
    assert "TypeError" in unserialisable.errors[0].traceback
    assert "JSON serializable" in unserialisable.errors[0].traceback

    survivor.refresh()
    assert survivor.status == TaskResultStatus.SUCCESSFUL and survivor.return_value == 42


def test_unserialisable_return_fails_with_type_error():
    result = ct.return_unserializable.enqueue()
    assert run_jobs() == 1
    result.refresh()
    assert result.status == TaskResultStatus.FAILED
    assert issubclass(result.errors[0].exception_class, TypeError)


def test_takes_context_tasks(workers):
    plain = ct.context_task_id.enqueue()
    in_async = ct.async_context_task_id.enqueue()
    details = ct.context_details.enqueue(1)
    burst(workers)
    for result in (plain, in_async, details):
        result.refresh()
        assert result.status == TaskResultStatus.SUCCESSFUL, result.errors
    assert plain.return_value == plain.id
    assert in_async.return_value == in_async.id
    seen = details.return_value
    assert seen["attempt"] == 1 == seen["expected_attempt"]
    assert seen["id"] == details.id
    assert seen["status"] == TaskResultStatus.RUNNING
    assert seen["module_path"] == ct.context_details.module_path
    assert seen["args"] == [1]
    assert seen["started"] is True
    assert seen["backend"] == "default"
    # The context's worker ids are the ones the finished result reports.
    assert seen["worker_ids"] == details.worker_ids
    # get_result() from inside the worker, while the task runs: RUNNING, one attempt.
    assert seen["fetched"] == {
        "status": TaskResultStatus.RUNNING,
        "worker_ids": details.worker_ids,
        "attempts": 1,
        "started": True,
        "last_attempted": True,
        "finished": False,
        "is_finished": False,
    }


def test_context_attempt_counts_retries(workers):
    result = ct.retry_once_with_context.enqueue()
    burst(workers)
    result.refresh()
    assert result.status == TaskResultStatus.SUCCESSFUL, result.errors
    assert result.return_value["attempt"] == 2
    assert result.attempts == 2 and len(result.worker_ids) == 2
    assert result.return_value["worker_ids"] == result.worker_ids
    # One error per failed attempt, kept after the success.
    assert len(result.errors) == 1
    assert result.errors[0].exception_class_path == "django_jobs.exceptions.Retry"


def test_status_mapping_in_process():
    # READY covers waiting/pending/retrying jobs; FAILED covers cancelled ones (SPEC 5.4).
    retried = ct.retry_once_with_context.enqueue()
    assert run_jobs(max_jobs=1) == 1
    retried.refresh()
    assert Job.objects.get(pk=retried.id).status == "retrying"
    assert retried.status == TaskResultStatus.READY and retried.is_finished is False
    assert retried.attempts == 1 and len(retried.errors) == 1
    assert retried.finished_at is None
    with pytest.raises(ValueError, match="Task has not finished yet"):
        retried.return_value  # noqa: B018
    assert run_jobs() == 1
    retried.refresh()
    assert retried.status == TaskResultStatus.SUCCESSFUL and retried.attempts == 2

    cancelled = ct.noop.enqueue()
    assert jobs.cancel(cancelled.id) is True
    cancelled.refresh()
    assert cancelled.status == TaskResultStatus.FAILED and cancelled.is_finished is True
    assert cancelled.finished_at is not None and cancelled.started_at is None
    with pytest.raises(ValueError, match="Task failed"):
        cancelled.return_value  # noqa: B018
    assert run_jobs() == 0  # a cancelled job never runs


def test_run_after_defers_execution(workers):
    soon = timezone.now() + timedelta(seconds=1.5)
    deferred = ct.meaning_of_life.using(run_after=soon).enqueue()
    far = ct.meaning_of_life.using(run_after=timezone.now() + timedelta(hours=1)).enqueue()
    now_result = ct.meaning_of_life.enqueue()
    assert deferred.task.run_after == soon
    assert_ready(deferred, ct.meaning_of_life.using(run_after=soon))

    burst(workers)
    for result in (deferred, far, now_result):
        result.refresh()
    assert now_result.status == TaskResultStatus.SUCCESSFUL
    if timezone.now() < soon:  # the worker was quick: nothing early
        assert deferred.status == TaskResultStatus.READY
        assert deferred.started_at is None
    assert far.status == TaskResultStatus.READY and far.started_at is None

    time.sleep(max(0.0, (soon - timezone.now()).total_seconds()) + 0.05)
    burst(workers)
    deferred.refresh()
    far.refresh()
    assert deferred.status == TaskResultStatus.SUCCESSFUL
    assert deferred.started_at >= soon and deferred.return_value == 42
    assert far.status == TaskResultStatus.READY
    assert backend().get_result(far.id).task.run_after == far.task.run_after


def test_priority_order_and_queue_selection(workers):
    queue = "conformance-prio"
    for label, priority in [
        ("low", -60),
        ("normal", 0),
        ("critical", 100),
        ("high", 50),
        ("lowest", -100),
    ]:
        ct.record_order.using(priority=priority, queue_name=queue).enqueue(label)
    elsewhere = ct.record_order.using(priority=100, queue_name="conformance-elsewhere").enqueue(
        "elsewhere"
    )
    assert Job.objects.get(pk=elsewhere.id).queue == "conformance-elsewhere"

    burst(workers, "--concurrency", "1", "--queues", queue)
    labels = list(
        Execution.objects.exclude(label__startswith="signal:")
        .order_by("id")
        .values_list("label", flat=True)
    )
    assert labels == ["critical", "high", "normal", "low", "lowest"]
    elsewhere.refresh()
    assert elsewhere.status == TaskResultStatus.READY  # another queue: not taken


def test_results_readable_after_queue_removed(workers):
    with override_settings(TASKS=tasks_setting(default=["default", "queue-1"])):
        done = ct.meaning_of_life.using(queue_name="queue-1").enqueue()
        failed = ct.fail_value_error.using(queue_name="queue-1").enqueue()
        waiting = ct.meaning_of_life.using(
            queue_name="queue-1", run_after=timezone.now() + timedelta(hours=1)
        ).enqueue()
    burst(workers)
    with override_settings(TASKS=tasks_setting(default=["default"])):
        b = task_backends["default"]
        assert b.queues == {"default"}
        with pytest.raises(InvalidTask):
            ct.meaning_of_life.using(queue_name="queue-1")
        for result in (done, failed, waiting):
            fetched = b.get_result(result.id)
            assert fetched.task.queue_name == "queue-1"
            assert sync(b.aget_result)(result.id).id == result.id
            result.refresh()
            sync(result.arefresh)()
        assert done.status == TaskResultStatus.SUCCESSFUL and done.return_value == 42
        assert ct.meaning_of_life.get_result(done.id).return_value == 42
        assert failed.status == TaskResultStatus.FAILED
        assert failed.errors[0].exception_class is ValueError
        assert waiting.status == TaskResultStatus.READY


def test_eager_mode_runs_at_enqueue_like_immediate_backend(settings):
    # With DJANGO_JOBS["EAGER"] (SPEC 12) enqueue runs the job at once, in this process,
    # and returns the finished result: ImmediateBackend's behaviour.
    settings.DJANGO_JOBS = {**settings.DJANGO_JOBS, "EAGER": True}
    for t, args, expected in (
        (ct.meaning_of_life, (), 42),
        (ct.noop_async, (1,), None),
        (ct.context_task_id, (), None),
    ):
        result = t.enqueue(*args)
        assert result.status == TaskResultStatus.SUCCESSFUL, result.errors
        assert result.is_finished is True
        assert_timestamps_ordered(result)
        assert result.attempts == 1 and result.errors == []
        assert result.args == list(args) and result.kwargs == {}
        assert result.task == t
        assert result.return_value == (result.id if t is ct.context_task_id else expected)
    failed = ct.fail_value_error.enqueue()
    assert failed.status == TaskResultStatus.FAILED
    with pytest.raises(ValueError, match="Task failed"):
        failed.return_value  # noqa: B018
    assert failed.errors[0].exception_class is ValueError
    assert failed.errors[0].traceback.endswith(
        "ValueError: conformance task failed with ValueError\n"
    )
    assert_timestamps_ordered(failed)
    assert backend().get_result(failed.id).status == TaskResultStatus.FAILED


# -- signals -----------------------------------------------------------------------------


def test_task_enqueued_signal():
    received = []

    def receiver(sender, task_result, **kwargs):
        received.append(
            (
                sender,
                task_result.id,
                task_result.status,
                task_result.task.module_path,
                task_result.args,
            )
        )

    task_enqueued.connect(receiver)
    try:
        result = ct.noop.enqueue(5)
        async_result = sync(ct.noop_async.aenqueue)()
    finally:
        task_enqueued.disconnect(receiver)
    assert received == [
        (JobsBackend, result.id, TaskResultStatus.READY, ct.noop.module_path, [5]),
        (JobsBackend, async_result.id, TaskResultStatus.READY, ct.noop_async.module_path, []),
    ]


def test_django_signals_and_logs_in_process(caplog):
    events = []

    def on_event(name):
        def receiver(sender, task_result, **kwargs):
            events.append((name, sender, task_result.id, task_result.status, task_result.attempts))

        return receiver

    receivers = {}
    for name, signal in (
        ("enqueued", task_enqueued),
        ("started", task_started),
        ("finished", task_finished),
    ):
        receivers[name] = on_event(name)
        signal.connect(receivers[name])
    caplog.set_level(logging.DEBUG, logger=TASKS_MODULE)
    try:
        ok = ct.noop.enqueue()
        bad = ct.fail_value_error.enqueue()
        assert run_jobs() == 2
    finally:
        task_enqueued.disconnect(receivers["enqueued"])
        task_started.disconnect(receivers["started"])
        task_finished.disconnect(receivers["finished"])

    def of(result_id):
        return [(n, s, a) for n, sender, rid, s, a in events if rid == result_id]

    assert all(sender is JobsBackend for _, sender, *_ in events)
    assert of(ok.id) == [
        ("enqueued", TaskResultStatus.READY, 0),
        ("started", TaskResultStatus.RUNNING, 1),
        ("finished", TaskResultStatus.SUCCESSFUL, 1),
    ]
    assert of(bad.id) == [
        ("enqueued", TaskResultStatus.READY, 0),
        ("started", TaskResultStatus.RUNNING, 1),
        ("finished", TaskResultStatus.FAILED, 1),
    ]

    # Django's own log receivers: one record per signal, naming the result id.
    records = [r for r in caplog.records if r.name == TASKS_MODULE]
    ok_logs = [r for r in records if ok.id in r.getMessage()]
    assert len(ok_logs) == 3, [r.getMessage() for r in ok_logs]
    assert "enqueued" in ok_logs[0].getMessage()
    assert "state=RUNNING" in ok_logs[1].getMessage()
    assert "state=SUCCESSFUL" in ok_logs[2].getMessage()
    assert all("NoneType" not in r.getMessage() for r in ok_logs)
    bad_logs = [r for r in records if bad.id in r.getMessage()]
    assert len(bad_logs) == 3
    assert "state=RUNNING" in bad_logs[1].getMessage()
    assert "state=FAILED" in bad_logs[2].getMessage()
    assert bad_logs[2].levelno == logging.ERROR
    # Sent while the exception is handled: the log carries it.
    assert bad_logs[2].exc_info and bad_logs[2].exc_info[0] is ValueError
    assert "conformance task failed with ValueError" in caplog.text


def test_worker_sends_started_and_finished(workers):
    ok = ct.meaning_of_life.enqueue()
    bad = ct.fail_value_error.enqueue()
    retried = ct.retry_once_with_context.enqueue()
    # task_enqueued was sent here, in the test process.
    assert signal_rows(ok.id) == ["signal:task_enqueued:READY"]
    burst(workers)
    # task_started / task_finished are sent by the worker (its receivers wrote the rows).
    assert signal_rows(ok.id) == [
        "signal:task_enqueued:READY",
        "signal:task_started:RUNNING",
        "signal:task_finished:SUCCESSFUL",
    ]
    assert signal_rows(bad.id) == [
        "signal:task_enqueued:READY",
        "signal:task_started:RUNNING",
        "signal:task_finished:FAILED",
    ]
    # A retried task starts twice and finishes once.
    assert signal_rows(retried.id) == [
        "signal:task_enqueued:READY",
        "signal:task_started:RUNNING",
        "signal:task_started:RUNNING",
        "signal:task_finished:SUCCESSFUL",
    ]
    pids = set(
        Execution.objects.filter(job_id=int(ok.id), label__contains="task_started").values_list(
            "worker_pid", flat=True
        )
    )
    assert pids and os.getpid() not in pids
