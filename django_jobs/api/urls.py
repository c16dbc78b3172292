"""``path("api/jobs/", include("django_jobs.api.urls"))``: the paths of SPEC 9.2."""

from __future__ import annotations

from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView
from rest_framework.routers import DefaultRouter

from .permissions import api_permissions
from .views import (
    BatchViewSet,
    HealthView,
    JobViewSet,
    MetricsView,
    QueueViewSet,
    ScheduleViewSet,
    StatsView,
    WorkerViewSet,
)

app_name = "django_jobs_api"


class Root(DefaultRouter.APIRootView):
    """The API's browsable index (not in the schema)."""

    schema = None


router = DefaultRouter()
router.APIRootView = Root
router.register("jobs", JobViewSet, basename="job")
router.register("batches", BatchViewSet, basename="batch")
router.register("queues", QueueViewSet, basename="queue")
router.register("workers", WorkerViewSet, basename="worker")
router.register("schedules", ScheduleViewSet, basename="schedule")


class SchemaView(SpectacularAPIView):
    """The OpenAPI 3 schema of this API (drf-spectacular), its paths relative to where
    the project mounted it (``servers``)."""

    schema = None  # the schema does not describe itself
    custom_settings = {
        "TITLE": "django_jobs API",
        "DESCRIPTION": "Background jobs from the database: jobs, batches, queues, "
        "workers, statistics, health and metrics.",
        "VERSION": "1",
    }

    def get_permissions(self):
        return api_permissions()

    def get(self, request, *args, **kwargs):
        response = super().get(request, *args, **kwargs)
        mount = request.path[: -len("schema/")] if request.path.endswith("schema/") else "/"
        response.data["servers"] = [{"url": mount.rstrip("/") or "/"}]
        return response


urlpatterns = [
    path("stats/", StatsView.as_view(), name="stats"),
    path("health/", HealthView.as_view(), name="health"),
    path("metrics/", MetricsView.as_view(), name="metrics"),
    path("schema/", SchemaView.as_view(urlconf="django_jobs.api.urls"), name="schema"),
    path("", include(router.urls)),
]
