"""Riding out database outages and lock contention in worker processes.

A worker never exits because the database restarted, a connection was killed, or SQLite
was busy: writes that must land (outcomes, hand-backs) are retried with backoff until
they do, and reads are simply tried again on the next round. Errors that are not about
the connection or a lock (a bad value, a broken constraint) are raised at once: retrying
them would only repeat them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from django.db import DatabaseError, InterfaceError, OperationalError, connections

logger = logging.getLogger("django_jobs.execution")

# Messages of errors that go away by themselves: lock contention, deadlocks, and a
# connection that was lost.
TRANSIENT_MESSAGES = (
    "database is locked",  # SQLite: another connection writes
    "database table is locked",
    "deadlock",  # PostgreSQL 40P01, MySQL 1213: the transaction was rolled back
    "lock wait timeout",  # MySQL 1205
    "could not serialize",  # PostgreSQL 40001
    "lock timeout",
    "terminating connection",  # PostgreSQL: pg_terminate_backend, a restart
    "server closed the connection",
    "connection is closed",
    "connection failed",
    "could not connect",
    "the database system is",  # starting up, shutting down, in recovery
    "server has gone away",  # MySQL 2006
    "lost connection",  # MySQL 2013
    "can't connect",  # MySQL 2002, 2003
)
# PostgreSQL SQLSTATE classes: connection exceptions, operator intervention (restart,
# terminated backend), insufficient resources (too many connections).
TRANSIENT_SQLSTATE_PREFIXES = ("08", "57P", "53")
# MySQL/MariaDB error codes: lock wait timeout, deadlock, server gone, lost connection,
# cannot connect, connection killed.
TRANSIENT_MYSQL_CODES = {1205, 1213, 2002, 2003, 2006, 2013, 1927, 4031}


def drop_broken_connections() -> None:
    """Close this thread's connections that errored or went away; keep healthy ones.

    Unlike ``close_old_connections()`` this ignores ``CONN_MAX_AGE=0``: outside a request
    cycle, reconnecting for every job would cost more than the job.
    """
    for conn in connections.all(initialized_only=True):
        if conn.connection is None:
            continue
        if conn.in_atomic_block:
            # A job left a transaction open: never carry it into the next job.
            discard(conn)
        elif conn.errors_occurred and not conn.is_usable():
            discard(conn)


def discard(conn) -> None:
    """Close ``conn`` and forget its state, so that its next use opens a fresh one.

    Django's own ``close()`` inside an atomic block only marks the block for rollback and
    keeps the closed connection: every later query would fail. A worker has no atomic
    block of its own to honour here (a job left one open, or was interrupted in one), so
    the wrapper is reset as if it had never been opened.
    """
    try:
        conn.close()
    except Exception:  # noqa: BLE001 - it is broken anyway: forget it
        pass
    if conn.in_atomic_block or conn.closed_in_transaction or conn.connection is not None:
        try:
            if conn.connection is not None:
                conn._close()
        except Exception:  # noqa: BLE001
            pass
        conn.connection = None
        conn.in_atomic_block = False
        conn.savepoint_ids = []
        conn.atomic_blocks = []
        conn.needs_rollback = False
        conn.closed_in_transaction = False
        conn.commit_on_exit = True
        conn.run_on_commit = []


def is_transient(exc: BaseException, using: str | None = None) -> bool:
    """Whether ``exc`` is an outage or lock contention that retrying rides out: the
    connection (``using``'s, or any of this thread's) is gone, or the error is a lock,
    deadlock or serialization failure."""
    if not isinstance(exc, (OperationalError, InterfaceError)):
        return False
    message = str(exc).lower()
    if any(text in message for text in TRANSIENT_MESSAGES):
        return True
    cause = exc.__cause__
    if str(getattr(cause, "sqlstate", None) or "").startswith(TRANSIENT_SQLSTATE_PREFIXES):
        return True
    args = getattr(cause, "args", ()) or exc.args
    if args and isinstance(args[0], int) and args[0] in TRANSIENT_MYSQL_CODES:
        return True
    candidates = (
        [connections[using]] if using is not None else connections.all(initialized_only=True)
    )
    for conn in candidates:
        if conn.connection is None:
            return True
        try:
            if not conn.is_usable():
                return True
        except DatabaseError:
            return True
    return False


def retry_db_errors(
    fn: Callable,
    *args: Any,
    what: str = "write",
    stop: Callable[[], bool] | None = None,
    on_wait: Callable[[], Any] | None = None,
    max_delay: float = 2.0,
    using: str | None = None,
) -> Any:
    """``fn(*args)``, tried again with backoff while the database (``using``) is
    unreachable or busy. ``stop()`` true gives up (re-raising); ``on_wait()`` runs at
    every pause."""
    delay = 0.05
    failures = 0
    while True:
        try:
            result = fn(*args)
        except (OperationalError, InterfaceError) as exc:
            if not is_transient(exc, using) or (stop is not None and stop()):
                raise
            failures += 1
            if failures == 1 or failures % 20 == 0:
                logger.warning(
                    "Could not %s (%s); retrying until the database answers",
                    what,
                    str(exc).strip().splitlines()[0] if str(exc) else exc,
                    extra={"action": "db_retry"},
                )
            for conn in connections.all(initialized_only=True):
                if conn.errors_occurred or conn.connection is None or conn.in_atomic_block:
                    discard(conn)
            if on_wait is not None:
                on_wait()
            time.sleep(delay)
            delay = min(delay * 2, max_delay)
            continue
        if failures:
            logger.info("The database answers again: %s done", what)
        return result
