"""``jobs``: the public verbs. Admin actions, CLI subcommands and the
django.tasks backend all call these (or the model/QuerySet methods they call)."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from asgiref.sync import sync_to_async
from django.db import IntegrityError, transaction

from .conf import jobs_settings, to_seconds
from .enqueue import BUILD_OPTIONS, build_job, enqueue_chain, enqueue_job, enqueue_many, job_pk
from .execution.rescue import rescue_stalled
from .health import HealthReport, run_checks
from .models import (
    FINISHED_STATUSES,
    Batch,
    Job,
    Queue,
    Schedule,
    Worker,
)
from .models.job import jobs_db
from .models.schedule_definitions import upsert_schedule
from .monitoring import get_statistics
from .registry import JobTask
from .triggers import ConnectedTrigger
from .triggers import on as connect_trigger
from .wakeups import notify

logger = logging.getLogger("django_jobs")


class JobManager:
    """The default instance is ``django_jobs.jobs``."""

    def __init__(self, database: str | None = None) -> None:
        self._database = database

    @property
    def db(self) -> str:
        return self._database or jobs_db()

    @property
    def objects(self):
        return Job.objects.using(self.db)

    # -- enqueue -------------------------------------------------------------------------

    def enqueue(
        self,
        task: JobTask | str,
        args: Iterable[Any] | None = None,
        kwargs: dict[str, Any] | None = None,
        *,
        priority: int | str | None = None,
        queue: str | None = None,
        scheduled_at: datetime | None = None,
        delay: float | timedelta | None = None,
        max_retries: int | None = None,
        retry_delay: float | timedelta | None = None,
        timeout: float | timedelta | None = None,
        tags: Iterable[str] | None = None,
        metadata: dict[str, Any] | None = None,
        depends_on: Iterable[Any] | None = None,
        unique_key: str | None = None,
        owner: Any = None,
        backend: str = "",
        schedule=None,
        schedule_due_at: datetime | None = None,
        batch=None,
        chain_index: int | None = None,
        **options: Any,
    ) -> Job:
        """Write one job in the caller's transaction and return it.

        Raises ``TaskNotFound`` for an unknown task, ``TypeError`` for arguments that are
        not JSON-serializable and ``ValueError`` for bad options; nothing is written then.
        """
        return enqueue_job(
            self.db,
            task,
            args,
            kwargs,
            priority=priority,
            queue=queue,
            scheduled_at=scheduled_at,
            delay=delay,
            max_retries=max_retries,
            retry_delay=retry_delay,
            timeout=timeout,
            tags=tags,
            metadata=metadata,
            depends_on=depends_on,
            unique_key=unique_key,
            owner=owner,
            backend=backend,
            schedule=schedule,
            schedule_due_at=schedule_due_at,
            batch=batch,
            chain_index=chain_index,
            **options,
        )

    def enqueue_on_commit(self, task, args=None, kwargs=None, **options: Any) -> None:
        """Like ``enqueue``, after the current transaction commits (at once outside one).

        The task and options are validated now, so mistakes raise here, not at commit.
        """
        # Build (and drop) the job now: the same validation as enqueue, without a write.
        extra = dict(options)
        known = {name: extra.pop(name, None) for name in (*BUILD_OPTIONS, "backend")}
        for internal in ("schedule", "schedule_due_at", "batch", "chain_index"):
            extra.pop(internal, None)
        extra.pop("depends_on", None)
        extra.pop("unique_key", None)
        build_job(task, args, kwargs, **known, options=extra)
        transaction.on_commit(lambda: self.enqueue(task, args, kwargs, **options), using=self.db)

    def enqueue_batch(
        self,
        task: JobTask | str,
        items: Iterable[Any],
        batch_size: int = 1000,
        on_complete: JobTask | str | None = None,
        **options: Any,
    ) -> Batch:
        """Enqueue one job per item in one INSERT per ``batch_size`` items; returns the Batch.

        An item is a kwargs dict or an ``(args, kwargs)`` pair. ``on_complete`` (a task)
        is enqueued once, when every job of the batch has finished; it receives
        ``batch_id=`` if it accepts it. Options apply to every job.
        """
        return enqueue_many(self.db, task, items, batch_size, on_complete, **options)

    def chain(self, steps: Iterable[Any], **options: Any) -> Batch:
        """Enqueue steps that run one after the other; returns the chain (a Batch).

        A step is ``(task, args, kwargs)``, ``(task, args)`` or a task. Each step waits
        for the previous one to complete; if a step fails for good (or is cancelled) the
        rest are cancelled with the reason recorded. Options apply to every step.
        """
        return enqueue_chain(self.db, steps, **options)

    def get_batch(self, batch_id: Any) -> Batch:
        """The batch (or chain) with that id; raises ``Batch.DoesNotExist``."""
        try:
            pk = int(str(batch_id))
        except (TypeError, ValueError):
            raise Batch.DoesNotExist(f"No batch with id {batch_id!r}.") from None
        return Batch.objects.using(self.db).get(pk=pk)

    def enqueue_delayed(self, task, delay, args=None, kwargs=None, **options: Any) -> Job:
        """Enqueue to run once ``delay`` (seconds or timedelta) from now."""
        return self.enqueue(task, args, kwargs, delay=delay, **options)

    # -- reading -------------------------------------------------------------------------

    def get_job(self, job_id: Any) -> Job:
        """The job with that id (int or str); raises ``Job.DoesNotExist``."""
        return self.objects.get(pk=job_pk(job_id))

    def wait_for(self, job_id: Any, timeout: float | None = 60, poll_interval: float = 0.1) -> Job:
        """Block until the job is finished and return it; ``TimeoutError`` if not in time."""
        pk = job_pk(job_id)
        deadline = None if timeout is None else time.monotonic() + to_seconds(timeout, "timeout")
        while True:
            status = self.objects.filter(pk=pk).values_list("status", flat=True).first()
            if status is None:
                raise Job.DoesNotExist(f"No job with id {job_id!r}.")
            if status in FINISHED_STATUSES:
                return self.get_job(pk)
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(
                    f"Job {pk} is not finished after {timeout} seconds (status {status})."
                )
            time.sleep(poll_interval)

    def get_failed_jobs(self, queue: str | None = None):
        qs = self.objects.failed()
        if queue:
            qs = qs.filter(original_queue=queue) | qs.filter(queue=queue)
        return qs.order_by("-finished_at", "-id")

    def get_dead_letter_queue(self):
        return self.objects.dead_letter().order_by("-finished_at", "-id")

    # -- control -------------------------------------------------------------------------

    def cancel(self, job_id: Any, terminate: bool = False) -> bool:
        """Cancel a job: at once if no worker holds it, else flag it for its worker.

        False for finished (or unknown) jobs.
        """
        pk = job_pk(job_id)
        ids, flagged = self.objects.filter(pk=pk).cancel(terminate=terminate)
        return bool(ids or flagged)

    def delete_job(self, job_id: Any) -> None:
        """Delete a finished job. ``ValueError`` for an unfinished one (cancel it first),
        ``Job.DoesNotExist`` for an unknown id."""
        job = self.get_job(job_id)
        if not job.is_finished:
            raise ValueError(f"Job {job.pk} is {job.status}: only finished jobs can be deleted.")
        job.delete()

    def retry(self, job_id: Any) -> Job:
        """A failed or cancelled job back to pending in its original queue."""
        pk = job_pk(job_id)
        qs = self.objects.filter(pk=pk)
        try:
            with transaction.atomic(using=self.db):
                retried = qs.retry_now()
                # Read before commit: a worker may claim it the moment it is committed.
                job = self.get_job(pk) if retried else None
        except IntegrityError:
            raise ValueError(
                f"Job {pk} cannot be retried: another unfinished job holds its unique key."
            ) from None
        if job is None:  # nothing was retried
            status = self.get_job(pk).status  # raises DoesNotExist for unknown ids
            raise ValueError(f"Job {pk} is {status}; only failed or cancelled jobs can be retried.")
        return job

    def requeue_stuck(
        self, older_than: float | timedelta | None = None, *, worker_id: str | None = None
    ) -> int:
        """Rescue jobs held by workers that stopped heartbeating; returns how many.

        Each rescue is recorded as a ``WorkerLost`` error and counts as an attempt, but does
        not use the retry budget: the job goes back to pending, unless it was lost
        ``MAX_LOST`` (3) times (it may be what kills its workers) and then fails for good.
        A job whose cancel was requested ends cancelled instead. ``older_than`` (heartbeat
        age) is never taken below two heartbeat intervals; ``worker_id`` rescues what a
        restarted worker of that id held before.
        """

        return rescue_stalled(self.db, older_than, worker_id=worker_id)

    def prune(
        self,
        statuses: Iterable[str] = ("completed", "failed", "cancelled"),
        older_than: float | timedelta = timedelta(days=7),
    ) -> int:
        """Delete finished jobs that finished more than ``older_than`` ago; returns how
        many. Chunked, set-based and never waiting on a locked row (see
        ``JobQuerySet.prune``)."""
        statuses = list(statuses)
        bad = set(statuses) - set(FINISHED_STATUSES)
        if bad:
            raise ValueError(f"Only finished jobs can be pruned, not {sorted(bad)}.")
        age = timedelta(seconds=to_seconds(older_than, "older_than"))
        return self.objects.prune(age, statuses)

    # -- queues --------------------------------------------------------------------------

    def get_queue_names(self) -> list[str]:
        names = set(Queue.objects.using(self.db).values_list("name", flat=True))
        names |= set(self.objects.unfinished().values_list("queue", flat=True).distinct())
        if self.objects.dead_letter().exists():
            names.add(jobs_settings.DEAD_LETTER_QUEUE)
        return sorted(names)

    def get_queue(self, name: str) -> Queue:
        return Queue.objects.using(self.db).ensure(name)

    def queue_length(self, name: str) -> int:
        """Pending jobs (claimable: pending or awaiting a retry) in the queue."""
        return self.objects.claimable().filter(queue=name).count()

    def pause_queue(self, name: str) -> Queue:
        queue = self.get_queue(name)
        queue.pause()
        return queue

    def resume_queue(self, name: str) -> Queue:
        queue = self.get_queue(name)
        queue.resume()
        notify(self.db, name)
        return queue

    def clear_queue(self, name: str) -> int:
        """Cancel the queue's jobs that no worker holds; returns how many."""
        ids, _ = self.objects.filter(queue=name).cancellable().cancel(reason="queue cleared")
        return len(ids)

    # -- schedules -----------------------------------------------------------------------
    # Thin: validation, upsert and firing live in django_jobs.scheduler, state changes on
    # the Schedule model. Invalid input raises (ValueError, TypeError, TaskNotFound) and
    # writes nothing; an existing name is updated (idempotent at start-up).

    def schedule(
        self,
        task,
        cron: str,
        name: str | None = None,
        args=None,
        kwargs=None,
        timezone: str = "UTC",
        queue: str | None = None,
        priority=None,
        misfire_policy: str = "run_once",
        enabled: bool = True,
        **options: Any,
    ):
        """Run ``task`` on a 5-field cron expression read in ``timezone``; returns the
        ``Schedule``. ``name`` defaults to the task name. Options: ``tags``, ``metadata``,
        ``description``."""

        return upsert_schedule(
            task=task,
            kind="cron",
            cron=cron,
            name=name,
            args=args,
            kwargs=kwargs,
            timezone=timezone,
            queue=queue,
            priority=priority,
            misfire_policy=misfire_policy,
            enabled=enabled,
            using=self.db,
            **options,
        )

    def schedule_interval(
        self,
        task,
        interval: float | timedelta,
        name: str | None = None,
        args=None,
        kwargs=None,
        queue: str | None = None,
        priority=None,
        misfire_policy: str = "run_once",
        enabled: bool = True,
        **options: Any,
    ):
        """Run ``task`` every ``interval`` (seconds or timedelta), first one interval from
        now (or at ``start_at=``). Options: ``start_at``, ``tags``, ``metadata``,
        ``description``, ``timezone``."""

        return upsert_schedule(
            task=task,
            kind="interval",
            interval=interval,
            name=name,
            args=args,
            kwargs=kwargs,
            queue=queue,
            priority=priority,
            misfire_policy=misfire_policy,
            enabled=enabled,
            using=self.db,
            **options,
        )

    def schedule_once(
        self,
        task,
        at: datetime,
        name: str | None = None,
        args=None,
        kwargs=None,
        queue: str | None = None,
        priority=None,
        misfire_policy: str = "run_once",
        enabled: bool = True,
        **options: Any,
    ):
        """Run ``task`` once at ``at`` (an aware datetime)."""

        return upsert_schedule(
            task=task,
            kind="once",
            run_at=at,
            name=name,
            args=args,
            kwargs=kwargs,
            queue=queue,
            priority=priority,
            misfire_policy=misfire_policy,
            enabled=enabled,
            using=self.db,
            **options,
        )

    def unschedule(self, name: str) -> bool:
        """Delete the schedule ``name``; False if there was none. Its jobs are kept."""

        deleted, _ = Schedule.objects.using(self.db).filter(name=name).delete()
        return bool(deleted)

    def list_scheduled(self):
        """All schedules (enabled or not), by name."""

        return Schedule.objects.using(self.db).order_by("name")

    def get_schedule(self, name: str):
        """The schedule ``name``; raises ``Schedule.DoesNotExist``."""

        return Schedule.objects.using(self.db).get(name=name)

    def enable_schedule(self, name: str):
        """Enable it; its next run is the first due time from now (no catch-up)."""
        schedule = self.get_schedule(name)
        schedule.enable()
        return schedule

    def disable_schedule(self, name: str):
        """Disable it: no job is fired until it is enabled again."""
        schedule = self.get_schedule(name)
        schedule.disable()
        return schedule

    def run_schedule_now(self, name: str) -> Job:
        """Enqueue one job of the schedule now, leaving its next run as it is. The job is
        linked to the schedule (``job.schedule``) without a due time."""
        schedule = self.get_schedule(name)
        with transaction.atomic(using=self.db):
            # The schedule's row first: on MySQL the job's INSERT share-locks it (the
            # foreign key check) and record_run() then needs it exclusively, so two runs,
            # or a run and an enable(), holding the shared lock deadlocked.
            rows = Schedule.objects.using(self.db).select_for_update().filter(pk=schedule.pk)
            if not list(rows.values_list("pk", flat=True)):
                raise Schedule.DoesNotExist(f"No schedule named {name!r}.")  # just deleted
            job = self.enqueue(schedule.task_name, **schedule.job_options(), schedule=schedule)
            schedule.record_run(job)
        return job

    # -- events --------------------------------------------------------------------------

    def on(
        self,
        signal: Any,
        task: JobTask | str,
        *,
        sender: Any = None,
        when: Any = None,
        args: Any = None,
        kwargs: Any = None,
        dispatch_uid: str | None = None,
        **options: Any,
    ) -> ConnectedTrigger:
        """Enqueue ``task`` whenever ``signal`` fires (from ``sender``, if given, and if
        ``when(**signal_kwargs)`` is true), after the sender's transaction commits.

        ``args``/``kwargs`` (and any option) are callables of the signal's arguments or
        plain values; ``options`` are ``enqueue``'s. The task and the options are checked
        now (``TaskNotFound``, ``TypeError``, ``ValueError``); an error when the signal
        fires is logged and never reaches the sender. An identical call connects nothing
        more and returns the same handle; ``.disconnect()`` stops it. No I/O, so no async
        twin: call it from async code as it is. See docs/events.md.
        """
        return connect_trigger(
            self._database,
            signal,
            task,
            sender=sender,
            when=when,
            args=args,
            kwargs=kwargs,
            dispatch_uid=dispatch_uid,
            **options,
        )

    # -- monitoring ----------------------------------------------------------------------

    def health(self, checks: Iterable[str] | None = None) -> HealthReport:
        """The health checks ``checks`` (all five by default) on the job database."""
        return run_checks(checks, using=self.db)

    def get_statistics(self) -> dict[str, Any]:
        return get_statistics(self.db)

    def get_workers(self):
        return Worker.objects.using(self.db).all()


# Verbs without I/O, safe to call from async code as they are.
_NO_TWIN = frozenset({"on"})


def _add_async_twins(cls) -> None:
    """Every public verb gets an async twin prefixed with ``a`` (``aenqueue``...)."""
    for name in [n for n in vars(cls) if not n.startswith("_") and n not in _NO_TWIN]:
        method = getattr(cls, name)
        if not callable(method) or isinstance(vars(cls)[name], property):
            continue

        def make(method_name):
            async def twin(self, *args, **kwargs):
                bound = getattr(self, method_name)
                return await sync_to_async(bound, thread_sensitive=True)(*args, **kwargs)

            twin.__name__ = twin.__qualname__ = f"a{method_name}"
            twin.__doc__ = f"Async twin of :meth:`{method_name}`."
            return twin

        setattr(cls, f"a{name}", make(name))


_add_async_twins(JobManager)

jobs = JobManager()
