"""``path("jobs/", include("django_jobs.urls"))``: the JSON views of the end-user progress
widget (SPEC 6.1), ``django_jobs:job-progress`` and ``django_jobs:job-cancel``. Plain
Django: they work without DRF."""

from django.urls import path

from . import views

app_name = "django_jobs"

urlpatterns = [
    # <str:...>, not <int:...>: a malformed id reaches the view and gets its 404, the one
    # a job that is not the caller's gets, not the project's HTML 404 page.
    path("<str:job_id>/progress/", views.job_progress, name="job-progress"),
    path("<str:job_id>/cancel/", views.job_cancel, name="job-cancel"),
]
