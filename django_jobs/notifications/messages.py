"""What a notification says: the webhook's JSON body (SPEC 10) and the email's subject
and text, with a link to the job's admin page when the site's address is known."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from django.apps import apps
from django.contrib.sites.shortcuts import get_current_site
from django.urls import NoReverseMatch, reverse

from ..conf import jobs_settings

# Event names as webhook types: job.failed, worker.lost, schedule.missed, queue.backlog.
TYPES = {
    "failed": "job.failed",
    "retrying": "job.retrying",
    "cancelled": "job.cancelled",
    "completed": "job.completed",
    "worker_lost": "worker.lost",
    "schedule_missed": "schedule.missed",
    "queue_backlog": "queue.backlog",
    "test": "notification.test",
}
# An email lists this many jobs of a digest; the count says how many there were.
DIGEST_LISTED = 50

TITLES = {
    "failed": "failed",
    "retrying": "failed, will retry",
    "cancelled": "cancelled",
    "completed": "completed",
    "worker_lost": "worker lost",
    "schedule_missed": "schedule missed",
    "queue_backlog": "queue backlog",
    "test": "test notification",
}


def now_iso() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def webhook_body(event: str, data: dict[str, Any], timestamp: str | None = None) -> dict:
    """``{"type", "timestamp", "data"}``: job events carry ``data.job``, system events
    what they are about (``worker_id``, ``schedule``, ``queue``...)."""
    return {"type": TYPES.get(event, event), "timestamp": timestamp or now_iso(), "data": data}


def encode(body: dict) -> bytes:
    """The exact bytes sent (and signed)."""
    return json.dumps(body, separators=(",", ":"), sort_keys=True, default=str).encode()


def site_url() -> str | None:
    """``DJANGO_JOBS["BASE_URL"]``, else the Sites framework's current site, else None."""
    if jobs_settings.BASE_URL:
        return jobs_settings.BASE_URL
    if apps.is_installed("django.contrib.sites"):
        try:
            domain = get_current_site(None).domain
        except Exception:  # noqa: BLE001 - no site row, no database: no link
            return None
        if domain:
            local = domain.startswith(("localhost", "127.", "[::1]"))
            return f"{'http' if local else 'https'}://{domain}"
    return None


def job_admin_url(job_id: int) -> str | None:
    base = site_url()
    if base is None:
        return None
    try:
        path = reverse("admin:django_jobs_job_change", args=[job_id])
    except NoReverseMatch:  # the admin is not installed
        return None
    return base + path


def email_subject(event: str, task: str, jobs: list[dict], count: int) -> str:
    title = TITLES.get(event, event)
    if event in ("worker_lost", "schedule_missed", "queue_backlog", "test"):
        return f"[django_jobs] {title}: {task}" if task else f"[django_jobs] {title}"
    if count == 1 and jobs:
        return f"[django_jobs] {title}: {task} (job {jobs[0]['id']})"
    return f"[django_jobs] {count} jobs {title}: {task}"


def _job_text(job: dict, traceback: bool) -> list[str]:
    lines = [
        f"Job {job['id']}: {job['task']}",
        f"  queue: {job['queue']}   status: {job['status']}   "
        f"attempts: {job['attempts']} (retries allowed: {job.get('max_retries')})",
    ]
    error = job.get("error")
    if error:
        lines.append(f"  error: {error.get('type', '')}: {error.get('message', '')}")
    url = job_admin_url(job["id"])
    if url:
        lines.append(f"  {url}")
    if traceback and error and error.get("traceback"):
        lines += ["", error["traceback"].rstrip()]
    return lines


def email_text(event: str, payload: dict[str, Any], window: float = 60.0) -> str:
    """A job event's email (one job, or a digest listing the first DIGEST_LISTED jobs,
    the first with its traceback), or a system event's."""
    if "jobs" not in payload:  # a system event or a test
        lines = [_system_sentence(event, payload), ""]
        lines += [f"{key}: {value}" for key, value in payload.items()]
        return "\n".join(lines) + "\n"
    jobs: list[dict] = payload["jobs"]
    count = payload.get("count", len(jobs))
    title = TITLES.get(event, event)
    if count == 1:
        head = f"A job of {payload.get('task', '')} {title}."
    else:
        head = f"{count} jobs of {payload.get('task', '')} {title} within {_span(window)}."
    lines = [head, ""]
    for i, job in enumerate(jobs[:DIGEST_LISTED]):
        lines += _job_text(job, traceback=i == 0)
        lines.append("")
    if count > len(jobs[:DIGEST_LISTED]):
        lines.append(f"... and {count - len(jobs[:DIGEST_LISTED])} more.")
    return "\n".join(lines).rstrip() + "\n"


def _system_sentence(event: str, data: dict[str, Any]) -> str:
    if event == "worker_lost":
        held = ", ".join(map(str, data.get("jobs", [])))
        return (
            f"Worker {data.get('worker_id')} stopped heartbeating while it held job(s) "
            f"{held}; they went back to their queue (a job lost too often is dead-lettered)."
        )
    if event == "schedule_missed":
        return (
            f"Schedule {data.get('schedule')!r} ({data.get('task')}) was due at "
            f"{data.get('due_at')} and is {data.get('late_seconds')} s late (allowed: "
            f"{data.get('allowed_seconds')} s). Is a worker running its scheduler?"
        )
    if event == "queue_backlog":
        return (
            f"Queue {data.get('queue')!r}: its oldest due job has waited "
            f"{data.get('oldest_pending_age_seconds')} s (allowed: "
            f"{data.get('allowed_seconds')} s); {data.get('due_jobs')} job(s) are due. "
            "Are enough workers taking jobs from it?"
        )
    return f"django_jobs: {TITLES.get(event, event)}. {data.get('message', '')}".strip()


def _span(seconds: float) -> str:
    if seconds >= 120 and seconds % 60 == 0:
        return f"{seconds / 60:g} minutes"
    return "a minute" if seconds == 60 else f"{seconds:g} seconds"
