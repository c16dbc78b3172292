"""The task registry, the ``@job`` decorator and the task class shared with django.tasks."""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.dispatch import Signal
from django.utils.module_loading import autodiscover_modules, import_string

from ._compat import DEFAULT_TASK_QUEUE_NAME, InvalidTask, Task, task_backends
from .conf import finite, to_seconds
from .enums import Priority
from .exceptions import TaskNotFound
from .signals import task_registered

BACKEND_PATH = "django_jobs.backend.JobsBackend"
# Alias used by @job tasks when no TASKS entry points at JobsBackend.
INTERNAL_ALIAS = "django_jobs"


def _as_exception_tuple(value: Any, option: str) -> tuple[type[BaseException], ...]:
    if not value:
        return ()
    items = value if isinstance(value, (list, tuple, set, frozenset)) else (value,)
    out = []
    for item in items:
        if isinstance(item, str):
            item = import_string(item)
        if not (inspect.isclass(item) and issubclass(item, BaseException)):
            raise TypeError(f"{option} must hold exception classes, got {item!r}.")
        out.append(item)
    return tuple(out)


def jobs_backend_alias() -> str:
    """The TASKS alias configured with JobsBackend, else our internal alias."""
    for alias, params in (getattr(settings, "TASKS", None) or {}).items():
        backend = params.get("BACKEND", "")
        if backend == BACKEND_PATH:
            return alias
        try:
            if issubclass(import_string(backend), import_string(BACKEND_PATH)):
                return alias
        except Exception:  # noqa: BLE001 - an unimportable backend is Django's to report
            continue
    return INTERNAL_ALIAS


_internal_backend = None


def internal_backend():
    global _internal_backend
    if _internal_backend is None:
        # By path, as Django's task_backends: the backend sits above this module.
        _internal_backend = import_string(BACKEND_PATH)(INTERNAL_ALIAS, {"QUEUES": []})
    return _internal_backend


# The enqueue options ``build_job`` takes by name (the retry policy's others go through
# its ``options=``; ``depends_on`` and ``unique_key`` only a write uses).
BUILD_OPTIONS = (
    "priority",
    "queue",
    "scheduled_at",
    "delay",
    "max_retries",
    "retry_delay",
    "timeout",
    "tags",
    "metadata",
    "owner",
)
# The enqueue options a trigger may carry (``jobs.on(..., **options)``): those of
# ``jobs.enqueue`` but the ones only django_jobs itself passes (schedule, batch, ...).
TRIGGER_OPTIONS = frozenset(
    {*BUILD_OPTIONS, "retry_backoff", "retry_jitter", "max_retry_delay", "depends_on", "unique_key"}
)


@dataclass(frozen=True, eq=False, slots=True)
class Trigger:
    """A declaration: enqueue a job of a task whenever ``signal`` fires (SPEC 5.11).

    ``when``, ``args``, ``kwargs`` and any value of ``options`` may be callables of the
    signal's arguments (``sender``, ``signal`` and what the signal sends, e.g.
    ``instance``, ``created``, ``using`` for ``post_save``), called each time it fires;
    ``args`` may also be a list, ``kwargs`` a dict and an option a plain value. Only the
    shape is checked here; ``jobs.on`` and ``@job(on=...)`` connect it (the ``triggers``
    module) and validate the task and the options then.
    """

    signal: Signal
    sender: Any = None
    when: Callable[..., Any] | None = None
    args: Any = None
    kwargs: Any = None
    options: Mapping[str, Any] = field(default_factory=dict)
    dispatch_uid: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.signal, Signal):
            raise TypeError(f"A trigger needs a django.dispatch.Signal, got {self.signal!r}.")
        if self.when is not None and not callable(self.when):
            raise TypeError(
                f"when must be a callable of the signal's arguments, got {self.when!r}."
            )
        if not (self.args is None or callable(self.args) or isinstance(self.args, (list, tuple))):
            raise TypeError(f"args must be a list or a callable, got {self.args!r}.")
        if not (self.kwargs is None or callable(self.kwargs) or isinstance(self.kwargs, dict)):
            raise TypeError(f"kwargs must be a dict or a callable, got {self.kwargs!r}.")
        if self.dispatch_uid is not None and (
            not isinstance(self.dispatch_uid, str) or not self.dispatch_uid
        ):
            raise TypeError(f"dispatch_uid must be a non-empty string, got {self.dispatch_uid!r}.")
        unknown = set(self.options) - TRIGGER_OPTIONS
        if unknown:
            raise TypeError(f"Unknown trigger option(s): {', '.join(sorted(unknown))}.")
        object.__setattr__(self, "options", dict(self.options))


def trigger(
    signal: Signal,
    *,
    sender: Any = None,
    when: Callable[..., Any] | None = None,
    args: Any = None,
    kwargs: Any = None,
    dispatch_uid: str | None = None,
    **options: Any,
) -> Trigger:
    """One trigger of ``@job(on=[...])``: the arguments of ``jobs.on`` but the task."""
    return Trigger(
        signal,
        sender=sender,
        when=when,
        args=args,
        kwargs=kwargs,
        options=options,
        dispatch_uid=dispatch_uid,
    )


def _declared_triggers(on: Any, flat: dict[str, Any]) -> tuple[Trigger, ...]:
    """``@job(on=...)``: a signal (``sender=``, ``when=``, ``args=``, ``kwargs=`` beside it
    apply to it), a ``trigger(...)``, or a list of both."""
    if on is None:
        if flat:
            raise TypeError(f"@job option(s) {', '.join(sorted(flat))} need on=<signal>.")
        return ()
    items = list(on) if isinstance(on, (list, tuple)) else [on]
    plain = [item for item in items if isinstance(item, Signal)]
    if flat and not plain:
        raise TypeError(
            f"@job option(s) {', '.join(sorted(flat))} apply to the signals given in on=; "
            "a trigger(...) carries its own."
        )
    out = []
    for item in items:
        if isinstance(item, Trigger):
            out.append(item)
        elif isinstance(item, Signal):
            out.append(Trigger(item, **flat))
        else:
            raise TypeError(f"on= takes signals and trigger(...)s, got {item!r}.")
    return tuple(out)


@dataclass(frozen=True, slots=True, kw_only=True)
class JobTask(Task):
    """A ``django.tasks.Task`` carrying django_jobs' options.

    ``@job`` returns one; so does ``@task`` when TASKS points at ``JobsBackend`` (it is
    the backend's ``task_class``). ``task(...)`` calls the function inline.
    """

    job_name: str | None = None
    max_retries: int | None = None
    retry_delay: float | timedelta | None = None
    retry_backoff: float | None = None
    retry_jitter: bool | None = None
    max_retry_delay: float | timedelta | None = None
    timeout: float | timedelta | None = None
    retry_on: tuple = ()
    dont_retry_on: tuple = ()
    tags: tuple = ()
    description: str = ""
    unique: bool = False
    cron: str | None = None
    interval: float | timedelta | None = None
    # Declarations (signals, callables), not data: no part of a task's identity.
    triggers: tuple[Trigger, ...] = field(default=(), compare=False, repr=False)

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        priority = self.priority
        if isinstance(priority, str):
            # Names ("high") become numbers; numbers are validated by Django below.
            try:
                priority = Priority.coerce(priority)
            except ValueError as exc:
                raise InvalidTask(str(exc)) from None
        elif isinstance(priority, Priority):
            priority = int(priority)
        set_(self, "priority", priority)
        for key in ("retry_delay", "max_retry_delay", "timeout", "interval"):
            value = getattr(self, key)
            if value is not None:
                seconds = to_seconds(value, key)
                if seconds < 0 or (key == "timeout" and seconds == 0):
                    raise ValueError(f"{key} must be positive, got {value!r}.")
                set_(self, key, seconds)
        if self.max_retries is not None and (
            isinstance(self.max_retries, bool)
            or not isinstance(self.max_retries, int)
            or self.max_retries < 0
        ):
            raise ValueError(f"max_retries must be an integer >= 0, got {self.max_retries!r}.")
        if self.retry_backoff is not None:
            finite(self.retry_backoff, "retry_backoff")
        if self.retry_backoff is not None and self.retry_backoff < 1:
            raise ValueError(f"retry_backoff must be >= 1, got {self.retry_backoff!r}.")
        set_(self, "retry_on", _as_exception_tuple(self.retry_on, "retry_on"))
        set_(self, "dont_retry_on", _as_exception_tuple(self.dont_retry_on, "dont_retry_on"))
        tags = (self.tags,) if isinstance(self.tags, str) else tuple(self.tags or ())
        set_(self, "tags", tags)
        triggers = tuple(self.triggers or ())
        if not all(isinstance(t, Trigger) for t in triggers):
            raise TypeError(f"triggers must hold trigger(...)s, got {self.triggers!r}.")
        set_(self, "triggers", triggers)
        Task.__post_init__(self)
        if isinstance(self.priority, float):  # 50.0 passed Django's whole-number check
            set_(self, "priority", int(self.priority))
        registry.register(self)

    @property
    def name(self) -> str:
        """The registered name: ``name=`` if given, else ``module.function``."""
        return self.job_name or self.module_path

    @property
    def is_async(self) -> bool:
        return _is_coroutine_function(self.func)

    @property
    def accepts_progress_callback(self) -> bool:
        return _accepts_progress_callback(self.func)

    def get_backend(self):
        if self.backend == INTERNAL_ALIAS and INTERNAL_ALIAS not in (
            getattr(settings, "TASKS", None) or {}
        ):
            return internal_backend()
        return task_backends[self.backend]

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.call(*args, **kwargs)

    if "__reduce__" in vars(Task):  # Django 6.x (the backport's tasks do not pickle)

        def __reduce__(self):
            # Django pickles a task as its fields; the triggers hold signals and lambdas,
            # and the task registered under the same path keeps them.
            reduced: Any = Task.__reduce__(self)  # (Task._reconstruct, (fields,))
            constructor, (fields_,) = reduced
            return constructor, ({k: v for k, v in fields_.items() if k != "triggers"},)


def _is_jobs_task(obj: Any) -> bool:
    return isinstance(obj, JobTask)


class TaskRegistry:
    """Name -> task. Thread-safe; discovery of jobs.py/tasks.py happens once, at start-up
    (``AppConfig.ready()``, for the triggers tasks declare) or at first need before it."""

    def __init__(self) -> None:
        self._tasks: dict[str, JobTask] = {}
        self._lock = threading.RLock()
        self._discovered = False

    def register(self, task: JobTask) -> JobTask:
        name = task.name
        with self._lock:
            existing = self._tasks.get(name)
            if existing is not None:
                if existing.func is task.func:
                    return existing  # a .using() variant of a registered task
                same_place = existing.module_path == task.module_path
                if not same_place:
                    raise ImproperlyConfigured(
                        f"Task name {name!r} is already registered for "
                        f"{existing.module_path}; cannot register {task.module_path} under "
                        "the same name. Pass a different name=."
                    )
                # Same module path, new function object: a module reload replaces it.
            self._tasks[name] = task
        # Outside the lock: the receiver connects the task's triggers, and a mistake in
        # them raises out of the decorator, at import, and leaves the task unregistered.
        try:
            task_registered.send(sender=JobTask, task=task)
        except BaseException:
            with self._lock:
                if self._tasks.get(name) is task:
                    if existing is None:
                        del self._tasks[name]
                    else:
                        self._tasks[name] = existing
            raise
        return task

    def unregister(self, name: str) -> None:
        with self._lock:
            self._tasks.pop(name, None)

    def autodiscover(self) -> None:
        with self._lock:
            if self._discovered:
                return
            self._discovered = True
        autodiscover_modules("jobs", "tasks")

    def get(self, name_or_task: Any) -> JobTask:
        """The task for a name or a task object (raises ``TaskNotFound``)."""
        if isinstance(name_or_task, str):  # first: the worker's case, once per job
            return self._get_by_name(name_or_task)
        if isinstance(name_or_task, JobTask):
            return name_or_task
        if isinstance(name_or_task, Task):
            return self.adopt(name_or_task)
        if callable(name_or_task):
            for task in list(self._tasks.values()):
                if task.func is name_or_task:
                    return task
            raise TaskNotFound(getattr(name_or_task, "__qualname__", repr(name_or_task)))
        raise TaskNotFound(repr(name_or_task))

    def _get_by_name(self, name: str) -> JobTask:
        if not name:
            raise TaskNotFound(repr(name))
        task = self._tasks.get(name)
        if task is not None:
            return task
        self.autodiscover()
        task = self._tasks.get(name)
        if task is not None:
            return task
        # A dotted path to a module-level task that discovery did not reach.
        if "." in name:
            try:
                obj = import_string(name)
            except (ImportError, AttributeError, ValueError):
                obj = None
            if _is_jobs_task(obj):
                return self._tasks.get(name, obj)
        raise TaskNotFound(name)

    def adopt(self, task: Task) -> JobTask:
        """The JobTask for a plain ``django.tasks.Task`` bound to a JobsBackend.

        Django versions whose ``@task`` ignores the backend's ``task_class`` (6.0) hand
        the backend plain Tasks; they are registered under their dotted path on first use.
        """
        if not isinstance(task.get_backend(), import_string(BACKEND_PATH)):
            raise TaskNotFound(
                f"{task.module_path} (a task of another backend; decorate it with @job or "
                "point TASKS at django_jobs.backend.JobsBackend)"
            )
        existing = self._tasks.get(task.module_path)
        if existing is not None and existing.func is task.func:
            return existing
        return JobTask(
            func=task.func,
            priority=task.priority,
            backend=task.backend,
            queue_name=task.queue_name,
            takes_context=task.takes_context,
        )

    def names(self) -> list[str]:
        self.autodiscover()
        return sorted(self._tasks)

    def all(self) -> list[JobTask]:
        self.autodiscover()
        return [self._tasks[n] for n in sorted(self._tasks)]

    def __contains__(self, name: str) -> bool:
        return name in self._tasks


registry = TaskRegistry()

TASK_OPTIONS = {
    "max_retries",
    "retry_delay",
    "retry_backoff",
    "retry_jitter",
    "max_retry_delay",
    "timeout",
    "retry_on",
    "dont_retry_on",
    "tags",
    "description",
    "unique",
    "cron",
    "interval",
}


def _make_task(
    func: Callable,
    *,
    name=None,
    queue=None,
    priority=None,
    backend=None,
    takes_context=False,
    on: Any = None,
    **options: Any,
) -> JobTask:
    flat: dict[str, Any] = {
        key: options.pop(key) for key in ("sender", "when", "args", "kwargs") if key in options
    }
    unknown = set(options) - TASK_OPTIONS
    if unknown:
        raise TypeError(f"Unknown @job option(s): {', '.join(sorted(unknown))}.")
    triggers = _declared_triggers(on, flat)
    # Without queue/priority the task carries Django's defaults ("default", 0), which
    # the manager maps to DEFAULT_QUEUE / DEFAULT_PRIORITY at enqueue time.
    return JobTask(
        func=func,
        job_name=name,
        queue_name=queue or DEFAULT_TASK_QUEUE_NAME,
        priority=priority if priority is not None else 0,
        backend=backend or jobs_backend_alias(),
        takes_context=takes_context,
        triggers=triggers,
        **options,
    )


def job(func: Callable | None = None, /, **options: Any):
    """Register a function as a task; works bare (``@job``) or with options.

    Options: ``name``, ``queue``, ``priority``, ``max_retries``, ``retry_delay``,
    ``retry_backoff``, ``retry_jitter``, ``max_retry_delay``, ``timeout``, ``retry_on``,
    ``dont_retry_on``, ``tags``, ``description``, ``unique``, ``takes_context``,
    ``backend``, ``cron``, ``interval``; ``on`` (a signal, a ``trigger(...)`` or a list
    of them: enqueue a job whenever it fires, see ``jobs.on``) with ``sender``, ``when``,
    ``args`` and ``kwargs`` for the signals given plainly.
    """
    if func is not None:
        return _make_task(func, **options)

    def decorator(f: Callable) -> JobTask:
        return _make_task(f, **options)

    return decorator


def register_task(name: str, handler: Callable, **options: Any) -> JobTask:
    """Register a plain function as the task ``name`` (same options as ``@job``)."""
    return _make_task(handler, name=name, **options)


@functools.lru_cache(maxsize=1024)
def _accepts_progress_callback(func) -> bool:
    # Read once per function: inspect.signature() costs more than a no-op job.
    try:
        return "progress_callback" in inspect.signature(func).parameters
    except (TypeError, ValueError):
        return False


@functools.lru_cache(maxsize=1024)
def _is_coroutine_function(func) -> bool:
    return inspect.iscoroutinefunction(func)


def default_unique_key(task_name: str, args: list, kwargs: dict) -> str:
    """``@job(unique=True)``: the task and its arguments identify the job."""
    payload = json.dumps([task_name, args, kwargs], sort_keys=True, separators=(",", ":"))
    return f"{task_name[:150]}:{hashlib.sha256(payload.encode()).hexdigest()}"
