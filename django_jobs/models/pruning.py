"""Pruning finished jobs: chunked, set-based, never waiting on a locked row (part of
``JobQuerySet``)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta

from django.db import connections, transaction
from django.db.models import Q

from ..enums import FINISHED_STATUSES
from .batch import Batch
from .dependency import JobDependency
from .functions import DbNow
from .outcomes import JobOutcomes
from .schedule import Schedule


class JobPruning(JobOutcomes):
    def prunable(self, older_than: timedelta, statuses: Iterable[str] = FINISHED_STATUSES):
        """Finished jobs that finished more than ``older_than`` ago (database clock)."""
        cutoff = DbNow(-older_than.total_seconds())
        return self.filter(status__in=list(statuses), finished_at__lt=cutoff)

    def prune(
        self,
        older_than: timedelta,
        statuses: Iterable[str] = FINISHED_STATUSES,
        *,
        chunk: int = 1000,
    ) -> int:
        """Delete finished jobs that finished more than ``older_than`` ago; returns how
        many.

        Set-based and chunked: each chunk is one short transaction of a few statements,
        whatever the number of rows, and rows another transaction has locked are skipped
        (the next prune takes them), so a prune never waits. Rows are not loaded: a
        finished job has no workflow left to settle (the ``pre_delete`` receiver acts on
        unfinished jobs only), and the rows that point at it (dependency links, a batch's
        ``on_complete_job``, a schedule's ``last_job``) are cleared in the same
        transaction. Should another app hold
        a foreign key to jobs, each chunk goes through Django's deletion collector
        instead, so its ``on_delete`` rules still apply.
        """
        return self.prunable(older_than, statuses).delete_finished(chunk=chunk)

    def delete_finished(self, *, chunk: int = 1000) -> int:
        """Delete this QuerySet's finished jobs (unfinished ones are left alone) as
        :meth:`prune` does: in short chunks, set-based, skipping locked rows; returns how
        many. What the admin's "delete a failure group" and ``prune`` use."""
        statuses = list(FINISHED_STATUSES)
        db = self.db
        conn = connections[db]
        collector_needed = _has_foreign_relations(self.model)
        deleted = 0
        while True:
            with transaction.atomic(using=db):
                candidates = self.filter(status__in=statuses).order_by()
                if conn.features.has_select_for_update_skip_locked:
                    candidates = candidates.select_for_update(skip_locked=True)
                ids = list(candidates.values_list("id", flat=True)[:chunk])
                if not ids:
                    break
                rows = self.fresh(db).filter(pk__in=ids, status__in=statuses)
                if collector_needed:
                    deleted += rows.delete()[1].get(self.model._meta.label, 0)
                else:
                    JobDependency.objects.using(db).filter(
                        Q(job_id__in=ids) | Q(depends_on_id__in=ids)
                    )._raw_delete(db)
                    Batch.objects.using(db).filter(on_complete_job_id__in=ids).update(
                        on_complete_job=None
                    )
                    Schedule.objects.using(db).filter(last_job_id__in=ids).update(last_job=None)
                    deleted += rows._raw_delete(db)
            if len(ids) < chunk:
                break
        return deleted


def _has_foreign_relations(job_model) -> bool:
    """Whether a model other than ours points at jobs (so a raw DELETE could break its
    foreign keys or skip its ``on_delete``). Hidden relations (``related_name="+"``)
    count too."""
    ours = {job_model, JobDependency, Batch, Schedule}
    return any(
        field.related_model not in ours
        for field in job_model._meta.get_fields(include_hidden=True)
        if field.auto_created and not field.concrete and field.is_relation
    )
