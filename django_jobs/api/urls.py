"""``path("api/jobs/", include("django_jobs.api.urls"))``: the paths of SPEC 9.2."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import drf_spectacular
from django.apps import apps
from django.http import HttpResponse
from django.template import TemplateDoesNotExist
from django.template.backends.django import DjangoTemplates
from django.templatetags.static import static
from django.urls import include, path, reverse
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.renderers import TemplateHTMLRenderer
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


SIDECAR_MISSING = (
    "The browsable page of the API's schema needs drf-spectacular-sidecar (the Swagger UI "
    "files, served by this project instead of a CDN): pip install drf-spectacular-sidecar "
    '(in django-jobs[api]) and add "drf_spectacular_sidecar" to INSTALLED_APPS. '
    "The schema itself is at {schema_url}"
)


@cache
def _spectacular_templates() -> DjangoTemplates:
    """drf-spectacular's own templates, for a project that has not put drf_spectacular in
    INSTALLED_APPS (the API does not need it there)."""
    folder = Path(drf_spectacular.__file__).parent / "templates"
    return DjangoTemplates(
        {"NAME": "django_jobs_api", "DIRS": [folder], "APP_DIRS": False, "OPTIONS": {}}
    )


class SwaggerTemplateRenderer(TemplateHTMLRenderer):
    """The project's templates first (it may override drf-spectacular's), then
    drf-spectacular's."""

    def resolve_template(self, template_names):
        try:
            return super().resolve_template(template_names)
        except TemplateDoesNotExist:
            return _spectacular_templates().get_template(template_names[0])


class SchemaDocsView(SpectacularSwaggerView):
    """Swagger UI over ``schema/``, from drf-spectacular-sidecar's static files (no CDN,
    whatever ``SPECTACULAR_SETTINGS`` says), for the users who may read the schema."""

    schema = None  # a page, not an operation of the API
    renderer_classes = [SwaggerTemplateRenderer]
    title = SchemaView.custom_settings["TITLE"]

    def get_permissions(self):
        return api_permissions()

    def get(self, request, *args, **kwargs):
        # The schema of the same mount: the namespace this page was reached through.
        namespace = request.resolver_match.namespace if request.resolver_match else app_name
        self.url = reverse(f"{namespace}:schema")
        if not apps.is_installed("drf_spectacular_sidecar"):
            # Without the app its files 404 (a blank page) or, with a manifest storage,
            # static() raises; say what is missing instead (system check django_jobs.W005).
            message = SIDECAR_MISSING.format(schema_url=self.url)
            return HttpResponse(message, status=501, content_type="text/plain; charset=utf-8")
        return super().get(request, *args, **kwargs)

    @staticmethod
    def _swagger_ui_resource(filename: str) -> str:
        return static(f"drf_spectacular_sidecar/swagger-ui-dist/{filename}")

    @staticmethod
    def _swagger_ui_favicon() -> str:
        return static("drf_spectacular_sidecar/swagger-ui-dist/favicon-32x32.png")


urlpatterns = [
    path("stats/", StatsView.as_view(), name="stats"),
    path("health/", HealthView.as_view(), name="health"),
    path("metrics/", MetricsView.as_view(), name="metrics"),
    path("schema/", SchemaView.as_view(urlconf="django_jobs.api.urls"), name="schema"),
    path("schema/docs/", SchemaDocsView.as_view(), name="schema-docs"),
    path("", include(router.urls)),
]
