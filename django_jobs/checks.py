"""System checks over ``DJANGO_JOBS`` (``manage.py check``), ids ``django_jobs.E0xx``."""

from __future__ import annotations

from django.apps import apps
from django.conf import settings
from django.core import checks
from django.db import connections, router
from django.urls import NoReverseMatch, reverse
from django.utils.module_loading import import_string

from .conf import JobsSettings, jobs_settings
from .models import Job
from .wakeups import uses_psycopg3

Error = checks.Error
E001 = "django_jobs.E001"


@checks.register("django_jobs")
def check_settings(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    """Every key of ``DJANGO_JOBS`` read by the reader the workers use (``conf``), then
    what no single key can say: timeouts against heartbeats, importable permission
    classes, an alias that exists."""
    raw = getattr(settings, "DJANGO_JOBS", None)
    if raw is None:
        return []
    if not isinstance(raw, dict):
        return [
            Error("DJANGO_JOBS must be a dict.", hint="DJANGO_JOBS = {...}", id="django_jobs.E001")
        ]
    keys = {setting.name: setting for setting in JobsSettings.keys()}
    found: list[checks.CheckMessage] = []
    unknown = sorted(set(raw) - set(keys), key=str)
    if unknown:
        found.append(
            checks.Warning(
                f"Unknown DJANGO_JOBS key(s): {', '.join(map(str, unknown))}.",
                hint=f"Known keys: {', '.join(sorted(keys))}.",
                id="django_jobs.W001",
            )
        )
    bad = set()
    for name, setting in keys.items():
        problem = setting.problem_and_id(raw[name]) if name in raw else None
        if problem:
            bad.add(name)
            message, check_id = problem
            found.append(Error(message, hint=setting.hint, id=f"django_jobs.{check_id}"))
    if not bad & {"HEARTBEAT_INTERVAL", "WORKER_TIMEOUT"}:
        heartbeat = JobsSettings.HEARTBEAT_INTERVAL.value_in(raw)
        timeout = JobsSettings.WORKER_TIMEOUT.value_in(raw)
        if timeout < 2 * heartbeat:
            found.append(
                Error(
                    "DJANGO_JOBS['WORKER_TIMEOUT'] must be at least twice HEARTBEAT_INTERVAL, "
                    "or live workers would be declared dead between two heartbeats.",
                    hint=f"Raise WORKER_TIMEOUT to {2 * heartbeat:g} or more.",
                    id="django_jobs.E011",
                )
            )
    if "API_PERMISSION_CLASSES" in raw and "API_PERMISSION_CLASSES" not in bad:
        for path in raw["API_PERMISSION_CLASSES"]:
            try:
                import_string(path)
            except ImportError:
                found.append(
                    Error(
                        f"DJANGO_JOBS['API_PERMISSION_CLASSES'] has {path!r}, which cannot be "
                        "imported.",
                        hint="Check the dotted path.",
                        id="django_jobs.E014",
                    )
                )
    alias = raw.get("DATABASE")
    if "DATABASE" not in bad and alias is not None and alias not in settings.DATABASES:
        found.append(
            Error(
                f"DJANGO_JOBS['DATABASE'] is {alias!r}, which is not in DATABASES.",
                hint=f"Use one of: {', '.join(settings.DATABASES)}.",
                id="django_jobs.E017",
            )
        )
    return found


@checks.register("django_jobs", checks.Tags.database)
def check_database_driver(app_configs=None, databases=None, **kwargs):
    """PostgreSQL wake-ups (LISTEN/NOTIFY) need psycopg 3."""

    try:
        alias = jobs_settings.DATABASE or router.db_for_write(Job)
        conn = connections[alias]
    except Exception:  # noqa: BLE001 - E017 reports a bad alias
        return []
    if conn.vendor != "postgresql":
        return []
    found: list[checks.CheckMessage] = []
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
    found: list[checks.CheckMessage] = []
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
    try:
        alias = jobs_settings.DATABASE or router.db_for_write(Job)
    except Exception:  # noqa: BLE001 - E017 reports a bad alias
        return []
    return sqlite_transaction_warnings(settings.DATABASES, [alias])


@checks.register("django_jobs", checks.Tags.urls)
def check_schema_docs_files(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    """The API is mounted, so is its schema's browsable page (``schema/docs/``), whose
    Swagger UI files come from drf-spectacular-sidecar's app (no CDN)."""
    if apps.is_installed("drf_spectacular_sidecar"):
        return []
    try:
        page = reverse("django_jobs_api:schema-docs")
    except NoReverseMatch:  # the API is not mounted
        return []
    except Exception:  # noqa: BLE001 - Django's own urls check reports a broken URLconf
        return []
    return [
        checks.Warning(
            f"The REST API is mounted, but its schema's browsable page ({page}) answers 501: "
            "its Swagger UI files come from drf-spectacular-sidecar, not in INSTALLED_APPS.",
            hint="pip install drf-spectacular-sidecar (in django-jobs[api]) and add "
            '"drf_spectacular_sidecar" to INSTALLED_APPS, or silence django_jobs.W005 '
            "if you don't want the page.",
            id="django_jobs.W005",
        )
    ]
