"""Executor processes: where job code runs.

Each executor is a child process of the worker with its own database connection. It
claims a small batch of due jobs, runs them one after another and records their outcomes:
failures and cancellations at once, successes together in one statement per flush
(``Job.objects.complete_many``). The batch is sized from the measured duration of recent
jobs, so fast jobs cost a fraction of a database round trip each while a slow job is
claimed alone and never holds others back.

A job's code runs in a process so that a hard timeout or ``cancel(terminate=True)`` can
really stop code that never yields (the worker kills the executor and starts a fresh
one), and a job that crashes its interpreter does not take the worker down with it. The
worker sees what an executor is doing through a few shared numbers (:class:`Slot`): the
job it is running, when it started, its deadline and the lease of its batch.
"""

from __future__ import annotations

import ctypes
import logging
import multiprocessing
import os
import signal
import sys
import time
from multiprocessing.sharedctypes import RawArray, RawValue

from django.db import close_old_connections, connections

from ..enums import JobStatus

logger = logging.getLogger("django_jobs.worker")

_mp = multiprocessing.get_context("fork")
CANCEL_SIGNAL = signal.SIGUSR1

# Claim enough jobs for about this much work at a time (measured per executor).
BATCH_SECONDS = 0.05
# Successes wait at most this long before they are written.
FLUSH_SECONDS = 0.05
# A batch held this long is re-read before its next job starts: jobs cancelled or
# rescued meanwhile are not started.
REVALIDATE_SECONDS = 1.0


def die_with_parent(sig: int = signal.SIGKILL) -> None:
    """Ask Linux to send ``sig`` to this process when its parent dies."""
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL("libc.so.6", use_errno=True)
            PR_SET_PDEATHSIG = 1  # noqa: N806
            libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
        except OSError:  # pragma: no cover - no libc: the parent check below still works
            pass


def drop_broken_connections() -> None:
    """Close connections that errored or went away; keep healthy ones open.

    Unlike ``close_old_connections()`` this ignores ``CONN_MAX_AGE=0``: outside a request
    cycle, reconnecting for every job would cost more than the job.
    """
    for conn in connections.all(initialized_only=True):
        if conn.connection is None:
            continue
        if conn.errors_occurred and not conn.is_usable():
            conn.close()
        elif conn.in_atomic_block:
            # A job left a transaction open: never carry it into the next job.
            conn.close()


class Slot:
    """Numbers an executor shares with its worker (lock-free; each written by one side).

    ``job``/``started``/``deadline``: the running job (0 = none), its start and its hard
    deadline (wall clock, 0 = none); ``cancel``: the job the worker asks to interrupt;
    ``lease``: the lease of the batch the executor holds (empty = none).
    """

    JOB, STARTED, DEADLINE, CANCEL = range(4)

    def __init__(self):
        self.numbers = RawArray(ctypes.c_double, 4)
        self.lease_buf = RawArray(ctypes.c_char, 33)

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
    def lease(self) -> str | None:
        return self.lease_buf.value.decode() or None

    def set_lease(self, lease: str | None) -> None:
        self.lease_buf.value = (lease or "").encode()


class Shared:
    """What all executors of one worker share: the stop flag and the job budget."""

    def __init__(self, max_jobs: int | None):
        self.stop = RawValue(ctypes.c_bool, False)
        self.budget = _mp.Value(ctypes.c_longlong, max_jobs) if max_jobs is not None else None

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


class ExecutorLoop:
    """The body of an executor process."""

    def __init__(self, conn, slot: Slot, shared: Shared, claim: dict):
        self.conn = conn
        self.slot = slot
        self.shared = shared
        self.claim_kwargs = claim  # worker_id, queues, exclude_queues, database
        self.db = claim["database"]
        from ..conf import jobs_settings

        self.sizer = BatchSizer(jobs_settings.CLAIM_BATCH_SIZE)
        self.config = None
        self.config_expires = 0.0
        self.buffer: list = []  # (job, result) successes not written yet
        self.buffered_since = 0.0

    # -- the loop --------------------------------------------------------------------------

    def run(self) -> None:
        while not self.shared.stop.value:
            try:
                claimed = self.claim()
            except Exception:  # noqa: BLE001 - a database outage: wait, then try again
                logger.exception("Executor could not claim jobs; retrying in 1s")
                close_old_connections()
                if self.idle(timeout=1.0) == "stop":
                    break
                continue
            if not claimed:
                if self.idle() == "stop":
                    break
                continue
            self.run_batch(claimed)
            processed, failed = self.counts
            self.send(("batch", processed, failed))
            # Wake-ups sent while we were busy are stale: we claim again anyway.
            if self.drain_messages() == "stop":
                break

    def idle(self, timeout: float | None = None) -> str | None:
        """Tell the worker we found nothing; block until it wakes or stops us."""
        self.send(("idle",))
        while True:
            if timeout is not None and not self.conn.poll(timeout):
                return None
            try:
                message = self.conn.recv()
            except (EOFError, OSError):
                return "stop"
            if message[0] == "stop":
                return "stop"
            if message[0] == "wake":
                return "wake"

    def drain_messages(self) -> str | None:
        try:
            while self.conn.poll():
                if self.conn.recv()[0] == "stop":
                    return "stop"
        except (EOFError, OSError):
            return "stop"
        return None

    def send(self, message) -> None:
        try:
            self.conn.send(message)
        except (BrokenPipeError, OSError):
            os._exit(0)  # the worker is gone

    # -- claiming --------------------------------------------------------------------------

    def claim(self) -> list:
        from ..models import Job, Queue

        wanted = self.shared.take(self.sizer.size())
        if wanted == 0:
            return []
        now = time.monotonic()
        if now >= self.config_expires:
            from ..conf import jobs_settings

            # Paused queues and limits change rarely: read them at most once a second.
            self.config = Queue.objects.using(self.db).claim_config()
            self.config_expires = now + min(1.0, jobs_settings.POLL_INTERVAL)
        claimed = []
        try:
            claimed = Job.objects.using(self.db).claim(
                self.claim_kwargs["worker_id"], wanted,
                queues=self.claim_kwargs["queues"],
                exclude_queues=self.claim_kwargs["exclude_queues"],
                config=self.config,
            )
        finally:
            self.shared.give_back(wanted - len(claimed))
        return claimed

    # -- running a batch -------------------------------------------------------------------

    def run_batch(self, batch: list) -> None:
        from ..execution.runner import execute

        self.counts = [0, 0]
        slot = self.slot
        numbers = slot.numbers
        slot.set_lease(batch[0].lease)
        claimed_at = checked_at = time.monotonic()
        index = 0
        try:
            while index < len(batch):
                if self.shared.stop.value:
                    self.hand_back(batch[index:])
                    break
                now = time.monotonic()
                if now - checked_at >= REVALIDATE_SECONDS and now - claimed_at >= REVALIDATE_SECONDS:
                    self.flush()
                    batch[index:] = self.revalidate(batch[index:])
                    checked_at = time.monotonic()
                    if index >= len(batch):
                        break
                job = batch[index]
                index += 1
                drop_broken_connections()
                started = time.time()
                numbers[Slot.STARTED] = started
                numbers[Slot.DEADLINE] = started + job.timeout if job.timeout else 0.0
                numbers[Slot.JOB] = job.pk
                t0 = time.monotonic()
                try:
                    status, result = execute(job)
                except BaseException:  # noqa: BLE001 - execute records failures: a DB outage
                    logger.exception("Executor could not record the outcome of job %s", job.pk)
                    status, result = None, None
                finally:
                    numbers[Slot.JOB] = 0
                    numbers[Slot.CANCEL] = 0
                elapsed = time.monotonic() - t0
                self.sizer.record(elapsed)
                self.outcome(job, status, result)
                if self.buffer and time.monotonic() - self.buffered_since >= FLUSH_SECONDS:
                    self.flush()
        finally:
            self.flush()
            slot.set_lease(None)

    def outcome(self, job, status, result) -> None:
        if status == JobStatus.COMPLETED:
            if not self.buffer:
                self.buffered_since = time.monotonic()
            self.buffer.append((job, result))
            return
        self.counts[0] += 1
        if status in (JobStatus.FAILED, JobStatus.RETRYING):
            self.counts[1] += 1

    def flush(self) -> None:
        """Write the buffered successes; jobs the batched UPDATE did not take (a
        dependant appeared, or the lease was lost) are recorded one by one."""
        if not self.buffer:
            return
        from ..execution.runner import completed_signals, record_completed
        from ..models import Job

        done, self.buffer = self.buffer, []
        try:
            written = Job.objects.using(self.db).complete_many(done)
        except Exception:  # noqa: BLE001 - e.g. the database restarting
            logger.exception("Could not record %s completed job(s); writing them one by one",
                             len(done))
            close_old_connections()
            written = set()
        for job, result in done:
            if job.pk in written:
                completed_signals(job, result)
                self.counts[0] += 1
                continue
            try:
                if record_completed(job, result):
                    self.counts[0] += 1
            except Exception:  # noqa: BLE001 - the job stays held; rescue runs it again
                logger.exception("Could not record the outcome of job %s", job.pk)

    def revalidate(self, rest: list) -> list:
        """Jobs of a long-held batch that are still ours; cancelled ones end here."""
        from ..enums import HELD_STATUSES
        from ..execution.runner import record_cancelled
        from ..models import Job

        try:
            rows = dict(
                Job.objects.using(self.db)
                .filter(pk__in=[j.pk for j in rest], lease=rest[0].lease,
                        status__in=HELD_STATUSES)
                .values_list("pk", "cancel_requested")
            )
        except Exception:  # noqa: BLE001 - go on with the batch; completions are guarded
            logger.exception("Could not re-read the held jobs")
            close_old_connections()
            return rest
        keep = []
        for job in rest:
            if job.pk not in rows:
                continue  # rescued by another worker meanwhile: not ours to run
            if rows[job.pk]:
                if record_cancelled(job, "cancelled before it started"):
                    self.counts[0] += 1
                continue
            keep.append(job)
        return keep

    def hand_back(self, rest: list) -> None:
        from ..models import Job

        if not rest:
            return
        try:
            n = Job.objects.using(self.db).filter(
                pk__in=[j.pk for j in rest], lease=rest[0].lease
            ).hand_back_held(started=False)
            if n:
                logger.info("Handed %s job(s) that had not started back to pending", n)
        except Exception:  # noqa: BLE001 - the worker hands the batch back by its lease
            logger.exception("Could not hand back %s job(s)", len(rest))


def _interrupt_if_targeted(slot: Slot):
    from ..execution.context import interrupt_current

    def handler(signum, frame):
        numbers = slot.numbers
        # Only the job the worker meant: the signal may arrive after it finished.
        if numbers[Slot.CANCEL] and numbers[Slot.CANCEL] == numbers[Slot.JOB]:
            interrupt_current(signum, frame)

    return handler


def _executor_main(conn, parent_pid: int, slot: Slot, shared: Shared, claim: dict) -> None:
    die_with_parent(signal.SIGKILL)
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(0)
    # Ctrl-C reaches the whole process group: the worker decides what happens to jobs.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    # The worker sends CANCEL_SIGNAL when it sees a cancel at its heartbeat: the job's
    # code gets JobCancelled at its next Python instruction (finally blocks still run).
    signal.signal(CANCEL_SIGNAL, _interrupt_if_targeted(slot))
    try:
        ExecutorLoop(conn, slot, shared, claim).run()
    finally:
        connections.close_all()


class Executor:
    """The worker's handle on one executor process."""

    def __init__(self, index: int, shared: Shared, claim: dict):
        self.index = index
        self.slot = Slot()
        self.idle = False
        # Connections must not cross a fork: the child opens its own.
        connections.close_all()
        self.conn, child_conn = _mp.Pipe()
        self.process = _mp.Process(
            target=_executor_main, args=(child_conn, os.getpid(), self.slot, shared, claim),
            daemon=True, name=f"django_jobs-executor-{index}",
        )
        self.process.start()
        child_conn.close()

    @property
    def job_id(self) -> int | None:
        return self.slot.job_id

    def wake(self) -> None:
        self.idle = False
        self._send(("wake",))

    def request_stop(self) -> None:
        self._send(("stop",))

    def _send(self, message) -> None:
        try:
            self.conn.send(message)
        except (BrokenPipeError, OSError):
            pass  # it died: the worker sees its sentinel

    def interrupt(self, job_id: int) -> None:
        """Ask the running job ``job_id`` to stop (cooperative cancel)."""
        self.slot.numbers[Slot.CANCEL] = job_id
        try:
            os.kill(self.process.pid, CANCEL_SIGNAL)
        except ProcessLookupError:
            pass

    def alive(self) -> bool:
        return self.process.is_alive()

    def kill(self) -> None:
        if self.process.is_alive():
            self.process.kill()
        self.process.join(timeout=5)
        self.conn.close()
