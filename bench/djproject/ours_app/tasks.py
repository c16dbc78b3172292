"""The no-op job of django_jobs (timings are read from the job table)."""

from django_jobs import job


@job
def noop(tag=None):
    return None
