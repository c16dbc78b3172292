"""``@job``, ``register_task`` and the registry (SPEC sections 3 and 4)."""

import enum
from datetime import timedelta

import pytest
from django.core.exceptions import ImproperlyConfigured

from django_jobs import JobStatus, Priority, TaskNotFound, job, jobs, register_task
from django_jobs._compat import InvalidTask, Task
from django_jobs.models import Job
from django_jobs.registry import JobTask, registry
from django_jobs.testing import run_jobs
from tests.testapp import tasks
from tests.testapp import tasks as testapp_tasks


# Module-level functions: django.tasks refuses tasks defined inside other functions.
def double(x):
    return x * 2


def triple(x):
    return x * 3


def greet(name, punctuation="!"):
    return f"hello {name}{punctuation}"


async def async_double(x):
    return x * 2


@pytest.fixture(autouse=True)
def clean_registry():
    """Tasks registered by a test are forgotten after it, so tests stay independent."""
    before = set(registry.names())
    yield
    for name in set(registry.names()) - before:
        registry.unregister(name)


def test_bare_decorator():
    task = job(double)
    assert isinstance(task, JobTask)
    assert task.name == "tests.test_registry.double"
    assert task.func is double
    assert task.queue_name == "default"
    assert task.priority == Priority.NORMAL
    assert registry.get("tests.test_registry.double") is task
    assert "tests.test_registry.double" in registry.names()


def test_decorator_with_options():
    task = job(
        queue="emails",
        priority=Priority.HIGH,
        max_retries=3,
        retry_delay=timedelta(minutes=5),
        retry_backoff=3.0,
        retry_jitter=False,
        max_retry_delay=timedelta(hours=2),
        timeout=30,
        tags=["signup", "mail"],
        description="Sends mail",
        retry_on=[ConnectionError],
        dont_retry_on=KeyError,
    )(greet)
    assert task.name == "tests.test_registry.greet"
    assert task.queue_name == "emails"
    assert task.priority == 50
    assert task.max_retries == 3
    assert task.retry_delay == 300.0
    assert task.retry_backoff == 3.0
    assert task.retry_jitter is False
    assert task.max_retry_delay == 7200.0
    assert task.timeout == 30.0
    assert task.tags == ("signup", "mail")
    assert task.description == "Sends mail"
    assert task.retry_on == (ConnectionError,)
    assert task.dont_retry_on == (KeyError,)
    assert registry.get(task.name) is task


def test_decorator_with_empty_parentheses():
    task = job()(double)
    assert task.name == "tests.test_registry.double"
    assert task.queue_name == "default"


def test_name_default_is_dotted_path_of_module_tasks():
    assert testapp_tasks.add.name == "tests.testapp.tasks.add"
    assert registry.get("tests.testapp.tasks.add") is testapp_tasks.add
    assert testapp_tasks.record_label.queue_name == "records"


def test_name_override():
    task = job(name="billing.charge")(double)
    assert task.name == "billing.charge"
    assert registry.get("billing.charge") is task
    assert "tests.test_registry.double" not in registry.names()


@pytest.mark.django_db
def test_enqueue_by_overridden_name():
    job(name="billing.charge-twice")(double)
    enqueued = jobs.enqueue("billing.charge-twice", args=[21])
    assert Job.objects.get(pk=enqueued.pk).task_name == "billing.charge-twice"


def test_priority_strings_and_ints():
    assert job(priority="critical")(double).priority == 100
    assert job(name="p.high", priority="high")(double).priority == 50
    assert job(name="p.low", priority="low")(double).priority == -50
    assert job(name="p.int", priority=-7)(double).priority == -7


def test_register_task():
    task = register_task("reports.triple", triple, queue="reports", max_retries=1)
    assert isinstance(task, JobTask)
    assert task.name == "reports.triple"
    assert task.queue_name == "reports"
    assert task.max_retries == 1
    assert registry.get("reports.triple") is task
    assert task(3) == 9


def test_registering_two_callables_under_one_name_fails():
    register_task("shared.name", double)
    with pytest.raises(ImproperlyConfigured):
        register_task("shared.name", triple)
    with pytest.raises(ImproperlyConfigured):
        job(name="shared.name")(greet)
    # The first registration is untouched.
    assert registry.get("shared.name").func is double


def test_registering_the_same_callable_twice_is_harmless():
    first = register_task("same.callable", double)
    register_task("same.callable", double)
    assert registry.get("same.callable") is first


def test_calling_the_task_runs_inline():
    # No django_db mark: any database access (an enqueue) would raise here.
    task = job(greet)
    assert task("world") == "hello world!"
    assert task("you", punctuation="?") == "hello you?"
    assert task.call("again") == "hello again!"


def test_calling_an_async_task_runs_inline():
    task = job(async_double)
    assert task.is_async
    assert task(21) == 42


def test_returned_object_is_a_django_task():
    task = job(double)
    assert isinstance(task, Task)
    assert callable(task.enqueue)
    assert callable(task.get_result)
    assert task.module_path == "tests.test_registry.double"
    # using() returns a variant with other defaults; the registered task is unchanged.
    variant = task.using(priority=10, queue_name="other")
    assert isinstance(variant, JobTask)
    assert (variant.priority, variant.queue_name, variant.name) == (10, "other", task.name)
    assert registry.get(task.name) is task


def test_testapp_tasks_are_django_tasks():
    assert isinstance(testapp_tasks.add, Task)
    # A plain @django.tasks.task is ours too, since TASKS points at JobsBackend.
    assert isinstance(testapp_tasks.django_task_add, JobTask)
    assert registry.get("tests.testapp.tasks.django_task_add") is testapp_tasks.django_task_add


def test_lookup_by_function_and_by_task():
    task = job(double)
    assert registry.get(task) is task
    assert registry.get(double) is task


def test_unknown_names_raise_task_not_found():
    with pytest.raises(TaskNotFound):
        registry.get("no.such.task")
    with pytest.raises(TaskNotFound):
        registry.get("tests.testapp.tasks.record")  # a plain function, not a task
    with pytest.raises(TaskNotFound):
        registry.get(triple)  # never registered
    with pytest.raises(TaskNotFound):
        registry.get("")
    assert issubclass(TaskNotFound, LookupError)


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({"retry_delay": -1}, ValueError),
        ({"retry_delay": timedelta(seconds=-5)}, ValueError),
        ({"max_retry_delay": -1}, ValueError),
        ({"retry_backoff": 0.5}, ValueError),
        ({"retry_backoff": 0}, ValueError),
        ({"max_retries": -1}, ValueError),
        ({"max_retries": 1.5}, ValueError),
        ({"timeout": 0}, ValueError),
        ({"timeout": -3}, ValueError),
        # Priorities are validated like Django's own tasks: InvalidTask.
        ({"priority": 101}, InvalidTask),
        ({"priority": -101}, InvalidTask),
        ({"priority": "urgent"}, InvalidTask),
        ({"retry_on": [int]}, TypeError),
        ({"no_such_option": 1}, TypeError),
    ],
)
def test_option_validation(options, error):
    with pytest.raises(error):
        job(name="invalid.task", **options)(double)
    # A task that failed validation is not registered.
    assert "invalid.task" not in registry.names()


def test_priority_enum():
    assert issubclass(Priority, enum.IntEnum)
    assert Priority.CRITICAL == 100
    assert Priority.HIGH == 50
    assert Priority.NORMAL == 0
    assert Priority.LOW == -50
    assert [p.name for p in Priority] == ["CRITICAL", "HIGH", "NORMAL", "LOW"]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("critical", 100),
        ("high", 50),
        ("normal", 0),
        ("low", -50),
        ("HIGH", 50),
        (Priority.LOW, -50),
        (100, 100),
        (-100, -100),
        (0, 0),
        (17, 17),
        ("25", 25),
        (None, None),
    ],
)
def test_priority_coerce(value, expected):
    assert Priority.coerce(value) == expected


@pytest.mark.parametrize("value", [101, -101, 1000, "urgent", "", 1.5, True, [1]])
def test_priority_coerce_rejects(value):
    with pytest.raises(ValueError):
        Priority.coerce(value)


@pytest.mark.parametrize(
    ("value", "label"),
    [
        (100, "critical"),
        (50, "high"),
        (99, "high"),
        (0, "normal"),
        (49, "normal"),
        (-1, "low"),
        (-100, "low"),
    ],
)
def test_priority_label_for(value, label):
    assert Priority.label_for(value) == label


# -- plain django.tasks Tasks (as Django 6.0's @task makes them) are adopted -------------


@pytest.mark.django_db
def test_plain_task_of_our_backend_is_adopted_and_runs():
    plain = Task(func=tasks.add.func, backend="default", queue_name="default")
    assert not isinstance(plain, JobTask)
    adopted = registry.get(plain)
    assert isinstance(adopted, JobTask) and adopted.func is tasks.add.func
    job = jobs.enqueue(plain, args=[4, 5])
    run_jobs()
    job.refresh_from_db()
    assert job.status == JobStatus.COMPLETED and job.result == 9


@pytest.mark.django_db
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
