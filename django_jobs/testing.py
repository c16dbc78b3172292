"""Helpers for a project's own tests.

- ``DJANGO_JOBS = {"EAGER": True}`` runs jobs inline at enqueue (no retries).
- ``run_jobs()`` drains due jobs in this process, as a worker would.
- The ``jobs_worker`` pytest fixture (``pytest_plugins = ["django_jobs.testing"]``) hands
  a test ``run_jobs``.
"""

from __future__ import annotations

from collections.abc import Iterable

from .execution.runner import run_job
from .manager import jobs as default_manager


def run_jobs(
    queues: Iterable[str] | None = None,
    *,
    max_jobs: int | None = None,
    worker_id: str = "run_jobs",
    allow_retry: bool = True,
) -> int:
    """Run every due job (of ``queues``, default all) in this process; returns how many.

    Jobs are claimed exactly as a worker claims them (priority order, leases, paused
    queues skipped); retries whose delay has not passed yet are left for later. Timeouts
    are not enforced in-process.
    """
    queues = list(queues) if queues else None
    count = 0
    while max_jobs is None or count < max_jobs:
        claimed = default_manager.objects.claim(worker_id, 1, queues=queues)
        if not claimed:
            break
        run_job(claimed[0], allow_retry=allow_retry)
        count += 1
    return count


try:
    import pytest
except ImportError:  # pragma: no cover - pytest is optional
    pytest = None  # type: ignore[assignment]

if pytest is not None:

    @pytest.fixture
    def jobs_worker(db):
        """``run_jobs`` for a test: ``jobs_worker()`` drains due jobs in-process."""
        return run_jobs
