"""The executor's two helper threads: the keeper, which lets a slow job hold nothing but
itself, and the watchdog, the fence's last line."""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections import deque
from typing import TYPE_CHECKING

from django.db import connections

from ..execution.resilience import discard
from .protocol import Shared, Slot

if TYPE_CHECKING:
    from ..models import Job

logger = logging.getLogger("django_jobs.worker")

# A job running this long releases its batch: the successes before it are written and
# the jobs after it handed back for other executors.
HANDOFF_SECONDS = 0.25
# How often the keeper thread looks at the running job.
KEEPER_TICK = 0.05


class BatchKeeper:
    """Mixed into ``ExecutorLoop``: runs on threads of their own beside its main thread."""

    # What the keeper uses of the executor it is mixed into (set by ExecutorLoop).
    shared: Shared
    slot: Slot
    lock: threading.Lock
    write_lock: threading.RLock
    pending: deque[Job]
    current: Job | None
    current_since: float
    buffer: list  # (job, result) successes not written yet

    def write_completions(self, done: list) -> None:
        raise NotImplementedError

    def hand_back(self, rest: list) -> None:
        raise NotImplementedError

    def keep(self) -> None:
        """While a job runs long, hand back the jobs after it and write the successes
        before it, so that it holds nothing but itself."""
        while True:
            time.sleep(KEEPER_TICK)
            with self.lock:
                if (
                    self.current is None
                    or time.monotonic() - self.current_since < HANDOFF_SECONDS
                    or not (self.pending or self.buffer)
                ):
                    continue
            try:
                self.release()
            except BaseException:  # never let the keeper die
                logger.exception("Could not release the batch of a long job")
            finally:
                # Rarely needed: no second connection per executor kept open.
                for conn in connections.all(initialized_only=True):
                    discard(conn)

    def release(self) -> None:
        with self.write_lock:
            with self.lock:
                done, self.buffer = self.buffer, []
                rest = list(self.pending)
                self.pending.clear()
            try:
                self.hand_back(rest)
            except BaseException:
                with self.lock:  # still ours to run (or to hand back at the end)
                    self.pending.extendleft(reversed(rest))
                raise
            finally:
                if done:
                    self.write_completions(done)

    def watch(self) -> None:
        """The fence's last line, on a thread that never touches the database (so no
        hung connection can keep it from acting): the worker stops a running job when its
        heartbeat grows stale; should the worker itself be stuck, the executor stops
        itself just before other workers may rescue the job."""
        while True:
            time.sleep(0.1)
            if self.slot.numbers[Slot.JOB] and self.shared.beat_age() >= self.shared.last_fence:
                self.slot.numbers[Slot.FENCED] = 1
                os.kill(os.getpid(), signal.SIGKILL)
