"""OpenTelemetry tracing (the ``otel`` extra): a span around each enqueue, the trace
context stored in the job, and a span around each run that continues that trace.

Every function here does nothing when ``opentelemetry`` is not installed (one import
attempt, at module load: a run then costs one test of a module-level bool), and next to
nothing when it is installed but no tracer provider is configured (the API's default,
which records nothing): then no span is started and no trace context is stored.

Spans follow OpenTelemetry's messaging semantic conventions where they fit
(``messaging.system`` = ``django_jobs``, the queue as ``messaging.destination.name``,
the job id as ``messaging.message.id``); the rest are ``django_jobs.*`` attributes.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from datetime import datetime
from typing import Any

try:
    from opentelemetry import propagate, trace
    from opentelemetry.trace import SpanKind, StatusCode
except ImportError:  # the extra is not installed: every function below does nothing
    INSTALLED = False
else:
    INSTALLED = True

SYSTEM = "django_jobs"
# What a run ended as (``django_jobs.outcome``); "lost": its lease was taken over
# before its outcome could be written (another worker rescued it).
OUTCOMES = ("completed", "failed", "retrying", "cancelled")

_NOTHING: AbstractContextManager[Any] = nullcontext()  # stateless: one for every call
_provider: Any = None  # set_tracer_provider(); None: OpenTelemetry's global provider
_cache: tuple[Any, Any] = (None, None)  # (provider, its tracer for django_jobs)
# No global provider was configured when last looked up: look again after this time
# (monotonic). The lookup reads os.environ, a microsecond and more: too much per job.
_unconfigured_until = 0.0
logger = logging.getLogger("django_jobs")
RECHECK_SECONDS = 1.0


def _never_fails(function):
    """Tracing is an observer: an error in it is logged, never a job's or a worker's."""

    @functools.wraps(function)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except Exception:
            logger.exception("Tracing failed in %s; going on untraced", function.__name__)
            return None

    return guarded


def set_tracer_provider(provider: Any = None) -> None:
    """Trace with ``provider`` rather than OpenTelemetry's global tracer provider (as
    OpenTelemetry's instrumentations take ``tracer_provider=``); ``None`` goes back to the
    global one. Tests use it: the global provider can be set only once per process."""
    global _provider, _unconfigured_until
    _provider = provider
    _unconfigured_until = 0.0


def _tracer() -> Any:
    """Our tracer, or None when nothing would record what it traces."""
    global _cache, _unconfigured_until
    provider = _provider
    if provider is None:
        if _unconfigured_until and time.monotonic() < _unconfigured_until:
            return None
        provider = trace.get_tracer_provider()
    if isinstance(provider, (trace.ProxyTracerProvider, trace.NoOpTracerProvider)):
        # The API alone, no SDK configured (yet: a provider configured later is used
        # from the first call after RECHECK_SECONDS).
        if _provider is None:
            _unconfigured_until = time.monotonic() + RECHECK_SECONDS
        return None
    cached, tracer = _cache
    if cached is not provider:  # an SDK's get_tracer() builds a new tracer every call
        tracer = provider.get_tracer(SYSTEM)
        _cache = (provider, tracer)
    return tracer


def enabled() -> bool:
    """Whether enqueues and runs are traced now: OpenTelemetry is installed and a
    tracer provider is configured."""
    return INSTALLED and _tracer() is not None


def producing(job: Any, count: int | None = None) -> AbstractContextManager[Any]:
    """A context manager for writing ``job``: a PRODUCER span ``django_jobs enqueue
    <task>`` whose context is stored in ``job.trace_context`` before the write (so it
    must wrap it), and ``messaging.message.id`` set once the job has an id. With
    ``count``, ``job`` is the template of a batch of ``count`` jobs: they all get its
    trace context and the span gets the batch's id."""
    if not INSTALLED:
        return _NOTHING
    tracer = _tracer()
    if tracer is None:
        return _NOTHING
    return _producing(tracer, job, count)


@contextmanager
def _producing(tracer: Any, job: Any, count: int | None) -> Iterator[Any]:
    attributes: dict[str, Any] = {
        "messaging.system": SYSTEM,
        "messaging.operation.type": "send",
        "messaging.operation.name": "enqueue",
        "messaging.destination.name": job.queue,
        "django_jobs.task": job.task_name,
    }
    if count is not None:
        attributes["messaging.batch.message_count"] = count
    with tracer.start_as_current_span(
        f"{SYSTEM} enqueue {job.task_name}", kind=SpanKind.PRODUCER, attributes=attributes
    ) as span:
        # A span the sampler dropped is still valid: storing its context keeps the trace
        # whole (and tells the worker not to sample its run either).
        if span.get_span_context().is_valid:
            carrier: dict[str, str] = {}
            propagate.inject(carrier)  # the current context: this span
            job.trace_context = carrier or None
        yield span
        if span.is_recording():
            if count is not None:
                span.set_attribute("django_jobs.batch_id", str(job.batch_id))
            elif job.pk is not None:  # None: a job holding its unique key was returned
                span.set_attribute("messaging.message.id", str(job.pk))


def running(job: Any) -> AbstractContextManager[Any]:
    """A context manager around running ``job``: a CONSUMER span ``django_jobs run
    <task>``, the child of the span that enqueued it (from ``job.trace_context``; without
    one, of the current span or a new trace), current while the task's code runs. It
    yields the span (None when not tracing), for :func:`finished`."""
    if not INSTALLED:
        return _NOTHING
    tracer = _tracer()
    if tracer is None:
        return _NOTHING
    return tracer.start_as_current_span(
        f"{SYSTEM} run {job.task_name}",
        context=_parent(job),
        kind=SpanKind.CONSUMER,
        attributes=_run_attributes(job),
    )


@_never_fails
def finished(span: Any, status: str, job: Any) -> None:
    """Record on ``span`` (from :func:`running`) what the run ended as: ``status`` is
    what ``execute`` returned; a failure's error is the one this attempt wrote."""
    if span is None or not span.is_recording():
        return
    outcome = str(status) if status in OUTCOMES else "lost"
    span.set_attribute("django_jobs.outcome", outcome)
    error = job.error if outcome != "completed" else None
    if not isinstance(error, dict) or error.get("attempt") != job.attempts:
        error = None  # an earlier attempt's, still on the job
    if error:
        # What span.record_exception() writes; the exception object itself is gone
        # (caught and written by then), its error entry has all of it.
        span.add_event(
            "exception",
            {
                "exception.type": error.get("exception_class_path") or error.get("type", ""),
                "exception.message": error.get("message", ""),
                "exception.stacktrace": error.get("traceback", ""),
            },
        )
    if outcome in ("failed", "retrying") or (outcome == "lost" and error):
        description = f"{error.get('type', '')}: {error.get('message', '')}" if error else None
        span.set_status(StatusCode.ERROR, description)


@_never_fails
def stopped(job: Any) -> None:
    """A run span for an attempt whose executor the worker stopped (a hard timeout, a
    terminated cancel, a crash): the executor's own span died with its process. From the
    attempt's start to now, with what the worker recorded."""
    if not INSTALLED:
        return
    tracer = _tracer()
    if tracer is None:
        return
    started = job.started_at
    span = tracer.start_span(
        f"{SYSTEM} run {job.task_name}",
        context=_parent(job),
        kind=SpanKind.CONSUMER,
        attributes=_run_attributes(job),
        start_time=_ns(started) if isinstance(started, datetime) else None,
    )
    try:
        finished(span, job.status, job)
    finally:
        span.end()


@_never_fails
def flush(timeout_seconds: float = 3.0) -> None:
    """Export the spans the provider still buffers: a forked worker process exits
    without running atexit, where the SDK would flush them."""
    if not INSTALLED:
        return
    provider = _provider if _provider is not None else trace.get_tracer_provider()
    force_flush = getattr(provider, "force_flush", None)
    if force_flush is not None:
        force_flush(int(timeout_seconds * 1000))


def _parent(job: Any) -> Any:
    """The context stored at enqueue; None (the current one) without one, or with a
    value written around ``enqueue()`` that is no carrier: a bad row never fails a run."""
    carrier = job.trace_context
    if not carrier or not isinstance(carrier, dict):
        return None
    try:
        return propagate.extract(carrier)
    except Exception:  # noqa: BLE001 - {"traceparent": 1}, {"baggage": 5}: untraced parent
        logger.warning("Job %s has a trace context that is no carrier: ignored", job.pk)
        return None


def _run_attributes(job: Any) -> dict[str, Any]:
    return {
        "messaging.system": SYSTEM,
        "messaging.operation.type": "process",
        "messaging.operation.name": "run",
        "messaging.destination.name": job.queue,
        "messaging.message.id": str(job.pk),
        "django_jobs.task": job.task_name,
        "django_jobs.attempt": job.attempts,
    }


def _ns(moment: datetime) -> int:
    # Never after now: the database clock may run ahead of ours.
    return min(int(moment.timestamp() * 1e9), time.time_ns())
