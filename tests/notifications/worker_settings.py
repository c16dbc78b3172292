"""The test settings for worker subprocesses that notify: DJANGO_JOBS["NOTIFICATIONS"]
from the JSON in $JOBS_TEST_NOTIFY, email to files in $JOBS_TEST_EMAIL_DIR."""

import json
import os

import django

from tests.settings import *  # noqa: F403

DJANGO_JOBS = {
    **DJANGO_JOBS,  # noqa: F405
    "NOTIFICATIONS": json.loads(os.environ.get("JOBS_TEST_NOTIFY", "{}")),
    "BASE_URL": "https://jobs.example.com",
}
_outbox = os.environ.get("JOBS_TEST_EMAIL_DIR", "/tmp/django_jobs_test_emails")
if django.VERSION >= (6, 1):  # EMAIL_BACKEND and EMAIL_FILE_PATH are deprecated there
    MAILERS = {
        "default": {
            "BACKEND": "django.core.mail.backends.filebased.EmailBackend",
            "OPTIONS": {"file_path": _outbox},
        }
    }
else:
    EMAIL_BACKEND = "django.core.mail.backends.filebased.EmailBackend"
    EMAIL_FILE_PATH = _outbox
SERVER_EMAIL = "jobs@example.com"
