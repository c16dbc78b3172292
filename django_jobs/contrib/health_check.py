"""django_jobs' health checks as a django-health-check (4.x) check.

For projects that already serve django-health-check's page::

    from health_check.views import HealthCheckView

    path("ht/", HealthCheckView.as_view(checks=[
        "health_check.checks.Database",
        "django_jobs.contrib.health_check.JobsHealth",                      # all five
        ("django_jobs.contrib.health_check.JobsHealth", {"check": "workers"}),  # or one
    ]))

The checks are those of ``manage.py jobs health`` and ``GET /health/`` (see
``docs/deploying.md``), with the same settings.
"""

from __future__ import annotations

import dataclasses

from django.db import connections
from health_check.base import HealthCheck
from health_check.exceptions import ServiceUnavailable

from ..health import CHECKS, run_checks


@dataclasses.dataclass
class JobsHealth(HealthCheck):
    """Fails when one of django_jobs' checks fails; ``check`` runs only that one."""

    check: str | None = None

    def __post_init__(self) -> None:
        if self.check is not None and self.check not in CHECKS:
            raise ValueError(f"Unknown django_jobs health check {self.check!r}: one of {CHECKS}.")

    def run(self) -> None:
        try:
            report = run_checks([self.check] if self.check else None)
        finally:
            connections.close_all()  # this runs on an executor thread of its own
        failed = [check for check in report.checks if not check.ok]
        if failed:
            raise ServiceUnavailable("; ".join(f"{c.name}: {c.message}" for c in failed))
