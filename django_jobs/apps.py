from django.apps import AppConfig


class DjangoJobsConfig(AppConfig):
    name = "django_jobs"
    label = "django_jobs"
    verbose_name = "Jobs"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import checks  # noqa: F401 - registers the system checks
        from django.db.models.signals import post_migrate

        from .scheduler import sync_code_schedules_after_migrate

        post_migrate.connect(
            sync_code_schedules_after_migrate, sender=self,
            dispatch_uid="django_jobs.sync_code_schedules",
        )
