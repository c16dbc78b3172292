"""How the admin shows values: durations, JSON, statuses, progress and failures.

Markup lives in templates (``django_jobs/admin/*.html``) and styles in
``static/django_jobs/admin.css``, which every ModelAdmin of the app loads through
:class:`JobsAdminMedia`.
"""

from __future__ import annotations

import json
from typing import Any

import django
from django.contrib import messages
from django.template.loader import render_to_string
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.safestring import SafeString
from django.utils.translation import ngettext

from ..enums import JobStatus, Priority


class JobsAdminMedia:
    """Mixed into every ModelAdmin of the app: its stylesheet, and the script that keeps
    running jobs' progress bars up to date."""

    class Media:
        css = {"all": ("django_jobs/admin.css",)}
        js = ("django_jobs/progress.js",)


def report_unique_conflicts(request, conflicts: int) -> None:
    """The warning of every verb that sends jobs back to pending (retry, requeue, a
    failure group's retry) for the jobs ``retry_all`` skipped over a taken unique key."""
    if conflicts:
        messages.warning(
            request,
            ngettext(
                "%d job skipped: another unfinished job holds its unique key.",
                "%d jobs skipped: other unfinished jobs hold their unique keys.",
                conflicts,
            )
            % conflicts,
        )


def page_context(request, model_admin, title: Any, trail=()) -> dict[str, Any]:
    """What a page of ours needs to look like the admin's own (header, sidebar,
    breadcrumbs for this Django version)."""
    return {
        **model_admin.admin_site.each_context(request),
        "title": title,
        "opts": model_admin.model._meta,
        "trail": list(trail),
        # Django 6 draws breadcrumbs as a list, 5.2 as links with separators.
        "ol_breadcrumbs": django.VERSION >= (6, 0),
    }


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


def json_text(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, default=str)


def pretty_json(value: Any) -> SafeString:
    """``value`` as indented JSON in a ``<pre>`` block (escaped)."""
    return render_to_string("django_jobs/admin/json.html", {"text": json_text(value)})


def status_badge(status: str) -> SafeString:
    try:
        label = str(JobStatus(status).label)
    except ValueError:
        label = status
    return render_to_string("django_jobs/admin/status.html", {"status": status, "label": label})


def priority_label(priority: int) -> SafeString:
    return render_to_string(
        "django_jobs/admin/priority.html",
        {"label": Priority.label_for(priority), "value": priority},
    )


def task_label(name: str) -> SafeString:
    """A task's dotted name by its last part (the whole name in the title): the job
    list's narrowest way to tell tasks apart."""
    module, _, short = name.rpartition(".")
    return render_to_string(
        "django_jobs/admin/task_name.html",
        {"name": name, "short": short, "module": module.rpartition(".")[2]},
    )


def when(moment: Any) -> SafeString:
    """A time, short: hours only when it is today (the full date in the title)."""
    today = False
    if moment is not None:
        local = timezone.localtime(moment) if timezone.is_aware(moment) else moment
        now = timezone.localtime() if timezone.is_aware(moment) else timezone.now()
        today = local.date() == now.date()
        moment = local
    return render_to_string("django_jobs/admin/when.html", {"when": moment, "today": today})


def progress_bar(
    fraction: float | None, message: str = "", *, job_id: int | None = None, eta: str = ""
) -> SafeString:
    """A ``<progress>`` bar; with ``job_id`` (a running job) the page's script keeps it
    up to date, with its ETA."""
    percent = round(max(0.0, min(1.0, fraction or 0.0)) * 100)
    return render_to_string(
        "django_jobs/admin/progress.html",
        {"percent": percent, "message": message, "job_id": job_id, "eta": eta},
    )


def attempts_timeline(job: Any) -> SafeString:
    """A job's attempts, newest first: the current (or last) one with its worker, times
    and outcome, then every failed one with its error and traceback."""
    failed = []
    for number, entry in reversed(list(enumerate(job.errors or [], start=1))):
        entry = entry if isinstance(entry, dict) else {"message": str(entry)}
        known = ("traceback", "type", "message", "attempt", "worker_id", "at")
        details = {k: v for k, v in entry.items() if k not in known and k != "exception_class_path"}
        failed.append(
            {
                "number": entry.get("attempt") or number,
                "type": entry.get("type", "?"),
                "message": entry.get("message", ""),
                "worker": entry.get("worker_id") or "",
                "at": parse_datetime(str(entry.get("at") or "")),
                "details": json_text(details) if details else "",
                "traceback": entry.get("traceback") or "",
            }
        )
    duration = job.duration
    current: dict[str, Any] = {
        "number": job.attempts,
        "status": job.status,
        "badge": status_badge(job.status),
        "worker": job.worker_id or ((job.worker_ids or [""])[-1]),
        "started": job.started_at,
        "finished": job.finished_at,
        "duration": format_duration(duration.total_seconds()) if duration else "",
    }
    if failed and failed[0]["number"] == job.attempts and job.status in ("failed", "retrying"):
        # The last attempt is the last failure: one entry, with its outcome and timing.
        failed[0].update(
            badge=current["badge"], duration=current["duration"], started=job.started_at
        )
        current = {}
    return render_to_string(
        "django_jobs/admin/attempts.html",
        {"current": current if current and job.attempts else None, "failures": failed},
    )
