"""System checks over ``DJANGO_JOBS`` (``manage.py check``), ids ``django_jobs.E0xx``."""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core import checks
from django.utils.module_loading import import_string

from .conf import DEFAULTS

Error = checks.Error


def _is_number(value: Any) -> bool:
    """A finite int or float (NaN and infinity are not usable settings)."""
    return not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)


def _seconds(value: Any) -> float | None:
    """Seconds from a number or timedelta; None for anything else, NaN and infinity."""
    if isinstance(value, timedelta):
        return value.total_seconds()
    if _is_number(value):
        return float(value)
    return None


def _name_ok(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip()) and len(value) <= 255


@checks.register("django_jobs")
def check_settings(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    raw = getattr(settings, "DJANGO_JOBS", None)
    if raw is None:
        return []
    if not isinstance(raw, dict):
        return [
            Error("DJANGO_JOBS must be a dict.", hint="DJANGO_JOBS = {...}", id="django_jobs.E001")
        ]
    errors: list[checks.CheckMessage] = []

    def err(msg: str, hint: str, id_: str) -> None:
        errors.append(Error(msg, hint=hint, id=id_))

    unknown = sorted(set(raw) - set(DEFAULTS))
    if unknown:
        errors.append(
            checks.Warning(
                f"Unknown DJANGO_JOBS key(s): {', '.join(unknown)}.",
                hint=f"Known keys: {', '.join(sorted(DEFAULTS))}.",
                id="django_jobs.W001",
            )
        )
    if "DEFAULT_QUEUE" in raw and not _name_ok(raw["DEFAULT_QUEUE"]):
        err(
            "DJANGO_JOBS['DEFAULT_QUEUE'] must be a non-empty string of at most 255 characters.",
            "For example 'default'.",
            "django_jobs.E002",
        )
    if "DEFAULT_PRIORITY" in raw:
        from .enums import Priority

        try:
            Priority.coerce(raw["DEFAULT_PRIORITY"])
        except ValueError as exc:
            err(
                f"DJANGO_JOBS['DEFAULT_PRIORITY'] is invalid: {exc}",
                "Use an integer in [-100, 100] or 'critical', 'high', 'normal', 'low'.",
                "django_jobs.E003",
            )
    if "DEFAULT_MAX_RETRIES" in raw:
        v = raw["DEFAULT_MAX_RETRIES"]
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            err(
                "DJANGO_JOBS['DEFAULT_MAX_RETRIES'] must be an integer >= 0.",
                "For example 3.",
                "django_jobs.E004",
            )
    for key, id_ in (("DEFAULT_RETRY_DELAY", "E005"), ("MAX_RETRY_DELAY", "E007")):
        if key in raw:
            s = _seconds(raw[key])
            if s is None or s < 0:
                err(
                    f"DJANGO_JOBS['{key}'] must be a finite number of seconds >= 0 or a timedelta.",
                    "For example 60 or timedelta(minutes=1).",
                    f"django_jobs.{id_}",
                )
    if "DEFAULT_RETRY_BACKOFF" in raw:
        v = raw["DEFAULT_RETRY_BACKOFF"]
        if not _is_number(v) or v < 1:
            err(
                "DJANGO_JOBS['DEFAULT_RETRY_BACKOFF'] must be a finite number >= 1.",
                "2.0 doubles the delay at every retry; 1 keeps it constant.",
                "django_jobs.E006",
            )
    if "DEFAULT_TIMEOUT" in raw and raw["DEFAULT_TIMEOUT"] is not None:
        s = _seconds(raw["DEFAULT_TIMEOUT"])
        if s is None or s <= 0:
            err(
                "DJANGO_JOBS['DEFAULT_TIMEOUT'] must be None or a finite, positive number of "
                "seconds or timedelta.",
                "For example 300.",
                "django_jobs.E008",
            )
    if "DEAD_LETTER_QUEUE" in raw and not _name_ok(raw["DEAD_LETTER_QUEUE"]):
        err(
            "DJANGO_JOBS['DEAD_LETTER_QUEUE'] must be a non-empty string of at most 255 "
            "characters.",
            "The default is 'dead-letter'.",
            "django_jobs.E009",
        )
    hb = _seconds(raw.get("HEARTBEAT_INTERVAL", DEFAULTS["HEARTBEAT_INTERVAL"]))
    wt = _seconds(raw.get("WORKER_TIMEOUT", DEFAULTS["WORKER_TIMEOUT"]))
    if hb is None or hb <= 0:
        err(
            "DJANGO_JOBS['HEARTBEAT_INTERVAL'] must be a finite, positive number of seconds.",
            "For example 5.",
            "django_jobs.E010",
        )
    elif wt is None or wt <= 0:
        err(
            "DJANGO_JOBS['WORKER_TIMEOUT'] must be a finite, positive number of seconds.",
            "For example 30.",
            "django_jobs.E011",
        )
    elif wt < 2 * hb:
        err(
            "DJANGO_JOBS['WORKER_TIMEOUT'] must be at least twice HEARTBEAT_INTERVAL, or live "
            "workers would be declared dead between two heartbeats.",
            f"Raise WORKER_TIMEOUT to {2 * hb:g} or more.",
            "django_jobs.E011",
        )
    if "RETENTION" in raw and raw["RETENTION"] is not None:
        s = _seconds(raw["RETENTION"])
        if s is None or s <= 0:
            err(
                "DJANGO_JOBS['RETENTION'] must be None (keep forever) or a positive timedelta.",
                "For example timedelta(days=7).",
                "django_jobs.E012",
            )
    if "NOTIFICATIONS" in raw and not isinstance(raw["NOTIFICATIONS"], dict):
        err(
            "DJANGO_JOBS['NOTIFICATIONS'] must be a dict.",
            "See docs/settings.md.",
            "django_jobs.E013",
        )
    if "API_PERMISSION_CLASSES" in raw:
        v = raw["API_PERMISSION_CLASSES"]
        if not isinstance(v, (list, tuple)):
            err(
                "DJANGO_JOBS['API_PERMISSION_CLASSES'] must be a list of dotted paths.",
                "For example ['rest_framework.permissions.IsAdminUser'].",
                "django_jobs.E014",
            )
        else:
            for path in v:
                try:
                    if not isinstance(path, str):
                        raise ImportError(path)
                    import_string(path)
                except ImportError:
                    err(
                        f"DJANGO_JOBS['API_PERMISSION_CLASSES'] has {path!r}, which cannot be "
                        "imported.",
                        "Check the dotted path.",
                        "django_jobs.E014",
                    )
    if "MAX_PAYLOAD_BYTES" in raw:
        v = raw["MAX_PAYLOAD_BYTES"]
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v <= 0):
            err(
                "DJANGO_JOBS['MAX_PAYLOAD_BYTES'] must be a positive integer or None.",
                "For example 1_000_000.",
                "django_jobs.E015",
            )
    if "DEFAULT_RETRY_JITTER" in raw and not isinstance(raw["DEFAULT_RETRY_JITTER"], bool):
        err(
            "DJANGO_JOBS['DEFAULT_RETRY_JITTER'] must be True or False.",
            "True spreads retries by a random factor in [0.5, 1.5].",
            "django_jobs.E021",
        )
    if "EAGER" in raw and not isinstance(raw["EAGER"], bool):
        err(
            "DJANGO_JOBS['EAGER'] must be True or False.",
            "EAGER runs jobs inline, for tests.",
            "django_jobs.E016",
        )
    if raw.get("DATABASE") is not None and raw["DATABASE"] not in settings.DATABASES:
        err(
            f"DJANGO_JOBS['DATABASE'] is {raw['DATABASE']!r}, which is not in DATABASES.",
            f"Use one of: {', '.join(settings.DATABASES)}.",
            "django_jobs.E017",
        )
    for key, id_ in (
        ("POLL_INTERVAL", "E018"),
        ("PROGRESS_THROTTLE", "E018"),
        ("SHUTDOWN_TIMEOUT", "E018"),
    ):
        if key in raw:
            s = _seconds(raw[key])
            if s is None or s < 0:
                err(
                    f"DJANGO_JOBS['{key}'] must be a finite number of seconds >= 0.",
                    "For example 1.",
                    f"django_jobs.{id_}",
                )
    if "CLAIM_BATCH_SIZE" in raw:
        v = raw["CLAIM_BATCH_SIZE"]
        if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
            err(
                "DJANGO_JOBS['CLAIM_BATCH_SIZE'] must be a positive integer.",
                "For example 100.",
                "django_jobs.E019",
            )
    if "MISFIRE_GRACE" in raw:
        s = _seconds(raw["MISFIRE_GRACE"])
        if s is None or s < 0:
            err(
                "DJANGO_JOBS['MISFIRE_GRACE'] must be a finite number of seconds >= 0 or a "
                "timedelta.",
                "For example 60: a schedule fired up to a minute late still counts as on time.",
                "django_jobs.E022",
            )
    return errors


@checks.register("django_jobs", checks.Tags.database)
def check_database_driver(app_configs=None, databases=None, **kwargs):
    """PostgreSQL wake-ups (LISTEN/NOTIFY) need psycopg 3."""
    from django.db import connections, router

    from .conf import jobs_settings

    try:
        from .models import Job
        from .wakeups import uses_psycopg3

        alias = jobs_settings.DATABASE or router.db_for_write(Job)
        conn = connections[alias]
    except Exception:  # noqa: BLE001 - E017 reports a bad alias
        return []
    if conn.vendor != "postgresql":
        return []
    found = []
    if not uses_psycopg3(conn):
        found.append(
            checks.Warning(
                "The job database uses psycopg2: workers will poll instead of waking on "
                "LISTEN/NOTIFY within milliseconds of an enqueue.",
                hint="pip install 'psycopg[binary]' (psycopg 3); Django prefers it when both "
                "are installed.",
                id="django_jobs.W002",
            )
        )
    if databases and alias in databases:  # `check` alone never queries the database
        found += _check_autovacuum(conn, alias, Job._meta.db_table)
    return found


def _check_autovacuum(conn, alias: str, table: str) -> list[checks.CheckMessage]:
    """Every claim and completion leaves a dead row version behind; without autovacuum
    they pile up and claiming slows down for good (the table-bloat collapse)."""
    try:
        with conn.cursor() as cursor:
            cursor.execute("SHOW autovacuum")
            (setting,) = cursor.fetchone()
    except Exception:  # noqa: BLE001 - an unreachable database is not this check's news
        return []
    if setting == "on":
        return []
    return [
        checks.Warning(
            f"PostgreSQL's autovacuum is off on the server of the job database {alias!r}: "
            "each job leaves two dead row versions in the jobs table that nothing cleans "
            "up, so claiming jobs gets slower the longer workers run.",
            hint="Turn autovacuum back on (ALTER SYSTEM SET autovacuum = on; SELECT "
            "pg_reload_conf();): django_jobs' migrations give its jobs table settings that "
            f"vacuum it every 5,000 dead rows. Otherwise run VACUUM ANALYZE {table} every "
            "minute or so while workers run.",
            id="django_jobs.W003",
        )
    ]


def sqlite_transaction_warnings(databases: dict, aliases=None) -> list[checks.CheckMessage]:
    """W004 for each SQLite database of ``databases`` (the ``DATABASES`` setting; only
    ``aliases`` when given) that does not BEGIN IMMEDIATE.

    With SQLite's default deferred BEGIN, a transaction that read first and then writes
    must upgrade its lock, and SQLite refuses that upgrade at once (``database is
    locked``) instead of waiting for the busy timeout whenever another connection writes:
    several workers on one file would fail each other's writes.
    """
    found = []
    for alias, conf in databases.items():
        if aliases is not None and alias not in aliases:
            continue
        if not str(conf.get("ENGINE", "")).endswith("sqlite3"):
            continue
        mode = (conf.get("OPTIONS") or {}).get("transaction_mode")
        if str(mode or "").upper() == "IMMEDIATE":
            continue
        found.append(
            checks.Warning(
                f"The SQLite database {alias!r} holds jobs but does not begin its transactions "
                "IMMEDIATE: workers sharing the file fail each other's writes with 'database "
                "is locked' instead of waiting for the lock.",
                hint=f"DATABASES[{alias!r}]['OPTIONS'] = {{'transaction_mode': 'IMMEDIATE', "
                "'timeout': 30}} (Django 5.1+); see docs/installing.md.",
                id="django_jobs.W004",
            )
        )
    return found


@checks.register("django_jobs")
def check_sqlite_transactions(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    from django.db import router

    from .conf import jobs_settings

    try:
        from .models import Job

        alias = jobs_settings.DATABASE or router.db_for_write(Job)
    except Exception:  # noqa: BLE001 - E017 reports a bad alias
        return []
    return sqlite_transaction_warnings(settings.DATABASES, [alias])
