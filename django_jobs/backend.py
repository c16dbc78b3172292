"""``django.tasks`` backend: a thin translation layer over the JobManager."""

from __future__ import annotations

from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core import checks

from ._compat import DEFAULT_TASK_QUEUE_NAME, BaseTaskBackend, TaskResult, TaskResultDoesNotExist
from .registry import JobTask
from .results import STATUS_MAP, backend_for, result_from_job

__all__ = ["STATUS_MAP", "JobsBackend", "result_from_job"]


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
        """The backend a job was enqueued through (see ``results.backend_for``)."""
        return backend_for(alias)

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
        # Django may load this backend before the app registry is ready; the manager
        # imports the models.
        from .manager import jobs

        self.validate_task(task)
        job = jobs.enqueue(
            task, args=list(args), kwargs=dict(kwargs), **self._enqueue_options(task)
        )
        return result_from_job(job, self, task)

    async def aenqueue(self, task, args, kwargs) -> TaskResult:
        return await sync_to_async(self.enqueue, thread_sensitive=True)(task, args, kwargs)

    # -- results -------------------------------------------------------------------------

    def get_result(self, result_id: Any) -> TaskResult:
        # Django may load this backend before the app registry is ready; the manager
        # imports the models.
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
    return list(settings.INSTALLED_APPS)
