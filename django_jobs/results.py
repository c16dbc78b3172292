"""A ``Job`` as Django's ``TaskResult``, and Django's task signals for jobs.

Below the backend, the runner and the models: each of them describes jobs to
``django.tasks`` through this module, which needs none of them. The backend class is
resolved by its dotted path, as Django's own ``task_backends`` does.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from django.utils.module_loading import import_string

from ._compat import TaskError, TaskResult, TaskResultStatus, task_backends
from .enums import JobStatus
from .registry import (
    BACKEND_PATH,
    INTERNAL_ALIAS,
    TASK_OPTIONS,
    JobTask,
    internal_backend,
    registry,
)

if TYPE_CHECKING:  # the models need the app registry; this module must not
    from .models import Job

logger = logging.getLogger("django_jobs.execution")

# A job's status as django.tasks reads it.
STATUS_MAP = {
    JobStatus.WAITING: TaskResultStatus.READY,
    JobStatus.PENDING: TaskResultStatus.READY,
    JobStatus.RESERVED: TaskResultStatus.READY,
    JobStatus.RETRYING: TaskResultStatus.READY,
    JobStatus.RUNNING: TaskResultStatus.RUNNING,
    JobStatus.COMPLETED: TaskResultStatus.SUCCESSFUL,
    JobStatus.FAILED: TaskResultStatus.FAILED,
    JobStatus.CANCELLED: TaskResultStatus.FAILED,
}


def _task_for(job: Job, backend) -> JobTask:
    """The job's task as it was enqueued, built without re-validating it (its queue may
    have been removed from QUEUES since, and results must stay readable)."""
    try:
        base = registry.get(job.task_name)
        func, takes_context = base.func, base.takes_context
        extra = {f: getattr(base, f) for f in _EXTRA_FIELDS}
    except Exception:  # noqa: BLE001 - unknown task: still describe the result
        func, takes_context, extra = _missing_task, False, {"job_name": job.task_name}
    task = object.__new__(JobTask)
    values = dict(
        func=func,
        priority=job.priority,
        backend=backend.alias,
        queue_name=job.original_queue or job.queue,
        # enqueue() stores scheduled_at = run_after, or exactly created_at without one: a
        # run_after already past at enqueue time (using(run_after=now())) is kept too.
        run_after=job.scheduled_at
        if job.scheduled_at and job.scheduled_at != job.created_at
        else None,
        takes_context=takes_context,
        **dict.fromkeys(_EXTRA_FIELDS),
    )
    values.update(extra)
    for key in ("retry_on", "dont_retry_on", "tags", "triggers"):
        values[key] = values.get(key) or ()
    values["unique"] = bool(values.get("unique"))
    values["description"] = values.get("description") or ""
    for key, value in values.items():
        object.__setattr__(task, key, value)
    return task


# What a JobTask carries beyond a plain django.tasks Task: its name, its options and the
# triggers it declares.
_EXTRA_FIELDS = ("job_name", "triggers", *sorted(TASK_OPTIONS))


def _missing_task(*args, **kwargs):  # pragma: no cover - placeholder for unknown tasks
    raise LookupError("task no longer registered")


def result_from_job(job: Job, backend=None, task=None) -> TaskResult:
    """A ``TaskResult`` describing ``job``."""
    backend = backend or internal_backend()
    if task is None or not isinstance(task, JobTask):
        task = _task_for(job, backend)
    errors = [
        TaskError(
            exception_class_path=e.get("exception_class_path") or f"builtins.{e.get('type')}",
            traceback=e.get("traceback", ""),
        )
        for e in (job.errors or [])
    ]
    worker_ids = list(job.worker_ids or [])
    if job.status == JobStatus.RUNNING and job.worker_id:
        worker_ids.append(job.worker_id)
    result: TaskResult = TaskResult(
        task=task,
        id=str(job.pk),
        status=STATUS_MAP[JobStatus(job.status)],
        enqueued_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
        last_attempted_at=job.started_at,
        args=list(job.args or []),
        kwargs=dict(job.kwargs or {}),
        backend=backend.alias,
        errors=errors,
        worker_ids=worker_ids,
    )
    object.__setattr__(result, "_return_value", job.result)
    return result


def backend_for(alias: str | None):
    """The ``JobsBackend`` a job was enqueued through (``Job.backend``), or the internal
    one when that alias is gone from ``TASKS`` or names another backend."""
    if not alias or alias == INTERNAL_ALIAS:
        return internal_backend()
    try:
        backend = task_backends[alias]
    except Exception:  # noqa: BLE001 - the alias was removed from TASKS since
        return internal_backend()
    return backend if isinstance(backend, import_string(BACKEND_PATH)) else internal_backend()


def send_django_signal(signal, job: Job) -> None:
    """django.tasks signals, for jobs enqueued through a django.tasks backend."""
    if not job.backend:
        return
    try:
        backend = backend_for(job.backend)
        result = result_from_job(job, backend)
        for receiver, res in signal.send_robust(sender=type(backend), task_result=result):
            if isinstance(res, Exception):
                logger.error(
                    "django.tasks signal receiver %r failed",
                    receiver,
                    exc_info=(type(res), res, res.__traceback__),
                )
    except Exception:  # a signal never fails the job
        logger.exception("Could not send %s for job %s", signal, job.pk)
