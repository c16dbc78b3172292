"""The notification log in a real browser (Chromium through Playwright): the list fits a
1366-pixel screen, a delivery's page shows its attempts, and "Send a test notification"
sends one to a real HTTP receiver. ``JOBS_DOCS_SCREENSHOTS=1`` writes the screenshots to
``docs/screenshots/``."""

import json
import os
from pathlib import Path

import pytest
from django.contrib.auth.models import User

from django_jobs import jobs
from django_jobs.models import Delivery
from django_jobs.testing import run_jobs
from tests.admin.test_lists_browser import CHROMIUM, DOCS, admin_page, fits

from .conftest import SECRET

playwright = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.slow,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="no Chromium on this machine"),
]
FAIL = "tests.testapp.tasks.permanent_failure"


def test_the_delivery_log_in_a_real_browser(live_server, tmp_path, receiver, settings):
    settings.DJANGO_JOBS = {
        **settings.DJANGO_JOBS,
        "BASE_URL": live_server.url,
        "NOTIFICATIONS": {
            "EMAIL": {"TO": ["ops@example.com"], "EVENTS": ["failed"]},
            "WEBHOOKS": [{"URL": receiver.url, "SECRET": SECRET, "EVENTS": ["failed", "retrying"]}],
        },
    }
    User.objects.create_superuser("admin", "a@example.com", "admin")
    receiver.answers = [(503, {"Retry-After": "0"}), (500, {"Retry-After": "0"})]
    jobs.enqueue(FAIL, args=["invoice-2291"], queue="billing")
    for _ in range(4):
        run_jobs()
    jobs.enqueue("tests.testapp.tasks.always_transient", args=["rates"], max_retries=1,
                 retry_delay=3600, queue="imports")  # fmt: skip
    run_jobs()
    receiver.answers = [(410, {})]
    jobs.enqueue(FAIL, args=["gone"], queue="billing")
    for _ in range(3):
        run_jobs()
    first = Delivery.objects.filter(channel="webhook").order_by("pk").first()
    assert first.status == Delivery.DELIVERED and len(first.attempts) == 3
    out = DOCS if os.environ.get("JOBS_DOCS_SCREENSHOTS") else tmp_path
    base = live_server.url
    with playwright.sync_playwright() as p:  # no database query inside: one event loop
        page = admin_page(p, base)

        page.goto(f"{base}/admin/django_jobs/delivery/")
        fits(page)
        text = page.locator("#result_list").inner_text()
        assert "Delivered" in text and "HTTP 410" in text and "email" in text
        page.screenshot(path=str(out / "admin-deliveries.png"), full_page=True)

        page.goto(f"{base}/admin/django_jobs/delivery/{first.pk}/change/")
        attempts = page.locator(".dj-attempts-table tbody tr")
        assert attempts.count() == 3
        assert "HTTP 503" in attempts.nth(0).inner_text()
        assert "HTTP 200" in attempts.nth(2).inner_text()
        page.screenshot(path=str(out / "admin-delivery.png"), full_page=True)

        page.goto(f"{base}/admin/django_jobs/delivery/")
        page.click("text=Send a test notification")
        row = page.locator("tr", has_text=receiver.url)
        row.locator("button", has_text="Send a test").click()
        assert "is on its way" in page.locator(".messagelist").inner_text()
    run_jobs(["notifications"])
    assert json.loads(receiver.received[-1][1])["type"] == "notification.test"
