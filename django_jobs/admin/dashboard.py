"""The dashboard at ``admin/django_jobs/dashboard/`` (URL name ``admin:django_jobs_dashboard``).

A page of numbers and two charts, drawn on the server as SVG (no JavaScript library, no
CDN). The page asks for its body again every few seconds (``?fragment=1``) and swaps it
in, which a small script does while the tab is visible. The numbers come from
:func:`django_jobs.dashboard.dashboard`, one cached snapshot for every viewer.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.template.response import TemplateResponse
from django.urls import path
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from ..dashboard import REFRESH_SECONDS, dashboard
from ..models import Dashboard
from ..models.rollup import CANCELLED, COMPLETED, FAILED, RETRIED
from .display import JobsAdminMedia, format_duration, page_context

# Chart geometry (SVG user units; the SVG scales to its box).
WIDTH, HEIGHT, LEFT, BOTTOM, TOP = 720, 180, 44, 22, 8
SERIES = (  # drawn bottom to top
    (COMPLETED, _("completed")),
    (RETRIED, _("retried")),
    (FAILED, _("failed")),
    (CANCELLED, _("cancelled")),
)


def bar_chart(slots: list[dict[str, Any]], label_every: int, fmt: str) -> dict[str, Any]:
    """Stacked bars, one per slot, as rectangles and axis labels for the template."""
    peak = max((sum(slot[k] for k, _ in SERIES) for slot in slots), default=0)
    top = _nice(peak)
    plot_w, plot_h = WIDTH - LEFT - 4, HEIGHT - BOTTOM - TOP
    step = plot_w / max(1, len(slots))
    bar_w = max(1.0, step * 0.8)
    bars = []
    for i, slot in enumerate(slots):
        x = LEFT + i * step + (step - bar_w) / 2
        y = TOP + plot_h
        local = timezone.localtime(slot["period"])
        title = [local.strftime(fmt)]
        for kind, label in SERIES:
            n = slot[kind]
            title.append(f"{label}: {n}")
            if not n or not top:
                continue
            h = plot_h * n / top
            y -= h
            bars.append(
                {
                    "x": round(x, 1),
                    "y": round(y, 1),
                    "w": round(bar_w, 1),
                    "h": round(h, 1),
                    "kind": kind,
                }
            )
        slot_label = local.strftime(fmt) if i % label_every == 0 else ""
        bars.append(
            {
                "x": round(x, 1),
                "y": TOP,
                "w": round(step, 1),
                "h": plot_h,
                "kind": "hit",
                "title": " · ".join(title),
            }
        )
        if slot_label:
            bars.append(
                {"x": round(x + bar_w / 2, 1), "y": HEIGHT - 6, "kind": "label", "text": slot_label}
            )
    grid = [
        {"y": round(TOP + plot_h - plot_h * f, 1), "text": _short(top * f)} for f in (0, 0.5, 1)
    ]
    return {
        "width": WIDTH,
        "height": HEIGHT,
        "left": LEFT,
        "right": WIDTH - 4,
        "bars": bars,
        "grid": grid,
        "empty": peak == 0,
    }


def _nice(peak: int) -> int:
    """The round number (1, 2 or 5 times a power of ten) at or above ``peak``."""
    if peak <= 0:
        return 0
    scale = 1
    while True:
        for base in (1, 2, 5):
            if base * scale >= peak:
                return base * scale
        scale *= 10


def _short(n: float) -> str:
    if n >= 1_000_000:
        return f"{n / 1_000_000:.1f}M".replace(".0M", "M")
    if n >= 1_000:
        return f"{n / 1_000:.1f}k".replace(".0k", "k")
    return f"{n:.0f}"


@admin.register(Dashboard)
class DashboardAdmin(JobsAdminMedia, admin.ModelAdmin):
    """No list, no form: one page, for whoever may view jobs."""

    def has_view_permission(self, request, obj=None):
        return request.user.has_perm("django_jobs.view_job")

    def has_module_permission(self, request):
        return self.has_view_permission(request)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def get_urls(self):
        view = self.admin_site.admin_view(self.dashboard_view)
        return [
            path("", view, name="django_jobs_dashboard"),
            # What the admin index links a model to.
            path("", view, name="django_jobs_dashboard_changelist"),
        ]

    def dashboard_view(self, request):
        if not self.has_view_permission(request):
            raise PermissionDenied
        data = dashboard()
        context = {
            **page_context(request, self, _("Jobs dashboard")),
            "d": data,
            "minute_chart": bar_chart(data["minutes"], 10, "%H:%M"),
            # "%H:%M": in a half-hour time zone an hour starts at :30.
            "hour_chart": bar_chart(data["hours"], 4, "%H:%M"),
            "series": SERIES,
            "refresh_ms": REFRESH_SECONDS * 1000,
            "format_duration": format_duration,
        }
        for queue in data["queues"]:
            queue["oldest_text"] = format_duration(queue["oldest_pending_seconds"])
            for key in ("run", "wait"):
                queue[f"{key}_text"] = {
                    name: format_duration(value) for name, value in queue[key].items()
                }
        for worker in data["workers"]["alive"]:
            worker["heartbeat_text"] = format_duration(worker["heartbeat_seconds"])
        template = (
            "django_jobs/admin/dashboard_body.html"
            if request.GET.get("fragment")
            else "django_jobs/admin/dashboard.html"
        )
        return TemplateResponse(request, template, context)
