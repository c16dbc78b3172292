"""One worker process: feeds executors, enforces timeouts and cancels, reconciles what it
holds, and shuts down gracefully.

The worker's own loop does no housekeeping and no heartbeat: both live in its sidecar
process (:mod:`django_jobs.worker.sidecar`), so that neither a long job, nor a slow
prune, nor this loop ever delays the heartbeat. The loop stays single-threaded, because
it forks executors.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import time
import uuid
from dataclasses import dataclass
from multiprocessing.connection import wait

from django.db import close_old_connections, connections

from ..conf import jobs_settings
from ..exceptions import JobTimeout, WorkerLost
from ..execution.rescue import record_lost
from ..execution.resilience import is_transient, retry_db_errors
from ..execution.runner import record_cancelled, record_failed
from ..manager import JobManager
from ..models import Worker
from ..registry import registry
from ..wakeups import NOTIFY_CHANNEL, notify, uses_psycopg3
from .executor import Executor, Shared, from_epoch
from .sidecar import Sidecar, register

logger = logging.getLogger("django_jobs.worker")

# How often the worker compares the jobs the database says it holds with the batches
# its executors hold, in heartbeat intervals (at least every RECONCILE_MAX seconds).
RECONCILE_EVERY = 2
RECONCILE_MAX = 10.0


def default_worker_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


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


class WorkerProcess:
    def __init__(
        self,
        *,
        worker_id: str | None = None,
        queues: list[str] | None = None,
        exclude_queues: list[str] | None = None,
        concurrency: int = 4,
        burst: bool = False,
        max_jobs: int | None = None,
        shutdown_timeout: float | None = None,
        scheduler: bool = True,
        database: str | None = None,
    ):
        self.worker_id = worker_id or default_worker_id()
        self.queues = queues or []
        self.exclude_queues = exclude_queues or []
        self.concurrency = max(1, concurrency)
        self.burst = burst
        self.max_jobs = max_jobs
        self.shutdown_timeout = (
            shutdown_timeout if shutdown_timeout is not None else jobs_settings.SHUTDOWN_TIMEOUT
        )
        self.scheduler = scheduler
        self.manager = JobManager(database)
        self.db = self.manager.db
        self.executors: list[Executor] = []
        self.stopping = False
        self.forced = False
        self.processed = 0
        self.listener = None
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)
        os.set_blocking(self._wake_r, False)
        self._next_control = 0.0
        self._next_reconcile = 0.0
        self._next_poll = 0.0
        self._notified = 0  # NOTIFYs received since executors were last woken
        self.shared: Shared | None = None
        self.sidecar: Sidecar | None = None
        self.unsettled: list[Unsettled] = []
        self._fenced_warned = False

    # -- signals -------------------------------------------------------------------------

    def _on_signal(self, signum, frame) -> None:
        if self.stopping:
            self.forced = True
            logger.warning("Second signal: stopping now")
        else:
            self.stopping = True
            logger.info("Signal %s: finishing running jobs, claiming no more", signum)
        try:
            os.write(self._wake_w, b"x")
        except OSError:
            pass

    def install_signals(self) -> None:
        self._old = {s: signal.signal(s, self._on_signal) for s in (signal.SIGTERM, signal.SIGINT)}

    def restore_signals(self) -> None:
        for s, handler in getattr(self, "_old", {}).items():
            signal.signal(s, handler)

    # -- lifecycle -----------------------------------------------------------------------

    def _row(self) -> dict:
        return dict(
            id=self.worker_id, database=self.db, pid=os.getpid(), queues=self.queues,
            exclude_queues=self.exclude_queues, concurrency=self.concurrency,
            scheduler=self.scheduler, base_processed=0, base_failed=0,
        )

    def register(self) -> dict:
        """Register the Worker row; returns what the sidecar needs to heartbeat it."""
        row = self._row()
        sent = time.monotonic()
        stop = lambda: self.stopping  # noqa: E731
        # Jobs still held under this id belong to an earlier process that died.
        retry_db_errors(lambda: self.manager.requeue_stuck(worker_id=self.worker_id),
                        what="rescue the jobs of an earlier process of this worker id",
                        stop=stop, max_delay=1.0)
        register(row, stop=stop)
        counts = Worker.objects.using(self.db).filter(pk=self.worker_id).values_list(
            "jobs_processed", "jobs_failed").first()
        if counts:
            row["base_processed"], row["base_failed"] = counts
        self._registered_at = sent
        return row

    def run(self) -> int:
        registry.autodiscover()
        self.install_signals()
        try:
            try:
                row = self.register()
            except Exception:  # noqa: BLE001 - only a stop signal ends the wait
                if self.stopping:
                    return 0
                raise
            if self.scheduler:
                self._sync_code_schedules()
            self.shared = Shared(
                self.max_jobs, self.concurrency, uuid.uuid4().hex[:16],
                jobs_settings.HEARTBEAT_INTERVAL, jobs_settings.WORKER_TIMEOUT,
            )
            self.shared.beat_ok.value = self._registered_at
            self._claim_args = dict(
                worker_id=self.worker_id, queues=self.queues,
                exclude_queues=self.exclude_queues, database=self.db,
            )
            _preload()
            self.sidecar = Sidecar(row, self.shared)
            self.sidecar.start()
            if self.burst:
                # --burst processes what is due now: schedules due now included.
                self._housekeep_once()
            self.executors = [self._new_executor(i) for i in range(self.concurrency)]
            self._start_listener()
            logger.info(
                "Worker %s started: queues=%s concurrency=%s",
                self.worker_id, self.queues or "*", self.concurrency,
                extra={"action": "worker_started", "worker_id": self.worker_id},
            )
            self._loop()
        finally:
            self._shutdown()
            self.restore_signals()
        return 0

    def _new_executor(self, index: int) -> Executor:
        return Executor(index, self.shared, self._claim_args)

    def _loop(self) -> None:
        stop_sent = False
        while True:
            if self.forced:
                return
            try:
                self._tick()
            except Exception:  # noqa: BLE001 - e.g. the database restarting: keep going
                logger.exception("Worker loop error; retrying in 1s")
                close_old_connections()
                self._sleep(1.0)
                continue
            if self.stopping:
                if not stop_sent:
                    # Executors finish the job they are running, hand the rest of their
                    # batch back and exit.
                    self.shared.stop.value = True
                    for executor in self.executors:
                        executor.request_stop()
                    stop_sent = True
                if not any(e.alive() for e in self.executors):
                    return
                if time.monotonic() >= self._stop_deadline:
                    logger.warning("Shutdown timeout reached; handing unfinished jobs back")
                    return
            elif all(e.idle for e in self.executors):
                if self.burst:
                    return
                if self.shared.exhausted:
                    self.stopping = True  # --max-jobs reached
                    continue
            self._wait()

    @property
    def _stop_deadline(self) -> float:
        if not hasattr(self, "_stop_at"):
            self._stop_at = time.monotonic() + self.shutdown_timeout
        return self._stop_at

    def _tick(self) -> None:
        self._collect()
        self._enforce_deadlines()
        self._enforce_fence()
        now = time.monotonic()
        if now >= self._next_control:
            self._next_control = now + min(jobs_settings.HEARTBEAT_INTERVAL, 1.0)
            self._control()
        if self.stopping:
            _ = self._stop_deadline
            return
        idle = [e for e in self.executors if e.idle]
        if time.monotonic() >= self._next_poll:
            # The poll: every idle executor looks (delayed jobs and retries come due
            # unannounced; elsewhere than PostgreSQL nothing is announced at all).
            self._next_poll = time.monotonic() + jobs_settings.POLL_INTERVAL
            wake = idle
        else:
            # One idle executor per NOTIFY: an enqueue of one job must not send every
            # executor of every worker to the database at once (they would only slow
            # down the one that gets it). An executor that finds work keeps claiming.
            wake = idle[: self._notified]
        self._notified = 0
        for executor in wake:
            executor.wake()

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
                    if message[0] == "idle":
                        executor.idle = True
                    elif message[0] == "busy":
                        executor.idle = False
                    elif message[0] == "batch":
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
                    executor, ExecutorCrashed(f"the process running the job exited with code {code}"),
                )
        if self.sidecar is not None and not self.sidecar.alive() and not self.stopping:
            logger.error("The heartbeat process of worker %s died (exit code %s); restarting it",
                         self.worker_id, self.sidecar.process.exitcode)
            self.sidecar.start()

    def _count(self, processed: int, failed: int = 0) -> None:
        self.processed += processed
        self.shared.processed.value += processed
        self.shared.failed.value += failed

    def _lost_executor(self, executor: Executor, exc: BaseException | None,
                       *, terminated: int | None = None) -> None:
        """Kill ``executor`` (or bury it): its running job gets ``exc`` (None: handed
        back like the rest), the rest of its batch goes back to pending. ``terminated``:
        the running job was cancelled with ``terminate=True``."""
        from .executor import Slot

        executor.kill()  # first: nothing may change in its slot while we read it
        job_id, lease = executor.job_id, executor.lease
        started_db = executor.slot.numbers[Slot.STARTED_DB]
        executor.bury()
        try:
            if lease is not None:
                unsettled = Unsettled(lease, job_id, started_db, exc, terminated)
                try:
                    self._settle(unsettled)
                except Exception as error:  # noqa: BLE001
                    close_old_connections()
                    if is_transient(error, self.db):  # the database is away: later
                        logger.warning("Could not settle the batch of a stopped executor "
                                       "(%s); trying again at every round", error)
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
                logger.warning("Job %s exceeded its timeout of %ss; stopped", job_id,
                               f"{timeout:g}", extra={"action": "job_timeout", "job_id": job_id})
                self._lost_executor(executor, JobTimeout(f"job exceeded its timeout of {timeout:g}s"))

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
                "job(s) before other workers rescue them", self.worker_id,
                self.shared.beat_age(), len(running), extra={"action": "worker_fenced"},
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
                RECONCILE_EVERY * jobs_settings.HEARTBEAT_INTERVAL, RECONCILE_MAX)
            self._reconcile()

    def _settle_pending(self) -> None:
        for unsettled in list(self.unsettled):
            try:
                self._settle(unsettled)
            except Exception as error:  # noqa: BLE001
                close_old_connections()
                if is_transient(error, self.db):
                    return  # still away: next round
                logger.exception("Could not settle the batch of a stopped executor")
            self.unsettled.remove(unsettled)  # settled, or left to reconciliation

    def _act_on_cancels(self) -> None:
        running = self._running()
        flagged = self.manager.objects.held_by(self.worker_id).filter(
            cancel_requested=True
        ).values_list("pk", "terminate_requested")
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
            .order_by().values_list("lease", flat=True).distinct()
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
                n += record_lost(job, WorkerLost(
                    f"worker {self.worker_id} held the job but none of its executors ran it"
                ))
            if n:
                logger.warning(
                    "Worker %s held %s job(s) no executor was running (lease %s); back to "
                    "pending", self.worker_id, n, lease, extra={"action": "jobs_reconciled"},
                )
                self._claimable_again()

    def _housekeep_once(self) -> None:
        from .. import scheduler

        try:
            self.manager.requeue_stuck()
            if self.scheduler:
                scheduler.run_due_schedules(self.manager)
        except Exception:  # noqa: BLE001 - the sidecar tries again
            logger.exception("Housekeeping failed; the sidecar tries again")
            close_old_connections()

    def _sync_code_schedules(self) -> None:
        """Create or update the schedules declared with @job(cron=...)/(interval=...)."""
        from .. import scheduler

        try:
            scheduler.sync_code_schedules(using=self.db)
        except Exception:  # noqa: BLE001 - a worker that cannot sync still runs jobs
            logging.getLogger("django_jobs.scheduler").exception(
                "Could not sync the schedules declared in code"
            )

    # -- waiting -------------------------------------------------------------------------

    def _start_listener(self) -> None:
        conn = connections[self.db]
        if not uses_psycopg3(conn):
            return  # LISTEN needs psycopg 3 (check django_jobs.W002); polling still works
        try:
            wrapper = connections.create_connection(self.db)
            wrapper.ensure_connection()
            raw = wrapper.connection
            raw.autocommit = True
            raw.execute(f"LISTEN {NOTIFY_CHANNEL}")
            self.listener = wrapper
        except Exception:  # noqa: BLE001 - polling still works
            logger.exception("LISTEN failed; falling back to polling")
            self.listener = None

    def _drain_listener(self) -> None:
        if self.listener is None:
            return
        pg = self.listener.connection.pgconn
        try:
            pg.consume_input()
            while pg.notifies() is not None:
                self._notified += 1
        except Exception:  # noqa: BLE001 - reconnect on the next loop
            logger.warning("LISTEN connection lost; reconnecting")
            try:
                self.listener.close()
            except Exception:  # noqa: BLE001
                pass
            self._start_listener()

    def _wait(self) -> None:
        if self.forced:
            return
        now = time.monotonic()
        timeout = max(0.0, self._next_control - now)
        idle = any(e.idle for e in self.executors)
        if idle and not self.stopping:
            timeout = min(timeout, max(0.0, self._next_poll - now))
        deadlines = [e.slot.deadline for e in self.executors if e.job_id and e.slot.deadline]
        if deadlines:
            timeout = min(timeout, max(0.0, min(deadlines) - now))
        if any(e.job_id for e in self.executors):
            # The fence must act in time however long the loop would sleep.
            timeout = min(timeout, max(0.05, self.shared.fence - self.shared.beat_age()))
        if self.stopping:
            timeout = min(timeout, max(0.0, self._stop_deadline - now))
        # Executors that exited (as asked, while stopping) would make wait() return at once.
        running = [e for e in self.executors if e.alive()]
        objects = [e.conn for e in running] + [e.process.sentinel for e in running]
        objects.append(self._wake_r)
        if self.sidecar is not None and self.sidecar.process is not None:
            objects.append(self.sidecar.process.sentinel)
        if self.listener is not None and not self.stopping:
            objects.append(self.listener.connection.fileno())
        ready = wait(objects, timeout=timeout)
        if self._wake_r in ready:
            try:
                while os.read(self._wake_r, 64):
                    pass
            except BlockingIOError:
                pass
        if self.listener is not None:
            self._drain_listener()

    def _sleep(self, seconds: float) -> None:
        wait([self._wake_r], timeout=seconds)

    # -- shutdown ------------------------------------------------------------------------

    def _shutdown(self) -> None:
        if self.shared is not None:
            self.shared.stop.value = True
        for executor in self.executors:
            if executor.alive():
                executor.request_stop()
        # Executors that are idle or between jobs exit by themselves at once; the rest
        # (the shutdown timeout passed, a second signal) are killed and their jobs
        # handed back.
        deadline = time.monotonic() + (0.0 if self.forced else 0.5)
        for executor in self.executors:
            executor.process.join(timeout=max(0.0, deadline - time.monotonic()))
        self.stopping = True
        for executor in self.executors:
            if executor.alive() or executor.lease:
                self._lost_executor(executor, None)
            else:
                executor.kill()
        if self.unsettled and not self.forced:
            self._settle_pending()
        if self.sidecar is not None:
            self.sidecar.stop()
        try:
            if self.shared is not None:
                Worker.objects.using(self.db).filter(pk=self.worker_id).update(
                    stopped_at=_db_now(), current_jobs=[],
                    jobs_processed=self._base("processed") + self.shared.processed.value,
                    jobs_failed=self._base("failed") + self.shared.failed.value,
                )
        except Exception:  # noqa: BLE001
            logger.exception("Could not mark worker %s stopped", self.worker_id)
        if self.listener is not None:
            try:
                self.listener.close()
            except Exception:  # noqa: BLE001
                pass
        logger.info("Worker %s stopped after %s job(s)", self.worker_id, self.processed,
                    extra={"action": "worker_stopped", "worker_id": self.worker_id})

    def _base(self, what: str) -> int:
        return self.sidecar.worker[f"base_{what}"] if self.sidecar is not None else 0


def _preload() -> None:
    """Import what executors use before forking them, once, instead of in each one."""
    from .. import backend, signal_handlers  # noqa: F401
    from ..execution import rescue, runner  # noqa: F401


def _db_now():
    from ..models import DbNow

    return DbNow()
