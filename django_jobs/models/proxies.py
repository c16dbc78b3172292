"""Admin pages that are views over the jobs table rather than tables of their own.

The admin lists an app's pages by model, so each page that is not a model's list gets a
proxy of :class:`Job` (no table, no columns): that puts it in the admin index and the
app index, under ``admin/django_jobs/<name>/``, guarded by the job permissions.
"""

from __future__ import annotations

from .job import Job


class Dashboard(Job):
    """``admin/django_jobs/dashboard/``: counts, throughput, percentiles, workers."""

    class Meta:
        proxy = True
        verbose_name = "dashboard"
        verbose_name_plural = "dashboard"
        default_permissions = ()  # the job permissions guard it
