"""Settings of the django_jobs example project.

Configured from the environment (django-environ): ``DATABASE_URL`` picks the database,
a SQLite file next to this project by default, e.g.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/example python example_project/manage.py demo
"""

from datetime import timedelta
from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent  # example_project/

env = environ.Env(DEBUG=(bool, True))
if (BASE_DIR / ".env").exists():
    environ.Env.read_env(BASE_DIR / ".env")

DEBUG = env("DEBUG")
SECRET_KEY = env("SECRET_KEY", default="django-insecure-example-project-only")
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]"])

DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
_db = DATABASES["default"]
if _db["ENGINE"].endswith("sqlite3"):
    # The web server and the workers share one file: wait for locks instead of failing,
    # take the write lock at BEGIN so claims never deadlock, and let readers run beside
    # the writer (WAL).
    _db.setdefault("OPTIONS", {}).update(
        {
            "timeout": 30,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL;",
        }
    )
elif _db["ENGINE"].endswith("mysql"):
    _db.setdefault("OPTIONS", {}).update(
        {"charset": "utf8mb4", "isolation_level": "read committed"}
    )

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular_sidecar",  # Swagger UI of /api/jobs/schema/docs/, served from here
    "django_jobs",
    "demo",
]
try:  # Django 6 ships django.tasks; Django 5.2 uses the django-tasks backport app.
    import django.tasks  # noqa: F401
except ImportError:
    INSTALLED_APPS.insert(0, "django_tasks")

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
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

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "reports"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# The demo's emails are printed by the worker that sends them.
EMAIL_BACKEND = env("EMAIL_BACKEND", default="django.core.mail.backends.console.EmailBackend")
DEFAULT_FROM_EMAIL = "demo@example.com"

# Django's Tasks framework, run by django_jobs: plain @task functions become jobs too.
TASKS = {
    "default": {"BACKEND": "django_jobs.backend.JobsBackend", "QUEUES": []},
}

# Where the demo's site answers: links in notifications, and the webhook below (the demo
# command sets it from its address).
DEMO_BASE_URL = env("DEMO_BASE_URL", default="http://127.0.0.1:8000")
# The secret the workers sign webhooks with and demo.views.job_webhook checks them with.
DEMO_WEBHOOK_SECRET = env(
    "DEMO_WEBHOOK_SECRET", default="whsec_ZGVtby1vbmx5LXdlYmhvb2stc2lnbmluZy1rZXk="
)

DJANGO_JOBS = {
    "BASE_URL": DEMO_BASE_URL,
    # Failures by email (printed by the console backend above) and by a signed webhook to
    # the demo's own receiver, /hooks/jobs/ (docs/notifications.md).
    "NOTIFICATIONS": {
        "EMAIL": {
            "TO": ["ops@example.com"],
            "EVENTS": ["failed", "worker_lost", "schedule_missed", "queue_backlog"],
        },
        "WEBHOOKS": [
            {
                "URL": f"{DEMO_BASE_URL}/hooks/jobs/",
                "SECRET": DEMO_WEBHOOK_SECRET,
                "EVENTS": ["failed", "retrying", "worker_lost"],
            }
        ],
    },
    "DEFAULT_MAX_RETRIES": 3,
    "DEFAULT_RETRY_DELAY": timedelta(seconds=30),
    "HEARTBEAT_INTERVAL": 2,
    "WORKER_TIMEOUT": 10,
    "SHUTDOWN_TIMEOUT": 10,
    "RETENTION": timedelta(days=1),
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "loggers": {
        "django_jobs": {"handlers": ["console"], "level": env("JOBS_LOG_LEVEL", default="INFO")},
        "demo": {"handlers": ["console"], "level": "INFO"},
    },
}
