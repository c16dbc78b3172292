"""Settings of the server that ``.ci/schemathesis.sh`` tests: the test suite's, plus a
fast password hasher (every request authenticates with HTTP basic auth: PBKDF2 would
spend most of the run hashing), a worker timeout long enough for the seeded worker to
stay alive through the run, and 500s' tracebacks on the console."""

from tests.settings import *  # noqa: F403
from tests.settings import DJANGO_JOBS

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
DJANGO_JOBS = {**DJANGO_JOBS, "WORKER_TIMEOUT": 24 * 3600}
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {
        "django.request": {"handlers": ["console"], "level": "ERROR", "propagate": False},
        "django_jobs": {"handlers": ["console"], "level": "WARNING"},
    },
}
