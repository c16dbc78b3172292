"""``{% load django_jobs %}{% job_progress job %}``: the end-user progress widget (SPEC
6.1), rendered server-side for the job's owner and staff, nothing for anyone else."""

import re

import pytest
from django.contrib.auth.models import AnonymousUser, User
from django.core.exceptions import ImproperlyConfigured
from django.template import Context, RequestContext, Template
from django.test import RequestFactory, override_settings
from django.urls import reverse

from django_jobs import JobStatus, jobs
from django_jobs.models import Job
from tests.testapp.tasks import add

pytestmark = pytest.mark.django_db


@pytest.fixture
def alice():
    return User.objects.create_user("alice", password="x")


@pytest.fixture
def job(alice):
    job = jobs.enqueue(add, args=[1, 2], owner=alice)
    Job.objects.filter(pk=job.pk).update(progress=0.4, progress_message="part 2/5")
    return job


def render(source, user, **context):
    request = RequestFactory().get("/reports/?page=2")
    request.user = user
    template = Template("{% load django_jobs %}" + source)
    return template.render(RequestContext(request, context)).strip(), request


def test_the_owner_sees_the_bar(alice, job):
    html, _ = render("{% job_progress job %}", alice, job=job)
    assert 'class="dj-job-progress dj-job-progress--pending"' in html
    assert f'data-job-progress-url="{reverse("django_jobs:job-progress", args=[job.pk])}"' in html
    assert re.search(r'<progress class="dj-job-progress__bar" max="100" value="40"', html)
    assert 'role="status" aria-live="polite"' in html
    assert "part 2/5" in html and ">40%<" in html
    assert 'data-job-finished="false"' in html
    # The page's first bar brings the stylesheet and the script.
    assert "django_jobs/job_progress.css" in html and "django_jobs/job_progress.js" in html
    # No cancel button unless asked for.
    assert "dj-job-progress__cancel" not in html and "csrfmiddlewaretoken" not in html


def test_a_job_id_works_too(alice, job):
    by_int, _ = render("{% job_progress pk %}", alice, pk=job.pk)
    by_text, _ = render("{% job_progress pk %}", alice, pk=str(job.pk))
    assert f'data-job-id="{job.pk}"' in by_int and f'data-job-id="{job.pk}"' in by_text


def test_the_state_shown_is_the_databases(alice, job):
    Job.objects.filter(pk=job.pk).update(status=JobStatus.COMPLETED, progress=1.0)
    html, _ = render("{% job_progress job %}", alice, job=job)  # a stale instance
    assert "dj-job-progress--completed dj-job-progress--finished" in html
    assert 'data-job-finished="true"' in html and ">Completed<" in html


def test_cancel_adds_a_button_that_posts_with_the_token(alice, job):
    html, request = render("{% job_progress job cancel=True %}", alice, job=job)
    action = reverse("django_jobs:job-cancel", args=[job.pk])
    assert f'<form class="dj-job-progress__cancel-form" method="post" action="{action}">' in html
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html).group(1)
    assert len(token) == 64  # a masked token, as {% csrf_token %} renders it
    assert request.META["CSRF_COOKIE_NEEDS_UPDATE"]  # the response sets the cookie
    assert 'name="next" value="/reports/?page=2"' in html
    assert '<button type="submit" class="dj-job-progress__cancel">Cancel</button>' in html


def test_no_cancel_button_for_a_finished_job(alice, job):
    Job.objects.filter(pk=job.pk).update(status=JobStatus.CANCELLED)
    html, _ = render("{% job_progress job cancel=True %}", alice, job=job)
    assert re.search(r'<form class="dj-job-progress__cancel-form"[^>]* hidden>', html)


def test_staff_sees_every_bar(job):
    staff = User.objects.create_user("staff", is_staff=True)
    html, _ = render("{% job_progress job cancel=True %}", staff, job=job)
    assert "dj-job-progress__cancel" in html


def test_anyone_else_sees_nothing(job):
    bob = User.objects.create_user("bob")
    for user in (bob, AnonymousUser()):
        html, _ = render("{% job_progress job cancel=True %}", user, job=job)
        assert html == ""
    html, _ = render("{% job_progress pk %}", bob, pk="nope")
    assert html == ""


def test_nothing_without_a_request(alice, job):
    assert (
        Template("{% load django_jobs %}{% job_progress job %}").render(Context({"job": job})) == ""
    )


def test_several_bars_on_one_page(alice, job):
    other = jobs.enqueue(add, args=[2, 3], owner=alice)
    html, _ = render(
        '{% job_progress job label="Report" %}{% job_progress other %}{% job_progress job %}',
        alice, job=job, other=other,
    )  # fmt: skip
    assert html.count('<div class="dj-job-progress ') == 3
    ids = re.findall(r' id="(dj-job-progress-[^"]+)"', html)
    assert len(ids) == len(set(ids)), ids  # the same job twice: still unique ids
    assert html.count("job_progress.js") == html.count("job_progress.css") == 1
    # A label names the bar; without one, an aria-label does.
    assert f'aria-labelledby="dj-job-progress-{job.pk}-1-label"' in html
    assert html.count('aria-label="Progress"') == 2


class WithoutJobsUrls:
    """A URLconf (any object with urlpatterns) that forgot django_jobs.urls."""

    urlpatterns: list = []


def test_the_urls_must_be_included(alice, job):
    with (
        override_settings(ROOT_URLCONF=WithoutJobsUrls),
        pytest.raises(ImproperlyConfigured, match=r"django_jobs\.urls"),
    ):
        render("{% job_progress job %}", alice, job=job)
