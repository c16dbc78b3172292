"""Receivers wired in AppConfig.ready()."""

from __future__ import annotations

from django.db import transaction


def job_pre_delete(sender, instance, using, **kwargs) -> None:
    """Deleting an unfinished job must not strand its workflow.

    Its dependants would wait forever (their dependency rows go with it) and its batch
    would never finish: treat the deletion as a cancellation of the job first.
    """
    from .enums import FINISHED_STATUSES, JobStatus
    from .workflows import advance_batch, cancel_dependents

    if instance.status in FINISHED_STATUSES:
        return
    if not (instance.has_dependents or instance.batch_id):
        return
    with transaction.atomic(using=using):
        if instance.has_dependents:
            cancel_dependents([instance.pk], f"dependency {instance.pk} deleted", using)
        if instance.batch_id:
            advance_batch(instance.batch_id, JobStatus.CANCELLED, using)
