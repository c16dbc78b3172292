"""One worker process: claims jobs, feeds executors, heartbeats, enforces timeouts,
rescues the jobs of dead workers, and shuts down gracefully."""

from __future__ import annotations

import logging
import os
import signal
import socket
import time
import uuid
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone
from multiprocessing.connection import wait

from django.db import close_old_connections, connections
from django.db.models import F

from .. import __version__
from ..conf import jobs_settings
from ..exceptions import JobTimeout, WorkerLost
from ..execution.runner import record_cancelled, record_failed
from ..manager import NOTIFY_CHANNEL, JobManager, notify, uses_psycopg3
from ..models import Job, Worker
from ..registry import registry
from .executor import Executor, Shared, Slot

logger = logging.getLogger("django_jobs.worker")


def default_worker_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


class ExecutorCrashed(WorkerLost):
    """The process running the job died (crash, OOM kill, os._exit)."""


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
        self.failed = 0
        self._beat_processed = 0
        self._beat_failed = 0
        self.row: Worker | None = None
        self.listener = None
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)
        os.set_blocking(self._wake_r, False)
        self._next_beat = 0.0
        self._next_prune = time.monotonic() + 60
        self._next_poll = 0.0
        self._notified = 0  # NOTIFYs received since executors were last woken
        self._next_schedule_run = 0.0
        self.shared: Shared | None = None

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

    def register(self) -> None:
        # Jobs still held under this id belong to an earlier process that died.
        self.manager.requeue_stuck(worker_id=self.worker_id)
        self.row, _ = Worker.objects.using(self.db).update_or_create(
            id=self.worker_id,
            defaults=dict(
                hostname=socket.gethostname(),
                pid=os.getpid(),
                queues=self.queues,
                exclude_queues=self.exclude_queues,
                concurrency=self.concurrency,
                stopped_at=None,
                current_jobs=[],
                version=__version__,
            ),
        )
        Worker.objects.using(self.db).filter(pk=self.worker_id).update(
            last_heartbeat_at=_db_now(), started_at=_db_now()
        )

    def run(self) -> int:
        registry.autodiscover()
        self.install_signals()
        try:
            self.register()
            if self.scheduler:
                self._sync_code_schedules()
            self.shared = Shared(self.max_jobs)
            self._claim_args = dict(
                worker_id=self.worker_id, queues=self.queues,
                exclude_queues=self.exclude_queues, database=self.db,
            )
            _preload()
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
        now = time.monotonic()
        if now >= self._next_beat:
            self._heartbeat()
            self._next_beat = now + jobs_settings.HEARTBEAT_INTERVAL
        if self.scheduler and not self.stopping and now >= self._next_schedule_run:
            self._run_scheduler()
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
                    elif message[0] == "batch":
                        _kind, processed, failed = message
                        self.processed += processed
                        self._beat_processed += processed
                        self.failed += failed
                        self._beat_failed += failed
            except (EOFError, OSError):
                pass
            if not executor.alive():
                if self.stopping and executor.process.exitcode == 0 and not executor.slot.lease:
                    continue  # it finished its work and exited as asked
                code = executor.process.exitcode
                self._lost_executor(
                    executor, ExecutorCrashed(f"the process running the job exited with code {code}"),
                )

    def _lost_executor(self, executor: Executor, exc: BaseException | None,
                       *, terminated: int | None = None) -> None:
        """Kill ``executor`` (or bury it): its running job gets ``exc`` (None: handed
        back like the rest), the rest of its batch goes back to pending. ``terminated``:
        the running job was cancelled with ``terminate=True``."""
        job_id, lease, started = executor.job_id, executor.slot.lease, executor.slot.started
        executor.kill()
        try:
            if lease is not None:
                self._settle_batch(lease, job_id, started, exc, terminated)
        finally:
            # Only now: a fresh executor must find the handed-back jobs claimable.
            if not self.stopping:
                self.executors[executor.index] = self._new_executor(executor.index)

    def _settle_batch(self, lease, job_id, started, exc, terminated) -> None:
        held = self.manager.objects.filter(lease=lease)
        if terminated:
            job = held.filter(pk=terminated).first()
            if job is not None and record_cancelled(job, "cancelled (terminated)"):
                self.processed += 1
                self._beat_processed += 1
            held = held.exclude(pk=terminated)
            job_id = None
        if job_id and exc is not None:
            job = held.filter(pk=job_id).first()
            if job is not None:
                job.started_at = datetime.fromtimestamp(started, tz=dt_timezone.utc)
                self._fail_held(job, exc)
        if job_id and exc is None:
            n = held.filter(pk=job_id).hand_back_held()
            n += held.exclude(pk=job_id).hand_back_held(started=False)
        else:
            n = held.hand_back_held(started=False)
        if n:
            logger.warning("Handed %s unfinished job(s) of a stopped executor back to pending", n)
            self._notified = len(self.executors)  # wake them all: claimable again
            try:
                notify(self.db, "*")
            except Exception:  # noqa: BLE001
                pass

    def _fail_held(self, job: Job, exc: BaseException) -> None:
        try:
            task = registry.get(job.task_name)
        except Exception:  # noqa: BLE001 - an unknown task still fails (no retry policy)
            task = None
        if record_failed(job, exc, task):
            self.processed += 1
            self._beat_processed += 1
            self.failed += 1
            self._beat_failed += 1

    def _enforce_deadlines(self) -> None:
        now = time.time()
        for executor in list(self.executors):
            deadline = executor.slot.deadline
            job_id = executor.job_id
            if job_id and deadline is not None and now >= deadline:
                timeout = deadline - executor.slot.started
                # Kill first: after a timeout the job's code must not run anywhere.
                logger.warning("Job %s exceeded its timeout of %ss; stopped", job_id,
                               f"{timeout:g}", extra={"action": "job_timeout", "job_id": job_id})
                self._lost_executor(executor, JobTimeout(f"job exceeded its timeout of {timeout:g}s"))

    # -- heartbeat, cancel, rescue ---------------------------------------------------------

    def _heartbeat(self) -> None:
        running = self._running()
        alive = self.row.beat(sorted(running), self._beat_processed, self._beat_failed)
        self._beat_processed = self._beat_failed = 0
        if not alive:
            logger.warning("Worker row %s was removed; registering again", self.worker_id)
            self.register()
        flagged = self.manager.objects.held_by(self.worker_id).filter(
            cancel_requested=True
        ).values_list("pk", "terminate_requested")
        for pk, terminate in flagged:
            executor = running.get(pk)
            if executor is None or executor.job_id != pk:
                continue  # not started yet: its executor checks before starting it
            if terminate:
                self._lost_executor(executor, None, terminated=pk)
            elif executor.slot.numbers[Slot.CANCEL] != pk:
                executor.interrupt(pk)
        self.manager.requeue_stuck()
        if time.monotonic() >= self._next_prune:
            self._next_prune = time.monotonic() + 600
            retention = jobs_settings.RETENTION_SECONDS
            if retention:
                self.manager.prune(older_than=retention)
            # Rows of workers gone for a day only clutter the admin.
            Worker.objects.using(self.db).silent_for(timedelta(days=1)).delete()

    def _run_scheduler(self) -> None:
        """Fire due schedules; every worker does this about once a second, and the
        database makes sure each due time is enqueued once (see django_jobs.scheduler)."""
        from .. import scheduler

        self._next_schedule_run = time.monotonic() + scheduler.SCHEDULER_INTERVAL
        try:
            scheduler.run_due_schedules(self.manager)
        except Exception:  # noqa: BLE001 - jobs keep flowing; the next run retries
            logging.getLogger("django_jobs.scheduler").exception("Scheduler run failed")
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
        timeout = max(0.0, self._next_beat - now)
        if self.scheduler and not self.stopping:
            timeout = min(timeout, max(0.0, self._next_schedule_run - now))
        idle = any(e.idle for e in self.executors)
        if idle and not self.stopping:
            timeout = min(timeout, max(0.0, self._next_poll - now))
        wall = time.time()
        deadlines = [e.slot.deadline for e in self.executors if e.job_id and e.slot.deadline]
        if deadlines:
            timeout = min(timeout, max(0.0, min(deadlines) - wall))
        if self.stopping:
            timeout = min(timeout, max(0.0, self._stop_deadline - now))
        # Executors that exited (as asked, while stopping) would make wait() return at once.
        running = [e for e in self.executors if e.alive()]
        objects = [e.conn for e in running] + [e.process.sentinel for e in running]
        objects.append(self._wake_r)
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
            if executor.alive() or executor.slot.lease:
                self._lost_executor(executor, None)
            else:
                executor.kill()
        try:
            if self.row is not None:
                Worker.objects.using(self.db).filter(pk=self.worker_id).update(
                    stopped_at=_db_now(), current_jobs=[],
                    jobs_processed=F("jobs_processed") + self._beat_processed,
                    jobs_failed=F("jobs_failed") + self._beat_failed,
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


def _preload() -> None:
    """Import what executors use before forking them, once, instead of in each one."""
    from .. import backend, workflows  # noqa: F401
    from ..execution import runner  # noqa: F401


def _db_now():
    from ..models import DbNow

    return DbNow()
