"""Jobs triggered by events (SPEC 5.11): ``jobs.on(signal, task, ...)`` and ``@job(on=...)``.

A trigger is a receiver, connected strongly and once, that builds a job from the
signal's arguments when the signal fires and enqueues it when the sender's transaction
commits (at once outside a transaction). The task and the options are validated when the
trigger is connected, so mistakes raise at start-up; what can only fail when the signal
fires (``when``, ``args``, ``kwargs`` or an option callable raising, arguments that are
not JSON) is logged, and never reaches the code that sent the signal.
"""

from __future__ import annotations

import hashlib
import logging
import sys
import threading
from collections.abc import Callable
from functools import partial
from typing import Any

from django.db import connections, models, transaction
from django.dispatch import Signal

from .enqueue import BUILD_OPTIONS, build_job, enqueue_job
from .models.job import jobs_db
from .registry import JobTask, Trigger, registry, trigger

logger = logging.getLogger("django_jobs")


# Connected triggers by (signal, dispatch_uid, sender), as Django's dispatcher keys its
# receivers: a second identical connection returns the first.
_connected: dict[tuple[int, str, str], ConnectedTrigger] = {}
_lock = threading.Lock()


class ConnectedTrigger:
    """What ``jobs.on`` returns: the receiver connected to the signal.

    ``disconnect()`` stops it; ``connected`` says whether it still listens. The receiver
    never raises into the code that sent the signal.
    """

    def __init__(
        self, trigger: Trigger, task: JobTask, database: str | None, dispatch_uid: str
    ) -> None:
        self.trigger = trigger
        self.task = task
        self.database = database
        self.dispatch_uid = dispatch_uid
        self._key = (id(trigger.signal), dispatch_uid, _sender_key(trigger.sender))
        self._label: str | None = None

    @property
    def signal(self) -> Signal:
        return self.trigger.signal

    @property
    def sender(self) -> Any:
        return self.trigger.sender

    @property
    def task_name(self) -> str:
        return self.task.name

    @property
    def connected(self) -> bool:
        return _connected.get(self._key) is self

    def disconnect(self) -> bool:
        """Stop enqueueing; True if it was connected. Jobs already waiting for a commit
        are still enqueued."""
        with _lock:
            was_connected = _connected.get(self._key) is self
            if was_connected:
                del _connected[self._key]
                self.signal.disconnect(self, sender=self.sender, dispatch_uid=self.dispatch_uid)
        return was_connected

    def __call__(self, signal: Signal | None = None, sender: Any = None, **named: Any) -> None:
        """The receiver: build the job now, enqueue it when the sender's transaction
        commits."""
        arguments = {**named, "signal": signal, "sender": sender}
        trig = self.trigger
        try:
            if trig.when is not None and not trig.when(**arguments):
                return
            args = _resolve(trig.args, arguments)
            kwargs = _resolve(trig.kwargs, arguments)
            options = {name: _resolve(value, arguments) for name, value in trig.options.items()}
            # Validated now, in the sender's code, and the arguments taken as JSON: a
            # model instance changed before the commit changes nothing.
            job = _build(self.task, args, kwargs, options)
            db = self.database or jobs_db()
            alias = _transaction_alias(named.get("using"), db)
        except Exception:  # noqa: BLE001 - never fail the code that sent the signal
            self._log_failure("build")
            return
        try:
            transaction.on_commit(
                partial(self._enqueue, db, job.args, job.kwargs, options), using=alias
            )
        except Exception:  # noqa: BLE001 - e.g. autocommit off outside atomic()
            self._log_failure("enqueue")

    def _enqueue(self, db: str, args: list, kwargs: dict, options: dict[str, Any]) -> None:
        try:
            if transaction.get_connection(db).in_atomic_block:
                # The sender committed on another database while a transaction of the
                # jobs' database is open: a failed write must not break that one.
                with transaction.atomic(using=db):
                    enqueue_job(db, self.task, args, kwargs, **options)
            else:
                enqueue_job(db, self.task, args, kwargs, **options)
        except Exception:  # noqa: BLE001 - the sender's transaction has committed
            self._log_failure("enqueue")

    def _log_failure(self, step: str) -> None:
        logger.exception(
            "Trigger of %s on %s (sender %s): could not %s the job",
            self.task_name,
            self.signal_label,
            _sender_key(self.sender),
            step,
            extra={"action": "trigger_failed", "task": self.task_name, "step": step},
        )

    @property
    def signal_label(self) -> str:
        """The signal's dotted path if a loaded ``*signals*`` module names it (for logs)."""
        if self._label is None:
            self._label = _signal_label(self.signal)
        return self._label

    def __repr__(self) -> str:
        state = "connected" if self.connected else "disconnected"
        return (
            f"<ConnectedTrigger {self.task_name} on {self.signal_label} "
            f"(sender {_sender_key(self.sender)}, {state})>"
        )


def on(
    database: str | None,
    signal: Signal,
    task: Any,
    *,
    sender: Any = None,
    when: Callable[..., Any] | None = None,
    args: Any = None,
    kwargs: Any = None,
    dispatch_uid: str | None = None,
    **options: Any,
) -> ConnectedTrigger:
    """``JobManager.on`` for the jobs of database ``database`` (None: the jobs' database)."""
    declared = trigger(
        signal,
        sender=sender,
        when=when,
        args=args,
        kwargs=kwargs,
        dispatch_uid=dispatch_uid,
        **options,
    )
    return connect(declared, task, database)


def connect(trig: Trigger, task: Any, database: str | None = None) -> ConnectedTrigger:
    """Connect ``trig`` for ``task``; the trigger already connected if an identical one
    (same signal, sender and ``dispatch_uid``, by default derived from everything the
    trigger says) is. Raises ``TaskNotFound``, ``TypeError`` or ``ValueError`` for a bad
    task, constant arguments or options."""
    task = registry.get(task)
    check(trig, task)
    uid = trig.dispatch_uid or default_dispatch_uid(trig, task, database)
    handle = ConnectedTrigger(trig, task, database, uid)
    with _lock:
        existing = _connected.get(handle._key)
        if existing is not None:
            return existing
        # Strongly: the receiver is an object nothing else holds.
        trig.signal.connect(handle, sender=trig.sender, weak=False, dispatch_uid=uid)
        _connected[handle._key] = handle
    return handle


def check(trig: Trigger, task: JobTask) -> None:
    """Validate what ``trig`` fixes now: the task, constant arguments and options."""
    constants = {name: value for name, value in trig.options.items() if not callable(value)}
    _build(
        task,
        [] if callable(trig.args) else trig.args,
        {} if callable(trig.kwargs) else trig.kwargs,
        constants,
    )


def connect_task(task: JobTask) -> list[ConnectedTrigger]:
    """Connect the triggers ``task`` declares (``@job(on=...)``): all of them or, if one
    is wrong, none."""
    for declared in task.triggers:
        check(declared, task)
    return [connect(declared, task) for declared in task.triggers]


def connect_registered_task(sender: Any, task: JobTask, **kwargs: Any) -> None:
    """``task_registered`` receiver: a task module imported after start-up."""
    connect_task(task)


def connect_declared() -> list[ConnectedTrigger]:
    """At start-up: import every app's ``tasks``/``jobs`` module and connect the triggers
    their tasks declare, so they listen in every process, not only in workers."""
    registry.autodiscover()
    return [handle for task in registry.all() for handle in connect_task(task)]


def connected_triggers() -> list[ConnectedTrigger]:
    """Every trigger connected now (``jobs.on`` and ``@job(on=...)``)."""
    return list(_connected.values())


def default_dispatch_uid(trig: Trigger, task: JobTask, database: str | None) -> str:
    """Derived from everything the trigger says, callables by where their code is (and
    the values they close over), so the same ``jobs.on(...)`` run twice (a module
    imported twice, ``ready()`` run twice) connects once, while triggers that differ in
    anything connect each."""
    parts = [
        task.name,
        database or "",
        _sender_key(trig.sender),
        _value_key(trig.when),
        _value_key(trig.args),
        _value_key(trig.kwargs),
        *(f"{name}={_value_key(value)}" for name, value in sorted(trig.options.items())),
    ]
    digest = hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:24]
    return f"django_jobs.on:{task.name}:{digest}"


def _resolve(value: Any, arguments: dict[str, Any]) -> Any:
    return value(**arguments) if callable(value) else value


def _build(task: JobTask, args: Any, kwargs: Any, options: dict[str, Any]):
    """``build_job`` over trigger options (raises as ``enqueue`` would; writes nothing)."""
    known = {name: options[name] for name in BUILD_OPTIONS if name in options}
    extra = {
        name: value
        for name, value in options.items()
        if name not in known and name not in ("depends_on", "unique_key")
    }
    unique_key = options.get("unique_key")
    if unique_key is not None and (
        not isinstance(unique_key, str) or not unique_key or len(unique_key) > 255
    ):
        raise ValueError("unique_key must be a non-empty string of at most 255 characters.")
    return build_job(task, args, kwargs, **known, options=extra)


def _transaction_alias(using: Any, db: str) -> str:
    """The database whose commit enqueues: the one the signal names (``using=``, sent by
    Django's model signals: the sender's transaction), else the jobs' database."""
    if isinstance(using, str) and using in connections.settings:
        return using
    return db


def _sender_key(sender: Any) -> str:
    if sender is None:
        return "*"
    if isinstance(sender, str):
        return sender.lower()  # "app_label.ModelName", resolved by model signals
    if isinstance(sender, type) and issubclass(sender, models.Model):
        return sender._meta.label_lower
    if isinstance(sender, type):
        return f"{sender.__module__}.{sender.__qualname__}"
    return f"{type(sender).__module__}.{type(sender).__qualname__}@{id(sender):x}"


def _value_key(value: Any, depth: int = 0) -> str:
    code = getattr(value, "__code__", None)
    if code is not None and depth < 3:  # a function closing over itself stops here
        cells = [_cell_key(cell, depth) for cell in (getattr(value, "__closure__", None) or ())]
        return (
            f"{getattr(value, '__module__', '')}.{getattr(value, '__qualname__', '')}"
            f"@{code.co_filename}:{code.co_firstlineno}"
            f"{cells!r}{getattr(value, '__defaults__', None)!r}"
        )
    if isinstance(value, models.Model):
        return f"{value._meta.label_lower}:{value.pk}"
    return repr(value)


def _cell_key(cell: Any, depth: int) -> str:
    try:
        contents = cell.cell_contents
    except ValueError:  # an empty cell
        return "<empty>"
    return _value_key(contents, depth + 1)


def _signal_label(signal: Signal) -> str:
    for name, module in list(sys.modules.items()):
        if "signal" not in name:
            continue
        for attr, value in list(getattr(module, "__dict__", {}).items()):
            if value is signal:
                return f"{name}.{attr}"
    return repr(signal)
