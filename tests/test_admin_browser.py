"""The admin in a real browser (Chromium through Playwright): the stylesheet is loaded,
statuses are coloured and progress bars drawn. Skipped, saying so, where Chromium or
Playwright is not installed.

``JOBS_DOCS_SCREENSHOTS=1`` writes the screenshots to ``docs/images/`` (how the ones in
``docs/admin.md`` are made); otherwise they go to the test's temporary directory.
"""

import os
import shutil
from datetime import timedelta
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from django_jobs import JobStatus, jobs
from django_jobs.models import Job
from tests.testapp import tasks

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
playwright = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.slow,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="no Chromium on this machine"),
]
DOCS = Path(__file__).resolve().parent.parent / "docs" / "images"


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


def test_job_pages_are_styled_in_a_real_browser(live_server, tmp_path):
    User.objects.create_superuser("admin", "a@example.com", "admin")
    failed = make_jobs()
    out = DOCS if os.environ.get("JOBS_DOCS_SCREENSHOTS") else tmp_path
    with playwright.sync_playwright() as p:
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
