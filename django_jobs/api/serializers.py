"""What the API reads and writes."""

from __future__ import annotations

from datetime import timedelta

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError as DjangoValidationError
from django.utils import timezone
from rest_framework import serializers

from ..models import Batch, Job, MisfirePolicy, Queue, Schedule, Worker
from ..models.rate import validate_rate

# Bounds of what the database and datetime arithmetic can hold: past them, a value got
# through validation and failed at the INSERT or at ``now + timedelta(...)`` (a 500).
MAX_SECONDS = 100 * 366 * 24 * 3600  # a delay or an interval: a hundred years
MAX_RETRIES = 2**31 - 1  # PositiveIntegerField
MAX_ID = 2**63 - 1  # BigAutoField


class JobSerializer(serializers.ModelSerializer):
    eta = serializers.DateTimeField(read_only=True, allow_null=True)
    eta_seconds = serializers.FloatField(read_only=True, allow_null=True)
    task = serializers.CharField(source="task_name", read_only=True)
    depends_on = serializers.SerializerMethodField()

    class Meta:
        model = Job
        fields = [
            "id",
            "task",
            "status",
            "queue",
            "original_queue",
            "priority",
            "args",
            "kwargs",
            "result",
            "error",
            "errors",
            "attempts",
            "retry_count",
            "max_retries",
            "timeout",
            "progress",
            "progress_message",
            "progress_details",
            "eta",
            "eta_seconds",
            "tags",
            "metadata",
            "owner",
            "unique_key",
            "batch",
            "chain_index",
            "depends_on",
            "schedule",
            "worker_id",
            "cancel_requested",
            "cancel_reason",
            "created_at",
            "scheduled_at",
            "started_at",
            "finished_at",
        ]
        read_only_fields = fields

    def get_depends_on(self, job: Job) -> list[int]:
        # .all(): served by the view's prefetch (one query per page, not one per row).
        return sorted(dependency.pk for dependency in job.depends_on.all())


class EnqueueSerializer(serializers.Serializer):
    """``POST /jobs/``: what ``jobs.enqueue()`` takes, by name."""

    task = serializers.CharField(max_length=255)
    args = serializers.ListField(child=serializers.JSONField(), required=False, default=list)
    kwargs = serializers.DictField(child=serializers.JSONField(), required=False, default=dict)
    queue = serializers.CharField(max_length=255, required=False)
    priority = serializers.JSONField(
        required=False, help_text="An integer in [-100, 100] or a name."
    )
    scheduled_at = serializers.DateTimeField(required=False)
    delay = serializers.FloatField(
        required=False, min_value=0, max_value=MAX_SECONDS, help_text="Seconds."
    )
    tags = serializers.ListField(child=serializers.CharField(max_length=100), required=False)
    metadata = serializers.DictField(child=serializers.JSONField(), required=False)
    max_retries = serializers.IntegerField(required=False, min_value=0, max_value=MAX_RETRIES)
    timeout = serializers.FloatField(required=False, help_text="Seconds, > 0.")
    unique_key = serializers.CharField(max_length=255, required=False, allow_null=True)
    depends_on = serializers.ListField(
        child=serializers.IntegerField(min_value=1, max_value=MAX_ID), required=False
    )
    owner = serializers.PrimaryKeyRelatedField(
        queryset=get_user_model()._default_manager.all(),
        required=False,
        allow_null=True,
        help_text="The user the job is started for (a primary key); "
        "default: the user making the request.",
    )


class CancelSerializer(serializers.Serializer):
    terminate = serializers.BooleanField(required=False, default=False)


class BatchSerializer(serializers.ModelSerializer):
    progress = serializers.FloatField(read_only=True)

    class Meta:
        model = Batch
        fields = [
            "id",
            "kind",
            "task_name",
            "total",
            "enqueued",
            "completed",
            "failed",
            "cancelled",
            "progress",
            "on_complete",
            "created_at",
            "finished_at",
        ]
        read_only_fields = fields


class QueueSerializer(serializers.ModelSerializer):
    pending = serializers.IntegerField(read_only=True)
    running = serializers.IntegerField(read_only=True)
    failed = serializers.IntegerField(read_only=True)
    oldest_pending_age_seconds = serializers.SerializerMethodField()
    max_pending_age = serializers.DurationField(read_only=True, allow_null=True)

    class Meta:
        model = Queue
        fields = [
            "name",
            "description",
            "paused",
            "concurrency_limit",
            "rate_limit",
            "max_pending_age",
            "pending",
            "running",
            "failed",
            "oldest_pending_age_seconds",
        ]
        read_only_fields = fields

    def get_oldest_pending_age_seconds(self, queue: Queue) -> float | None:
        """Seconds the oldest due job has waited (None: no job is due)."""
        due = getattr(queue, "oldest_due", None)
        if due is None:
            return None
        return round(max(0.0, (timezone.now() - due).total_seconds()), 3)


class QueueSettingsSerializer(serializers.Serializer):
    """``PATCH /queues/{name}/``: the settings a person may change (``Queue.SETTINGS``)."""

    description = serializers.CharField(required=False, allow_blank=True, max_length=10_000)
    concurrency_limit = serializers.IntegerField(
        required=False, allow_null=True, min_value=1, max_value=2**31 - 1
    )
    rate_limit = serializers.CharField(
        required=False,
        allow_blank=True,
        allow_null=True,
        max_length=32,
        help_text='Job starts per period across all workers: "100/s", "600/m", "1000/h"; '
        "empty or null: no limit.",
    )
    max_pending_age = serializers.FloatField(
        required=False,
        allow_null=True,
        min_value=0,
        max_value=MAX_SECONDS,
        help_text="Seconds (null: the HEALTH setting's MAX_PENDING_AGE).",
    )

    def validate_rate_limit(self, value: str | None) -> str:
        value = (value or "").strip()
        try:
            validate_rate(value)
        except DjangoValidationError as exc:
            raise serializers.ValidationError(exc.messages) from None
        return value

    def validate_max_pending_age(self, value: float | None) -> timedelta | None:
        return timedelta(seconds=value) if value is not None else None


class WorkerSerializer(serializers.ModelSerializer):
    alive = serializers.BooleanField(source="is_alive", read_only=True)
    heartbeat_age_seconds = serializers.SerializerMethodField()

    class Meta:
        model = Worker
        fields = [
            "id",
            "hostname",
            "pid",
            "queues",
            "exclude_queues",
            "concurrency",
            "started_at",
            "last_heartbeat_at",
            "heartbeat_age_seconds",
            "stopped_at",
            "alive",
            "current_jobs",
            "jobs_processed",
            "jobs_failed",
        ]
        read_only_fields = fields

    def get_heartbeat_age_seconds(self, worker: Worker) -> float:
        return round(max(0.0, worker.heartbeat_age.total_seconds()), 3)


class ScheduleSerializer(serializers.ModelSerializer):
    task = serializers.CharField(source="task_name", read_only=True)
    description_of_timing = serializers.CharField(source="describe", read_only=True)

    class Meta:
        model = Schedule
        fields = [
            "name",
            "task",
            "kind",
            "cron",
            "interval",
            "run_at",
            "timezone",
            "description_of_timing",
            "args",
            "kwargs",
            "queue",
            "priority",
            "misfire_policy",
            "enabled",
            "next_run_at",
            "last_run_at",
            "run_count",
        ]
        read_only_fields = fields


class ScheduleWriteSerializer(serializers.Serializer):
    """``POST /schedules/`` and ``PATCH /schedules/{name}/``: one of ``cron``,
    ``interval`` (seconds) or ``run_at``."""

    name = serializers.CharField(max_length=255)
    task = serializers.CharField(max_length=255)
    cron = serializers.CharField(max_length=255, required=False)
    interval = serializers.FloatField(
        required=False, min_value=0.001, max_value=MAX_SECONDS, help_text="Seconds."
    )
    run_at = serializers.DateTimeField(required=False)
    args = serializers.ListField(child=serializers.JSONField(), required=False)
    kwargs = serializers.DictField(child=serializers.JSONField(), required=False)
    queue = serializers.CharField(max_length=255, required=False, allow_null=True)
    priority = serializers.JSONField(
        required=False, help_text="An integer in [-100, 100] or a name."
    )
    timezone = serializers.CharField(max_length=64, required=False)
    misfire_policy = serializers.ChoiceField(choices=MisfirePolicy.choices, required=False)
    enabled = serializers.BooleanField(required=False)

    def validate(self, data: dict) -> dict:
        timing = [key for key in ("cron", "interval", "run_at") if key in data]
        if len(timing) > 1:
            raise serializers.ValidationError(
                {timing[1]: [f"Give one of cron, interval and run_at, not {' and '.join(timing)}."]}
            )
        if self.context.get("creating") and not timing:
            raise serializers.ValidationError({"cron": ["Give one of cron, interval and run_at."]})
        return data
