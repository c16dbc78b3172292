"""The test settings for worker subprocesses that notify: DJANGO_JOBS["NOTIFICATIONS"]
from the JSON in $JOBS_TEST_NOTIFY, email to files in $JOBS_TEST_EMAIL_DIR."""

import json
import os

from tests.settings import *  # noqa: F403

DJANGO_JOBS = {
    **DJANGO_JOBS,  # noqa: F405
    "NOTIFICATIONS": json.loads(os.environ.get("JOBS_TEST_NOTIFY", "{}")),
    "BASE_URL": "https://jobs.example.com",
}
EMAIL_BACKEND = "django.core.mail.backends.filebased.EmailBackend"
EMAIL_FILE_PATH = os.environ.get("JOBS_TEST_EMAIL_DIR", "/tmp/django_jobs_test_emails")
SERVER_EMAIL = "jobs@example.com"
