"""Filters of ``GET /jobs/`` (django-filter)."""

from __future__ import annotations

from datetime import UTC

import django_filters
from django import forms
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import QuerySet
from django_filters.fields import IsoDateTimeField
from rest_framework.exceptions import ValidationError

from ..enums import JobStatus, Priority
from ..models import Job


class UtcDateTimeField(IsoDateTimeField):
    """An ISO 8601 time, in UTC: PostgreSQL refuses offsets past ±15:59 that Python takes
    (up to ±23:59, a 500), and a time near year 1 or 9999 may have no UTC equivalent."""

    def to_python(self, value):
        moment = super().to_python(value)
        if moment is None:
            return None
        try:
            return moment.astimezone(UTC)
        except OverflowError:
            raise forms.ValidationError("Out of range once in UTC.", code="invalid") from None


class UtcDateTimeFilter(django_filters.IsoDateTimeFilter):
    field_class = UtcDateTimeField


class JobFilter(django_filters.FilterSet):
    # distinct=False: one status per row, and a DISTINCT over a big table is a sort.
    status = django_filters.MultipleChoiceFilter(choices=JobStatus.choices, distinct=False)
    queue = django_filters.CharFilter(field_name="queue")
    task = django_filters.CharFilter(field_name="task_name")
    priority = django_filters.CharFilter(
        method="filter_priority", help_text="An integer or a name."
    )
    tag = django_filters.CharFilter(method="filter_tag")
    owner = django_filters.CharFilter(
        method="filter_owner", help_text="A user's primary key, or 'me' (the caller)."
    )
    created_after = UtcDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = UtcDateTimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = Job
        fields = [
            "status",
            "queue",
            "task",
            "priority",
            "tag",
            "owner",
            "created_after",
            "created_before",
        ]

    def filter_priority(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        try:
            priority = Priority.coerce(value)
        except ValueError as exc:
            raise ValidationError({"priority": [str(exc)]}) from None
        return queryset.filter(priority=priority)

    def filter_owner(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        if value == "me":
            user = getattr(self.request, "user", None)
            if user is None or not user.is_authenticated:
                return queryset.none()  # an anonymous caller owns nothing
            return queryset.filter(owner_id=user.pk)
        try:
            pk = get_user_model()._meta.pk.to_python(value)
        except DjangoValidationError:
            raise ValidationError({"owner": ["A user's primary key, or 'me'."]}) from None
        return queryset.filter(owner_id=pk)

    def filter_tag(self, queryset, name: str, value: str):
        return queryset.with_tag(value)
