from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

urlpatterns = [
    path("admin/", admin.site.urls),
    # The REST API (django-jobs[api]): browsable at /api/jobs/ once logged in as staff;
    # its OpenAPI schema at /api/jobs/schema/, health and metrics for anyone.
    path("api/jobs/", include("django_jobs.api.urls")),
    path("", RedirectView.as_view(url="/admin/", permanent=False)),
]
