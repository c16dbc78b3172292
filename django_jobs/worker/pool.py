"""The worker's executor pool: starting executors, reading what they report, and what
becomes of their jobs when one stops (a crash, a timeout, a terminate, the fence), plus
acting on cancels and reconciling what the database says the worker holds."""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.db import close_old_connections, connections

from .. import tracing
from ..conf import jobs_settings
from ..exceptions import JobTimeout, WorkerLost
from ..execution.rescue import record_lost
from ..execution.resilience import is_transient
from ..execution.runner import record_cancelled, record_failed
from ..registry import registry
from ..wakeups import notify
from .executor import _executor_main

if TYPE_CHECKING:
    from ..manager import JobManager
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
    _mp,
    from_epoch,
)

logger = logging.getLogger("django_jobs.worker")

# How often the worker compares the jobs the database says it holds with the batches
# its executors hold, in heartbeat intervals (at least every RECONCILE_MAX seconds).
RECONCILE_EVERY = 2
RECONCILE_MAX = 10.0


class ExecutorCrashed(WorkerLost):
    """The process running the job died (crash, OOM kill, os._exit)."""


@dataclass
class Unsettled:
    """A stopped executor's batch whose outcome could not be written yet (the database
    was unreachable): written again at every control round until it lands."""

    lease: str
    job_id: int | None
    started_db: float
    exc: BaseException | None
    terminated: int | None


class Executor:
    """The worker's handle on one executor process."""

    def __init__(self, index: int, shared: Shared, claim: dict):
        self.index = index
        self.shared = shared
        self.slot = shared.slots[index]
        numbers = self.slot.numbers
        for i in (
            Slot.JOB,
            Slot.STARTED,
            Slot.STARTED_DB,
            Slot.DEADLINE,
            Slot.CANCEL,
            Slot.ACTIVE,
            Slot.FENCED,
        ):
            numbers[i] = 0  # SEQ goes on: leases are never reused
        self.idle = False
        self.waiting = False  # idle, but for a rate limit's next start: not done
        self.buried = False
        # Connections must not cross a fork: the child opens its own.
        connections.close_all()
        self.conn, child_conn = _mp.Pipe()
        self.process = _mp.Process(
            target=_executor_main,
            args=(child_conn, os.getpid(), index, shared, claim),
            daemon=True,
            name=f"django_jobs-executor-{index}",
        )
        self.process.start()
        child_conn.close()

    @property
    def job_id(self) -> int | None:
        return self.slot.job_id

    @property
    def lease(self) -> str | None:
        """The lease of the batch this executor holds, if any."""
        active = self.slot.active
        return self.shared.lease(self.index, active) if active else None

    @property
    def fenced(self) -> bool:
        return bool(self.slot.numbers[Slot.FENCED])

    def wake(self) -> None:
        self.idle = self.waiting = False
        self._send((WAKE,))

    @property
    def done(self) -> bool:
        """Idle with nothing left to wait for (``--burst`` stops when all are)."""
        return self.idle and not self.waiting

    def request_stop(self) -> None:
        self._send((STOP,))

    def _send(self, message) -> None:
        try:
            self.conn.send(message)
        except (BrokenPipeError, OSError):
            pass  # it died: the worker sees its sentinel

    def interrupt(self, job_id: int) -> None:
        """Ask the running job ``job_id`` to stop (cooperative cancel)."""
        self.slot.numbers[Slot.CANCEL] = job_id
        try:
            if self.process.pid is not None:
                os.kill(self.process.pid, CANCEL_SIGNAL)
        except ProcessLookupError:
            pass

    def alive(self) -> bool:
        return self.process.is_alive()

    def bury(self) -> None:
        """After ``kill()``, once what it held was read: it holds nothing any more."""
        numbers = self.slot.numbers
        for i in (Slot.JOB, Slot.DEADLINE, Slot.CANCEL, Slot.ACTIVE):
            numbers[i] = 0
        self.buried = True
        self.idle = True
        self.waiting = False

    def kill(self) -> None:
        if self.process.is_alive():
            self.process.kill()
        self.process.join(timeout=5)
        self.conn.close()


class ExecutorPool:
    """Mixed into ``WorkerProcess``: its executors and what becomes of their jobs."""

    # What the pool uses of the worker it is mixed into (set by WorkerProcess.__init__).
    worker_id: str
    db: str
    manager: JobManager
    shared: Shared
    executors: list[Executor]
    unsettled: list[Unsettled]
    stopping: bool
    processed: int
    _next_reconcile: float

    def _new_executor(self, index: int) -> Executor:
        raise NotImplementedError

    def _running(self) -> dict[int, Executor]:
        running = {}
        for executor in self.executors:
            job_id = executor.job_id
            if job_id:
                running[job_id] = executor
        return running

    # -- outcomes ------------------------------------------------------------------------

    def _collect(self) -> None:
        for executor in list(self.executors):
            try:
                while executor.conn.poll():
                    message = executor.conn.recv()
                    if message[0] == IDLE:
                        executor.idle, executor.waiting = True, False
                    elif message[0] == WAITING:
                        executor.idle = executor.waiting = True
                    elif message[0] == BUSY:
                        executor.idle = executor.waiting = False
                    elif message[0] == BATCH:
                        _kind, processed, failed = message
                        self._count(processed, failed)
            except (EOFError, OSError):
                pass
            if not executor.alive():
                if executor.buried:
                    continue  # killed and settled already (while stopping: not replaced)
                if self.stopping and executor.process.exitcode == 0 and not executor.lease:
                    continue  # it finished its work and exited as asked
                if executor.fenced:
                    self._lost_executor(executor, None)  # stopped itself: handed back
                    continue
                code = executor.process.exitcode
                self._lost_executor(
                    executor,
                    ExecutorCrashed(f"the process running the job exited with code {code}"),
                )

    def _count(self, processed: int, failed: int = 0) -> None:
        self.processed += processed
        self.shared.processed.value += processed
        self.shared.failed.value += failed

    def _lost_executor(
        self, executor: Executor, exc: BaseException | None, *, terminated: int | None = None
    ) -> None:
        """Kill ``executor`` (or bury it): its running job gets ``exc`` (None: handed
        back like the rest), the rest of its batch goes back to pending. ``terminated``:
        the running job was cancelled with ``terminate=True``."""
        executor.kill()  # first: nothing may change in its slot while we read it
        job_id, lease = executor.job_id, executor.lease
        started_db = executor.slot.numbers[Slot.STARTED_DB]
        executor.bury()
        try:
            if lease is not None:
                unsettled = Unsettled(lease, job_id, started_db, exc, terminated)
                try:
                    self._settle(unsettled)
                except Exception as error:
                    close_old_connections()
                    if is_transient(error, self.db):  # the database is away: later
                        logger.warning(
                            "Could not settle the batch of a stopped executor "
                            "(%s); trying again at every round",
                            error,
                        )
                        self.unsettled.append(unsettled)
                    else:  # the worker's reconciliation takes the lease instead
                        logger.exception("Could not settle the batch of a stopped executor")
        finally:
            # Only now: a fresh executor must find the handed-back jobs claimable.
            if not self.stopping:
                self.executors[executor.index] = self._new_executor(executor.index)

    def _settle(self, u: Unsettled) -> None:
        """Write what became of a stopped executor's batch: its running job failed
        (timeout), was lost (crash) or cancelled (terminate), or goes back; the jobs it
        had not started go back to pending."""
        held = self.manager.objects.filter(lease=u.lease)
        job_id = u.job_id
        if u.terminated:
            job = held.filter(pk=u.terminated).first()
            if job is not None and record_cancelled(job, "cancelled (terminated)"):
                self._count(1)
                tracing.stopped(job)  # its executor took its own span with it
            held = held.exclude(pk=u.terminated)
            job_id = None
        if job_id and u.exc is not None:
            job = held.filter(pk=job_id).first()
            if job is not None:
                if u.started_db:
                    job.started_at = from_epoch(u.started_db)
                if isinstance(u.exc, ExecutorCrashed):
                    done = record_lost(job, u.exc)
                else:
                    try:
                        task = registry.get(job.task_name)
                    except Exception:  # noqa: BLE001 - an unknown task still fails
                        task = None
                    done = record_failed(job, u.exc, task)
                if done:
                    self._count(1, 1)
                    tracing.stopped(job)
        if job_id and u.exc is None:
            n = held.filter(pk=job_id).hand_back_held()
            n += held.exclude(pk=job_id).hand_back_held(started=False)
        else:
            n = held.hand_back_held(started=False)
        if n:
            logger.warning("Handed %s unfinished job(s) of a stopped executor back to pending", n)
            self._claimable_again()

    def _claimable_again(self) -> None:
        self._notified = len(self.executors)  # wake them all: claimable again
        try:
            notify(self.db, "*")
        except Exception:  # noqa: BLE001
            pass

    def _enforce_deadlines(self) -> None:
        now = time.monotonic()
        for executor in list(self.executors):
            job_id = executor.job_id
            deadline = executor.slot.deadline
            if executor.job_id != job_id:
                continue  # a job ended and another began while we read: next round
            if job_id and deadline is not None and now >= deadline:
                timeout = deadline - executor.slot.started
                # Kill first: after a timeout the job's code must not run anywhere.
                logger.warning(
                    "Job %s exceeded its timeout of %ss; stopped",
                    job_id,
                    f"{timeout:g}",
                    extra={"action": "job_timeout", "job_id": job_id},
                )
                self._lost_executor(
                    executor, JobTimeout(f"job exceeded its timeout of {timeout:g}s")
                )

    def _enforce_fence(self) -> None:
        """Stop every running job when this worker's heartbeat is about to go stale: other
        workers will soon take it for dead and run its jobs again, and a job must never
        run in two places at once. The jobs go back to pending (or are rescued)."""
        if self.shared.beat_age() < self.shared.fence:
            self._fenced_warned = False
            return
        running = [e for e in self.executors if e.job_id]
        if not running:
            return
        if not self._fenced_warned:
            logger.error(
                "Worker %s has not reached the database for %.1fs: stopping its %s running "
                "job(s) before other workers rescue them",
                self.worker_id,
                self.shared.beat_age(),
                len(running),
                extra={"action": "worker_fenced"},
            )
            self._fenced_warned = True
        for executor in running:
            self._lost_executor(executor, None)

    # -- control: cancels, reconciliation, unsettled batches ----------------------------

    def _control(self) -> None:
        if self.unsettled:
            self._settle_pending()
        self._act_on_cancels()
        now = time.monotonic()
        if now >= self._next_reconcile:
            self._next_reconcile = now + min(
                RECONCILE_EVERY * jobs_settings.HEARTBEAT_INTERVAL, RECONCILE_MAX
            )
            self._reconcile()

    def _settle_pending(self) -> None:
        for unsettled in list(self.unsettled):
            try:
                self._settle(unsettled)
            except Exception as error:
                close_old_connections()
                if is_transient(error, self.db):
                    return  # still away: next round
                logger.exception("Could not settle the batch of a stopped executor")
            self.unsettled.remove(unsettled)  # settled, or left to reconciliation

    def _act_on_cancels(self) -> None:
        running = self._running()
        flagged = (
            self.manager.objects.held_by(self.worker_id)
            .filter(cancel_requested=True)
            .values_list("pk", "terminate_requested")
        )
        for pk, terminate in flagged:
            executor = running.get(pk)
            if executor is None or executor.job_id != pk:
                # Not started yet: its executor re-reads a batch held over a second
                # before starting more of it; if it starts it first, the next round
                # interrupts it.
                continue
            if terminate:
                self._lost_executor(executor, None, terminated=pk)
            elif executor.slot.numbers[executor.slot.CANCEL] != pk:
                executor.interrupt(pk)

    def _reconcile(self) -> None:
        """Hand back the jobs the database says this worker holds but none of its
        executors holds (a claim whose reply was lost, a batch whose outcome could not be
        written): they would otherwise stay running while the worker lives."""
        held = set(
            self.manager.objects.held_by(self.worker_id)
            .order_by()
            .values_list("lease", flat=True)
            .distinct()
        )
        if not held:
            return
        # Read after the database: a lease published since is not in `held` anyway, and
        # one withdrawn since has all its outcomes written (the hand back finds nothing).
        known = self.shared.active_leases() | {u.lease for u in self.unsettled}
        orphans = sorted(lease for lease in held if lease not in known)
        for lease in orphans:
            # Each is a loss: it may have run (its outcome could not be written), and a
            # job that keeps ending up here must not go round for ever (MAX_LOST).
            n = 0
            for job in self.manager.objects.held_by(self.worker_id).filter(lease=lease):
                n += record_lost(
                    job,
                    WorkerLost(
                        f"worker {self.worker_id} held the job but none of its executors ran it"
                    ),
                )
            if n:
                logger.warning(
                    "Worker %s held %s job(s) no executor was running (lease %s); back to pending",
                    self.worker_id,
                    n,
                    lease,
                    extra={"action": "jobs_reconciled"},
                )
                self._claimable_again()
