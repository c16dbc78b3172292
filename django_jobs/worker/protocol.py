"""What a worker shares with its executors and its sidecar: the shared-memory slots, the
lease names, the heartbeat's age, and the messages on the worker-executor pipes.

Written by one side, read by the other, lock-free: each number has one writer.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import signal
import sys
import time
from datetime import UTC, datetime
from multiprocessing.sharedctypes import RawArray, RawValue

from django.conf import settings
from django.utils import timezone

_mp = multiprocessing.get_context("fork")

# The worker asks an executor to interrupt its running job (a cooperative cancel).
CANCEL_SIGNAL = signal.SIGUSR1

# Messages on a worker-executor pipe. Executor -> worker:
IDLE = "idle"  # its last claim found nothing; it waits to be woken
BUSY = "busy"  # it claims again without having been woken
# Its last claim found due jobs held back only by a queue's rate limit: it claims again by
# itself when the next start is allowed, and may be woken sooner (jobs of other queues),
# but it is not idle (--burst goes on).
WAITING = "waiting"
BATCH = "batch"  # ("batch", processed, failed): the outcomes of the batch it just ran
# Worker -> executor:
WAKE = "wake"  # claim again
STOP = "stop"  # finish the running job, hand back the rest, exit


def die_with_parent(sig: int = signal.SIGKILL) -> None:
    """Ask Linux to send ``sig`` to this process when its parent dies."""
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL("libc.so.6", use_errno=True)
            PR_SET_PDEATHSIG = 1
            libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
        except OSError:  # pragma: no cover - no libc: the parent check below still works
            pass


def to_epoch(value: datetime) -> float:
    """Seconds since the epoch of a datetime from the database (naive = UTC)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.timestamp()


def from_epoch(seconds: float) -> datetime:
    value = datetime.fromtimestamp(seconds, tz=UTC)
    return value if settings.USE_TZ else timezone.make_naive(value, UTC)


class Slot:
    """Numbers an executor shares with its worker (lock-free; each written by one side).

    ``job``: the running job (0 = none); ``started``/``deadline``: its start and hard
    deadline on the monotonic clock (0 = none); ``started_db``: its ``started_at`` on
    the database clock (epoch seconds); ``cancel``: the job the worker asks to
    interrupt; ``seq``: the last lease number the slot's executors used; ``active``: the
    lease number of the batch the executor holds (0 = none); ``fenced``: the executor
    stopped itself because the heartbeat went stale.
    """

    JOB, STARTED, STARTED_DB, DEADLINE, CANCEL, SEQ, ACTIVE, FENCED = range(8)

    def __init__(self):
        self.numbers = RawArray(ctypes.c_double, 8)

    @property
    def job_id(self) -> int | None:
        value = int(self.numbers[self.JOB])
        return value or None

    @property
    def started(self) -> float:
        return self.numbers[self.STARTED]

    @property
    def deadline(self) -> float | None:
        return self.numbers[self.DEADLINE] or None

    @property
    def active(self) -> int:
        return int(self.numbers[self.ACTIVE])


class Shared:
    """What a worker shares with its executors and its sidecar: the stop flag, the job
    budget, the executors' slots, the time of the last successful heartbeat and the
    worker's counts."""

    def __init__(
        self,
        max_jobs: int | None,
        concurrency: int,
        nonce: str,
        heartbeat_interval: float,
        worker_timeout: float,
    ):
        self.stop = RawValue(ctypes.c_bool, False)
        self.budget = _mp.Value(ctypes.c_longlong, max_jobs) if max_jobs is not None else None
        self.nonce = nonce  # 16 hex digits, new for every worker process
        self.slots = [Slot() for _ in range(concurrency)]
        # time.monotonic() (one clock for every process of this host) just before the
        # last heartbeat that reached the database was sent.
        self.beat_ok = RawValue(ctypes.c_double, time.monotonic())
        self.processed = RawValue(ctypes.c_longlong, 0)
        self.failed = RawValue(ctypes.c_longlong, 0)
        self.sidecar_stop = RawValue(ctypes.c_bool, False)
        # Past this age of the last heartbeat, no job starts and the worker stops running
        # ones: other workers take ours for dead at WORKER_TIMEOUT (by the database
        # clock, counted from the heartbeat's write, which is later than its send). A
        # healthy heartbeat's age peaks at one interval plus its round trip, and
        # WORKER_TIMEOUT >= 2 intervals (check E011): half an interval is left either
        # side.
        self.fence = worker_timeout - heartbeat_interval / 2
        # Should the worker itself be stuck, each executor stops its own job here.
        self.last_fence = worker_timeout - heartbeat_interval / 4

    # -- leases ----------------------------------------------------------------------------

    def lease(self, index: int, seq: int) -> str:
        """The lease of batch ``seq`` of slot ``index``: 32 characters, unique."""
        return f"{self.nonce}{index:03x}{seq:013x}"

    def active_leases(self) -> set[str]:
        return {self.lease(i, slot.active) for i, slot in enumerate(self.slots) if slot.active}

    # -- the heartbeat -------------------------------------------------------------------

    def beat_age(self) -> float:
        return time.monotonic() - self.beat_ok.value

    def gate_open(self) -> bool:
        """Whether a job may start: the worker's heartbeat is fresh."""
        return self.beat_age() < self.fence

    # -- the job budget (--max-jobs) -----------------------------------------------------

    def take(self, n: int) -> int:
        if self.budget is None:
            return n
        with self.budget.get_lock():
            n = max(0, min(n, self.budget.value))
            self.budget.value -= n
            return n

    def give_back(self, n: int) -> None:
        if self.budget is not None and n > 0:
            with self.budget.get_lock():
                self.budget.value += n

    @property
    def exhausted(self) -> bool:
        return self.budget is not None and self.budget.value <= 0
