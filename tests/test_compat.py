"""Plain django.tasks Tasks (as Django 6.0's @task makes them) are adopted by the registry."""

import pytest

from django_jobs import JobStatus, TaskNotFound, jobs
from django_jobs._compat import Task
from django_jobs.registry import JobTask, registry
from django_jobs.testing import run_jobs
from tests.testapp import tasks

pytestmark = pytest.mark.django_db


def test_plain_task_of_our_backend_is_adopted_and_runs():
    plain = Task(func=tasks.add.func, backend="default", queue_name="default")
    assert not isinstance(plain, JobTask)
    adopted = registry.get(plain)
    assert isinstance(adopted, JobTask) and adopted.func is tasks.add.func
    job = jobs.enqueue(plain, args=[4, 5])
    run_jobs()
    job.refresh_from_db()
    assert job.status == JobStatus.COMPLETED and job.result == 9


def test_plain_task_of_another_backend_is_refused(settings):
    settings.TASKS = {
        "default": {"BACKEND": "django_jobs.backend.JobsBackend", "QUEUES": []},
        "immediate": {
            "BACKEND": settings.TASKS["default"]["BACKEND"].replace(
                "django_jobs.backend.JobsBackend",
                "django.tasks.backends.immediate.ImmediateBackend"
                if _has_django_tasks()
                else "django_tasks.backends.immediate.ImmediateBackend",
            )
        },
    }
    plain = Task(func=tasks.add.func, backend="immediate", queue_name="default")
    with pytest.raises(TaskNotFound, match="another backend"):
        jobs.enqueue(plain, args=[1, 2])


def _has_django_tasks():
    try:
        import django.tasks  # noqa: F401
    except ImportError:
        return False
    return True
