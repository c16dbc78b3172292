"""Settings for the test suite. ``DATABASE_URL`` picks the database (SQLite by default)."""

import os
from pathlib import Path

import django
import environ

BASE_DIR = Path(__file__).resolve().parent
env = environ.Env()

DATABASE_URL = os.environ.get("DATABASE_URL") or f"sqlite:///{BASE_DIR / 'test.sqlite3'}"
DATABASES = {"default": env.db_url_config(DATABASE_URL)}
_db = DATABASES["default"]
if os.environ.get("JOBS_TEST_DB_NAME"):
    # Worker subprocesses started by the tests use the test database directly.
    _db["NAME"] = os.environ["JOBS_TEST_DB_NAME"]
if _db["ENGINE"].endswith("sqlite3"):
    # Worker subprocesses share the file with the test process: wait for locks, take the
    # write lock at BEGIN so claims never deadlock, and use WAL for concurrent readers.
    _db["OPTIONS"] = {
        "timeout": 30,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    if os.environ.get("JOBS_TEST_SQLITE_DEFERRED"):
        # Worker subprocesses of the lock-contention test: SQLite's default BEGIN.
        del _db["OPTIONS"]["transaction_mode"]
    _db["TEST"] = {"NAME": str(BASE_DIR / f"test_{os.getpid()}.sqlite3")}
elif _db["ENGINE"].endswith("mysql"):
    _db.setdefault("OPTIONS", {})["charset"] = "utf8mb4"
    _db["OPTIONS"]["isolation_level"] = "read committed"
    _db["TEST"] = {"CHARSET": "utf8mb4"}

SECRET_KEY = "tests-only"
DEBUG = False
USE_TZ = True
TIME_ZONE = "UTC"
ALLOWED_HOSTS = ["*"]
INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",  # the live server of the browser test serves the CSS
    "rest_framework",
    "drf_spectacular_sidecar",  # the Swagger UI files of the API's schema/docs/ page
    "django_jobs",
    "tests.testapp",
]
try:  # Django 5.2 with the backport: its app wires the django.tasks signals
    import django.tasks
except ImportError:
    INSTALLED_APPS.insert(0, "django_tasks")

MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
ROOT_URLCONF = "tests.urls"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

TASKS = {
    "default": {"BACKEND": "django_jobs.backend.JobsBackend", "QUEUES": []},
}

# Short timings so worker tests finish in seconds.
DJANGO_JOBS = {
    "HEARTBEAT_INTERVAL": float(os.environ.get("JOBS_HEARTBEAT", "0.5")),
    "WORKER_TIMEOUT": float(os.environ.get("JOBS_WORKER_TIMEOUT", "3")),
    "POLL_INTERVAL": 0.2,
    "PROGRESS_THROTTLE": 0.0,
    "SHUTDOWN_TIMEOUT": 10,
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"django_jobs": {"handlers": ["console"], "level": "WARNING"}},
}
STATIC_URL = "/static/"

# Django 6.1 deprecates EMAIL_BACKEND for MAILERS and warns (an error here) when sending
# without it; the test runner makes every mailer locmem.
if django.VERSION >= (6, 1):
    MAILERS = {"default": {"BACKEND": "django.core.mail.backends.locmem.EmailBackend"}}

if os.environ.get("JOBS_TEST_SPANS_FILE"):
    # Worker subprocesses of the tracing tests: OpenTelemetry configured as a project
    # would, exporting to a file the test reads.
    from tests.otel_export import trace_to_file

    trace_to_file(os.environ["JOBS_TEST_SPANS_FILE"])
