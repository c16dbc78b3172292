"""How the admin shows values: durations, JSON, statuses, progress and failures.

Markup lives in templates (``django_jobs/admin/*.html``) and styles in
``static/django_jobs/admin.css``, which every ModelAdmin of the app loads through
:class:`JobsAdminMedia`.
"""

from __future__ import annotations

import json
from typing import Any

from django.template.loader import render_to_string
from django.utils.safestring import SafeString

from ..enums import JobStatus, Priority


class JobsAdminMedia:
    """Mixed into every ModelAdmin of the app: its stylesheet."""

    class Media:
        css = {"all": ("django_jobs/admin.css",)}


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


def progress_bar(fraction: float | None, message: str = "") -> SafeString:
    percent = round(max(0.0, min(1.0, fraction or 0.0)) * 100)
    return render_to_string(
        "django_jobs/admin/progress.html", {"percent": percent, "message": message}
    )


def failures(errors: list[Any]) -> SafeString | str:
    """Every failed attempt of ``errors`` (a job's), newest first, with its traceback."""
    if not errors:
        return "-"
    shown = []
    for number, entry in reversed(list(enumerate(errors, start=1))):
        entry = entry if isinstance(entry, dict) else {"message": str(entry)}
        details = {k: v for k, v in entry.items() if k not in ("traceback", "type", "message")}
        shown.append(
            {
                "number": number,
                "type": entry.get("type", "?"),
                "message": entry.get("message", ""),
                "details": json_text(details) if details else "",
                "traceback": entry.get("traceback") or "",
            }
        )
    return render_to_string("django_jobs/admin/failures.html", {"failures": shown})
