"""The test settings with the default poll interval (1 s), for workers that must show
how fast they follow a change made in the admin."""

from tests.settings import *  # noqa: F403

DJANGO_JOBS = {**DJANGO_JOBS, "POLL_INTERVAL": 1.0}  # noqa: F405
