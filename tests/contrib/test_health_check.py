"""django_jobs' checks as a django-health-check check (``contrib/health_check.py``)."""

import asyncio

import pytest
from health_check.exceptions import ServiceUnavailable

from django_jobs.contrib.health_check import JobsHealth
from tests.helpers import live_worker


@pytest.mark.django_db(transaction=True)
def test_fails_with_the_failing_checks_and_passes_when_they_pass():
    with pytest.raises(ServiceUnavailable, match="workers: 0 worker"):
        JobsHealth().run()
    JobsHealth(check="database").run()  # only that one: passes
    live_worker("w1")
    JobsHealth(check="workers").run()
    # As django-health-check runs it: on an executor thread, with a timeout.
    result = asyncio.run(JobsHealth(check="workers").get_result())
    assert result.error is None
    result = asyncio.run(JobsHealth(check="scheduler").get_result())
    assert result.error is None


def test_an_unknown_check_is_refused_at_configuration():
    with pytest.raises(ValueError, match="Unknown django_jobs health check"):
        JobsHealth(check="nope")
