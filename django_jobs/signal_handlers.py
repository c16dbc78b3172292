"""Receivers wired in AppConfig.ready()."""

from __future__ import annotations

import inspect
import logging

from django.contrib.auth import get_user_model
from django.db import DatabaseError, router, transaction

from .conf import jobs_settings
from .enums import FINISHED_STATUSES, JobStatus
from .manager import JobManager
from .models import Batch, Job, Schedule
from .models.bulk import _fields
from .models.inserts import install_enqueue_function
from .models.schedule_definitions import sync_code_schedules
from .models.workflow import advance_batch, cancel_dependents
from .registry import registry

logger = logging.getLogger("django_jobs.workflows")


def job_pre_delete(sender, instance, using, **kwargs) -> None:
    """Deleting an unfinished job must not strand its workflow.

    Its dependants would wait forever (their dependency rows go with it) and its batch
    would never finish: treat the deletion as a cancellation of the job first.
    """

    if instance.status in FINISHED_STATUSES:
        return
    if not (instance.has_dependents or instance.batch_id):
        return
    with transaction.atomic(using=using):
        if instance.has_dependents:
            cancel_dependents([instance.pk], f"dependency {instance.pk} deleted", using)
        if instance.batch_id:
            advance_batch(instance.batch_id, JobStatus.CANCELLED, using)


def enqueue_on_complete(sender, batch, using, **kwargs) -> None:
    """``batch_finished`` receiver: enqueue the batch's ``on_complete`` task, in the
    transaction that finished the batch, with the batch's options (queue, priority,
    tags); it receives ``batch_id=`` if it accepts it. A callback that cannot be enqueued
    is logged and never fails the job that finished the batch."""

    kwargs_ = dict(batch.on_complete_kwargs or {})
    stored = batch.options or {}
    options = {k: v for k, v in stored.items() if k in ("queue", "priority", "tags")}
    owner = stored.get("owner")
    if owner is not None and get_user_model()._default_manager.filter(pk=owner).exists():
        options["owner"] = owner  # the batch's owner, unless the user was deleted since
    try:
        task = registry.get(batch.on_complete)
        if _accepts(task.func, "batch_id"):
            kwargs_.setdefault("batch_id", batch.pk)
        # In a savepoint: a failed enqueue must not undo the finishing job's outcome.
        with transaction.atomic(using=using):
            job = JobManager(using).enqueue(
                task, kwargs=kwargs_, metadata={"batch_id": batch.pk}, **options
            )
        Batch.objects.using(using).filter(pk=batch.pk).update(on_complete_job=job)
        batch.on_complete_job = job
    except Exception:  # never fail the job that finished the batch
        logger.exception(
            "Could not enqueue on_complete %s of batch %s", batch.on_complete, batch.pk
        )


def _accepts(func, name: str) -> bool:
    try:
        params = inspect.signature(func).parameters
    except (TypeError, ValueError):
        return False
    return name in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


def sync_code_schedules_after_migrate(sender, *, using, apps=None, **kwargs) -> None:
    """``post_migrate`` receiver: code-declared schedules exist right after ``migrate``."""
    if apps is not None:
        try:
            apps.get_model("django_jobs", "Schedule")
        except LookupError:
            return  # migrated to a state before schedules existed
    if not router.allow_migrate_model(using, Schedule):
        return
    if jobs_settings.DATABASE and jobs_settings.DATABASE != using:
        return

    try:
        registry.autodiscover()
        sync_code_schedules(using=using)
    except Exception:  # never fail migrate; workers sync again at start
        logger.exception("Could not sync the schedules declared in code after migrate")


def install_enqueue_function_after_migrate(sender, *, using, apps=None, **kwargs) -> None:
    """``post_migrate`` receiver: the PostgreSQL function ``enqueue()`` calls exists once
    the jobs table has the columns this code writes (migrated to an older state: not)."""
    if not router.allow_migrate_model(using, Job):
        return
    if apps is not None:
        try:
            historical = apps.get_model("django_jobs", "Job")
        except LookupError:
            return
        have = {f.column for f in historical._meta.concrete_fields}
        if not {f.column for f in _fields()} <= have:
            return
    try:
        with transaction.atomic(using=using):
            install_enqueue_function(using)
    except DatabaseError as exc:  # never fail migrate: enqueue() then writes the INSERT
        logger.warning(
            "Could not install django_jobs' enqueue function in database %r (%s): "
            "enqueue() sends its INSERT itself, a little slower.",
            using,
            str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__,
        )
