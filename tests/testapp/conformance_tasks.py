"""Tasks used by tests/test_conformance.py (django.tasks conformance of JobsBackend).

They are declared with the plain django.tasks ``@task`` decorator (through
``django_jobs._compat``), exactly as a project would write them. With TASKS pointing at
JobsBackend they become JobTasks registered under their dotted path, so worker
subprocesses find them by importing that path (this module is not autodiscovered).
"""

import asyncio
import os

from django.dispatch import receiver

from django_jobs import Retry
from django_jobs._compat import (
    TaskContext,
    task,
    task_enqueued,
    task_finished,
    task_started,
)
from django_jobs.backend import JobsBackend

from .models import Execution

MODULE = __name__


def _record_signal(name, sender, task_result):
    # Only this module's tasks run by our backend: other test modules count Execution rows.
    if not (isinstance(sender, type) and issubclass(sender, JobsBackend)):
        return
    if not task_result.task.module_path.startswith(MODULE + "."):
        return
    Execution.objects.create(
        label=f"signal:{name}:{task_result.status}",
        job_id=int(task_result.id),
        worker_pid=os.getpid(),
        attempt=task_result.attempts,
    )


# Connected wherever this module is imported: in the test process, and in a worker (its
# executor imports the module to resolve the task, before it sends task_started), so the
# signals a worker sends leave rows the test can read.
@receiver(task_enqueued, dispatch_uid="conformance_task_enqueued")
def _on_enqueued(sender, task_result, **kwargs):
    _record_signal("task_enqueued", sender, task_result)


@receiver(task_started, dispatch_uid="conformance_task_started")
def _on_started(sender, task_result, **kwargs):
    _record_signal("task_started", sender, task_result)


@receiver(task_finished, dispatch_uid="conformance_task_finished")
def _on_finished(sender, task_result, **kwargs):
    _record_signal("task_finished", sender, task_result)


@task
def noop(*args, **kwargs):
    return None


@task()
async def noop_async(*args, **kwargs):
    await asyncio.sleep(0)
    return None


@task()
def meaning_of_life():
    return 42


@task()
async def async_meaning_of_life():
    await asyncio.sleep(0)
    return 42


@task()
def echo(*args, **kwargs):
    """Returns what it received, so tests can check the round trip through JSON."""
    return {"args": list(args), "kwargs": kwargs}


@task()
def fail_value_error():
    raise ValueError("conformance task failed with ValueError")


@task()
def fail_system_exit():
    raise SystemExit("conformance task failed with SystemExit")


@task()
def fail_keyboard_interrupt():
    raise KeyboardInterrupt("conformance task failed with KeyboardInterrupt")


@task()
def fail_nested_exception():
    raise ValueError(ValueError("inner conformance failure"))


@task()
def fail_exit():
    exit(1)


@task()
def return_unserializable():
    return {1, 2, 3}  # a set is not JSON


@task(takes_context=True)
def context_task_id(context):
    return context.task_result.id


@task(takes_context=True)
def context_details(context, expected_attempt):
    assert isinstance(context, TaskContext), type(context)
    result = context.task_result
    return {
        "attempt": context.attempt,
        "expected_attempt": expected_attempt,
        "id": result.id,
        "status": str(result.status),
        "module_path": result.task.module_path,
        "args": result.args,
        "worker_ids": list(result.worker_ids),
        "started": result.started_at is not None,
        "backend": result.backend,
        # Read back through the backend, from the worker process, while running.
        "fetched": _describe(context_details.get_result(result.id)),
    }


def _describe(result):
    return {
        "status": str(result.status),
        "worker_ids": list(result.worker_ids),
        "attempts": result.attempts,
        "started": result.started_at is not None,
        "last_attempted": result.last_attempted_at is not None,
        "finished": result.finished_at is not None,
        "is_finished": result.is_finished,
    }


@task(takes_context=True)
async def async_context_task_id(context):
    await asyncio.sleep(0)
    return context.task_result.id


@task(priority=10, queue_name="conformance-q")
def in_named_queue():
    return "named queue"


@task()
def record_order(label):
    """Leaves an Execution row, so tests can read the order in which jobs ran."""
    Execution.objects.create(label=label, worker_pid=os.getpid())
    return label


@task(takes_context=True)
def retry_once_with_context(context):
    """Asks for a second attempt (at once) on its first one; the context counts them."""
    if context.attempt == 1:
        raise Retry(delay=0)
    return {"attempt": context.attempt, "worker_ids": list(context.task_result.worker_ids)}
