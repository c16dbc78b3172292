from django.contrib import admin
from django.urls import include, path

from tests.testapp.views import job_page

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/jobs/", include("django_jobs.api.urls")),
    path("jobs/", include("django_jobs.urls")),
    path("testapp/jobs/<str:ids>/", job_page, name="testapp-job-page"),
]
