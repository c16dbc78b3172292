"""The no-op task of django-tasks-db (timings are read from its result table)."""

from django.tasks import task


@task()
def noop(tag=None):
    return None
