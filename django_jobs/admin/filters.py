"""List filters of the admin."""

from __future__ import annotations

from django.contrib import admin
from django.utils.translation import gettext_lazy as _

from ..enums import MAX_PRIORITY, MIN_PRIORITY, Priority

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
