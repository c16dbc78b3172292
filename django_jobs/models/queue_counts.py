"""Queues with their counts, for the admin's queue list and the API's ``/queues/``."""

from __future__ import annotations

from django.db.models import (
    Case,
    DateTimeField,
    F,
    Func,
    IntegerField,
    Min,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Value,
    When,
)
from django.db.models.functions import Coalesce

from ..enums import CLAIMABLE_STATUSES
from .counts import failed_by_queue
from .functions import DbNow
from .job import Job
from .queue import Queue


def with_counts(queues: QuerySet[Queue]) -> QuerySet[Queue]:
    """``queues`` annotated with ``pending``, ``running`` and ``failed`` (failed jobs
    live in the dead-letter queue and remember where they came from; estimated on a big
    PostgreSQL table) and ``oldest_due`` (when the oldest due job became due)."""
    name = OuterRef("name")
    db = queues.db
    jobs = Job.objects.using(db)
    return queues.annotate(
        pending=_per_queue(jobs.claimable(), Q(queue=name)),
        running=_per_queue(jobs.held(), Q(queue=name)),
        failed=_failed(db),
        oldest_due=Subquery(
            jobs.filter(status__in=CLAIMABLE_STATUSES, queue=name, scheduled_at__lte=DbNow())
            .order_by()
            .values("queue")
            .annotate(t=Min("scheduled_at"))
            .values("t")[:1],
            output_field=DateTimeField(),
        ),
    )


def _failed(db: str) -> Case | Value:
    """Each queue's failed jobs as a constant per name: read once per call, estimated on a
    big table (``counts``), and still a column the admin can sort by."""
    failed, _ = failed_by_queue(db)
    if not failed:
        return Value(0, output_field=IntegerField())
    return Case(
        *(When(name=queue, then=Value(n)) for queue, n in failed.items()),
        default=Value(0),
        output_field=IntegerField(),
    )


def _per_queue(jobs_qs: QuerySet, condition: Q) -> Coalesce:
    """COUNT of the ``jobs_qs`` rows matching ``condition``, per queue row.

    Job.queue is a name, not a foreign key, so this is a correlated scalar subquery; COUNT
    as a plain function keeps Django from adding a GROUP BY to it.
    """
    counted = (
        jobs_qs.filter(condition).order_by().annotate(n=Func(F("id"), function="COUNT")).values("n")
    )
    return Coalesce(Subquery(counted, output_field=IntegerField()), 0)
