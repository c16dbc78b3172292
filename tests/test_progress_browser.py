"""The end-user progress widget (SPEC 6.1) in a real browser (Chromium through
Playwright): a job's owner watches its bar move and end without a reload and cancels
a job; another user gets nothing. Skipped, saying so, where Chromium or Playwright is
not installed.

``JOBS_DOCS_SCREENSHOTS=1`` writes the screenshot to ``docs/images/`` (the one in
``docs/progress-for-users.md``); otherwise it goes to the test's temporary directory.
"""

import os
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlencode

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from django_jobs import JobStatus, jobs
from django_jobs.models import Job
from tests.conftest import wait_until
from tests.helpers import BROWSER_TEST_MARKS, CHROMIUM
from tests.testapp import tasks

playwright = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
pytestmark = BROWSER_TEST_MARKS
DOCS = Path(__file__).resolve().parent.parent / "docs" / "images"


def session_cookie(user, live_server):
    """The session cookie of ``user`` logged in, for a browser context (made before the
    Playwright block: no ORM inside it)."""
    client = Client()
    client.force_login(user)
    value = client.cookies[settings.SESSION_COOKIE_NAME].value
    return {"name": settings.SESSION_COOKIE_NAME, "value": value, "url": live_server.url}


def browser_for(p):
    return p.chromium.launch(
        executable_path=CHROMIUM,
        headless=True,
        args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
    )


def page_as(browser, cookie, width=680, height=300):
    context = browser.new_context(viewport={"width": width, "height": height})
    if cookie is not None:
        context.add_cookies([cookie])
    return context.new_page()


def page_url(live_server, pks, **query):
    ids = ",".join(str(pk) for pk in pks)
    path = reverse("testapp-job-page", args=[ids])
    return f"{live_server.url}{path}?{urlencode(query, doseq=True)}"


def job_in(state, owner, message, progress, **changes):
    job = jobs.enqueue(tasks.add, args=[1, 2], owner=owner, queue="nobody")
    Job.objects.filter(pk=job.pk).update(
        status=state, progress=progress, progress_message=message, **changes
    )
    return job.pk


def test_bars_in_every_state(live_server, tmp_path):
    """What the server renders is right before any script runs; the script backs off while
    a job does not move, never polls a finished one and stops at a 404; someone else sees
    no bar and gets 404 from the JSON view."""
    alice = User.objects.create_user("alice", password="x")
    bob = User.objects.create_user("bob", password="x")
    now = timezone.now()
    running = job_in(JobStatus.RUNNING, alice, "Sheet 5 of 8: EMEA", 0.62, attempts=1,
                     started_at=now - timedelta(seconds=40), worker_id="w", lease="l")  # fmt: skip
    done = job_in(JobStatus.COMPLETED, alice, "12,480 rows written", 1.0, finished_at=now)
    failed = job_in(JobStatus.FAILED, alice, "Photo 70 of 200", 0.35, finished_at=now)
    pending = job_in(JobStatus.PENDING, alice, "", 0.0)
    gone = job_in(JobStatus.PENDING, alice, "", 0.0)
    labels = ["Quarterly sales report", "Customer export", "Photo import", "Invoice batch"]
    url = page_url(live_server, [running, done, failed, pending], cancel=1, label=labels)
    as_alice, as_bob = session_cookie(alice, live_server), session_cookie(bob, live_server)
    out = DOCS if os.environ.get("JOBS_DOCS_SCREENSHOTS") else tmp_path
    out.mkdir(parents=True, exist_ok=True)
    progress_path = reverse("django_jobs:job-progress", args=[running])

    with playwright.sync_playwright() as p:
        browser = browser_for(p)
        page = page_as(browser, as_alice)
        polled = []
        page.on("request", lambda r: polled.append(r.url) if "/progress/" in r.url else None)
        page.goto(url)
        bars = page.locator(".dj-job-progress")
        assert bars.count() == 4
        first = bars.nth(0)
        assert first.locator("progress").get_attribute("value") == "62"
        assert first.locator(".dj-job-progress__percent").inner_text() == "62%"
        assert first.locator(".dj-job-progress__message").inner_text() == "Sheet 5 of 8: EMEA"
        assert "seconds left" in first.locator(".dj-job-progress__eta").inner_text()
        assert first.locator(".dj-job-progress__cancel").is_visible()
        assert bars.nth(1).locator(".dj-job-progress__outcome").inner_text() == "Completed"
        assert bars.nth(2).locator(".dj-job-progress__outcome").inner_text() == "Failed"
        assert bars.nth(3).locator(".dj-job-progress__outcome").inner_text() == "Waiting to start"
        for finished in (1, 2):
            assert not bars.nth(finished).locator(".dj-job-progress__cancel").is_visible()
        # Drawn by the widget's own stylesheet: a red bar for a failed job.
        colour = (
            bars.nth(2)
            .locator("progress")
            .evaluate(
                "e => getComputedStyle(e).getPropertyValue('--dj-job-progress-accent').trim()"
            )
        )
        assert colour == "#dc3545"
        page.wait_for_timeout(300)  # the progress bars' transition
        page.screenshot(path=str(out / "job-progress.png"), full_page=True)

        # Nothing moves: the two unfinished bars poll after 1 s, 1.6 s, 2.56 s...
        page.wait_for_timeout(5600)
        mine = [u for u in polled if u.endswith(progress_path)]
        assert 2 <= len(mine) <= 4, mine
        assert all(f"/jobs/{pk}/" not in u for u in polled for pk in (done, failed))

        # A job gone (deleted, or the user logged out): the bar stops at the first 404.
        page.goto(page_url(live_server, [gone], cancel=1))
        page.route(
            f"**/jobs/{gone}/progress/",
            lambda route: route.fulfill(
                status=404, content_type="application/json", body='{"detail": "Not found."}'
            ),
        )
        polled.clear()
        page.wait_for_selector(".dj-job-progress--gone")
        assert not page.locator(".dj-job-progress__cancel").is_visible()
        page.wait_for_timeout(3000)
        assert len(polled) == 1

        # Bob sees no bar of Alice's, and her job's JSON is a 404.
        other = page_as(browser, as_bob)
        other.goto(url)
        assert other.locator(".dj-job-progress").count() == 0
        response = other.goto(f"{live_server.url}{progress_path}")
        assert response.status == 404
        assert response.json() == {"detail": "Not found."}
        browser.close()


def test_the_owner_watches_a_job_finish_and_cancels_another(live_server, workers):
    alice = User.objects.create_user("alice", password="x")
    short = jobs.enqueue(tasks.progress_steps, args=["short"], kwargs={"steps": 16, "pause": 0.5},
                         owner=alice, queue="live")  # fmt: skip
    long = jobs.enqueue(tasks.progress_steps, args=["long"], kwargs={"steps": 400, "pause": 0.5},
                        owner=alice, queue="live")  # fmt: skip
    workers.start("--concurrency", "2", "--queues", "live")
    wait_until(
        lambda: Job.objects.filter(pk__in=[short.pk, long.pk], status=JobStatus.RUNNING,
                                   progress__gt=0).count() == 2,
        message="both jobs to run",
    )  # fmt: skip
    as_alice = session_cookie(alice, live_server)

    # No ORM inside the block: Playwright's sync API runs an event loop in this thread.
    with playwright.sync_playwright() as p:
        browser = browser_for(p)
        page = page_as(browser, as_alice)

        # The short job's bar moves and ends "Completed" without a reload (~8 s).
        page.goto(page_url(live_server, [short.pk], label="Report"))
        page.evaluate("window.notReloaded = true")
        bar = page.locator(".dj-job-progress progress")
        first = int(bar.get_attribute("value"))
        assert first < 100
        page.wait_for_function(
            "v => Number(document.querySelector('.dj-job-progress progress').value) > v",
            arg=first,
            timeout=10_000,
        )
        page.wait_for_selector(".dj-job-progress--completed", timeout=20_000)
        assert page.locator(".dj-job-progress__outcome").inner_text() == "Completed"
        assert page.locator(".dj-job-progress__percent").inner_text() == "100%"
        assert page.locator(".dj-job-progress__message").inner_text() == "step 16/16"
        assert page.locator(".dj-job-progress__eta").inner_text() == ""
        assert page.evaluate("window.notReloaded") is True

        # The long one is cancelled from its page: the button is disabled while its POST
        # is in flight, then the job stops at its next progress() call.
        page.goto(page_url(live_server, [long.pk], cancel=1))
        held = []
        page.route("**/cancel/", lambda route: held.append(route))
        page.click(".dj-job-progress__cancel")
        page.wait_for_function("document.querySelector('.dj-job-progress__cancel').disabled")
        assert page.locator(".dj-job-progress__cancel").get_attribute("aria-busy") == "true"
        assert len(held) == 1
        assert held[0].request.method == "POST"
        token = held[0].request.headers["x-csrftoken"]
        assert token and held[0].request.post_data == f"csrfmiddlewaretoken={token}"
        held[0].continue_()
        page.wait_for_selector(".dj-job-progress--cancelled", timeout=15_000)
        assert page.locator(".dj-job-progress__outcome").inner_text() == "Cancelled"
        assert not page.locator(".dj-job-progress__cancel").is_visible()
        browser.close()

    assert Job.objects.get(pk=short.pk).status == JobStatus.COMPLETED
    assert Job.objects.get(pk=long.pk).status == JobStatus.CANCELLED
