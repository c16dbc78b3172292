from django.apps import AppConfig


class DjangoJobsConfig(AppConfig):
    name = "django_jobs"
    label = "django_jobs"
    verbose_name = "Jobs"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Imported here, once the models are loaded: each of these imports them.
        from django.db.models.signals import post_migrate, pre_delete

        from . import checks  # noqa: F401 - registers the system checks
        from .notifications import sending  # noqa: F401 - registers the delivery task
        from .notifications.deliveries import on_job_events, on_system_event
        from .signal_handlers import (
            enqueue_on_complete,
            install_enqueue_function_after_migrate,
            job_pre_delete,
            sync_code_schedules_after_migrate,
        )
        from .signals import (
            batch_finished,
            job_events_recorded,
            system_event_recorded,
            task_registered,
        )
        from .triggers import connect_declared, connect_registered_task

        post_migrate.connect(
            sync_code_schedules_after_migrate,
            sender=self,
            dispatch_uid="django_jobs.sync_code_schedules",
        )
        post_migrate.connect(
            install_enqueue_function_after_migrate,
            sender=self,
            dispatch_uid="django_jobs.install_enqueue_function",
        )
        pre_delete.connect(
            job_pre_delete, sender=self.get_model("Job"), dispatch_uid="django_jobs.job_pre_delete"
        )
        batch_finished.connect(
            enqueue_on_complete,
            sender=self.get_model("Batch"),
            dispatch_uid="django_jobs.enqueue_on_complete",
        )
        job_events_recorded.connect(on_job_events, dispatch_uid="django_jobs.notify_job_events")
        system_event_recorded.connect(
            on_system_event, dispatch_uid="django_jobs.notify_system_event"
        )
        # Last: discovery imports the apps' task modules, and @job(on=...) tasks must
        # listen in every process (web, shell, worker), not only where they are imported.
        task_registered.connect(
            connect_registered_task, dispatch_uid="django_jobs.connect_task_triggers"
        )
        connect_declared()
