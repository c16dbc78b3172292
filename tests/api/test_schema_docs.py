"""The schema's browsable page, ``schema/docs/``: Swagger UI from drf-spectacular-sidecar's
static files (no CDN), for the users who may read the schema."""

import re

import pytest
from django.contrib.auth.models import User
from django.core import checks
from django.test import Client

from django_jobs.checks import check_schema_docs_files

pytestmark = pytest.mark.django_db

DOCS = "/api/jobs/schema/docs/"


@pytest.fixture
def staff():
    client = Client()  # a real session login, as in a browser
    User.objects.create_user("staff", password="x", is_staff=True)
    assert client.login(username="staff", password="x")
    return client


def test_staff_get_swagger_ui_from_our_static_files(staff):
    response = staff.get(DOCS)
    assert response.status_code == 200, response.content[:500]
    assert response["Content-Type"].startswith("text/html")
    page = response.content.decode()
    assert '"/api/jobs/schema/"' in page  # the schema of the same mount
    scripts = re.findall(r'<script src="([^"]+)"', page)
    styles = re.findall(r'<link rel="stylesheet" href="([^"]+)"', page)
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js" in scripts
    for url in scripts + styles:
        assert url.startswith("/static/drf_spectacular_sidecar/"), url
    # No CDN host ("cdn." — a bare "cdn" turns up in the page's random CSRF token now
    # and then, which the flake runs caught) and no absolute URL at all.
    assert "cdn." not in page.lower() and "https://" not in page and "//unpkg" not in page
    assert "<title>django_jobs API</title>" in page


def test_the_schema_it_points_at_is_served(staff):
    response = staff.get("/api/jobs/schema/", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    assert "/jobs/" in response.json()["paths"]
    assert "/schema/docs/" not in response.json()["paths"]  # a page, not an operation


def test_anonymous_and_non_staff_get_no_page():
    assert Client().get(DOCS).status_code in {401, 403}
    User.objects.create_user("user", password="x")
    client = Client()
    client.login(username="user", password="x")
    assert client.get(DOCS).status_code == 403


def test_without_the_sidecar_app_a_clear_501_and_a_system_check(staff, settings):
    settings.INSTALLED_APPS = [app for app in settings.INSTALLED_APPS if "sidecar" not in app]
    response = staff.get(DOCS)
    assert response.status_code == 501
    assert "drf_spectacular_sidecar" in response.content.decode()
    assert [m.id for m in check_schema_docs_files()] == ["django_jobs.W005"]
    assert check_schema_docs_files()[0].level == checks.WARNING


def test_the_system_check_is_quiet_when_the_app_is_installed():
    assert check_schema_docs_files() == []
