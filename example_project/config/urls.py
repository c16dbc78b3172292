from demo.views import job_webhook
from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

urlpatterns = [
    path("admin/", admin.site.urls),
    # The REST API (django-jobs[api]): browsable at /api/jobs/ once logged in as staff;
    # its OpenAPI schema at /api/jobs/schema/, health and metrics for anyone.
    path("api/jobs/", include("django_jobs.api.urls")),
    # Receives the workers' signed notifications (DJANGO_JOBS["NOTIFICATIONS"]).
    path("hooks/jobs/", job_webhook, name="job-webhook"),
    path("", RedirectView.as_view(url="/admin/", permanent=False)),
]
