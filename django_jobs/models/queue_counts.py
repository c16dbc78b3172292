"""Queues with their counts, for the admin's queue list and the API's ``/queues/``."""

from __future__ import annotations

from typing import Any

from django.db import connections
from django.db.models import (
    Case,
    Count,
    DateTimeField,
    Field,
    IntegerField,
    Min,
    QuerySet,
    Value,
    When,
)
from django.db.models.functions import Cast

from .counts import failed_by_queue
from .functions import DbNow
from .job import Job
from .queue import Queue


def with_counts(queues: QuerySet[Queue]) -> QuerySet[Queue]:
    """``queues`` annotated with ``pending``, ``running`` and ``failed`` (failed jobs
    live in the dead-letter queue and remember where they came from; estimated on a big
    PostgreSQL table) and ``oldest_due`` (when the oldest due job became due).

    Each number is read once for every queue (a ``GROUP BY`` over the unfinished jobs'
    index, the failed counts of ``counts``) and enters the query as a constant per queue
    name: still columns the admin can sort by, without one correlated count per queue row
    over tens of thousands of pending jobs each.
    """
    db = queues.db
    jobs = Job.objects.using(db).order_by()
    pending = dict(jobs.claimable().values_list("queue").annotate(n=Count("id")))
    running = dict(jobs.held().values_list("queue").annotate(n=Count("id")))
    oldest = dict(
        jobs.claimable()
        .filter(scheduled_at__lte=DbNow())
        .values_list("queue")
        .annotate(t=Min("scheduled_at"))
    )
    failed, _ = failed_by_queue(db)
    return queues.annotate(
        pending=_by_name(pending, IntegerField(), 0),
        running=_by_name(running, IntegerField(), 0),
        failed=_by_name(failed, IntegerField(), 0),
        oldest_due=_oldest(db, _by_name(oldest, DateTimeField(), None)),
    )


def _oldest(db: str, expression: Case | Value) -> Case | Value | Cast:
    """MySQL and MariaDB type a CASE of datetime literals as text, which Django's
    datetime converter cannot read: cast it back to a datetime there."""
    if isinstance(expression, Case) and connections[db].vendor == "mysql":
        return Cast(expression, output_field=DateTimeField())
    return expression


def _by_name(values: dict[str, Any], field: Field, default: Any) -> Case | Value:
    """``values[queue.name]`` as an SQL expression (``default`` for other names)."""
    fallback = Value(default, output_field=field)
    if not values:
        return fallback
    return Case(
        *(When(name=name, then=Value(value, output_field=field)) for name, value in values.items()),
        default=fallback,
        output_field=field,
    )
