from demo.views import home, job_webhook, reports
from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    # The REST API (django-jobs[api]): browsable at /api/jobs/ once logged in as staff;
    # its OpenAPI schema at /api/jobs/schema/, health and metrics for anyone.
    path("api/jobs/", include("django_jobs.api.urls")),
    # Receives the workers' signed notifications (DJANGO_JOBS["NOTIFICATIONS"]).
    path("hooks/jobs/", job_webhook, name="job-webhook"),
    # The end-user progress widget's JSON views ({% job_progress %}, docs/progress-for-users.md).
    path("jobs/", include("django_jobs.urls")),
    # A user's own page: start a report and watch its progress bar.
    path("reports/", reports, name="reports"),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(next_page="home"), name="logout"),
    path("", home, name="home"),
]
