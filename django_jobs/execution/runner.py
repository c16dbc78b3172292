"""Running one claimed job in this process: the task call and the recorded outcome.

Used by worker executor processes, by EAGER mode and by ``testing.run_jobs()``. The job
must be held (status running, with its lease): every write is guarded by that lease.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from django.db import connections

from .. import signals, tracing
from .._compat import TaskContext, task_finished, task_started
from ..exceptions import JobCancelled, PermanentError, TaskNotFound
from ..jsonvalues import has_nul
from ..models import JobStatus
from ..results import backend_for, result_from_job, send_django_signal
from . import context
from .policy import error_entry, retry_delay_for
from .resilience import discard

logger = logging.getLogger("django_jobs.execution")


def _normalize_result(value: Any) -> Any:
    if value is None or value is True or value is False or type(value) is int:
        return value  # already what JSON gives back
    if type(value) is str and "\x00" not in value:
        return value
    # TypeError, as Django's own backends fail such a task (and its conformance tests
    # expect); never retried (see policy.is_transient).
    try:
        text = json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"The task returned a value that is not JSON-serializable: {exc}") from exc
    if has_nul(text):
        # PostgreSQL cannot store it: fail the job clearly rather than at the write.
        raise TypeError(
            "The task returned a value containing a NUL character, which the database cannot store."
        )
    return json.loads(text)


def _call(task, job, state) -> Any:
    args = list(job.args or [])
    kwargs = dict(job.kwargs or {})
    if task.accepts_progress_callback and "progress_callback" not in kwargs:
        kwargs["progress_callback"] = context.progress
    if task.takes_context:
        result = result_from_job(job, backend_for(job.backend or None))
        args.insert(0, TaskContext(task_result=result))
    if task.is_async:

        async def runner():
            # Run inside the job's context so current_job()/progress() see it.
            return await task.func(*args, **kwargs)

        return asyncio.run(runner())
    return task.func(*args, **kwargs)


def run_job(job, *, allow_retry: bool = True) -> str:
    """Run ``job`` (already claimed) to an outcome; returns the resulting status.

    Never raises for a bad job: unknown tasks, failing code, unserialisable results and
    failing signal receivers all end in a recorded failure.
    """
    status, result = execute(job, allow_retry=allow_retry)
    if status == JobStatus.COMPLETED:
        record_completed(job, result)
    return job.status


def _write_now(fn: Callable, *args) -> Any:
    return fn(*args)


def started_at(job):
    """When ``job`` starts now, on the database clock: the claim's database time plus
    the time this process held the job since the claim returned (a batch's later jobs
    start after its first). Never before the claim, nor before ``created_at``."""
    claimed = getattr(job, "_claimed_mono", None)
    if claimed is None or job.started_at is None:
        return job.started_at
    return job.started_at + timedelta(seconds=max(0.0, time.monotonic() - claimed))


def reset_connections() -> None:
    """Drop this thread's database connections: a job interrupted in the middle of a
    query (a cooperative cancel arrives as an exception at any instruction) leaves its
    connection mid-protocol, and psycopg only cleans up after KeyboardInterrupt; one
    interrupted inside ``atomic()`` leaves the block's state behind. The next query opens
    a fresh one."""
    for conn in connections.all(initialized_only=True):
        _cancel_running_query(conn)
        discard(conn)


def _cancel_running_query(conn) -> None:
    """Ask PostgreSQL to stop the query the interrupted job left running: closing the
    connection alone would not (the server notices a vanished client only when it next
    talks to it), and the query could go on for minutes, holding its locks."""
    raw = conn.connection
    if raw is None or conn.vendor != "postgresql":
        return
    try:
        cancel_safe = getattr(raw, "cancel_safe", None)  # psycopg 3.2+: bounded wait
        if cancel_safe is not None:
            cancel_safe(timeout=2.0)
        else:
            raw.cancel()
    except Exception:  # noqa: BLE001 - best effort: the connection is dropped anyway
        pass


def execute(job, *, allow_retry: bool = True, write: Callable = _write_now) -> tuple[str, Any]:
    """Run ``job``'s code. A failure or cancellation is recorded at once and returns
    ``(status, None)``; a success returns ``(JobStatus.COMPLETED, result)`` and is *not*
    written yet: the caller records it, alone (``record_completed``) or with others
    (``Job.objects.complete_many``, the worker's batched completion).

    ``write(fn, *args)`` performs each outcome write (the worker's executors retry them
    through a database outage). A job whose cancel was requested before it started is
    recorded cancelled without running. With OpenTelemetry configured, all of it is a
    span continuing the trace of the job's enqueue (``tracing.running``).
    """
    with tracing.running(job) as span:
        status, result = _execute(job, allow_retry, write)
        tracing.finished(span, status, job)
    return status, result


def _execute(job, allow_retry: bool, write: Callable) -> tuple[str, Any]:
    job.started_at = started_at(job)
    job.status = JobStatus.RUNNING
    if job.cancel_requested:
        write(record_cancelled, job, "cancelled before it started")
        return job.status, None
    try:
        task = job.get_task()
    except TaskNotFound as exc:
        write(record_failed, job, exc, None, False)
        return job.status, None
    if not isinstance(job.args, list) or not isinstance(job.kwargs, dict):
        # A row written around enqueue() (raw SQL, a bad migration): fail it, clearly.
        undecodable = PermanentError(
            f"The job's stored arguments cannot be decoded: args={job.args!r:.200}, "
            f"kwargs={job.kwargs!r:.200} (expected a JSON list and a JSON object)."
        )
        write(record_failed, job, undecodable, None, False)
        return job.status, None

    signals.send(signals.job_started, job)
    send_django_signal(task_started, job)
    with context.activate(job) as state:
        try:
            # While interruptible, a cancel seen at the worker's heartbeat is raised here
            # as JobCancelled (see worker.executor); never once the outcome is recorded.
            try:
                context.become_interruptible(state)
                value = _call(task, job, state)
            finally:
                state.interruptible = False
                if state.interrupted:
                    # Wherever the interrupt landed (even if the job swallowed it).
                    reset_connections()
        except JobCancelled:
            write(record_cancelled, job, "cancelled while running")
            return job.status, None
        except (KeyboardInterrupt, SystemExit) as exc:
            # A job calling sys.exit() fails like any other; Ctrl-C in EAGER mode too.
            write(record_failed, job, exc, task, allow_retry)
            return job.status, None
        except BaseException as exc:  # noqa: BLE001 - every failure is recorded
            write(record_failed, job, exc, task, allow_retry)
            return job.status, None
    try:
        result = _normalize_result(value)
    except TypeError as exc:
        # Running it again would return the same value: fail for good.
        write(record_failed, job, exc, task, False)
        return job.status, None
    return JobStatus.COMPLETED, result


def record_completed(job, result: Any) -> bool:
    """Write one success (guarded by the lease) and send its signals."""
    if job.set_completed(result):
        completed_signals(job, result)
        return True
    logger.warning(
        "Job %s finished but its lease was taken over; result discarded",
        job.pk,
        extra={"action": "lease_lost", "job_id": job.pk},
    )
    return False


def completed_signals(job, result: Any) -> None:
    signals.send(signals.job_completed, job, result=result)
    send_django_signal(task_finished, job)


def record_failed(job, exc: BaseException, task, allow_retry: bool = True) -> bool:
    """Write a failed attempt of a held job (retry or dead letter) and send its signals;
    False if the lease was taken over."""
    entry = error_entry(exc, job=job)
    delay = retry_delay_for(job, exc, task) if allow_retry else None
    if not job.set_failed(entry, retry_in=delay):
        logger.warning("Job %s failed but its lease was taken over", job.pk)
        return False
    record_failure(job, entry, delay)
    return True


def record_cancelled(job, reason: str) -> bool:
    """Write and signal the cancellation of a held job (cooperative or terminated)."""
    if not job.set_cancelled_while_running(reason):
        return False
    cancelled_signals(job)
    return True


def cancelled_signals(job) -> None:
    signals.send(signals.job_cancelled, job, reason=job.cancel_reason)
    send_django_signal(task_finished, job)


def record_failure(job, entry: dict, delay: float | None) -> None:
    """Log and signal a failed attempt already written to the database."""
    if job.status == JobStatus.CANCELLED:
        # Its cancel was requested while it was held: a cancel is a cancel.
        logger.info(
            "Job %s (%s) failed (%s) after its cancel was requested: cancelled",
            job.pk,
            job.task_name,
            entry["type"],
            extra={"action": "job_cancelled", "job_id": job.pk},
        )
        cancelled_signals(job)
        return
    if delay is not None:
        logger.info(
            "Job %s (%s) failed (%s), retry %s/%s in %.1fs",
            job.pk,
            job.task_name,
            entry["type"],
            job.retry_count,
            job.max_retries,
            delay,
            extra={"action": "job_retrying", "job_id": job.pk},
        )
        signals.send(signals.job_retrying, job, error=entry, delay=delay)
    else:
        logger.error(
            "Job %s (%s) failed for good: %s: %s",
            job.pk,
            job.task_name,
            entry["type"],
            entry["message"],
            extra={"action": "job_failed", "job_id": job.pk},
        )
        signals.send(signals.job_failed, job, error=entry)
        if job.status == JobStatus.FAILED:
            signals.send(signals.job_dead_lettered, job, error=entry)
        send_django_signal(task_finished, job)
