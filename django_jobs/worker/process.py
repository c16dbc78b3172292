"""One worker process: feeds executors, enforces timeouts and cancels, reconciles what it
holds, and shuts down gracefully.

The worker's own loop does no housekeeping and no heartbeat: both live in its sidecar
process (:mod:`django_jobs.worker.sidecar`), so that neither a long job, nor a slow
prune, nor this loop ever delays the heartbeat. The loop stays single-threaded, because
it forks executors.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

# Loaded once here, before executors fork, rather than in each executor.
from .. import backend, signal_handlers  # noqa: F401

if TYPE_CHECKING:
    from django.db.backends.base.base import BaseDatabaseWrapper

import logging
import os
import signal
import socket
import time
import uuid
from multiprocessing.connection import wait

from django.db import close_old_connections, connections

from .. import scheduler, tracing
from ..conf import jobs_settings
from ..execution.resilience import retry_db_errors
from ..manager import JobManager
from ..models import DbNow, Worker
from ..models.rollup import flush_counts
from ..registry import registry
from ..wakeups import NOTIFY_CHANNEL, uses_psycopg3
from .pool import Executor, ExecutorCrashed, ExecutorPool, Unsettled
from .protocol import Shared
from .sidecar import Sidecar, register

logger = logging.getLogger("django_jobs.worker")

__all__ = ["ExecutorCrashed", "WorkerProcess", "default_worker_id"]


def default_worker_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


class WorkerProcess(ExecutorPool):
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
        health_file: str | None = None,
    ):
        self.worker_id = worker_id or default_worker_id()
        self.health_file = health_file
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
        self.listener: BaseDatabaseWrapper | None = None
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)
        os.set_blocking(self._wake_r, False)
        self._next_control = 0.0
        self._next_reconcile = 0.0
        self._next_poll = 0.0
        self._notified = 0  # NOTIFYs received since executors were last woken
        self.shared = None  # type: ignore[assignment]  # made by run(), before any use
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
        return {
            "id": self.worker_id,
            "database": self.db,
            "pid": os.getpid(),
            "queues": self.queues,
            "exclude_queues": self.exclude_queues,
            "concurrency": self.concurrency,
            "scheduler": self.scheduler,
            "base_processed": 0,
            "base_failed": 0,
        }

    def register(self) -> dict:
        """Register the Worker row; returns what the sidecar needs to heartbeat it."""
        row = self._row()
        sent = time.monotonic()
        stop = lambda: self.stopping  # noqa: E731
        # Jobs still held under this id belong to an earlier process that died.
        retry_db_errors(
            lambda: self.manager.requeue_stuck(worker_id=self.worker_id),
            what="rescue the jobs of an earlier process of this worker id",
            stop=stop,
            max_delay=1.0,
        )
        register(row, stop=stop)
        counts = (
            Worker.objects.using(self.db)
            .filter(pk=self.worker_id)
            .values_list("jobs_processed", "jobs_failed")
            .first()
        )
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
            except Exception:  # only a stop signal ends the wait
                if self.stopping:
                    return 0
                raise
            if self.scheduler:
                self._sync_code_schedules()
            self.shared = Shared(
                self.max_jobs,
                self.concurrency,
                uuid.uuid4().hex[:16],
                jobs_settings.HEARTBEAT_INTERVAL,
                jobs_settings.WORKER_TIMEOUT,
            )
            self.shared.beat_ok.value = self._registered_at
            self._claim_args = {
                "worker_id": self.worker_id,
                "queues": self.queues,
                "exclude_queues": self.exclude_queues,
                "database": self.db,
            }
            row["health_file"] = self.health_file
            self.sidecar = Sidecar(row, self.shared)
            self.sidecar.start()
            if self.burst:
                # --burst processes what is due now: schedules due now included.
                self._housekeep_once()
            self.executors = [self._new_executor(i) for i in range(self.concurrency)]
            self._start_listener()
            logger.info(
                "Worker %s started: queues=%s concurrency=%s",
                self.worker_id,
                self.queues or "*",
                self.concurrency,
                extra={"action": "worker_started", "worker_id": self.worker_id},
            )
            self._loop()
        finally:
            self._shutdown()
            self.restore_signals()
            flush_counts()  # hand-backs and losses count; a forked worker skips atexit
            tracing.flush()  # the spans of the jobs whose executors it stopped
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
            except Exception:  # e.g. the database restarting: keep going
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
            elif all(e.done for e in self.executors):
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

    def _collect(self) -> None:
        ExecutorPool._collect(self)
        if self.sidecar is not None and not self.sidecar.alive() and not self.stopping:
            logger.error(
                "The heartbeat process of worker %s died (exit code %s); restarting it",
                self.worker_id,
                self.sidecar.process and self.sidecar.process.exitcode,
            )
            self.sidecar.start()

    def _housekeep_once(self) -> None:
        try:
            self.manager.requeue_stuck()
            if self.scheduler:
                scheduler.run_due_schedules(self.manager)
        except Exception:  # the sidecar tries again
            logger.exception("Housekeeping failed; the sidecar tries again")
            close_old_connections()

    def _sync_code_schedules(self) -> None:
        """Create or update the schedules declared with @job(cron=...)/(interval=...)."""

        try:
            scheduler.sync_code_schedules(using=self.db)
        except Exception:  # a worker that cannot sync still runs jobs
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
        except Exception:  # polling still works
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
                    stopped_at=_db_now(),
                    current_jobs=[],
                    jobs_processed=self._base("processed") + self.shared.processed.value,
                    jobs_failed=self._base("failed") + self.shared.failed.value,
                )
        except Exception:
            logger.exception("Could not mark worker %s stopped", self.worker_id)
        if self.listener is not None:
            try:
                self.listener.close()
            except Exception:  # noqa: BLE001
                pass
        logger.info(
            "Worker %s stopped after %s job(s)",
            self.worker_id,
            self.processed,
            extra={"action": "worker_stopped", "worker_id": self.worker_id},
        )

    def _base(self, what: str) -> int:
        return self.sidecar.worker[f"base_{what}"] if self.sidecar is not None else 0


def _db_now():
    return DbNow()
