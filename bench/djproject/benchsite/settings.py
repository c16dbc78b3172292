"""Settings of the benchmark's Django project.

``BENCH_DJANGO_SYSTEM`` picks the system under test: ``ours`` (django_jobs) or ``dtdb``
(django-tasks-db, Django's ORM backend); ``BENCH_DB_NAME`` its PostgreSQL database. Both get
the same production-like settings: DEBUG off (no query log), persistent connections.
"""

import os

SYSTEM = os.environ.get("BENCH_DJANGO_SYSTEM", "ours")

SECRET_KEY = "benchmark-only"
DEBUG = False
USE_TZ = True
TIME_ZONE = "UTC"
ALLOWED_HOSTS = ["127.0.0.1"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": os.environ.get("BENCH_DB_NAME", f"bench_{SYSTEM}"),
        "USER": "postgres",
        "HOST": "127.0.0.1",
        "PORT": "5432",
        # Workers are long-running: keep their connections (Django's default, 0, would
        # reconnect after every close_old_connections() call).
        "CONN_MAX_AGE": None,
    }
}

INSTALLED_APPS = ["django.contrib.contenttypes", "django.contrib.auth"]
if SYSTEM == "ours":
    INSTALLED_APPS += ["django_jobs", "ours_app"]
elif SYSTEM == "dtdb":
    INSTALLED_APPS += ["django_tasks_db", "dtdb_app"]
    TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend", "QUEUES": ["default"]}}
else:  # pragma: no cover
    raise RuntimeError(f"unknown BENCH_DJANGO_SYSTEM {SYSTEM!r}")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
}
