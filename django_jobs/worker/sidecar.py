"""The worker's sidecar process: its heartbeat, and its housekeeping.

A live worker must never look dead: the heartbeat waits behind nothing. It runs in a
thread of its own, with a database connection of its own, in a process of its own, so
that no job, no prune, no rescue sweep, no scheduler run and no executor management
ever delays it. Housekeeping (firing due schedules, rescuing the jobs of dead workers,
pruning finished jobs, forgetting long-gone workers) runs beside it in the same process,
on another thread and connection.

The sidecar is forked once, when the worker starts (and again should it die), from a
worker process that is single-threaded at that moment; the sidecar itself never forks,
so its threads are safe. It dies with its worker.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import random
import signal
import socket
import threading
import time
from datetime import timedelta
from multiprocessing.process import BaseProcess

from django.db import close_old_connections, connections

from .. import __version__, scheduler, tracing
from ..conf import jobs_settings
from ..execution.resilience import retry_db_errors
from ..health import touch
from ..manager import JobManager
from ..models import DbNow, Worker
from ..models.rollup import COMPACT_CHUNK, flush_counts
from ..models.rollup import compact as compact_rollups
from ..notifications import alerts, deliveries
from .protocol import Shared, die_with_parent

logger = logging.getLogger("django_jobs.worker")
_mp = multiprocessing.get_context("fork")

# Finished jobs are pruned this long after the worker starts (spread so that workers
# starting together do not prune together), then every PRUNE_EVERY seconds.
FIRST_PRUNE = (5.0, 20.0)
PRUNE_EVERY = 600.0
# Worker rows silent this long are deleted: they only clutter the admin.
FORGET_WORKERS_AFTER = timedelta(days=1)


class Heartbeat:
    """Writes the worker's heartbeat every ``HEARTBEAT_INTERVAL`` and records, in
    ``shared.beat_ok``, when the last one that reached the database was sent."""

    def __init__(self, worker: dict, shared: Shared):
        self.worker = worker
        self.shared = shared
        self.interval = jobs_settings.HEARTBEAT_INTERVAL
        self.failures = 0

    def run(self) -> None:
        try:
            while not self.shared.sidecar_stop.value:
                sent = time.monotonic()
                try:
                    self.beat(sent)
                except Exception:  # beat() logs; never let the thread die
                    logger.exception("Heartbeat failed")
                _sleep_until(self.shared, sent + self.interval)
        finally:
            connections.close_all()

    def beat(self, sent: float) -> None:
        worker = self.worker
        current = sorted({slot.job_id for slot in self.shared.slots if slot.job_id})
        try:
            row = Worker(id=worker["id"])
            row._state.db = worker["database"]
            alive = row.beat(
                current,
                worker["base_processed"] + self.shared.processed.value,
                worker["base_failed"] + self.shared.failed.value,
            )
            if not alive:
                # Removed (in the admin, say): other workers take its jobs for stalled
                # and rescue them. Stop ours (the fence) before registering again.
                logger.warning(
                    "Worker row %s was removed: stopping its running jobs and registering it again",
                    worker["id"],
                )
                self.shared.beat_ok.value = 0.0
                time.sleep(self.interval)
                register_row(worker)
                return
        except Exception as exc:  # noqa: BLE001 - the next beat tries again
            self.failures += 1
            if self.failures == 1 or self.failures % 10 == 0:
                logger.warning(
                    "Heartbeat of worker %s failed (%s); retrying",
                    worker["id"],
                    exc,
                    extra={"action": "heartbeat_failed"},
                )
            _drop_errored_connections()
            return
        if self.failures:
            logger.info("Heartbeat of worker %s reaches the database again", worker["id"])
            self.failures = 0
        self.shared.beat_ok.value = sent
        if worker.get("health_file"):
            try:
                touch(worker["health_file"])
            except OSError as exc:
                logger.warning("Could not touch the health file %s: %s", worker["health_file"], exc)


class Housekeeper:
    """Scheduler, rescue of dead workers' jobs, pruning: each on its own cadence, each
    failure logged and retried on the next round."""

    def __init__(self, worker: dict, shared: Shared, heartbeat: threading.Thread | None = None):
        self.worker = worker
        self.shared = shared
        self.heartbeat = heartbeat
        self.manager = JobManager(worker["database"])
        now = time.monotonic()
        self.next_schedule = now
        self.next_rescue = now
        self.next_prune = now + random.uniform(*FIRST_PRUNE)  # noqa: S311
        self.next_alerts = now

    def run(self) -> None:
        try:
            while not self.shared.sidecar_stop.value:
                if self.heartbeat is not None and not self.heartbeat.is_alive():
                    # The worker sees this process end and starts a new one.
                    logger.error("The heartbeat thread of worker %s died", self.worker["id"])
                    os._exit(1)
                now = time.monotonic()
                if self.worker["scheduler"] and now >= self.next_schedule:
                    self.next_schedule = now + scheduler.SCHEDULER_INTERVAL
                    self.guarded("fire due schedules", scheduler.run_due_schedules, self.manager)
                if now >= self.next_rescue:
                    self.next_rescue = now + jobs_settings.HEARTBEAT_INTERVAL
                    self.guarded("rescue the jobs of dead workers", self.manager.requeue_stuck)
                if now >= self.next_prune:
                    self.next_prune = now + PRUNE_EVERY
                    self.guarded("prune finished jobs", self.prune)
                if now >= self.next_alerts:
                    self.next_alerts = now + alerts.CHECK_EVERY
                    self.guarded("run the notification checks", self.alerts)
                wake = min(
                    self.next_schedule if self.worker["scheduler"] else float("inf"),
                    self.next_rescue,
                    self.next_prune,
                    self.next_alerts,
                )
                _sleep_until(self.shared, wake)
        finally:
            connections.close_all()

    def alerts(self) -> None:
        if jobs_settings.NOTIFICATIONS.channels():
            alerts.check(self.worker["database"])

    def guarded(self, what: str, fn, *args) -> None:
        try:
            fn(*args)
        except Exception:  # jobs keep flowing; the next round retries
            logger.exception("Worker %s could not %s; trying again later", self.worker["id"], what)
            _drop_errored_connections()

    def prune(self) -> None:
        retention = jobs_settings.RETENTION
        if retention:
            n = self.manager.prune(older_than=retention)
            if n:
                logger.info(
                    "Pruned %s finished job(s) older than %s",
                    n,
                    timedelta(seconds=retention),
                    extra={"action": "jobs_pruned"},
                )
            deliveries.prune(self.worker["database"], retention)
        Worker.objects.using(self.worker["database"]).silent_for(FORGET_WORKERS_AFTER).delete()
        # Minute counts older than a day become hourly ones (the charts' history).
        while compact_rollups(self.worker["database"]) == COMPACT_CHUNK:
            pass


def _sleep_until(shared: Shared, deadline: float) -> None:
    while not shared.sidecar_stop.value:
        left = deadline - time.monotonic()
        if left <= 0:
            return
        time.sleep(min(left, 0.1))


def _drop_errored_connections() -> None:
    close_old_connections()
    for conn in connections.all(initialized_only=True):
        if conn.errors_occurred:
            conn.close()


def register_row(worker: dict) -> None:
    """Create or refresh the worker's row (heartbeat now, by the database clock)."""

    Worker.objects.using(worker["database"]).update_or_create(
        id=worker["id"],
        defaults={
            "hostname": socket.gethostname(),
            "pid": worker["pid"],
            "queues": worker["queues"],
            "exclude_queues": worker["exclude_queues"],
            "concurrency": worker["concurrency"],
            "stopped_at": None,
            "current_jobs": [],
            "version": __version__,
            "last_heartbeat_at": DbNow(),
        },
    )


def _sidecar_main(parent_pid: int, worker: dict, shared: Shared) -> None:
    die_with_parent(signal.SIGKILL)
    if os.getppid() != parent_pid:
        os._exit(0)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    heartbeat = threading.Thread(
        target=Heartbeat(worker, shared).run, name="django_jobs-heartbeat", daemon=True
    )
    heartbeat.start()
    try:
        Housekeeper(worker, shared, heartbeat).run()
    finally:
        heartbeat.join(timeout=jobs_settings.HEARTBEAT_INTERVAL + 1)
        flush_counts()  # rescues count outcomes too; a forked process skips atexit
        tracing.flush()  # the enqueue spans of schedules fired here
        connections.close_all()


class Sidecar:
    """The worker's handle on its sidecar process."""

    def __init__(self, worker: dict, shared: Shared):
        self.worker = worker
        self.shared = shared
        self.process: BaseProcess | None = None

    def start(self) -> None:
        self.shared.sidecar_stop.value = False
        connections.close_all()  # connections must not cross a fork
        self.process = _mp.Process(
            target=_sidecar_main,
            args=(os.getpid(), self.worker, self.shared),
            daemon=True,
            name="django_jobs-sidecar",
        )
        self.process.start()

    def alive(self) -> bool:
        return self.process is not None and self.process.is_alive()

    def stop(self, timeout: float = 5.0) -> None:
        if self.process is None:
            return
        self.shared.sidecar_stop.value = True
        self.process.join(timeout=timeout)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(timeout=5)


def register(worker: dict, stop=lambda: False) -> None:
    """Register the worker row at start, riding out lock contention and outages (a
    worker never exits because the database was busy when it started)."""
    retry_db_errors(
        register_row, worker, what=f"register worker {worker['id']}", stop=stop, max_delay=1.0
    )
