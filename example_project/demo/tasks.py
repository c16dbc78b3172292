"""The demo's tasks. ``tasks.py`` (and ``jobs.py``) of every installed app are discovered by
the workers, so defining a task is all it takes to make it runnable."""

from __future__ import annotations

import logging
import random
import time
from datetime import timedelta

from django.contrib.sessions.models import Session
from django.core.mail import send_mail
from django.utils import timezone

from django_jobs import Priority, current_job, job, progress
from django_jobs._compat import task

logger = logging.getLogger("demo")


@job(
    queue="emails",
    priority=Priority.HIGH,
    max_retries=3,
    retry_delay=timedelta(seconds=5),
    timeout=30,
    tags=["email"],
    description="Send a welcome email through Django's mail backend.",
)
def send_welcome_email(to: str, name: str) -> dict:
    """Sent with Django's configured EMAIL_BACKEND (the console, in the demo)."""
    sent = send_mail(
        subject=f"Welcome, {name}!",
        message=f"Hi {name},\n\nthanks for signing up. This email was sent by a "
        "django_jobs worker.\n",
        from_email=None,
        recipient_list=[to],
    )
    return {"success": bool(sent), "to": to}


@job(
    queue="reports",
    priority=Priority.NORMAL,
    timeout=120,
    max_retries=1,
    description="Build a report in several steps, reporting progress.",
)
def build_report(report_id: int, sections: int = 5, seconds_per_section: float = 1.0) -> dict:
    """Watch the progress bar of this job move in the admin while it runs."""
    rows = 0
    for i in range(sections):
        # progress() records the fraction (throttled) and raises JobCancelled if the job
        # was cancelled from the admin, the API or the CLI.
        progress(i / sections, f"section {i + 1}/{sections}", section=i + 1)
        time.sleep(seconds_per_section)
        rows += random.randint(100, 1000)  # noqa: S311
    progress(1.0, "done")
    return {"report_id": report_id, "rows": rows, "url": f"/reports/{report_id}.csv"}


@job(
    queue="default",
    max_retries=4,
    retry_delay=1,
    retry_backoff=2.0,
    max_retry_delay=10,
    timeout=15,
    tags=["external"],
    description="Call a flaky external API; connection errors are retried with backoff.",
)
def fetch_exchange_rates(base: str = "EUR", failure_rate: float = 0.4) -> dict:
    """Fails with ConnectionError ``failure_rate`` of the time.

    ConnectionError is transient, so the job is retried after 1 s, 2 s, 4 s, 8 s (with
    jitter); when its retries are used up it fails for good and lands in the dead-letter
    queue, from where the admin's "retry" action sends it back.
    """
    running = current_job()  # None when called inline, e.g. fetch_exchange_rates()
    attempt = running.attempts if running else 1
    if random.random() < failure_rate:  # noqa: S311
        raise ConnectionError(f"rates.example.com unavailable (simulated, attempt {attempt})")
    rates = {"USD": 1.08, "GBP": 0.85, "JPY": 162.4, "CHF": 0.94}
    return {"base": base, "rates": rates, "attempt": attempt}


@job(
    queue="imports",
    max_retries=0,
    tags=["import"],
    description="Import a legacy CSV file; the demo's file has a bad header, so it fails.",
)
def import_legacy_file(path: str) -> int:
    """Fails for good at once (a ValueError is not retried): the failure is sent by email
    and to the demo's webhook receiver (DJANGO_JOBS["NOTIFICATIONS"] in settings.py)."""
    raise ValueError(f"{path}: expected a header 'id,name,amount', found 'ID;Name;Amount'")


@task()
def clear_expired_sessions() -> int:
    """A plain Django ``@task``: with TASKS pointing at JobsBackend it runs as a job too."""
    deleted, _ = Session.objects.filter(expire_date__lt=timezone.now()).delete()
    return deleted


# -- schedules declared in code: created or updated at migrate and worker start ------------


@job(cron="*/5 * * * *", description="Every five minutes: prune finished demo jobs.")
def prune_finished_jobs() -> int:
    from django_jobs import jobs

    return jobs.prune(older_than=timedelta(hours=1))


@job(
    interval=timedelta(seconds=30),
    queue="default",
    max_retries=0,
    description="Every 30 seconds: a health ping.",
)
def health_ping() -> dict:
    return {"ok": True, "at": timezone.now().isoformat()}


# -- an order workflow, run as a chain ------------------------------------------------------


@job(queue="orders")
def validate_order(order_id: int) -> dict:
    time.sleep(0.2)
    return {"order_id": order_id, "valid": True}


@job(queue="orders", max_retries=3, retry_delay=1)
def charge_payment(order_id: int, amount: float) -> dict:
    time.sleep(0.3)
    return {"order_id": order_id, "charged": amount}


@job(queue="orders")
def send_order_confirmation(order_id: int) -> str:
    return f"order {order_id} confirmed"
