"""PostgreSQL helpers: databases, statistics, row cloning and sampled statement timings."""

from __future__ import annotations

import re
import time
from contextlib import contextmanager
from pathlib import Path

import psycopg
from psycopg import sql

HOST = "127.0.0.1"
PORT = 5432
USER = "postgres"
PG_LOG = Path("/var/log/postgresql/postgresql-15-main.log")


def dsn(dbname: str) -> str:
    return f"postgresql://{USER}@{HOST}:{PORT}/{dbname}"


def connect(dbname: str = "postgres", autocommit: bool = True) -> psycopg.Connection:
    return psycopg.connect(dsn(dbname), autocommit=autocommit)


def recreate_database(name: str) -> None:
    with connect() as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def drop_database(name: str) -> None:
    with connect() as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


def server_version() -> str:
    with connect() as conn:
        return conn.execute("SHOW server_version").fetchone()[0]


def autovacuum_setting() -> tuple[str, str]:
    """(the server's autovacuum setting, where it comes from)."""
    with connect() as conn:
        row = conn.execute(
            "SELECT setting, coalesce(sourcefile, source) FROM pg_settings "
            "WHERE name = 'autovacuum'"
        ).fetchone()
    return row[0], row[1]


@contextmanager
def autovacuum_on():
    """Turn the server's autovacuum on for the run (``ALTER SYSTEM`` + reload) if it is
    off, and back to what it was afterwards; yields the setting in force during the run.
    A queue's steady state depends on it; a server configured for fast tests may have it
    off. (A setting given on the server's command line wins over ``ALTER SYSTEM``: then
    it stays off, and the yielded value says so.)"""
    before, _ = autovacuum_setting()
    if before == "on":
        yield before
        return
    with connect() as conn:
        # What postgresql.auto.conf said before, if anything: put exactly that back.
        row = conn.execute(
            "SELECT setting FROM pg_file_settings WHERE name = 'autovacuum' "
            "AND sourcefile LIKE '%postgresql.auto.conf' ORDER BY seqno DESC LIMIT 1"
        ).fetchone()
        conn.execute("ALTER SYSTEM SET autovacuum = on")
        conn.execute("SELECT pg_reload_conf()")
    try:
        deadline = time.monotonic() + 5  # the postmaster reloads asynchronously
        during = autovacuum_setting()[0]
        while during != "on" and time.monotonic() < deadline:
            time.sleep(0.1)
            during = autovacuum_setting()[0]
        yield during
    finally:
        try:
            with connect() as conn:
                if row is None:
                    conn.execute("ALTER SYSTEM RESET autovacuum")
                else:
                    conn.execute(
                        sql.SQL("ALTER SYSTEM SET autovacuum = {}").format(sql.Literal(row[0]))
                    )
                conn.execute("SELECT pg_reload_conf()")
        except Exception as exc:  # noqa: BLE001 - say so; the results are saved anyway
            print(
                f"bench: could not restore the server's autovacuum setting ({exc!r}); "
                "run ALTER SYSTEM RESET autovacuum; SELECT pg_reload_conf(); by hand",
                flush=True,
            )


def xact_counts(dbname: str) -> tuple[int, int]:
    """(xact_commit, xact_rollback) of a database, read from a fresh connection to
    ``postgres`` so the reading itself is not counted."""
    with connect() as conn:
        row = conn.execute(
            "SELECT xact_commit, xact_rollback FROM pg_stat_database WHERE datname = %s",
            [dbname],
        ).fetchone()
    return (int(row[0]), int(row[1])) if row else (0, 0)


def settle_stats() -> None:
    # Backends flush their statistics at most once a second (and when they exit).
    time.sleep(1.2)


def table_stats(conn: psycopg.Connection, table: str) -> dict:
    row = conn.execute(
        "SELECT n_live_tup, n_dead_tup, autovacuum_count, autoanalyze_count, "
        "pg_total_relation_size(relid) FROM pg_stat_user_tables WHERE relname = %s",
        [table],
    ).fetchone()
    if not row:
        return {}
    return {
        "live": row[0],
        "dead": row[1],
        "autovacuums": row[2],
        "autoanalyzes": row[3],
        "bytes": row[4],
    }


def clone_rows(
    conn: psycopg.Connection,
    table: str,
    template_where: str,
    n: int,
    overrides: dict[str, str] | None = None,
    analyze: bool = True,
) -> None:
    """INSERT ``n`` copies of the one row matching ``template_where``.

    Serial/identity columns are left to their defaults; ``overrides`` maps a column to
    an SQL expression (e.g. ``{"id": "gen_random_uuid()"}``). The row is exactly what
    the system's own enqueue wrote, so this is a fast, library-neutral pre-fill.
    """
    overrides = overrides or {}
    cols = conn.execute(
        "SELECT column_name, column_default, is_identity FROM information_schema.columns "
        "WHERE table_name = %s AND table_schema = current_schema() ORDER BY ordinal_position",
        [table],
    ).fetchall()
    if not cols:
        raise RuntimeError(f"table {table!r} not found")
    names, exprs = [], []
    for name, default, identity in cols:
        if name in overrides:
            names.append(sql.Identifier(name))
            exprs.append(sql.SQL(overrides[name]))
        elif identity == "YES" or (default or "").startswith("nextval("):
            continue
        else:
            names.append(sql.Identifier(name))
            exprs.append(sql.SQL("t.") + sql.Identifier(name))
    if n <= 0:
        return
    query = sql.SQL(
        "INSERT INTO {table} ({names}) SELECT {exprs} FROM {table} t, generate_series(1, {n}) "
        "WHERE {where}"
    ).format(
        table=sql.Identifier(table),
        names=sql.SQL(", ").join(names),
        exprs=sql.SQL(", ").join(exprs),
        n=sql.Literal(n),
        where=sql.SQL(template_where),
    )
    conn.execute(query)
    if analyze:
        conn.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(table)))


# -- sampled statement durations (pg_stat_statements is not preloaded here) --------------


def pg_stat_statements_available() -> bool:
    with connect() as conn:
        libs = conn.execute("SHOW shared_preload_libraries").fetchone()[0]
    return "pg_stat_statements" in libs


def enable_statement_sampling(dbname: str, rate: float) -> int | None:
    """Log a random ``rate`` of all statements (with their duration) of new sessions on
    ``dbname``; returns the server log's current size (where to start reading), or None
    when the log cannot be read here."""
    if not PG_LOG.exists():
        return None
    try:
        size = PG_LOG.stat().st_size
        with open(PG_LOG, "rb"):
            pass
    except OSError:
        return None
    with connect() as conn:
        ident = sql.Identifier(dbname)
        conn.execute(sql.SQL("ALTER DATABASE {} SET log_min_duration_sample = 0").format(ident))
        conn.execute(
            sql.SQL("ALTER DATABASE {} SET log_statement_sample_rate = {}").format(
                ident, sql.Literal(rate)
            )
        )
    return size


def disable_statement_sampling(dbname: str) -> None:
    with connect() as conn:
        ident = sql.Identifier(dbname)
        conn.execute(sql.SQL("ALTER DATABASE {} RESET log_min_duration_sample").format(ident))
        conn.execute(sql.SQL("ALTER DATABASE {} RESET log_statement_sample_rate").format(ident))


_ENTRY = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+ \w+ \[\d+\] (\S*)@(\S*) ")
_DURATION = re.compile(
    r"duration: ([0-9.]+) ms\s+(statement|execute [^:]*|parse [^:]*|bind [^:]*):"
)


def sampled_durations(dbname: str, offset: int, pattern: str) -> list[float]:
    """Durations (ms) of the sampled statements of ``dbname`` logged after ``offset``
    whose text matches ``pattern`` (parse and bind steps are skipped)."""
    want = re.compile(pattern, re.IGNORECASE)
    durations: list[float] = []
    entry: list[str] = []

    def finish() -> None:
        if not entry:
            return
        head = entry[0]
        m = _ENTRY.match(head)
        if not m or m.group(2) != dbname:
            return
        d = _DURATION.search(head)
        if not d or d.group(2).startswith(("parse", "bind")):
            return
        if want.search(" ".join(entry)):
            durations.append(float(d.group(1)))

    with open(PG_LOG, errors="replace") as f:
        f.seek(offset)
        for line in f:
            if _ENTRY.match(line):
                finish()
                entry = [line]
            elif entry:
                entry.append(line)
        finish()
    return durations
