"""Error classification and retry backoff (SPEC section 7)."""

from types import SimpleNamespace

import pytest

from django_jobs import PermanentError, Retry
from django_jobs.exceptions import JobTimeout, WorkerLost
from django_jobs.execution.policy import (
    backoff_delay,
    error_entry,
    is_transient,
    retry_delay_for,
)

SAMPLES = 2000


class CustomError(Exception):
    pass


class CustomTransient(ConnectionError):
    pass


# -- is_transient ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "exc",
    [
        TimeoutError("took too long"),
        ConnectionError("peer went away"),
        ConnectionRefusedError("refused"),
        ConnectionResetError("reset"),
        OSError("disk hiccup"),
        FileNotFoundError("gone"),  # an OSError subclass
        JobTimeout("stopped"),
        WorkerLost("worker died"),
    ],
)
def test_transient_types(exc):
    assert is_transient(exc) is True


@pytest.mark.parametrize(
    "message",
    [
        "read timeout",
        "Timeout while waiting",
        "lost connection to server",
        "CONNECTION refused",
        "temporary failure in name resolution",
        "service unavailable",
        "Service Unavailable (503)",
    ],
)
def test_transient_by_message_words(message):
    assert is_transient(RuntimeError(message)) is True
    assert is_transient(ValueError(message)) is True


@pytest.mark.parametrize(
    "exc",
    [
        ValueError("bad input"),
        KeyError("missing"),
        TypeError("wrong type"),
        RuntimeError("boom"),
        ZeroDivisionError("division by zero"),
        CustomError("nothing transient here"),
        Exception(""),
    ],
)
def test_permanent_by_default(exc):
    assert is_transient(exc) is False


def test_retry_is_always_transient():
    assert is_transient(Retry()) is True
    assert is_transient(Retry(delay=5)) is True
    # Retry wins even over dont_retry_on: the job asked for it explicitly.
    assert is_transient(Retry(), dont_retry_on=(Retry,)) is True


def test_permanent_error_is_never_transient():
    assert is_transient(PermanentError("stop")) is False
    assert is_transient(PermanentError("connection timeout")) is False
    assert is_transient(PermanentError("x"), retry_on=(PermanentError, Exception)) is False


def test_retry_on_makes_an_error_transient():
    assert is_transient(KeyError("k")) is False
    assert is_transient(KeyError("k"), retry_on=(KeyError,)) is True
    assert is_transient(CustomError("x"), retry_on=[Exception]) is True
    assert is_transient(ValueError("x"), retry_on=(KeyError,)) is False


def test_dont_retry_on_makes_an_error_permanent():
    reset = ConnectionResetError("reset")
    assert is_transient(reset, dont_retry_on=(ConnectionResetError,)) is False
    assert is_transient(TimeoutError("t"), dont_retry_on=[OSError]) is False
    assert is_transient(RuntimeError("timeout"), dont_retry_on=(RuntimeError,)) is False
    # Other transient errors stay transient.
    assert is_transient(TimeoutError("t"), dont_retry_on=(KeyError,)) is True


def test_dont_retry_on_wins_over_retry_on():
    exc = CustomTransient("x")
    assert is_transient(exc, retry_on=(Exception,), dont_retry_on=(CustomTransient,)) is False


# -- backoff_delay -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n", "expected"),
    [(1, 10.0), (2, 20.0), (3, 40.0), (4, 80.0), (5, 160.0)],
)
def test_backoff_without_jitter(n, expected):
    assert backoff_delay(n, 10.0, 2.0, 3600.0, False) == pytest.approx(expected)


def test_backoff_multiplier():
    assert backoff_delay(3, 5.0, 3.0, 3600.0, False) == pytest.approx(45.0)
    # A multiplier of 1 keeps the delay constant.
    assert [backoff_delay(n, 7.0, 1.0, 3600.0, False) for n in (1, 2, 10)] == [7.0, 7.0, 7.0]


def test_backoff_is_capped():
    assert backoff_delay(5, 10.0, 2.0, 100.0, False) == pytest.approx(100.0)
    assert backoff_delay(4, 10.0, 2.0, 80.0, False) == pytest.approx(80.0)
    # Huge exponents overflow floats: still the cap, never an exception.
    assert backoff_delay(100_000, 10.0, 2.0, 3600.0, False) == pytest.approx(3600.0)


def test_backoff_zero_base():
    assert backoff_delay(3, 0.0, 2.0, 3600.0, False) == 0.0
    assert backoff_delay(3, 0.0, 2.0, 3600.0, True) == 0.0


def test_jitter_stays_within_half_and_one_and_a_half():
    base = 40.0  # retry 3 of 10 s with backoff 2
    samples = [backoff_delay(3, 10.0, 2.0, 3600.0, True) for _ in range(SAMPLES)]
    assert all(0.5 * base <= s <= 1.5 * base for s in samples)
    # The factor really varies and spreads over the range (not a constant factor).
    assert min(samples) < 0.6 * base
    assert max(samples) > 1.4 * base
    assert len(set(samples)) > SAMPLES // 2
    assert 0.9 * base < sum(samples) / len(samples) < 1.1 * base


def test_jitter_applies_to_the_capped_delay():
    cap = 100.0
    samples = [backoff_delay(20, 10.0, 2.0, cap, True) for _ in range(SAMPLES)]
    assert all(0.5 * cap <= s <= 1.5 * cap for s in samples)
    assert min(samples) < 0.6 * cap
    assert max(samples) > 1.4 * cap


# -- retry_delay_for ---------------------------------------------------------------------


def _job(**overrides):
    values = {
        "retry_count": 0,
        "max_retries": 3,
        "retry_delay": 10.0,
        "retry_backoff": 2.0,
        "max_retry_delay": 3600.0,
        "retry_jitter": False,
    }
    values.update(overrides)
    return SimpleNamespace(**values)


def test_retry_delay_for_uses_backoff_of_the_next_retry():
    assert retry_delay_for(_job(), ConnectionError("x")) == pytest.approx(10.0)
    assert retry_delay_for(_job(retry_count=1), ConnectionError("x")) == pytest.approx(20.0)
    assert retry_delay_for(_job(retry_count=2), ConnectionError("x")) == pytest.approx(40.0)


def test_retry_delay_for_exhausted_budget():
    assert retry_delay_for(_job(retry_count=3), ConnectionError("x")) is None
    assert retry_delay_for(_job(max_retries=0), TimeoutError("x")) is None


def test_retry_delay_for_permanent_error():
    assert retry_delay_for(_job(), ValueError("bad")) is None
    assert retry_delay_for(_job(), PermanentError("stop")) is None


def test_retry_delay_for_honours_task_rules():
    task = SimpleNamespace(retry_on=(KeyError,), dont_retry_on=(ConnectionResetError,))
    assert retry_delay_for(_job(), KeyError("k"), task) == pytest.approx(10.0)
    assert retry_delay_for(_job(), ConnectionResetError("r"), task) is None


def test_retry_delay_for_retry_with_delay():
    assert retry_delay_for(_job(), Retry(delay=2.5)) == pytest.approx(2.5)
    assert retry_delay_for(_job(retry_count=2), Retry(delay=0)) == 0.0
    # Without a delay, Retry follows the backoff.
    assert retry_delay_for(_job(retry_count=1), Retry()) == pytest.approx(20.0)


def test_retry_accepts_timedelta():
    from datetime import timedelta

    assert Retry(delay=timedelta(minutes=2)).delay == 120.0


# -- error_entry -------------------------------------------------------------------------


def test_error_entry_has_type_message_and_full_traceback():
    def inner():
        raise ValueError("broken value")

    try:
        inner()
    except ValueError as exc:
        entry = error_entry(exc, job=SimpleNamespace(attempts=2, worker_id="w1"))
    assert entry["type"] == "ValueError"
    assert entry["exception_class_path"] == "builtins.ValueError"
    assert entry["message"] == "broken value"
    assert "Traceback (most recent call last)" in entry["traceback"]
    assert "inner" in entry["traceback"]
    assert entry["attempt"] == 2
    assert entry["worker_id"] == "w1"
    assert entry["at"]
