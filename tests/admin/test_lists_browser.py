"""The queue, worker and schedule pages in a real browser (Chromium through Playwright),
with a real worker running jobs: each list fits a 1366-pixel screen beside the admin's
menus, a worker's current job shows a progress bar, and the schedule form previews the
next five runs again as one types, warning of daylight saving. Skipped, saying so, where
Chromium or Playwright is not installed.

``JOBS_DOCS_SCREENSHOTS=1`` writes the screenshots to ``docs/screenshots/`` (how the ones in
``docs/admin.md`` are made); otherwise they go to the test's temporary directory.
"""

import os
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from django_jobs import JobStatus, jobs
from django_jobs.models import AuditEntry, Job, Queue, Schedule, Worker
from tests.conftest import wait_until
from tests.testapp import tasks

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
playwright = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.slow,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="no Chromium on this machine"),
]
DOCS = Path(__file__).resolve().parent.parent.parent / "docs" / "screenshots"
# Chromium's own arguments for a machine without a display or a network.
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def seed() -> None:
    """Queues, schedules and workers as a small shop would have them."""
    now = timezone.now()
    for i in range(3):
        jobs.enqueue(tasks.add, args=[i, i], queue="emails")
    late = jobs.enqueue(tasks.add, args=[9, 9], queue="emails")
    Job.objects.filter(pk=late.pk).update(scheduled_at=now - timedelta(minutes=42))
    for i in range(5):
        jobs.enqueue(tasks.add, args=[i, i], queue="webhooks")
    failed = jobs.enqueue(tasks.add, args=[0, 0], queue="webhooks")
    Job.objects.filter(pk=failed.pk).update(
        status=JobStatus.FAILED, queue="dead-letter", original_queue="webhooks"
    )
    jobs.get_queue("emails").configure(
        description="Transactional email", max_pending_age=timedelta(minutes=30)
    )
    jobs.get_queue("reports").configure(description="PDF and CSV exports", concurrency_limit=2)
    jobs.pause_queue("webhooks")

    jobs.schedule(tasks.add, cron="0 9 * * 1-5", name="weekday-digest",
                  timezone="Europe/Paris", args=[1, 2])  # fmt: skip
    jobs.schedule(tasks.add, cron="30 2 * * *", name="nightly-cleanup",
                  timezone="America/New_York", args=[3, 4])  # fmt: skip
    jobs.schedule_interval(tasks.add, interval=300, name="health-ping", args=[0, 0])
    jobs.schedule(tasks.add, cron="0 0 1 * *", name="monthly-invoices", args=[5, 6],
                  timezone="Asia/Tokyo", enabled=False)  # fmt: skip
    jobs.schedule_once(tasks.add, at=datetime(2031, 1, 1, 8, tzinfo=UTC), name="new-year-mail",
                       args=[7, 8], timezone="Europe/London")  # fmt: skip
    for name, status in (("nightly-cleanup", JobStatus.COMPLETED), ("health-ping",
                         JobStatus.FAILED)):  # fmt: skip
        job = jobs.run_schedule_now(name)
        Job.objects.filter(pk=job.pk).update(status=status, queue="scheduled")

    Worker.objects.create(
        id="web-2-8812-1f3a9c", hostname="web-2", pid=8812, queues=["emails", "webhooks"],
        concurrency=4, jobs_processed=1520, jobs_failed=3,
        last_heartbeat_at=now - timedelta(minutes=3),
    )  # fmt: skip
    Worker.objects.create(
        id="web-1-7310-9c02de", hostname="web-1", pid=7310, concurrency=4, stopped_at=now,
        jobs_processed=812, jobs_failed=1, last_heartbeat_at=now - timedelta(minutes=20),
    )  # fmt: skip


def admin_page(p, base: str, username: str = "admin", password: str = "admin"):
    """A 1366-pixel Chromium page logged in to the admin of the live server ``base``."""
    browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
    page = browser.new_page(viewport={"width": 1366, "height": 800})
    page.goto(f"{base}/admin/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("input[type=submit]")
    return page


def fits(page) -> None:
    """The list is not cut off: its table is no wider than the space it has."""
    wide, room = page.evaluate(
        "(() => { const r = document.querySelector('.results');"
        " return [r.scrollWidth, r.clientWidth]; })()"
    )
    assert wide <= room, f"the list is {wide}px wide in {room}px"
    assert page.evaluate("document.documentElement.scrollWidth") <= 1366


def test_queue_worker_and_schedule_pages_in_a_real_browser(live_server, tmp_path, workers):
    User.objects.create_superuser("admin", "a@example.com", "admin")
    seed()
    for i in range(3):
        jobs.enqueue(tasks.progress_steps, args=[f"r{i}"], kwargs={"steps": 300, "pause": 0.2},
                     queue="reports")  # fmt: skip
    workers.start("--queues", "reports", "--concurrency", "2")
    wait_until(
        lambda: Job.objects.filter(queue="reports", status=JobStatus.RUNNING, progress__gt=0.05)
        .count() == 2,
        timeout=60,
        message="two reports under way",
    )  # fmt: skip
    out = DOCS if os.environ.get("JOBS_DOCS_SCREENSHOTS") else tmp_path
    base = live_server.url
    weekday = Schedule.objects.get(name="weekday-digest")
    # No database query inside the block: Playwright's event loop runs in this thread.
    with playwright.sync_playwright() as p:
        page = admin_page(p, base)

        # Queues: counts, the oldest job's wait past its limit, a paused queue.
        page.goto(f"{base}/admin/django_jobs/queue/")
        fits(page)
        row = page.locator("#result_list tbody tr", has_text="Transactional email")
        assert "over 30m" in row.inner_text()
        over = row.locator(".dj-badge--bad")
        assert over.evaluate("e => getComputedStyle(e).backgroundColor") == "rgb(220, 53, 69)"
        assert "paused" in page.locator("#result_list tbody tr", has_text="webhooks").inner_text()
        page.screenshot(path=str(out / "admin-queues.png"), full_page=True)

        # Workers: the live one runs two jobs, each with its bar.
        page.goto(f"{base}/admin/django_jobs/worker/")
        fits(page)
        alive = page.locator("#result_list tbody tr", has=page.locator(".dj-badge--good"))
        assert alive.count() == 1
        assert alive.locator(".dj-current-jobs progress").count() == 2
        assert "stale" in page.locator("#result_list").inner_text()
        page.screenshot(path=str(out / "admin-workers.png"), full_page=True)

        # Schedules: in words, with the time zone, the next and the last run.
        page.goto(f"{base}/admin/django_jobs/schedule/")
        fits(page)
        text = page.locator("#result_list").inner_text()
        assert "At 09:00, Monday through Friday" in text and "Europe/Paris" in text
        assert "Every 5 minutes" in text and "disabled" in text
        page.screenshot(path=str(out / "admin-schedules.png"), full_page=True)

        # An action from the list lands in the audit log.
        row = page.locator("#result_list tbody tr", has_text="monthly-invoices")
        row.locator("input.action-select").check()
        page.select_option("select[name=action]", "enable_schedules")
        page.click("button[name=index]")
        assert "1 schedule enabled" in page.locator(".messagelist").inner_text()

        # The form: the next five runs of the saved timing, then of what one types.
        page.goto(f"{base}/admin/django_jobs/schedule/{weekday.pk}/change/")
        preview = page.locator("#dj-schedule-preview")
        assert preview.locator("li").count() == 5
        assert "At 09:00, Monday through Friday" in preview.inner_text()
        assert page.locator(".form-row.field-interval").is_hidden()  # a cron schedule
        # The fifth Sunday of March or October is the day the clocks change in Paris.
        page.fill("#id_cron", "30 2 * 3,10 sun#5")
        page.wait_for_function(
            "document.getElementById('dj-schedule-preview').innerText.includes('fifth Sunday')"
        )
        warnings = preview.locator(".dj-preview__warning")
        assert warnings.count() == 5
        assert "the clocks go" in warnings.first.inner_text()
        top = page.locator("#content h1").bounding_box()
        end = page.locator("fieldset", has=page.locator("#id_kind")).bounding_box()
        assert top and end
        page.set_viewport_size({"width": 1366, "height": int(end["y"] + end["height"] + 20)})
        page.screenshot(path=str(out / "admin-schedule-form.png"))
        page.set_viewport_size({"width": 1366, "height": 800})

        page.fill("#id_timezone", "Europe/Pariss")
        page.wait_for_function(
            "document.getElementById('dj-schedule-preview').innerText.includes('Unknown time')"
        )
        page.select_option("#id_kind", "interval")
        assert page.locator(".form-row.field-cron").is_hidden()
        assert page.locator(".form-row.field-interval").is_visible()
        page.context.browser.close()
    assert Schedule.objects.get(name="monthly-invoices").enabled
    assert AuditEntry.objects.filter(action="schedule.enable").count() == 1
    # Nothing was saved by typing.
    weekday.refresh_from_db()
    assert (weekday.cron, weekday.timezone) == ("0 9 * * 1-5", "Europe/Paris")
    assert Queue.objects.get(name="webhooks").paused
