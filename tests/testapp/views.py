"""A page of a project showing a job's progress to its owner: what the browser test of
the end-user widget opens."""

from django.http import HttpResponse
from django.template import RequestContext, Template
from django.views.decorators.csrf import ensure_csrf_cookie

PAGE = Template(
    """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Your report</title>
<style>body { font-family: system-ui, sans-serif; margin: 2rem; color: #212529; }</style>
</head><body>
{% load django_jobs %}
<h1>Your reports</h1>
{% for job, label in jobs %}{% job_progress job cancel=cancel label=label %}{% endfor %}
</body></html>"""
)


@ensure_csrf_cookie  # the test settings have no CsrfViewMiddleware to set the cookie
def job_page(request, ids):
    """``/testapp/jobs/1,2/``: the bars of those jobs; ``?cancel=1`` with cancel buttons,
    ``?label=A&label=B`` labelled."""
    pks = [pk for pk in ids.split(",") if pk]
    labels = request.GET.getlist("label")
    context = {
        "jobs": [(pk, labels[i] if i < len(labels) else "") for i, pk in enumerate(pks)],
        "cancel": bool(request.GET.get("cancel")),
    }
    return HttpResponse(PAGE.render(RequestContext(request, context)))
