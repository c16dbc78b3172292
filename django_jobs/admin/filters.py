"""List filters of the admin."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from typing import Any

from django.conf import settings
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.utils import timezone
from django.utils.dateparse import parse_date
from django.utils.translation import gettext_lazy as _

from ..enums import MAX_PRIORITY, MIN_PRIORITY, Priority
from ..models import Job, Queue
from ..models.job import jobs_db
from ..registry import registry

# The bounds of each named bucket, as Priority.label_for() draws them.
PRIORITY_BUCKETS = {
    "critical": (Priority.CRITICAL, MAX_PRIORITY),
    "high": (Priority.HIGH, Priority.CRITICAL - 1),
    "normal": (Priority.NORMAL, Priority.HIGH - 1),
    "low": (MIN_PRIORITY, Priority.NORMAL - 1),
}


class PriorityFilter(admin.SimpleListFilter):
    title = _("priority")
    parameter_name = "priority_bucket"

    def lookups(self, request, model_admin):
        return [(name, name.capitalize()) for name in PRIORITY_BUCKETS]

    def queryset(self, request, queryset):
        bounds = PRIORITY_BUCKETS.get(self.value() or "")
        if bounds is None:
            return queryset
        low, high = bounds
        return queryset.filter(priority__gte=low, priority__lte=high)


class AliveFilter(admin.SimpleListFilter):
    title = _("alive")
    parameter_name = "alive"

    def lookups(self, request, model_admin):
        return [("yes", _("Alive")), ("no", _("Stopped or stale"))]

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.alive()
        if self.value() == "no":
            return queryset.dead()
        return queryset


class QueueFilter(admin.SimpleListFilter):
    """Queues by name, from the queue table: ``queue`` as a plain field filter would read
    every distinct value of a column of millions of rows on each page view."""

    title = _("queue")
    parameter_name = "queue__exact"

    def lookups(self, request, model_admin):
        names = Queue.objects.using(jobs_db()).order_by("name").values_list("name", flat=True)
        return [(name, name) for name in names]

    def queryset(self, request, queryset):
        return queryset.filter(queue=self.value()) if self.value() else queryset


class TaskFilter(admin.SimpleListFilter):
    """Tasks by name, from the registry (what this project can run)."""

    title = _("task")
    parameter_name = "task_name__exact"

    def lookups(self, request, model_admin):
        return [(name, name) for name in registry.names()]

    def queryset(self, request, queryset):
        return queryset.filter(task_name=self.value()) if self.value() else queryset


class TagFilter(admin.SimpleListFilter):
    """Tags seen on the latest jobs (any tag works in the URL: ``?tag=x``)."""

    title = _("tag")
    parameter_name = "tag"
    SAMPLE = 1000

    def lookups(self, request, model_admin):
        recent = Job.objects.using(jobs_db()).order_by("-pk").values_list("tags", flat=True)
        seen = sorted({str(t) for tags in recent[: self.SAMPLE] if tags for t in tags})
        current = self.value()
        if current and current not in seen:
            seen.append(current)
        return [(tag, tag) for tag in seen]

    def queryset(self, request, queryset):
        return queryset.with_tag(self.value()) if self.value() else queryset


class OwnerFilter(admin.SimpleListFilter):
    """Jobs started for a user (SPEC 5.10): mine, anyone's, nobody's, or one user by id
    (``?owner=<id>``, the link on a job's page). No list of every owner: that would read
    the owners of millions of rows on each page view."""

    title = _("owner")
    parameter_name = "owner"

    def lookups(self, request, model_admin):
        choices: list[tuple[str, Any]] = [
            ("me", _("Mine")),
            ("any", _("Has an owner")),
            ("none", _("No owner")),
        ]
        current = self.value()
        if current and current not in ("me", "any", "none"):
            user = get_user_model()._default_manager.filter(pk=_user_pk(current)).first()
            choices.append((current, str(user) if user else current))
        return choices

    def queryset(self, request, queryset):
        value = self.value()
        if not value:
            return queryset
        if value == "me":
            return queryset.filter(owner_id=request.user.pk)
        if value == "any":
            return queryset.filter(owner__isnull=False)
        if value == "none":
            return queryset.filter(owner__isnull=True)
        pk = _user_pk(value)
        # Not .none(): the list's bounded count compiles its query, which none() cannot.
        return queryset.filter(owner_id=pk) if pk is not None else queryset.filter(pk__lt=0)


def _user_pk(value: str):
    try:
        return get_user_model()._meta.pk.to_python(value)
    except ValidationError:
        return None


class CreatedRangeFilter(admin.FieldListFilter):
    """Created between two dates (either may be left empty), in the current time zone."""

    template = "django_jobs/admin/date_range_filter.html"

    def __init__(self, field, request, params, model, model_admin, field_path):
        self.since_param = f"{field_path}__gte"
        self.until_param = f"{field_path}__lt"
        super().__init__(field, request, params, model, model_admin, field_path)
        # Everything else in the URL (other filters, search, ordering) survives the form.
        self.keep = [
            (key, value)
            for key, values in request.GET.lists()
            if key not in (self.since_param, self.until_param, "p", "e")
            for value in values
        ]
        self.errors: list[str] = []
        self.bounds = {}
        for param, inclusive_end in ((self.since_param, False), (self.until_param, True)):
            # FieldListFilter.__init__ moved our parameters to used_parameters.
            raw = self.used_parameters.get(param)
            value = raw[-1] if isinstance(raw, list) else raw
            if not value:
                self.used_parameters.pop(param, None)
                continue
            self.used_parameters[param] = value
            try:
                day = parse_date(str(value))  # None, or ValueError for "2024-02-30"
                if day is not None and inclusive_end:  # "until 2026-01-31" includes it
                    day += timedelta(days=1)  # OverflowError after 9999-12-31
                start = datetime.combine(day, time.min) if day is not None else None
                if start is not None and settings.USE_TZ:
                    start = timezone.make_aware(start)
            except (ValueError, OverflowError):
                start = None
            if start is None:
                self.errors.append(_("%(value)s is not a date (YYYY-MM-DD).") % {"value": value})
                continue
            self.bounds[param] = start

    def has_output(self):
        return True

    def expected_parameters(self):
        return [self.since_param, self.until_param]

    def queryset(self, request, queryset):
        return queryset.filter(**self.bounds) if self.bounds else queryset

    def choices(self, changelist):
        # The template draws a small form; "All" clears both dates.
        yield {
            "selected": not self.used_parameters,
            "query_string": changelist.get_query_string(remove=self.expected_parameters()),
            "display": _("All"),
            "since": self.used_parameters.get(self.since_param, ""),
            "until": self.used_parameters.get(self.until_param, ""),
            "since_param": self.since_param,
            "until_param": self.until_param,
            "errors": self.errors,
            "keep": self.keep,
        }
