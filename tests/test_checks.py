"""System checks over ``DJANGO_JOBS`` (SPEC section 11): one test per id."""

from datetime import timedelta

import pytest
from django.core.checks import Error, Warning, run_checks
from django.core.management import call_command
from django.core.management.base import SystemCheckError

from django_jobs._compat import task_backends
from django_jobs.checks import check_settings

# Django's model checks (run by run_checks and `check`) ask the database for its features.
pytestmark = pytest.mark.django_db

GOOD = {
    "DEFAULT_QUEUE": "jobs",
    "DEFAULT_PRIORITY": "high",
    "DEFAULT_MAX_RETRIES": 0,
    "DEFAULT_RETRY_DELAY": timedelta(seconds=5),
    "DEFAULT_RETRY_BACKOFF": 1,
    "DEFAULT_RETRY_JITTER": False,
    "MAX_RETRY_DELAY": 600.0,
    "DEFAULT_TIMEOUT": timedelta(minutes=5),
    "DEAD_LETTER_QUEUE": "graveyard",
    "HEARTBEAT_INTERVAL": 2,
    "WORKER_TIMEOUT": timedelta(seconds=10),
    "POLL_INTERVAL": 0,
    "RETENTION": timedelta(days=30),
    "NOTIFICATIONS": {},
    "API_PERMISSION_CLASSES": ["rest_framework.permissions.IsAdminUser"],
    "MAX_PAYLOAD_BYTES": 10_000,
    "EAGER": True,
    "DATABASE": "default",
    "PROGRESS_THROTTLE": 0.5,
    "SHUTDOWN_TIMEOUT": 30,
    "CLAIM_BATCH_SIZE": 10,
}


def ids(settings, value):
    settings.DJANGO_JOBS = value
    return [message.id for message in check_settings()]


def jobs_messages():
    return [m for m in run_checks() if (m.id or "").startswith("django_jobs.")]


def test_test_settings_pass():
    assert check_settings() == []
    assert jobs_messages() == []


def test_a_full_good_configuration_passes(settings):
    assert ids(settings, GOOD) == []


@pytest.mark.parametrize(
    "value",
    [
        {},
        {"DEFAULT_TIMEOUT": None, "RETENTION": None, "MAX_PAYLOAD_BYTES": None, "DATABASE": None},
        {"HEARTBEAT_INTERVAL": 5, "WORKER_TIMEOUT": 10},  # exactly twice is enough
        {"DEFAULT_PRIORITY": -100},
        {"DEFAULT_RETRY_DELAY": 0, "MAX_RETRY_DELAY": timedelta(hours=1)},
    ],
)
def test_good_values_pass(settings, value):
    assert ids(settings, value) == []


def test_missing_setting_passes(settings):
    del settings.DJANGO_JOBS
    assert check_settings() == []


@pytest.mark.parametrize(
    ("key", "value", "check_id"),
    [
        ("DEFAULT_QUEUE", "", "django_jobs.E002"),
        ("DEFAULT_QUEUE", "   ", "django_jobs.E002"),
        ("DEFAULT_QUEUE", "q" * 256, "django_jobs.E002"),
        ("DEFAULT_QUEUE", 1, "django_jobs.E002"),
        ("DEFAULT_PRIORITY", 101, "django_jobs.E003"),
        ("DEFAULT_PRIORITY", -101, "django_jobs.E003"),
        ("DEFAULT_PRIORITY", "urgent", "django_jobs.E003"),
        ("DEFAULT_MAX_RETRIES", -1, "django_jobs.E004"),
        ("DEFAULT_MAX_RETRIES", "3", "django_jobs.E004"),
        ("DEFAULT_MAX_RETRIES", True, "django_jobs.E004"),
        ("DEFAULT_MAX_RETRIES", 2.5, "django_jobs.E004"),
        ("DEFAULT_RETRY_DELAY", -1, "django_jobs.E005"),
        ("DEFAULT_RETRY_DELAY", "60", "django_jobs.E005"),
        ("DEFAULT_RETRY_DELAY", timedelta(seconds=-1), "django_jobs.E005"),
        ("DEFAULT_RETRY_BACKOFF", 0.5, "django_jobs.E006"),
        ("DEFAULT_RETRY_BACKOFF", "2", "django_jobs.E006"),
        ("MAX_RETRY_DELAY", -5, "django_jobs.E007"),
        ("MAX_RETRY_DELAY", "1h", "django_jobs.E007"),
        ("DEFAULT_TIMEOUT", 0, "django_jobs.E008"),
        ("DEFAULT_TIMEOUT", -1, "django_jobs.E008"),
        ("DEFAULT_TIMEOUT", "30", "django_jobs.E008"),
        ("DEAD_LETTER_QUEUE", "", "django_jobs.E009"),
        ("DEAD_LETTER_QUEUE", None, "django_jobs.E009"),
        ("HEARTBEAT_INTERVAL", 0, "django_jobs.E010"),
        ("HEARTBEAT_INTERVAL", "5", "django_jobs.E010"),
        ("WORKER_TIMEOUT", 0, "django_jobs.E011"),
        ("WORKER_TIMEOUT", "30", "django_jobs.E011"),
        ("RETENTION", 0, "django_jobs.E012"),
        ("RETENTION", "7d", "django_jobs.E012"),
        ("RETENTION", timedelta(days=-1), "django_jobs.E012"),
        ("NOTIFICATIONS", [], "django_jobs.E013"),
        ("NOTIFICATIONS", "email", "django_jobs.E013"),
        ("API_PERMISSION_CLASSES", "rest_framework.permissions.IsAdminUser", "django_jobs.E014"),
        ("API_PERMISSION_CLASSES", ["no.such.Permission"], "django_jobs.E014"),
        ("API_PERMISSION_CLASSES", ["rest_framework.permissions.Nope"], "django_jobs.E014"),
        ("API_PERMISSION_CLASSES", [42], "django_jobs.E014"),
        ("MAX_PAYLOAD_BYTES", 0, "django_jobs.E015"),
        ("MAX_PAYLOAD_BYTES", -1, "django_jobs.E015"),
        ("MAX_PAYLOAD_BYTES", "1MB", "django_jobs.E015"),
        ("MAX_PAYLOAD_BYTES", True, "django_jobs.E015"),
        ("EAGER", "yes", "django_jobs.E016"),
        ("EAGER", 1, "django_jobs.E016"),
        ("DATABASE", "nope", "django_jobs.E017"),
        ("POLL_INTERVAL", -1, "django_jobs.E018"),
        ("POLL_INTERVAL", "1", "django_jobs.E018"),
        ("PROGRESS_THROTTLE", -0.5, "django_jobs.E018"),
        ("SHUTDOWN_TIMEOUT", "30", "django_jobs.E018"),
        ("CLAIM_BATCH_SIZE", 0, "django_jobs.E019"),
        ("CLAIM_BATCH_SIZE", "100", "django_jobs.E019"),
        ("CLAIM_BATCH_SIZE", 1.5, "django_jobs.E019"),
    ],
)
def test_bad_value_is_reported(settings, key, value, check_id):
    found = ids(settings, {key: value})
    assert found == [check_id]
    message = check_settings()[0]
    assert isinstance(message, Error)
    assert key in message.msg
    assert message.hint


def test_e001_not_a_dict(settings):
    assert ids(settings, ["DEFAULT_QUEUE", "x"]) == ["django_jobs.E001"]
    assert ids(settings, "default") == ["django_jobs.E001"]


def test_e011_worker_timeout_shorter_than_two_heartbeats(settings):
    found = ids(settings, {"HEARTBEAT_INTERVAL": 5, "WORKER_TIMEOUT": 9})
    assert found == ["django_jobs.E011"]
    # Judged against the default heartbeat (5 s) when only WORKER_TIMEOUT is set.
    assert ids(settings, {"WORKER_TIMEOUT": 6}) == ["django_jobs.E011"]
    assert ids(settings, {"HEARTBEAT_INTERVAL": timedelta(seconds=20)}) == ["django_jobs.E011"]


def test_w001_unknown_key(settings):
    settings.DJANGO_JOBS = {"DEFAULT_QUEU": "typo"}
    messages = check_settings()
    assert [m.id for m in messages] == ["django_jobs.W001"]
    assert isinstance(messages[0], Warning)
    assert "DEFAULT_QUEU" in messages[0].msg


def test_several_errors_at_once(settings):
    found = ids(settings, {"EAGER": "no", "CLAIM_BATCH_SIZE": 0, "UNKNOWN": 1})
    assert sorted(found) == ["django_jobs.E016", "django_jobs.E019", "django_jobs.W001"]


def test_checks_run_through_django(settings):
    settings.DJANGO_JOBS = {"EAGER": "yes"}
    assert [m.id for m in jobs_messages()] == ["django_jobs.E016"]
    # Asking for the tag runs the database checks too (Django's rule); W003 depends on
    # the PostgreSQL server's own autovacuum setting, tested below.
    tagged = [m.id for m in run_checks(tags=["django_jobs"]) if m.id != "django_jobs.W003"]
    assert tagged == ["django_jobs.E016"]


def test_e020_backend_without_the_app(monkeypatch):
    backend = task_backends["default"]
    assert list(backend.check()) == []
    monkeypatch.setattr("django_jobs.backend._installed_apps", lambda: ["django.contrib.auth"])
    assert [m.id for m in backend.check()] == ["django_jobs.E020"]


def test_check_command_passes():
    call_command("check", verbosity=0)


def test_check_command_fails_on_a_bad_value(settings):
    settings.DJANGO_JOBS = {**settings.DJANGO_JOBS, "DEFAULT_MAX_RETRIES": -3}
    with pytest.raises(SystemCheckError, match=r"django_jobs\.E004"):
        call_command("check", verbosity=0)


def test_check_command_only_warns_on_unknown_keys(settings):
    settings.DJANGO_JOBS = {**settings.DJANGO_JOBS, "SOMETHING_ELSE": 1}
    call_command("check", verbosity=0)


def test_w003_autovacuum_off_on_the_postgresql_server():
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL only")
    with connection.cursor() as cursor:
        cursor.execute("SHOW autovacuum")
        (setting,) = cursor.fetchone()
    found = [m for m in run_checks(databases=["default"]) if m.id == "django_jobs.W003"]
    # The server's own setting decides (it cannot be changed for one session).
    assert len(found) == (0 if setting == "on" else 1)
    if found:
        assert "autovacuum is off" in found[0].msg and "'default'" in found[0].msg
        assert "VACUUM ANALYZE django_jobs_job" in found[0].hint
    # A database check: a plain `check` (no --database, no --tag) never queries the server.
    assert not [m for m in run_checks() if m.id == "django_jobs.W003"]
