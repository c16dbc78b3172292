"""The API's views: thin callers of the manager and QuerySet verbs (SPEC 9.2)."""

from __future__ import annotations

from typing import Any

from django.db.models import Prefetch
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.permissions import AllowAny, IsAdminUser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from ..enqueue import job_pk
from ..exceptions import TaskNotFound
from ..health import CHECKS
from ..manager import jobs
from ..metrics import CONTENT_TYPE_LATEST, render
from ..models import AuditEntry, Batch, Job, Queue, Schedule, Worker
from ..models.queue_counts import with_counts
from .filters import JobFilter
from .pagination import JobCursorPagination
from .permissions import api_permissions
from .schema import ErrorSerializer, JobsAutoSchema
from .serializers import (
    BatchSerializer,
    CancelSerializer,
    EnqueueSerializer,
    JobSerializer,
    QueueSerializer,
    QueueSettingsSerializer,
    ScheduleSerializer,
    ScheduleWriteSerializer,
    WorkerSerializer,
)

CONFLICT = OpenApiResponse(
    ErrorSerializer, description="The state of the object does not allow this."
)


def documented(**kwargs: Any):
    """drf-spectacular's ``extend_schema`` for a view method, built on the API's
    AutoSchema whatever the project's DEFAULT_SCHEMA_CLASS is."""

    def decorate(method):
        method.schema = JobsAutoSchema
        return extend_schema(**kwargs)(method)

    return decorate


def audit(request: Request, action: str, target_type: str, targets: list, **details: Any):
    """Record a state change made through the API by ``request.user``."""
    AuditEntry.record(
        source=AuditEntry.API,
        action=action,
        target_type=target_type,
        targets=targets,
        user=request.user,
        using=jobs.db,
        **details,
    )


def conflict(message: str) -> Response:
    return Response({"detail": message}, status=status.HTTP_409_CONFLICT)


class ConfiguredPermissions:
    """Mixed into every view but health and metrics: API_PERMISSION_CLASSES, and the
    schema generator (so a project needs no DEFAULT_SCHEMA_CLASS setting)."""

    schema = JobsAutoSchema()

    def get_permissions(self):
        return api_permissions()


class JobViewSet(
    ConfiguredPermissions,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    viewsets.GenericViewSet,
):
    """Jobs: list (cursor-paginated, filtered), enqueue, read, cancel, retry, delete."""

    serializer_class = JobSerializer
    # Any segment reaches the view, whose 404 is JSON (DRF's default [^/.]+ left "1.5"
    # to Django's HTML 404).
    lookup_value_regex = "[^/]+"
    pagination_class = JobCursorPagination
    filter_backends = [DjangoFilterBackend]
    filterset_class = JobFilter

    def get_queryset(self):
        return _with_dependencies(jobs.objects.all())

    def get_object(self) -> Job:
        return get_object_or_404(self.get_queryset(), pk=_job_id(self.kwargs["pk"]))

    @documented(request=EnqueueSerializer, responses={201: JobSerializer})
    def create(self, request: Request) -> Response:
        """Enqueue a registered task by name."""
        body = EnqueueSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        options: dict[str, Any] = dict(body.validated_data)
        task = options.pop("task")
        if "owner" not in options:
            options["owner"] = request.user  # an anonymous user owns nothing
        try:
            job = jobs.enqueue(task, **options)
        except TaskNotFound:
            raise ValidationError({"task": [f"No registered task named {task!r}."]}) from None
        except (TypeError, ValueError) as exc:
            raise ValidationError({"detail": str(exc)}) from None
        audit(request, "enqueue", "job", [job.pk], task=job.task_name)
        return Response(JobSerializer(job).data, status=status.HTTP_201_CREATED)

    @documented(responses={204: None, 409: CONFLICT})
    def destroy(self, request: Request, pk: str) -> Response:
        """Delete a finished job (409 for an unfinished one: cancel it first)."""
        job = self.get_object()
        try:
            jobs.delete_job(job.pk)
        except ValueError as exc:
            return conflict(str(exc))
        audit(request, "delete", "job", [job.pk])
        return Response(status=status.HTTP_204_NO_CONTENT)

    @documented(request=CancelSerializer, responses={200: JobSerializer, 409: CONFLICT})
    @action(detail=True, methods=["post"])
    def cancel(self, request: Request, pk: str) -> Response:
        """Cancel: at once if no worker holds the job, else its worker stops it
        (``terminate``: kill it at the next heartbeat)."""
        job = self.get_object()
        body = CancelSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        terminate = body.validated_data["terminate"]
        if not jobs.cancel(job.pk, terminate=terminate):
            return conflict(f"Job {job.pk} is already {job.status}.")
        audit(request, "cancel", "job", [job.pk], terminate=terminate)
        job.refresh_from_db()
        return Response(JobSerializer(job).data)

    @documented(request=None, responses={200: JobSerializer, 409: CONFLICT})
    @action(detail=True, methods=["post"])
    def retry(self, request: Request, pk: str) -> Response:
        """A failed or cancelled job back to pending in its original queue."""
        job = self.get_object()
        try:
            job = jobs.retry(job.pk)
        except ValueError as exc:
            return conflict(str(exc))
        audit(request, "retry", "job", [job.pk])
        return Response(JobSerializer(job).data)


class BatchViewSet(ConfiguredPermissions, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """A batch or chain with its counts and progress."""

    serializer_class = BatchSerializer
    lookup_value_regex = "[^/]+"  # as for jobs: a JSON 404 for any id

    def get_queryset(self):
        return Batch.objects.using(jobs.db).all()

    def get_object(self) -> Batch:
        return get_object_or_404(self.get_queryset(), pk=_job_id(self.kwargs["pk"]))


class QueueViewSet(
    ConfiguredPermissions,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    viewsets.GenericViewSet,
):
    """Queues with their counts and oldest pending age; pause, resume, clear."""

    serializer_class = QueueSerializer
    lookup_field = "name"
    lookup_value_regex = "[^/]+"

    def get_queryset(self):
        return with_counts(Queue.objects.using(jobs.db).all()).order_by("name")

    def _reply(self, name: str) -> Response:
        queue = get_object_or_404(self.get_queryset(), name=name)
        return Response(QueueSerializer(queue).data)

    @documented(request=QueueSettingsSerializer, responses={200: QueueSerializer})
    def partial_update(self, request: Request, name: str) -> Response:
        """Change some of a queue's settings (description, concurrency_limit, rate_limit,
        max_pending_age); workers apply new limits within a second."""
        queue = get_object_or_404(Queue.objects.using(jobs.db), name=name)
        body = QueueSettingsSerializer(data=request.data, partial=True)
        body.is_valid(raise_exception=True)
        changed = queue.configure(**body.validated_data)
        if changed:
            values = {n: getattr(queue, n) for n in changed}
            if "max_pending_age" in values and values["max_pending_age"] is not None:
                values["max_pending_age"] = values["max_pending_age"].total_seconds()
            audit(request, "queue.change", "queue", [name], **values)
        return self._reply(name)

    @documented(request=None, responses={200: QueueSerializer})
    @action(detail=True, methods=["post"])
    def pause(self, request: Request, name: str) -> Response:
        get_object_or_404(Queue.objects.using(jobs.db), name=name)
        jobs.pause_queue(name)
        audit(request, "pause", "queue", [name])
        return self._reply(name)

    @documented(request=None, responses={200: QueueSerializer})
    @action(detail=True, methods=["post"])
    def resume(self, request: Request, name: str) -> Response:
        get_object_or_404(Queue.objects.using(jobs.db), name=name)
        jobs.resume_queue(name)
        audit(request, "resume", "queue", [name])
        return self._reply(name)

    @documented(request=None, responses={200: QueueSerializer})
    @action(detail=True, methods=["post"])
    def clear(self, request: Request, name: str) -> Response:
        """Cancel the queue's pending, waiting and retrying jobs."""
        get_object_or_404(Queue.objects.using(jobs.db), name=name)
        cancelled = jobs.clear_queue(name)
        audit(request, "clear", "queue", [name], jobs_cancelled=cancelled)
        return self._reply(name)


class WorkerViewSet(ConfiguredPermissions, mixins.ListModelMixin, viewsets.GenericViewSet):
    """Workers and their heartbeat state, newest first."""

    serializer_class = WorkerSerializer

    def get_queryset(self):
        return Worker.objects.using(jobs.db).order_by("-started_at")


class ScheduleViewSet(ConfiguredPermissions, viewsets.GenericViewSet):
    """Schedules: list, create, read, change, delete; run now, enable, disable."""

    serializer_class = ScheduleSerializer
    lookup_field = "name"
    lookup_value_regex = "[^/]+"

    def get_queryset(self):
        return Schedule.objects.using(jobs.db).order_by("name")

    def get_object(self) -> Schedule:
        return get_object_or_404(self.get_queryset(), name=self.kwargs["name"])

    def list(self, request: Request) -> Response:
        return Response(ScheduleSerializer(self.get_queryset(), many=True).data)

    def retrieve(self, request: Request, name: str) -> Response:
        return Response(ScheduleSerializer(self.get_object()).data)

    @documented(request=ScheduleWriteSerializer, responses={201: ScheduleSerializer, 409: CONFLICT})
    def create(self, request: Request) -> Response:
        """Create a schedule: ``cron``, ``interval`` (seconds) or ``run_at``, exactly one."""
        body = ScheduleWriteSerializer(data=request.data, context={"creating": True})
        body.is_valid(raise_exception=True)
        values = dict(body.validated_data)
        if self.get_queryset().filter(name=values["name"]).exists():
            return conflict(f"A schedule named {values['name']!r} exists: PATCH it instead.")
        schedule = _define(values)
        audit(request, "schedule.create", "schedule", [schedule.name])
        return Response(ScheduleSerializer(schedule).data, status=status.HTTP_201_CREATED)

    @documented(request=ScheduleWriteSerializer, responses={200: ScheduleSerializer})
    def partial_update(self, request: Request, name: str) -> Response:
        """Change some fields; the others keep their values."""
        current = self.get_object()
        body = ScheduleWriteSerializer(data=request.data, partial=True)
        body.is_valid(raise_exception=True)
        values = {**_definition_of(current), **body.validated_data, "name": current.name}
        timing = {"cron", "interval", "run_at"} & set(body.validated_data)
        if timing:
            for other in {"cron", "interval", "run_at"} - timing:
                values.pop(other, None)
        schedule = _define(values)
        audit(request, "schedule.change", "schedule", [name], fields=sorted(body.validated_data))
        return Response(ScheduleSerializer(schedule).data)

    @documented(responses={204: None})
    def destroy(self, request: Request, name: str) -> Response:
        self.get_object()
        jobs.unschedule(name)
        audit(request, "schedule.delete", "schedule", [name])
        return Response(status=status.HTTP_204_NO_CONTENT)

    @documented(request=None, responses={200: JobSerializer})
    @action(detail=True, methods=["post"])
    def run(self, request: Request, name: str) -> Response:
        """Enqueue the schedule's job now (its next run does not move)."""
        self.get_object()
        try:
            job = jobs.run_schedule_now(name)
        except Schedule.DoesNotExist:
            raise Http404(f"No schedule named {name!r}.") from None  # deleted meanwhile
        audit(request, "schedule.run", "schedule", [name], job=job.pk)
        return Response(JobSerializer(job).data)

    @documented(request=None, responses={200: ScheduleSerializer})
    @action(detail=True, methods=["post"])
    def enable(self, request: Request, name: str) -> Response:
        self.get_object()
        jobs.enable_schedule(name)
        audit(request, "schedule.enable", "schedule", [name])
        return Response(ScheduleSerializer(self.get_object()).data)

    @documented(request=None, responses={200: ScheduleSerializer})
    @action(detail=True, methods=["post"])
    def disable(self, request: Request, name: str) -> Response:
        self.get_object()
        jobs.disable_schedule(name)
        audit(request, "schedule.disable", "schedule", [name])
        return Response(ScheduleSerializer(self.get_object()).data)


def _definition_of(schedule: Schedule) -> dict[str, Any]:
    timings: dict[str, dict[str, Any]] = {
        "cron": {"cron": schedule.cron},
        "interval": {"interval": schedule.interval},
        "once": {"run_at": schedule.run_at},
    }
    timing = timings.get(schedule.kind, {})
    return {
        "task": schedule.task_name,
        **timing,
        "args": schedule.args,
        "kwargs": schedule.kwargs,
        "queue": schedule.queue or None,
        "priority": schedule.priority,
        "timezone": schedule.timezone,
        "misfire_policy": schedule.misfire_policy,
        "enabled": schedule.enabled,
    }


def _define(values: dict[str, Any]) -> Schedule:
    """Create or update through the manager's verb for the schedule's kind."""
    values = {k: v for k, v in values.items() if v is not None or k in ("priority", "queue")}
    task = values.pop("task")
    try:
        if "cron" in values:
            return jobs.schedule(task, **values)
        zone = values.pop("timezone", None)
        if "interval" in values:
            return jobs.schedule_interval(task, timezone=zone or "UTC", **values)
        values["at"] = values.pop("run_at")
        return jobs.schedule_once(task, **values)
    except TaskNotFound:
        raise ValidationError({"task": [f"No registered task named {task!r}."]}) from None
    except (TypeError, ValueError) as exc:
        raise ValidationError({"detail": str(exc)}) from None


class StatsView(ConfiguredPermissions, APIView):
    @documented(responses={200: OpenApiTypes.OBJECT})
    def get(self, request: Request) -> Response:
        """The statistics of SPEC 5.8 (``jobs.get_statistics()``)."""
        return Response(jobs.get_statistics())


class HealthView(APIView):
    """Anyone may ask; only staff see each check's details."""

    permission_classes = [AllowAny]
    schema = JobsAutoSchema()

    @documented(
        parameters=[
            OpenApiParameter(
                "check", str, many=True, enum=list(CHECKS), description="Run only these checks."
            )
        ],
        responses={200: OpenApiTypes.OBJECT, 503: OpenApiTypes.OBJECT},
    )
    def get(self, request: Request) -> Response:
        try:
            report = jobs.health(request.query_params.getlist("check") or None)
        except ValueError as exc:
            raise ValidationError({"check": [str(exc)]}) from None
        details = IsAdminUser().has_permission(request, self)
        code = status.HTTP_200_OK if report.ok else status.HTTP_503_SERVICE_UNAVAILABLE
        return Response(report.as_dict(details=details), status=code)


class MetricsView(APIView):
    """Prometheus' text exposition format (SPEC 10), for anyone."""

    permission_classes = [AllowAny]
    schema = JobsAutoSchema()

    @documented(responses={(200, "text/plain"): OpenApiTypes.STR})
    def get(self, request: Request) -> HttpResponse:
        return HttpResponse(render(), content_type=CONTENT_TYPE_LATEST)


def _with_dependencies(queryset):
    """Each job's ``depends_on`` ids in one query per page."""
    return queryset.prefetch_related(Prefetch("depends_on", queryset=Job.objects.only("pk")))


def _job_id(value: str) -> int:
    """A job or batch id from the URL (``job_pk``'s rules); 404 for anything else."""
    try:
        return job_pk(value)
    except Job.DoesNotExist:
        raise Http404("No such id.") from None
