"""Executor processes: where job code runs.

Each executor is a child process of the worker with its own database connection. It
claims a small batch of due jobs under one lease, runs them one after another and
records their outcomes: failures and cancellations at once, successes together in one
statement per flush (``Job.objects.complete_many``). The batch is sized from the
measured duration of recent jobs, so fast jobs cost a fraction of a database round trip
each.

A job's code runs in a process so that a hard timeout or ``cancel(terminate=True)`` can
really stop code that never yields (the worker kills the executor and starts a fresh
one), and a job that crashes its interpreter does not take the worker down with it. The
worker sees what an executor is doing through a few shared numbers (:class:`Slot`): the
job it is running, when it started, its deadline and the lease of the batch it holds.

Trust rules kept here:

- The lease of a batch is published in the slot *before* the claim that takes it, and
  withdrawn only once every job of the batch has an outcome written or was handed back:
  whatever the database says this worker holds under a lease nobody publishes is an
  orphan the worker hands back (:meth:`WorkerProcess._reconcile`).
- A keeper thread watches the running job: once it has run for ``HANDOFF_SECONDS``, the
  successes before it are written and the jobs after it handed back for other executors
  to claim. A slow job holds nothing but itself.
- No job starts while the worker's last successful heartbeat is older than
  ``WORKER_TIMEOUT - HEARTBEAT_INTERVAL / 2`` (other workers may be about to rescue it), and
  a job still running when the heartbeat is about to go stale is stopped (the *fence*):
  a job never runs in two places at once.
- Outcome writes are retried through a database outage until they land or the lease is
  found lost; the lease stays published meanwhile.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..models.queue import ClaimConfig

import gc
import logging
import os
import signal
import threading
import time
from collections import deque

from django.db import close_old_connections, connections

from .. import tracing
from ..conf import jobs_settings
from ..enums import HELD_STATUSES, JobStatus
from ..execution.context import interrupt_current
from ..execution.resilience import drop_broken_connections, retry_db_errors
from ..execution.runner import (
    completed_signals,
    execute,
    record_cancelled,
    record_completed,
    started_at,
)
from ..models import Job, Queue
from ..models.rollup import flush_counts
from ..wakeups import notify
from .keeper import BatchKeeper
from .protocol import (
    BATCH,
    BUSY,
    CANCEL_SIGNAL,
    IDLE,
    STOP,
    WAITING,
    WAKE,
    Shared,
    Slot,
    die_with_parent,
    to_epoch,
)

logger = logging.getLogger("django_jobs.worker")

# Claim enough jobs for about this much work at a time (measured per executor).
BATCH_SECONDS = 0.05
# Successes wait at most this long before they are written (between two jobs).
FLUSH_SECONDS = 0.05
# A batch held this long is re-read before its next job starts: jobs cancelled or
# rescued meanwhile are not started.
REVALIDATE_SECONDS = 1.0


class BatchSizer:
    """How many jobs to claim: ~BATCH_SECONDS of work by the recent average duration.
    Jobs of unknown duration are claimed one at a time."""

    def __init__(self, maximum: int):
        self.maximum = max(1, maximum)
        self.average: float | None = None

    def record(self, seconds: float) -> None:
        if self.average is None:
            self.average = seconds
        else:
            self.average += 0.2 * (seconds - self.average)

    def size(self) -> int:
        if self.average is None:
            return 1
        return max(1, min(self.maximum, int(BATCH_SECONDS / max(self.average, 1e-6))))


class ExecutorLoop(BatchKeeper):
    """The body of an executor process."""

    def __init__(self, conn, index: int, shared: Shared, claim: dict):
        self.conn = conn
        self.index = index
        self.shared = shared
        self.slot = shared.slots[index]
        self.claim_kwargs = claim  # worker_id, queues, exclude_queues, database
        self.db = claim["database"]
        self.sizer = BatchSizer(jobs_settings.CLAIM_BATCH_SIZE)
        self.poll_interval = jobs_settings.POLL_INTERVAL
        self.config: ClaimConfig | None = None
        self.config_expires = 0.0
        # Shared by the main thread (which runs jobs) and the keeper thread.
        self.lock = threading.Lock()
        self.write_lock = threading.RLock()  # held by whoever writes for the batch
        self.pending: deque = deque()  # claimed, not started
        self.current = None  # the job running now
        self.current_since = 0.0
        self.buffer: list = []  # (job, result) successes not written yet
        self.buffered_since = 0.0
        self.counts = [0, 0]  # outcomes recorded (processed, failed) in this batch
        # What the worker was last told: IDLE or WAITING (False: busy).
        self.announced_idle: str | bool = False

    # -- the loop --------------------------------------------------------------------------

    def run(self) -> None:
        for target, name in ((self.keep, "keeper"), (self.watch, "watchdog")):
            threading.Thread(target=target, name=f"django_jobs-{name}", daemon=True).start()
        while not self.shared.stop.value:
            if not self.shared.gate_open():
                if self.idle(timeout=0.1) == STOP:
                    break
                continue
            if self.announced_idle:
                # Claiming without having been woken (after a pause): the worker must not
                # take this executor for idle meanwhile (--burst, --max-jobs).
                self.send((BUSY,))
                self.announced_idle = False
            try:
                claimed = self.claim()
            except Exception:  # a database outage: wait, then try again
                logger.exception("Executor could not claim jobs; retrying in 1s")
                close_old_connections()
                if self.idle(timeout=1.0) == STOP:
                    break
                continue
            if not claimed:
                wait = self.config.rate_wait if self.config is not None else None
                if wait is not None:
                    # Due jobs held back by a queue's rate limit only: not idle (--burst
                    # goes on), but woken like an idle executor (other queues' jobs);
                    # else claim again when the next start is allowed.
                    if self.idle(timeout=max(wait, 0.005), message=WAITING) == STOP:
                        break
                    continue
                if self.idle() == STOP:
                    break
                continue
            try:
                self.run_batch(claimed)
            except Exception:  # what was not written is reconciled
                logger.exception(
                    "Executor could not finish its batch; the worker hands back what it still holds"
                )
                close_old_connections()
            with self.lock:
                processed, failed = self.counts
            self.send((BATCH, processed, failed))
            # Wake-ups sent while we were busy are stale: we claim again anyway.
            if self.drain_messages() == STOP:
                break

    def idle(self, timeout: float | None = None, message: str = IDLE) -> str | None:
        """Tell the worker we found nothing (``IDLE``) or wait for a rate limit
        (``WAITING``); block until it wakes or stops us (or for ``timeout`` seconds)."""
        if self.announced_idle != message:
            self.send((message,))
            self.announced_idle = message
        while True:
            if timeout is not None and not self.conn.poll(timeout):
                return None
            try:
                message = self.conn.recv()
            except (EOFError, OSError):
                return STOP
            if message[0] == STOP:
                return STOP
            if message[0] == WAKE:
                self.announced_idle = False
                return WAKE

    def drain_messages(self) -> str | None:
        try:
            while self.conn.poll():
                if self.conn.recv()[0] == STOP:
                    return STOP
        except (EOFError, OSError):
            return STOP
        return None

    def send(self, message) -> None:
        try:
            self.conn.send(message)
        except (BrokenPipeError, OSError):
            os._exit(0)  # the worker is gone

    # -- claiming --------------------------------------------------------------------------

    def claim(self) -> list:
        if self.config is not None:
            self.config.rate_wait = None
        wanted = self.shared.take(self.sizer.size())
        if wanted == 0:
            return []
        now = time.monotonic()
        if now >= self.config_expires:
            # Paused queues and limits change rarely: read them at most once a second.
            # The copy expires a little before the next poll, so an idle executor reads
            # them at every poll and a changed limit holds within one poll interval
            # (expiring exactly on the poll, jitter left it to the poll after).
            self.config = Queue.objects.using(self.db).claim_config()
            self.config_expires = now + 0.9 * min(1.0, self.poll_interval)
        numbers = self.slot.numbers
        seq = int(numbers[Slot.SEQ]) + 1
        numbers[Slot.SEQ] = seq
        # Published before the claim: a claim that commits but whose reply is lost
        # leaves rows under a lease the worker knows was this executor's.
        numbers[Slot.ACTIVE] = seq
        claimed = []
        try:
            claimed = Job.objects.using(self.db).claim(
                self.claim_kwargs["worker_id"],
                wanted,
                queues=self.claim_kwargs["queues"],
                exclude_queues=self.claim_kwargs["exclude_queues"],
                config=self.config,
                lease=self.shared.lease(self.index, seq),
            )
        finally:
            self.shared.give_back(wanted - len(claimed))
            if not claimed:
                numbers[Slot.ACTIVE] = 0
        return claimed

    # -- running a batch -------------------------------------------------------------------

    def run_batch(self, batch: list) -> None:
        with self.lock:
            self.counts = [0, 0]
            self.pending = deque(batch)
        claimed_at = checked_at = time.monotonic()
        recheck = False
        try:
            while True:
                if self.shared.stop.value:
                    self.hand_back(self.take_pending())
                    break
                if not self.shared.gate_open():
                    # Our heartbeat is late: others may take us for dead and rescue these
                    # jobs. Start none until it is fresh again, then re-read them first.
                    self.wait_for_gate()
                    recheck = True
                    continue
                now = time.monotonic()
                if recheck or (
                    now - checked_at >= REVALIDATE_SECONDS
                    and now - claimed_at >= REVALIDATE_SECONDS
                ):
                    self.flush()
                    self.revalidate()
                    checked_at = time.monotonic()
                    recheck = False
                with self.lock:
                    if not self.pending:
                        break
                    job = self.pending.popleft()
                    self.current = job
                    self.current_since = time.monotonic()
                self.run_one(job)
                if self.buffer and time.monotonic() - self.buffered_since >= FLUSH_SECONDS:
                    self.flush()
        finally:
            with self.lock:
                self.current = None
            with self.write_lock:  # the keeper may be writing for this batch
                self.flush()
                self.slot.numbers[Slot.ACTIVE] = 0

    def run_one(self, job) -> None:
        numbers = self.slot.numbers
        drop_broken_connections()
        started = time.monotonic()
        job.started_at = started_at(job)
        job._claimed_mono = None
        numbers[Slot.STARTED] = started
        numbers[Slot.STARTED_DB] = to_epoch(job.started_at) if job.started_at else 0.0
        numbers[Slot.DEADLINE] = started + job.timeout if job.timeout else 0.0
        numbers[Slot.JOB] = job.pk
        try:
            status, result = execute(job, write=self.write)
        except BaseException:  # a write that cannot be retried
            logger.exception("Executor could not record the outcome of job %s", job.pk)
            status, result = None, None
        finally:
            numbers[Slot.JOB] = 0
            numbers[Slot.CANCEL] = 0
            numbers[Slot.DEADLINE] = 0.0
            with self.lock:
                self.current = None
        self.sizer.record(time.monotonic() - started)
        self.outcome(job, status, result)

    def outcome(self, job, status, result) -> None:
        with self.lock:
            if status == JobStatus.COMPLETED:
                if not self.buffer:
                    self.buffered_since = time.monotonic()
                self.buffer.append((job, result))
                return
            self.counts[0] += 1
            if status in (JobStatus.FAILED, JobStatus.RETRYING):
                self.counts[1] += 1

    def take_pending(self) -> list:
        with self.lock:
            rest = list(self.pending)
            self.pending.clear()
        return rest

    def wait_for_gate(self) -> None:
        logger.warning(
            "Heartbeat is %.1fs old: starting no job until it is fresh again",
            self.shared.beat_age(),
            extra={"action": "heartbeat_late"},
        )
        while not self.shared.gate_open() and not self.shared.stop.value:
            time.sleep(0.05)

    # -- writing -------------------------------------------------------------------------

    def write(self, fn, *args):
        """An outcome write, retried through database outages and lock contention."""
        return retry_db_errors(
            fn, *args, what=f"record a job outcome ({fn.__name__})", using=self.db
        )

    def flush(self) -> None:
        """Write the buffered successes."""
        with self.lock:
            done, self.buffer = self.buffer, []
        if done:
            with self.write_lock:
                self.write_completions(done)

    def write_completions(self, done: list) -> None:
        """Write successes in one statement; jobs the batched UPDATE did not take (a
        dependant appeared, or the lease was lost) are recorded one by one."""
        written = self.write(Job.objects.using(self.db).complete_many, done)
        processed = 0
        for job, result in done:
            if job.pk in written:
                completed_signals(job, result)
                processed += 1
                continue
            try:
                if self.write(record_completed, job, result):
                    processed += 1
            except Exception:  # the job stays held: reconciled later
                logger.exception("Could not record the outcome of job %s", job.pk)
        with self.lock:
            self.counts[0] += processed

    def revalidate(self) -> None:
        """Drop the unstarted jobs that are no longer ours (rescued meanwhile) and end
        the ones cancelled since the claim."""
        with self.lock:
            rest = list(self.pending)
        if not rest:
            return
        try:
            rows = dict(
                Job.objects.using(self.db)
                .filter(pk__in=[j.pk for j in rest], lease=rest[0].lease, status__in=HELD_STATUSES)
                .values_list("pk", "cancel_requested")
            )
        except Exception:  # go on with the batch; every write is guarded
            logger.exception("Could not re-read the held jobs")
            close_old_connections()
            return
        drop = {j.pk for j in rest if j.pk not in rows or rows[j.pk]}
        with self.lock:
            self.pending = deque(j for j in self.pending if j.pk not in drop)
        for job in rest:
            if rows.get(job.pk):
                if self.write(record_cancelled, job, "cancelled before it started"):
                    with self.lock:
                        self.counts[0] += 1

    def hand_back(self, rest: list) -> None:
        """Unstarted jobs back to pending (their claim is not an attempt)."""
        if not rest:
            return
        held = Job.objects.using(self.db).filter(pk__in=[j.pk for j in rest], lease=rest[0].lease)
        n = retry_db_errors(
            lambda: held.hand_back_held(started=False),
            what="hand back unstarted jobs",
            using=self.db,
        )
        self.shared.give_back(len(rest))  # --max-jobs: they were not run here
        if n:
            logger.info("Handed %s job(s) that had not started back to pending", n)
            self.notify()

    def notify(self) -> None:
        try:
            notify(self.db, "*")
        except Exception:  # noqa: BLE001 - workers poll anyway
            pass


def _interrupt_if_targeted(slot: Slot):
    def handler(signum, frame):
        numbers = slot.numbers
        # Only the job the worker meant: the signal may arrive after it finished.
        if numbers[Slot.CANCEL] and numbers[Slot.CANCEL] == numbers[Slot.JOB]:
            interrupt_current(signum, frame, job_id=int(numbers[Slot.JOB]))

    return handler


def _executor_main(conn, parent_pid: int, index: int, shared: Shared, claim: dict) -> None:
    die_with_parent(signal.SIGKILL)
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(0)
    # Ctrl-C reaches the whole process group: the worker decides what happens to jobs.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    slot = shared.slots[index]
    # The worker sends CANCEL_SIGNAL when it sees a cancel at its heartbeat: the job's
    # code gets JobCancelled at its next Python instruction (finally blocks still run).
    signal.signal(CANCEL_SIGNAL, _interrupt_if_targeted(slot))
    # What the executor inherited (Django, the project, its apps) lives as long as it
    # does: out of the garbage collector's sight, so the full collections that a claim's
    # thousand new jobs set off do not walk it again and again (py-spy: 26 % fewer
    # executor samples for a 100,000-job drain).
    gc.freeze()
    try:
        ExecutorLoop(conn, index, shared, claim).run()
    finally:
        flush_counts()  # a forked process skips atexit: write the last counts now
        tracing.flush()  # and the spans the tracer provider still buffers
        connections.close_all()
