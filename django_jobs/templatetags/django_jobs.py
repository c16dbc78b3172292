"""``{% load django_jobs %}``: the end-user progress widget (SPEC 6.1).

``{% job_progress job %}`` (a ``Job`` or a job id; ``cancel=True`` adds a cancel button,
``label="..."`` a visible label) renders the job's current state, which
``static/django_jobs/job_progress.js`` then keeps up to date through the ``job-progress``
view until the job finishes. Only staff and the job's owner see it; for anyone else, and
without ``request`` in the context, the tag renders nothing.
"""

from __future__ import annotations

from typing import Any

from django import template
from django.core.exceptions import ImproperlyConfigured
from django.middleware.csrf import get_token
from django.template.loader import render_to_string
from django.urls import NoReverseMatch, reverse
from django.utils.safestring import SafeString

from ..views import followed_job, job_state

register = template.Library()

# Bars rendered so far in this request: each gets its own element ids, and only the
# first brings the stylesheet and the script.
COUNTER = "_django_jobs_progress_bars"


@register.simple_tag(takes_context=True)
def job_progress(context: template.Context, job: Any, cancel: bool = False, label: str = "") -> str:
    """A self-updating progress bar of ``job`` for its owner (and staff); "" for anyone
    else. One query per bar: the state shown is the database's, not the instance's."""
    request = context.get("request")
    if request is None:
        return ""
    found = followed_job(request, job)
    if found is None:
        return ""
    try:
        progress_url = reverse("django_jobs:job-progress", args=[found.pk])
        cancel_url = reverse("django_jobs:job-cancel", args=[found.pk]) if cancel else ""
    except NoReverseMatch as exc:
        raise ImproperlyConfigured(
            '{% job_progress %} needs path("jobs/", include("django_jobs.urls")) in the '
            "project's URLconf."
        ) from exc
    number = getattr(request, COUNTER, 0) + 1
    setattr(request, COUNTER, number)
    rendered: SafeString = render_to_string(
        "django_jobs/job_progress.html",
        {
            "state": job_state(found),
            "dom_id": f"dj-job-progress-{found.pk}-{number}",
            "label": label,
            "progress_url": progress_url,
            "cancel_url": cancel_url,
            # In the form, for the script and for a browser without it: works with
            # CSRF_USE_SESSIONS too, where no cookie holds the token.
            "csrf_token": get_token(request) if cancel else "",
            "next": request.get_full_path() if cancel else "",
            "assets": number == 1,
        },
    )
    return rendered
