"""The admin in a real browser (Chromium through Playwright): the stylesheet is loaded,
statuses are coloured and progress bars drawn. Skipped, saying so, where Chromium or
Playwright is not installed.

``JOBS_DOCS_SCREENSHOTS=1`` writes the screenshots to ``docs/screenshots/`` (how the ones
in ``docs/admin.md`` and the README are made); otherwise they go to the test's temporary
directory.
"""

import os
from datetime import timedelta
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from django_jobs import JobStatus, jobs
from django_jobs.models import Job
from django_jobs.models.rollup import rollups
from django_jobs.testing import run_jobs
from tests.conftest import wait_until
from tests.helpers import BROWSER_TEST_MARKS, CHROMIUM
from tests.testapp import tasks

playwright = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
pytestmark = BROWSER_TEST_MARKS
DOCS = Path(__file__).resolve().parent.parent / "docs" / "screenshots"


def make_jobs() -> int:
    now = timezone.now()
    for i in range(4):
        jobs.enqueue(tasks.add, args=[i, i], queue="reports", priority=["high", "low"][i % 2])
    failed = None
    for status, progress in [
        (JobStatus.RUNNING, 0.35),
        (JobStatus.RUNNING, 0.8),
        (JobStatus.COMPLETED, 1.0),
        (JobStatus.FAILED, 0.4),
        (JobStatus.CANCELLED, 0.0),
        (JobStatus.RETRYING, 0.1),
    ]:
        job = jobs.enqueue(tasks.flaky_until, args=["x", 3], queue="default")
        changes = {"status": status, "progress": progress, "attempts": 1,
                   "progress_message": f"step {round(progress * 10)}/10",
                   "started_at": now - timedelta(seconds=40)}  # fmt: skip
        if status in (JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED):
            changes["finished_at"] = now
        if status == JobStatus.FAILED:
            error = {"type": "ConnectionError", "message": "upstream said 503",
                     "traceback": "Traceback (most recent call last):\n  ...\n"
                     "ConnectionError: upstream said 503"}  # fmt: skip
            changes.update(error=error, errors=[error])
            failed = job.pk
        Job.objects.filter(pk=job.pk).update(**changes)
    return failed


def browser_page(p, live_server):
    """A logged-in admin page in headless Chromium, 1366 px wide."""
    browser = p.chromium.launch(
        executable_path=CHROMIUM,
        headless=True,
        args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
    )
    page = browser.new_page(viewport={"width": 1366, "height": 800})
    page.goto(f"{live_server.url}/admin/login/")
    page.fill("#id_username", "admin")
    page.fill("#id_password", "admin")
    page.click("input[type=submit]")
    return browser, page


def screenshots(tmp_path):
    out = DOCS if os.environ.get("JOBS_DOCS_SCREENSHOTS") else tmp_path
    out.mkdir(parents=True, exist_ok=True)
    return out


def test_job_pages_are_styled_in_a_real_browser(live_server, tmp_path):
    User.objects.create_superuser("admin", "a@example.com", "admin")
    failed = make_jobs()
    out = screenshots(tmp_path)
    with playwright.sync_playwright() as p:
        browser, page = browser_page(p, live_server)

        page.goto(f"{live_server.url}/admin/django_jobs/job/")
        badge = page.locator(".dj-status--failed").first
        # Drawn by static/django_jobs/admin.css: a red badge with white text.
        assert badge.evaluate("e => getComputedStyle(e).backgroundColor") == "rgb(220, 53, 69)"
        assert badge.evaluate("e => getComputedStyle(e).color") == "rgb(255, 255, 255)"
        bars = page.locator(".dj-progress progress")
        assert bars.count() == 10
        assert (
            page.locator(".dj-progress[title='step 8/10'] progress").get_attribute("value") == "80"
        )
        page.screenshot(path=str(out / "admin-jobs.png"), full_page=True)

        page.goto(f"{live_server.url}/admin/django_jobs/job/{failed}/change/")
        page.locator(".dj-failure summary").first.click()  # the traceback is folded
        assert "ConnectionError: upstream said 503" in page.locator(".dj-traceback").inner_text()
        page.screenshot(path=str(out / "admin-job-failed.png"), full_page=True)

        # An action through the admin lands in the audit log.
        page.goto(f"{live_server.url}/admin/django_jobs/job/")
        pending = page.locator("#result_list tbody tr", has=page.locator(".dj-status--pending"))
        pending.first.locator("input.action-select").check()
        page.select_option("select[name=action]", "cancel_jobs")
        page.click("button[name=index]")
        assert "1 job cancelled" in page.locator(".messagelist").inner_text()

        page.goto(f"{live_server.url}/admin/django_jobs/auditentry/")
        assert page.locator("#result_list tbody tr").count() == 1
        assert "cancel" in page.locator("#result_list").inner_text()
        page.screenshot(path=str(out / "admin-audit-log.png"), full_page=True)
        browser.close()


def test_the_console_with_a_real_worker(live_server, tmp_path, workers):
    """The dashboard draws its charts and refreshes itself; the job list filters; a
    running job's bar moves on its page without a reload; failures are grouped."""
    User.objects.create_superuser("admin", "a@example.com", "admin")
    out = screenshots(tmp_path)
    for i in range(6):
        jobs.enqueue(tasks.add, args=[i, i], queue="mail")
    for label in ("a", "b"):
        jobs.enqueue(tasks.permanent_failure, args=[label], queue="imports")
    run_jobs(queues=["mail", "imports"])
    rollups.flush()
    failed = Job.objects.failed().first()
    slow = jobs.enqueue(tasks.progress_steps, args=["slow"], kwargs={"steps": 20, "pause": 0.5})
    workers.start("--concurrency", "1", "--queues", "default")
    wait_until(
        lambda: Job.objects.filter(pk=slow.pk, status=JobStatus.RUNNING, progress__gt=0).exists(),
        message="the slow job to run",
    )
    # No ORM inside the block: Playwright's sync API runs an event loop in this thread.
    with playwright.sync_playwright() as p:
        browser, page = browser_page(p, live_server)

        # A running job's bar moves on its detail page without a reload (it runs ~10 s).
        page.goto(f"{live_server.url}/admin/django_jobs/job/{slow.pk}/change/")
        bar = page.locator(f"[data-job-progress='{slow.pk}'] progress")
        page.evaluate("window.notReloaded = true")
        first = int(bar.get_attribute("value"))
        page.wait_for_function(
            f"""v => {{
                const bar = document.querySelector("[data-job-progress='{slow.pk}'] progress");
                return bar && Number(bar.value) > v;
            }}""",
            arg=first,
            timeout=15_000,
        )
        assert page.evaluate("window.notReloaded") is True

        # The dashboard: two charts with bars, counts, and it refreshes by itself.
        page.goto(f"{live_server.url}/admin/django_jobs/dashboard/")
        assert page.locator("figure.dj-chart svg").count() == 2
        assert page.locator("rect.dj-bar--completed").count() >= 2  # both charts
        assert page.locator("rect.dj-bar--failed").count() >= 2
        page.evaluate("window.notReloaded = true")
        before = page.locator(".dj-updated").inner_text()
        page.wait_for_function(
            "text => document.querySelector('.dj-updated').innerText !== text",
            arg=before,
            timeout=15_000,
        )
        assert page.evaluate("window.notReloaded") is True  # swapped in, not reloaded
        page.screenshot(path=str(out / "admin-dashboard.png"), full_page=True)

        # The list filters by queue (from the queue table) and fits 1366 px.
        page.goto(f"{live_server.url}/admin/django_jobs/job/?queue__exact=mail")
        assert page.locator("#result_list tbody tr").count() == 6
        width = page.evaluate(
            "document.querySelector('#result_list').getBoundingClientRect().right"
        )
        assert width <= 1366
        page.goto(f"{live_server.url}/admin/django_jobs/job/")
        page.screenshot(path=str(out / "admin-jobs.png"), full_page=True)

        # Failures by cause: one group of two; retry it from the page.
        page.goto(f"{live_server.url}/admin/django_jobs/job/failures/")
        rows = page.locator("table.dj-failures tbody tr")
        assert rows.count() == 1 and "ValueError: bad input, never retry" in rows.inner_text()
        page.screenshot(path=str(out / "admin-failures.png"), full_page=True)
        page.goto(f"{live_server.url}/admin/django_jobs/job/{failed.pk}/change/")
        page.screenshot(path=str(out / "admin-job-failed.png"), full_page=True)
        page.goto(f"{live_server.url}/admin/django_jobs/job/failures/")
        page.click("button[value=retry]")
        assert "2 jobs sent back to pending" in page.locator(".messagelist").inner_text()
        browser.close()
