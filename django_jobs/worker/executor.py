"""Executor processes: where job code runs, one job at a time.

A job's code runs in a child process of the worker so that a hard timeout or
``cancel(terminate=True)`` can really stop code that never yields (the worker kills the
process and starts a fresh one), and a job that crashes its interpreter does not take the
worker down with it.
"""

from __future__ import annotations

import ctypes
import logging
import multiprocessing
import os
import signal
import sys
import time

from django.db import connections

logger = logging.getLogger("django_jobs.worker")

_mp = multiprocessing.get_context("fork")
CANCEL_SIGNAL = signal.SIGUSR1


def die_with_parent(sig: int = signal.SIGKILL) -> None:
    """Ask Linux to send ``sig`` to this process when its parent dies."""
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL("libc.so.6", use_errno=True)
            PR_SET_PDEATHSIG = 1  # noqa: N806
            libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
        except OSError:  # pragma: no cover - no libc: the watchdog below still works
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


def _executor_main(conn, parent_pid: int) -> None:
    die_with_parent(signal.SIGKILL)
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(0)
    # Ctrl-C reaches the whole process group: the worker decides what happens to jobs.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    from ..execution.context import interrupt_current
    from ..execution.runner import run_job

    # The worker sends CANCEL_SIGNAL when it sees a cancel at its heartbeat: the job's
    # code gets JobCancelled at its next Python instruction (finally blocks still run).
    signal.signal(CANCEL_SIGNAL, interrupt_current)

    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            break
        if message[0] == "stop":
            break
        job = message[1]
        drop_broken_connections()
        started = time.monotonic()
        try:
            status = run_job(job)
        except BaseException:  # noqa: BLE001 - run_job records failures; this is a DB outage
            logger.exception("Executor could not record the outcome of job %s", job.pk)
            status = None
        try:
            conn.send(("done", job.pk, status, time.monotonic() - started))
        except (BrokenPipeError, OSError):
            break
    connections.close_all()


class Executor:
    """The worker's handle on one executor process."""

    def __init__(self, index: int):
        self.index = index
        self.job = None
        self.deadline: float | None = None
        self.started: float | None = None
        self.interrupted = False  # a cooperative cancel was sent to the running job
        # Connections must not cross a fork: the child opens its own.
        connections.close_all()
        self.conn, child_conn = _mp.Pipe()
        self.process = _mp.Process(
            target=_executor_main, args=(child_conn, os.getpid()), daemon=True,
            name=f"django_jobs-executor-{index}",
        )
        self.process.start()
        child_conn.close()

    @property
    def busy(self) -> bool:
        return self.job is not None

    def run(self, job) -> None:
        self.job = job
        self.started = time.monotonic()
        self.deadline = self.started + job.timeout if job.timeout else None
        self.conn.send(("run", job))

    def done(self) -> None:
        self.interrupted = False
        self.job = None
        self.deadline = None
        self.started = None

    def interrupt(self) -> None:
        """Ask the running job to stop (cooperative cancel)."""
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

    def stop(self) -> None:
        try:
            self.conn.send(("stop",))
        except (BrokenPipeError, OSError):
            pass
        self.process.join(timeout=2)
        if self.process.is_alive():
            self.kill()
        else:
            self.conn.close()
