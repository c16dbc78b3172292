"""One worker process: claims jobs, feeds executors, heartbeats, enforces timeouts,
rescues the jobs of dead workers, and shuts down gracefully."""

from __future__ import annotations

import logging
import os
import random
import signal
import socket
import time
import uuid
from datetime import timedelta
from multiprocessing.connection import wait

from django.db import close_old_connections, connections
from django.db.models import F

from .. import __version__
from ..conf import jobs_settings
from ..exceptions import JobTimeout, WorkerLost
from ..execution.policy import error_entry, retry_delay_for
from ..execution.runner import record_cancelled, record_failure
from ..manager import NOTIFY_CHANNEL, JobManager, notify
from ..models import Job, JobStatus, Queue, Worker
from ..registry import registry
from .executor import Executor

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
        self._last_claim_full = False
        self._claimed_last = False
        self._config = None
        self._config_expires = 0.0
        self._next_schedule_run = 0.0

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
            self.executors = [Executor(i) for i in range(self.concurrency)]
            self._start_listener()
            logger.info(
                "Worker %s started: queues=%s concurrency=%s",
                self.worker_id, self.queues or "*", self.concurrency,
                extra={"action": "worker_started", "worker_id": self.worker_id},
            )
            # A jittered start spreads the first claims of many workers started together.
            time.sleep(random.uniform(0, 0.05))  # noqa: S311
            self._loop()
        finally:
            self._shutdown()
            self.restore_signals()
        return 0

    def _loop(self) -> None:
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
                if not any(e.busy for e in self.executors):
                    return
                if time.monotonic() >= self._stop_deadline:
                    logger.warning("Shutdown timeout reached; handing unfinished jobs back")
                    return
            elif self.burst and not any(e.busy for e in self.executors) and not self._claimed_last:
                return
            elif self.max_jobs is not None and self.processed >= self.max_jobs:
                self.stopping = True
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
        self._claimed_last = False
        if self.stopping:
            _ = self._stop_deadline
            return
        free = [e for e in self.executors if not e.busy]
        if self.max_jobs is not None:
            free = free[: max(0, self.max_jobs - self.processed - self._running_count())]
        if free:
            claimed = self.manager.objects.claim(
                self.worker_id, len(free), queues=self.queues,
                exclude_queues=self.exclude_queues, config=self._claim_config(),
            )
            for executor, job in zip(free, claimed):
                self._dispatch(executor, job)
            self._claimed_last = bool(claimed)
            self._last_claim_full = len(claimed) == len(free)

    def _claim_config(self):
        # Paused queues and limits change rarely: read them at most once per poll interval.
        now = time.monotonic()
        if now >= self._config_expires:
            self._config = Queue.objects.using(self.db).claim_config()
            self._config_expires = now + min(1.0, jobs_settings.POLL_INTERVAL)
        return self._config

    def _running_count(self) -> int:
        return sum(1 for e in self.executors if e.busy)

    def _dispatch(self, executor: Executor, job: Job) -> None:
        logger.debug("Running job %s (%s)", job.pk, job.task_name,
                     extra={"action": "job_claimed", "job_id": job.pk})
        try:
            executor.run(job)
        except (BrokenPipeError, OSError):
            self._replace(executor)
            self.executors[executor.index].run(job)

    def _replace(self, executor: Executor) -> Executor:
        executor.kill()
        fresh = Executor(executor.index)
        self.executors[executor.index] = fresh
        return fresh

    # -- outcomes ------------------------------------------------------------------------

    def _collect(self) -> None:
        for executor in list(self.executors):
            while executor.busy and executor.conn.poll():
                try:
                    _kind, job_id, status, _elapsed = executor.conn.recv()
                except (EOFError, OSError):
                    break
                self.processed += 1
                self._beat_processed += 1
                if status in (JobStatus.FAILED, JobStatus.RETRYING):
                    self.failed += 1
                    self._beat_failed += 1
                executor.done()
            if executor.busy and not executor.alive():
                job = executor.job
                code = executor.process.exitcode
                executor.done()
                self._replace(executor)
                self._fail_held(
                    job, ExecutorCrashed(f"the process running the job exited with code {code}")
                )

    def _fail_held(self, job: Job, exc: BaseException) -> None:
        try:
            task = registry.get(job.task_name)
        except Exception:  # noqa: BLE001
            task = None
        entry = error_entry(exc, job=job)
        delay = retry_delay_for(job, exc, task)
        if job.set_failed(entry, retry_in=delay):
            self.processed += 1
            self._beat_processed += 1
            self.failed += 1
            self._beat_failed += 1
            record_failure(job, entry, delay)

    def _enforce_deadlines(self) -> None:
        now = time.monotonic()
        for executor in list(self.executors):
            if executor.busy and executor.deadline is not None and now >= executor.deadline:
                job = executor.job
                # Kill first: after a timeout the job's code must not run anywhere.
                executor.done()
                self._replace(executor)
                logger.warning("Job %s exceeded its timeout of %ss; stopped", job.pk, job.timeout,
                               extra={"action": "job_timeout", "job_id": job.pk})
                self._fail_held(job, JobTimeout(f"job exceeded its timeout of {job.timeout:g}s"))

    # -- heartbeat, cancel, rescue ---------------------------------------------------------

    def _heartbeat(self) -> None:
        busy = {e.job.pk: e for e in self.executors if e.busy}
        alive = self.row.beat(list(busy), self._beat_processed, self._beat_failed)
        self._beat_processed = self._beat_failed = 0
        if not alive:
            logger.warning("Worker row %s was removed; registering again", self.worker_id)
            self.register()
        if busy:
            flagged = self.manager.objects.filter(
                pk__in=list(busy), worker_id=self.worker_id, cancel_requested=True
            ).values_list("pk", "terminate_requested")
            for pk, terminate in flagged:
                executor = busy[pk]
                if executor.job is None or executor.job.pk != pk:
                    continue
                if terminate:
                    job = executor.job
                    executor.done()
                    self._replace(executor)  # kills the job's process first
                    self.processed += 1
                    record_cancelled(job, "cancelled (terminated)")
                elif not executor.interrupted:
                    executor.interrupted = True
                    executor.interrupt()
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
        if conn.vendor != "postgresql" or getattr(conn.Database, "__name__", "") != "psycopg":
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
                pass
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
        free = any(not e.busy for e in self.executors)
        if free and self._claimed_last and self._last_claim_full and not self.stopping:
            return  # more may be due right away
        timeout = jobs_settings.POLL_INTERVAL if free and not self.stopping else 1.0
        timeout = min(timeout, max(0.0, self._next_beat - now))
        if self.scheduler and not self.stopping:
            timeout = min(timeout, max(0.0, self._next_schedule_run - now))
        deadlines = [e.deadline for e in self.executors if e.busy and e.deadline]
        if deadlines:
            timeout = min(timeout, max(0.0, min(deadlines) - now))
        if self.stopping:
            timeout = min(timeout, max(0.0, self._stop_deadline - now))
        objects = [e.conn for e in self.executors if e.busy]
        objects += [e.process.sentinel for e in self.executors if e.busy]
        objects.append(self._wake_r)
        if self.listener is not None and free and not self.stopping:
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
        handed_back = 0
        for executor in self.executors:
            if executor.busy:
                job = executor.job
                executor.kill()
                try:
                    if job.hand_back():
                        handed_back += 1
                except Exception:  # noqa: BLE001 - others will rescue it after the timeout
                    logger.exception("Could not hand job %s back", job.pk)
                executor.done()
            else:
                executor.stop()
        if handed_back:
            logger.warning("Handed %s unfinished job(s) back to pending", handed_back)
            try:
                notify(self.db, "*")
            except Exception:  # noqa: BLE001
                pass
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


def _db_now():
    from ..models import DbNow

    return DbNow()
