"""Filters of ``GET /jobs/`` (django-filter)."""

from __future__ import annotations

import django_filters
from django.db.models import QuerySet
from rest_framework.exceptions import ValidationError

from ..enums import JobStatus, Priority
from ..models import Job


class JobFilter(django_filters.FilterSet):
    # distinct=False: one status per row, and a DISTINCT over a big table is a sort.
    status = django_filters.MultipleChoiceFilter(choices=JobStatus.choices, distinct=False)
    queue = django_filters.CharFilter(field_name="queue")
    task = django_filters.CharFilter(field_name="task_name")
    priority = django_filters.CharFilter(
        method="filter_priority", help_text="An integer or a name."
    )
    tag = django_filters.CharFilter(method="filter_tag")
    created_after = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = Job
        fields = ["status", "queue", "task", "priority", "tag", "created_after", "created_before"]

    def filter_priority(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        try:
            priority = Priority.coerce(value)
        except ValueError as exc:
            raise ValidationError({"priority": [str(exc)]}) from None
        return queryset.filter(priority=priority)

    def filter_tag(self, queryset, name: str, value: str):
        return queryset.with_tag(value)
