"""Error classification and retry backoff."""

from __future__ import annotations

import random
import traceback as tb
from datetime import UTC, datetime
from typing import Any

from ..conf import jobs_settings
from ..exceptions import PermanentError, Retry

TRANSIENT_TYPES: tuple[type[BaseException], ...] = (TimeoutError, ConnectionError, OSError)
TRANSIENT_WORDS = ("timeout", "connection", "temporary", "unavailable")


def is_transient(exc: BaseException, retry_on=(), dont_retry_on=()) -> bool:
    """Whether a failed attempt may be retried, by the rules of SPEC section 7."""
    if isinstance(exc, Retry):
        return True
    if isinstance(exc, PermanentError):
        return False
    if dont_retry_on and isinstance(exc, tuple(dont_retry_on)):
        return False
    if retry_on and isinstance(exc, tuple(retry_on)):
        return True
    if isinstance(exc, TRANSIENT_TYPES):
        return True
    message = str(exc).lower()
    return any(word in message for word in TRANSIENT_WORDS)


def backoff_delay(n: int, base: float, backoff: float, cap: float, jitter: bool) -> float:
    """Delay before retry ``n`` (1-based): min(base * backoff**(n-1), cap), jittered."""
    try:
        delay = base * (backoff ** (n - 1))
    except OverflowError:
        delay = cap
    delay = min(delay, cap)
    if jitter:
        delay *= random.uniform(0.5, 1.5)  # noqa: S311 - not cryptographic
    return max(0.0, delay)


def retry_delay_for(job, exc: BaseException, task=None) -> float | None:
    """Seconds until the next attempt, or None when the job must fail for good."""
    retry_on = getattr(task, "retry_on", ()) if task is not None else ()
    dont_retry_on = getattr(task, "dont_retry_on", ()) if task is not None else ()
    if not is_transient(exc, retry_on, dont_retry_on):
        return None
    if job.retry_count >= job.max_retries:
        return None
    if isinstance(exc, Retry) and exc.delay is not None:
        return max(0.0, float(exc.delay))
    return backoff_delay(
        job.retry_count + 1,
        job.retry_delay,
        job.retry_backoff,
        job.max_retry_delay,
        job.retry_jitter,
    )


def error_entry(
    exc: BaseException | None = None,
    *,
    type_path: str | None = None,
    message: str | None = None,
    traceback: str | None = None,
    job=None,
) -> dict[str, Any]:
    """One entry of ``Job.errors``: type, message, full traceback, attempt, worker, time."""
    if exc is not None:
        cls = type(exc)
        type_path = f"{cls.__module__}.{cls.__qualname__}"
        message = str(exc)
        traceback = "".join(tb.format_exception(exc))
    type_path = type_path or "builtins.Exception"
    return {
        "type": type_path.rsplit(".", 1)[-1],
        "exception_class_path": type_path,
        "message": message or "",
        "traceback": traceback or "",
        "attempt": getattr(job, "attempts", None),
        "worker_id": getattr(job, "worker_id", None),
        "at": datetime.now(UTC).isoformat(),
    }


def default_options() -> dict[str, Any]:
    return {
        "max_retries": jobs_settings.DEFAULT_MAX_RETRIES,
        "retry_delay": jobs_settings.DEFAULT_RETRY_DELAY,
        "retry_backoff": jobs_settings.DEFAULT_RETRY_BACKOFF,
        "retry_jitter": jobs_settings.DEFAULT_RETRY_JITTER,
        "max_retry_delay": jobs_settings.MAX_RETRY_DELAY,
        "timeout": jobs_settings.DEFAULT_TIMEOUT,
    }
