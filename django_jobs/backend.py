"""``django.tasks`` backend: a thin translation layer over the JobManager."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from asgiref.sync import sync_to_async
from django.core import checks

from ._compat import (
    DEFAULT_TASK_QUEUE_NAME,
    BaseTaskBackend,
    TaskError,
    TaskResult,
    TaskResultDoesNotExist,
    TaskResultStatus,
    task_backends,
)
from .enums import JobStatus
from .registry import INTERNAL_ALIAS, JobTask, internal_backend

if TYPE_CHECKING:  # the models need the app registry; this module must not (check E020)
    from .models import Job

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


class JobsBackend(BaseTaskBackend):
    """Runs ``django.tasks`` tasks as django_jobs jobs (``TASKS[...]["BACKEND"]``)."""

    task_class = JobTask
    supports_defer = True
    supports_async_task = True
    supports_get_result = True
    supports_priority = True

    def __init__(self, alias: str, params: dict) -> None:
        super().__init__(alias, params)
        # An empty QUEUES (the default here) accepts every queue name.
        self.queues = set(params.get("QUEUES", []))

    @classmethod
    def for_alias(cls, alias: str | None) -> JobsBackend:
        if not alias or alias == INTERNAL_ALIAS:
            return internal_backend()
        try:
            backend = task_backends[alias]
        except Exception:  # noqa: BLE001 - the alias was removed from TASKS since
            return internal_backend()
        return backend if isinstance(backend, JobsBackend) else internal_backend()

    # -- enqueue -------------------------------------------------------------------------

    def _enqueue_options(self, task) -> dict[str, Any]:
        # Django's defaults ("default", 0) stand for our DEFAULT_QUEUE/DEFAULT_PRIORITY,
        # which the manager reads at enqueue time.
        return {
            "queue": None if task.queue_name == DEFAULT_TASK_QUEUE_NAME else task.queue_name,
            "priority": None if task.priority == 0 else task.priority,
            "scheduled_at": task.run_after,
            "backend": self.alias,
        }

    def enqueue(self, task, args, kwargs) -> TaskResult:
        from .manager import jobs

        self.validate_task(task)
        job = jobs.enqueue(task, args=list(args), kwargs=dict(kwargs), **self._enqueue_options(task))
        return result_from_job(job, self, task)

    async def aenqueue(self, task, args, kwargs) -> TaskResult:
        return await sync_to_async(self.enqueue, thread_sensitive=True)(task, args, kwargs)

    # -- results -------------------------------------------------------------------------

    def get_result(self, result_id: Any) -> TaskResult:
        from .manager import jobs

        try:
            job = jobs.get_job(result_id)
        except jobs.objects.model.DoesNotExist:
            raise TaskResultDoesNotExist(result_id) from None
        return result_from_job(job, self)

    async def aget_result(self, result_id: Any) -> TaskResult:
        return await sync_to_async(self.get_result, thread_sensitive=True)(result_id)

    def check(self, **kwargs: Any):
        if "django_jobs" not in {a.split(".")[0] for a in _installed_apps()}:
            yield checks.Error(
                "JobsBackend needs 'django_jobs' in INSTALLED_APPS.",
                hint="Add 'django_jobs' to INSTALLED_APPS and run migrate.",
                id="django_jobs.E020",
            )


def _installed_apps() -> list[str]:
    from django.conf import settings

    return list(settings.INSTALLED_APPS)


def _task_for(job: Job, backend: JobsBackend) -> JobTask:
    """The job's task as it was enqueued, built without re-validating it (its queue may
    have been removed from QUEUES since, and results must stay readable)."""
    from .registry import registry

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
        run_after=job.scheduled_at if job.scheduled_at and job.scheduled_at != job.created_at else None,
        takes_context=takes_context,
        **{f: None for f in _EXTRA_FIELDS},
    )
    values.update(extra)
    for key in ("retry_on", "dont_retry_on", "tags"):
        values[key] = values.get(key) or ()
    values["unique"] = bool(values.get("unique"))
    values["description"] = values.get("description") or ""
    for key, value in values.items():
        object.__setattr__(task, key, value)
    return task


_EXTRA_FIELDS = (
    "job_name", "max_retries", "retry_delay", "retry_backoff", "retry_jitter",
    "max_retry_delay", "timeout", "retry_on", "dont_retry_on", "tags", "description",
    "unique", "cron", "interval",
)


def _missing_task(*args, **kwargs):  # pragma: no cover - placeholder for unknown tasks
    raise LookupError("task no longer registered")


def result_from_job(job: Job, backend: JobsBackend | None = None, task=None) -> TaskResult:
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
    result = TaskResult(
        task=task,
        id=str(job.pk),
        status=STATUS_MAP[job.status],
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
