"""The REST API (SPEC 9.2), with Django REST framework: ``pip install 'django-jobs[api]'``
and ``path("api/jobs/", include("django_jobs.api.urls"))``.

Every action calls the manager or QuerySet verb the admin and the CLI call; errors are
400 (bad input, with a message naming the field), 404 (unknown id or name) or 409 (the
object's state does not allow it). The only package of django_jobs that imports DRF.
"""
