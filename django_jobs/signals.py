"""Signals sent over a job's life. Receivers get ``sender=Job`` and ``job=<Job>``.

``job_progress`` also gets ``progress``, ``message`` and ``details``; ``job_failed`` and
``job_retrying`` get ``error`` (the error entry); ``job_retrying`` gets ``delay``
(seconds); ``job_cancelled`` gets ``reason``.
"""

import logging

from django.dispatch import Signal

job_enqueued = Signal()
job_started = Signal()
job_progress = Signal()
job_completed = Signal()
job_failed = Signal()
job_retrying = Signal()
job_cancelled = Signal()
job_dead_lettered = Signal()
# Sent (sender=Batch, batch=, using=) in the transaction that finished the last job of a
# batch, once per batch. django_jobs' own receiver enqueues the batch's on_complete task.
batch_finished = Signal()
# Internal, for notifications (SPEC 10). Sent in the transaction that records the
# outcomes, only when some channel wants the event: ``job_events_recorded`` (sender=None,
# event=, jobs=[payload dicts], using=) and ``system_event_recorded`` (sender=None,
# event=, subject=, data=, using=). django_jobs' receiver turns them into deliveries, so
# a rolled-back outcome sends nothing.
job_events_recorded = Signal()
system_event_recorded = Signal()
# Sent (sender=JobTask, task=) when the registry stores a new task. django_jobs' receiver
# connects the triggers the task declares (``@job(on=...)``): a task module imported
# after start-up is wired like the ones imported by discovery.
task_registered = Signal()


def send(signal: Signal, job, **kwargs) -> None:
    """Send robustly: a failing receiver is logged and never fails the job or worker."""
    if not signal.receivers:
        return  # the common case, once or twice per job

    for receiver, result in signal.send_robust(sender=type(job), job=job, **kwargs):
        if isinstance(result, Exception):
            logging.getLogger("django_jobs.signals").error(
                "Signal receiver %r failed for job %s",
                receiver,
                job.pk,
                exc_info=(type(result), result, result.__traceback__),
            )
