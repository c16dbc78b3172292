"""How the queue, worker and schedule lists show their values: badges, counts that link
to the jobs behind them, ages, a worker's current jobs, times in a schedule's zone and
the preview of a schedule's next runs.

Markup lives in templates (``django_jobs/admin/*.html``); the styles of these lists in
``static/django_jobs/admin-lists.css``, loaded with the app's stylesheet by
:class:`ListsAdminMedia`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any
from urllib.parse import urlencode
from zoneinfo import available_timezones

from django import forms
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.safestring import SafeString
from django.utils.timesince import timesince, timeuntil
from django.utils.translation import gettext as _

from .. import schedules
from ..enums import ScheduleKind
from ..models import Job, Schedule
from ..models.schedule_definitions import TIMING_FIELDS
from .display import JobsAdminMedia, format_duration, status_badge


class ListsAdminMedia(JobsAdminMedia):
    """The app's stylesheet and the one of the queue, worker and schedule pages."""

    class Media:
        css = {"all": (*JobsAdminMedia.Media.css["all"], "django_jobs/admin-lists.css")}


def badge(text: str, kind: str, title: str = "") -> SafeString:
    """A small label; ``kind`` is one of ``good``, ``warn``, ``bad``, ``off``."""
    return render_to_string(
        "django_jobs/admin/list_badge.html", {"text": text, "kind": kind, "title": title}
    )


def count_link(count: int, url: str, title: str = "") -> SafeString:
    """``count``, linking to ``url`` (the jobs counted) unless it is zero."""
    return render_to_string(
        "django_jobs/admin/list_count.html", {"count": count, "url": url, "title": title}
    )


def _breakable(text: str) -> list[str]:
    """``text`` in pieces that a line may break between (after dots, slashes and dashes):
    dotted task names wrap at their dots, not mid-word."""
    parts, piece = [], ""
    for char in text:
        piece += char
        if char in "./-":
            parts.append(piece)
            piece = ""
    return [*parts, piece] if piece else parts


def name_cell(name: str, url: str = "", sub: str = "", sub_title: str = "") -> SafeString:
    """A name (linking to ``url``) and, under it, a second value such as a task name."""
    return render_to_string(
        "django_jobs/admin/list_name.html",
        {
            "parts": _breakable(name),
            "url": url,
            "sub_parts": _breakable(sub) if sub else [],
            "sub_title": sub_title or sub,
        },
    )


def job_list_url(site_name: str, **filters: str) -> str:
    url = reverse("admin:django_jobs_job_changelist", current_app=site_name)
    return f"{url}?{urlencode(filters)}"


def job_url(site_name: str, pk: int) -> str:
    return reverse("admin:django_jobs_job_change", args=[pk], current_app=site_name)


def age_text(seconds: float) -> str:
    return format_duration(max(0.0, seconds))


# -- queues ----------------------------------------------------------------------------


def queue_age(oldest_due: datetime | None, limit: float | None, own_limit: bool) -> SafeString:
    """How long the queue's oldest due job has waited, flagged past its limit (the
    queue's ``max_pending_age``, else the HEALTH setting's)."""
    if oldest_due is None:
        return render_to_string("django_jobs/admin/queue_age.html", {"age": None})
    waited = (timezone.now() - schedules.aware(oldest_due)).total_seconds()
    limit_text = schedules.format_seconds(limit) if limit is not None else ""
    return render_to_string(
        "django_jobs/admin/queue_age.html",
        {
            "age": age_text(waited),
            "over": limit is not None and waited > limit,
            "over_text": _("over %(limit)s") % {"limit": limit_text},
            "limit": limit,
            "limit_title": (
                _("the queue's limit: %(limit)s")
                if own_limit
                else _("the default limit: %(limit)s")
            )
            % {"limit": limit_text},
        },
    )


# -- workers ---------------------------------------------------------------------------


def worker_heartbeat(worker, timeout: float) -> SafeString:
    """Alive, stale (no heartbeat for ``timeout`` seconds, not stopped) or stopped, and
    the age of the last heartbeat."""
    age = max(0.0, worker.heartbeat_age.total_seconds())
    if worker.stopped_at is not None:
        state, label = "off", _("stopped")
    elif age >= timeout:
        state, label = "bad", _("stale")
    else:
        state, label = "good", _("alive")
    when = timezone.localtime(worker.last_heartbeat_at)
    return render_to_string(
        "django_jobs/admin/worker_heartbeat.html",
        {
            "state": state,
            "label": label,
            "age": _("%(age)s ago") % {"age": age_text(age)},
            "title": _("last heartbeat: %(when)s") % {"when": f"{when:%Y-%m-%d %H:%M:%S %Z}"},
        },
    )


# The columns a worker's current jobs are shown with.
CURRENT_JOB_FIELDS = ("id", "task_name", "status", "progress", "progress_message", "started_at")
CURRENT_JOBS_SHOWN = 5


def load_current_jobs(workers: list, using: str | None) -> None:
    """Set ``worker.running_jobs`` (id -> Job) on each of ``workers``: one query for all."""
    ids = {pk for worker in workers for pk in (worker.current_jobs or [])[:CURRENT_JOBS_SHOWN]}
    found = Job.objects.using(using).only(*CURRENT_JOB_FIELDS).in_bulk([i for i in ids if i])
    for worker in workers:
        worker.running_jobs = found


def current_jobs(worker, site_name: str) -> SafeString:
    """Links to the jobs the worker runs, with their progress and time left."""
    ids = list(worker.current_jobs or [])
    if not hasattr(worker, "running_jobs"):
        load_current_jobs([worker], worker._state.db)
    shown = []
    for pk in ids[:CURRENT_JOBS_SHOWN]:
        job = worker.running_jobs.get(pk)
        if job is None:
            shown.append({"id": pk})
            continue
        eta = job.eta_seconds
        shown.append(
            {
                "id": pk,
                "url": job_url(site_name, pk),
                "task": job.task_name,
                "short_task": job.task_name.rsplit(".", 1)[-1],
                "percent": round(max(0.0, min(1.0, job.progress or 0.0)) * 100),
                "message": job.progress_message,
                "eta": _("%(left)s left") % {"left": format_duration(eta)} if eta else "",
            }
        )
    more = len(ids) - len(shown)
    return render_to_string(
        "django_jobs/admin/worker_jobs.html",
        {
            "jobs": shown,
            "more": more,
            "more_url": job_list_url(site_name, worker_id=worker.pk, status__exact="running"),
        },
    )


# -- schedules -------------------------------------------------------------------------


def schedule_zone(schedule):
    try:
        return schedules.validate_timezone(schedule.timezone)
    except ValueError:
        return UTC


def schedule_timing(schedule) -> SafeString:
    """The timing in plain words; under them the cron expression and the time zone."""
    return render_to_string(
        "django_jobs/admin/schedule_timing.html",
        {
            "words": schedules.in_words(schedule),
            "raw": schedule.cron if schedule.kind == ScheduleKind.CRON else "",
            "zone": schedule.timezone,
        },
    )


def local_time(value: datetime, zone) -> str:
    local = schedules.aware(value).astimezone(zone)
    return f"{local:%Y-%m-%d %H:%M} {local.tzname()}"


def _relative(value: datetime, now: datetime) -> str:
    seconds = (value - now).total_seconds()
    if abs(seconds) < 60:
        return _("in under a minute") if seconds > 0 else _("under a minute ago")
    if seconds > 0:
        return _("in %(time)s") % {"time": timeuntil(value, now, depth=1)}
    return _("%(time)s ago") % {"time": timesince(value, now, depth=1)}


def _utc(value: datetime) -> str:
    return f"{value.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC"


def schedule_when(value: datetime | None, zone, empty: str = "-") -> SafeString:
    """How far a time is from now; under it, the time in the schedule's zone (UTC in
    the tooltip)."""
    if value is None:
        return render_to_string("django_jobs/admin/schedule_when.html", {"empty": empty})
    value = schedules.aware(value)
    return render_to_string(
        "django_jobs/admin/schedule_when.html",
        {
            "when": local_time(value, zone),
            "utc": _utc(value),
            "relative": _relative(value, timezone.now()),
        },
    )


def schedule_last_run(schedule, site_name: str) -> SafeString:
    """The status of the job the last run enqueued, linking to it, and when it ran."""
    ran = schedule.last_run_at
    if ran is None:
        return render_to_string("django_jobs/admin/schedule_last_run.html", {})
    ran = schedules.aware(ran)
    job = schedule.last_job
    context: dict[str, Any] = {
        "when": local_time(ran, schedule_zone(schedule)),
        "utc": f"{local_time(ran, schedule_zone(schedule))} ({_utc(ran)})",
        "relative": _relative(ran, timezone.now()),
    }
    if job is not None:  # None once the job was deleted (pruned)
        context["url"] = job_url(site_name, job.pk)
        context["badge"] = status_badge(job.status)
        context["job_id"] = job.pk
    return render_to_string("django_jobs/admin/schedule_last_run.html", context)


# -- the schedule form -----------------------------------------------------------------


@lru_cache(maxsize=1)
def timezone_names() -> tuple[str, ...]:
    return tuple(sorted(available_timezones()))


class TimezoneInput(forms.TextInput):
    """A text input that suggests the IANA zone names as one types."""

    template_name = "django_jobs/admin/timezone_input.html"

    def get_context(self, name: str, value: Any, attrs: dict | None) -> dict[str, Any]:
        list_id = f"{(attrs or {}).get('id') or name}-zones"
        context = super().get_context(name, value, {**(attrs or {}), "list": list_id})
        context["widget"]["list_id"] = list_id
        context["widget"]["zones"] = timezone_names()
        return context


class PreviewForm(forms.Form):
    """The timing fields of the schedule form, as the live preview sends them."""

    kind = forms.ChoiceField(choices=ScheduleKind.choices, required=False)
    cron = forms.CharField(required=False, strip=True)
    interval = forms.FloatField(required=False)
    run_at = forms.SplitDateTimeField(required=False)
    timezone = forms.CharField(required=False, strip=True)
    enabled = forms.BooleanField(required=False)
    schedule = forms.IntegerField(required=False)  # the schedule being edited


@dataclass
class Preview:
    error: str = ""
    words: str = ""
    zone: str = ""
    notes: list[str] | None = None
    runs: list[dict[str, str]] | None = None

    def context(self) -> dict[str, Any]:
        return {
            "error": self.error,
            "words": self.words,
            "zone": self.zone,
            "notes": self.notes or [],
            "runs": self.runs or [],
        }


PREVIEW_RUNS = 5


def _saved_state(schedule: Schedule) -> dict[str, Any] | None:
    """The stored timing of ``schedule`` when it matches the one on the form: its saved
    next run is then where the preview starts (as saving keeps it)."""
    if schedule.pk is None:
        return None
    fields = (*TIMING_FIELDS, "enabled", "next_run_at", "last_run_at")
    row = Schedule.objects.using(schedule._state.db).filter(pk=schedule.pk).values(*fields).first()
    if row is None:
        return None
    if any(row[name] != getattr(schedule, name) for name in (*TIMING_FIELDS, "enabled")):
        return None
    return row


def preview(schedule: Schedule) -> Preview:
    """The next five runs of ``schedule`` (saved or as typed) in its time zone, with the
    daylight-saving notes; or the error that keeps it from running."""
    if not schedule.kind:
        return Preview(notes=[_("Choose cron, interval or once to see the next runs.")])
    try:
        zone = schedules.validate_timezone(schedule.timezone)
    except ValueError as exc:
        return Preview(error=_("Time zone: %(error)s") % {"error": exc})
    now = timezone.now()
    saved = _saved_state(schedule)
    notes = []
    if not schedule.enabled:
        notes.append(
            _(
                "Disabled: no run happens until it is enabled; then it runs at the next of "
                "these times still ahead."
            )
        )
    first = None
    if saved is not None and saved["next_run_at"] is not None:
        if schedules.aware(saved["next_run_at"]) > now or schedule.kind == ScheduleKind.ONCE:
            first = saved["next_run_at"]
    if saved is not None and saved["next_run_at"] is None and schedule.kind == ScheduleKind.ONCE:
        ran = saved["last_run_at"]
        done = _("It ran on %(when)s; a one-time schedule has no further runs.") % {
            "when": local_time(ran, zone) if ran else "?"
        }
        return Preview(words=schedules.in_words(schedule), zone=str(zone), notes=[done])
    try:
        runs = schedules.upcoming_runs(schedule, now, PREVIEW_RUNS, first)
        words = schedules.in_words(schedule)
    except ValueError as exc:
        field = {"cron": _("Cron"), "interval": _("Interval"), "once": _("Run at")}.get(
            schedule.kind, _("Timing")
        )
        return Preview(error=f"{field}: {exc}")
    return Preview(
        words=words,
        zone=str(zone),
        notes=notes,
        runs=[_run(run, zone, now) for run in runs],
    )


def _run(run: schedules.UpcomingRun, zone, now: datetime) -> dict[str, str]:
    local = run.local
    warning = ""
    if run.gap and run.wall is not None:
        warning = _(
            "%(wall)s does not exist on %(day)s (the clocks go forward): it runs at %(time)s."
        ) % {"wall": f"{run.wall:%H:%M}", "day": f"{run.wall:%Y-%m-%d}",
             "time": f"{local:%H:%M %Z}"}  # fmt: skip
    elif run.repeat:
        warning = _(
            "%(time)s happens twice on %(day)s (the clocks go back): it runs once, at the "
            "first (%(zone)s)."
        ) % {"time": f"{local:%H:%M}", "day": f"{local:%Y-%m-%d}", "zone": local.tzname()}
    elif run.shifted:
        warning = _(
            "The clocks change before this run: an interval is an exact duration, so it runs "
            "at %(time)s local time."
        ) % {"time": f"{local:%H:%M %Z}"}
    if run.at <= now:
        relative = _("due now (its time has passed)")
    else:
        relative = _("in %(time)s") % {"time": timeuntil(run.at, now)}
    return {
        "iso": run.at.isoformat(),
        "local": f"{local:%a %Y-%m-%d %H:%M} {local.tzname()}",
        "utc": "" if str(zone) == "UTC" else f"{run.at:%H:%M} UTC",
        "relative": relative,
        "warning": warning,
    }


def render_preview(result: Preview, url: str = "", schedule_id: int | None = None) -> SafeString:
    """The preview's markup; with ``url``, the form's script refreshes it as one types."""
    return render_to_string(
        "django_jobs/admin/schedule_preview.html",
        {**result.context(), "url": url, "schedule_id": schedule_id},
    )
