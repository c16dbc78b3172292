"""Notifications, first part (SPEC 10): DJANGO_JOBS["NOTIFICATIONS"] read and checked with
stable ids, and the Standard Webhooks signature checked against our own HMAC code."""

import base64
import hashlib
import hmac
import time

import pytest
from django.core import checks

from django_jobs.conf import EmailChannel, NotificationSettings, jobs_settings
from django_jobs.notifications import WebhookVerificationError, signed_headers, verify

KEY = b"0123456789abcdef0123456789abcdef"
SECRET = "whsec_" + base64.b64encode(KEY).decode()


def ids(settings, notifications):
    settings.DJANGO_JOBS = {"NOTIFICATIONS": notifications}
    return sorted(
        m.id for m in checks.run_checks(tags=["django_jobs"]) if m.id.startswith("django_jobs.E")
    )


def test_the_spec_example_reads(settings):
    settings.DJANGO_JOBS = {
        "NOTIFICATIONS": {
            "EMAIL": {"TO": ["ops@example.com"], "EVENTS": ["failed"], "QUEUES": None,
                      "TASKS": None},
            "WEBHOOKS": [{"URL": "https://hooks.example.com/jobs", "SECRET": SECRET,
                          "EVENTS": ["failed", "retrying"], "QUEUES": ["mail"],
                          "TASKS": None}],
        }
    }  # fmt: skip
    found = jobs_settings.NOTIFICATIONS
    assert isinstance(found, NotificationSettings)
    assert found.email == EmailChannel(
        events=frozenset({"failed"}), queues=None, tasks=None, to=("ops@example.com",)
    )
    (hook,) = found.webhooks
    assert hook.url == "https://hooks.example.com/jobs" and hook.secret == SECRET
    assert hook.wants("retrying", queue="mail", task="t")
    assert not hook.wants("retrying", queue="other", task="t")  # QUEUES filters job events
    assert not hook.wants("completed", queue="mail", task="t")
    assert found.email.wants("failed", queue="any", task="any")
    assert len(found.channels()) == 2
    assert ids(settings, settings.DJANGO_JOBS["NOTIFICATIONS"]) == []


def test_defaults(settings):
    settings.DJANGO_JOBS = {}
    assert jobs_settings.NOTIFICATIONS == NotificationSettings()
    settings.DJANGO_JOBS = {"NOTIFICATIONS": {"EMAIL": {"TO": "ops@example.com"}}}
    email = jobs_settings.NOTIFICATIONS.email
    assert email.to == ("ops@example.com",) and email.events == {"failed"}
    assert email.from_email is None  # SERVER_EMAIL


@pytest.mark.parametrize(
    ("notifications", "check_id", "words"),
    [
        ([], "django_jobs.E013", "must be a dict"),
        ({"EMAIL": {"TO": ["ops@example.com"]}, "SLACK": {}}, "django_jobs.E013", "SLACK"),
        ({"EMAIL": {"TO": []}}, "django_jobs.E013", "TO"),
        ({"EMAIL": {"TO": ["a@b.c"], "CC": ["x@y.z"]}}, "django_jobs.E013", "CC"),
        ({"WEBHOOKS": [{"URL": "ftp://x", "SECRET": SECRET}]}, "django_jobs.E025", "URL"),
        ({"WEBHOOKS": [{"URL": "not a url", "SECRET": SECRET}]}, "django_jobs.E025", "URL"),
        ({"EMAIL": {"TO": ["a@b.c"], "EVENTS": ["failed", "exploded"]}}, "django_jobs.E026",
         "exploded"),
        ({"WEBHOOKS": [{"URL": "https://h.example/", "SECRET": SECRET, "EVENTS": []}]},
         "django_jobs.E026", "EVENTS"),
        ({"WEBHOOKS": [{"URL": "https://h.example/", "SECRET": "whsec_!!!"}]},
         "django_jobs.E027", "base64"),
        ({"WEBHOOKS": [{"URL": "https://h.example/", "SECRET": ""}]}, "django_jobs.E027",
         "SECRET"),
        ({"WEBHOOKS": [{"URL": "https://h.example/", "SECRET": SECRET, "QUEUES": "mail"}]},
         "django_jobs.E013", "QUEUES"),
    ],
)  # fmt: skip
def test_bad_configuration_has_a_stable_check_id(settings, notifications, check_id, words):
    settings.DJANGO_JOBS = {"NOTIFICATIONS": notifications}
    found = [m for m in checks.run_checks(tags=["django_jobs"]) if m.id == check_id]
    assert len(found) == 1, [m.id for m in checks.run_checks(tags=["django_jobs"])]
    assert words in found[0].msg and found[0].msg.startswith("DJANGO_JOBS['NOTIFICATIONS']")
    assert jobs_settings.NOTIFICATIONS == NotificationSettings()  # a bad value sends nothing


def our_signature(key: bytes, message_id: str, timestamp: str, body: bytes) -> str:
    """The Standard Webhooks signature, computed here without the project's code."""
    mac = hmac.new(key, f"{message_id}.{timestamp}.".encode() + body, hashlib.sha256)
    return "v1," + base64.b64encode(mac.digest()).decode()


def test_signed_headers_match_an_independent_hmac():
    body = b'{"type": "job.failed", "data": {"job": {"id": 7}}}'
    headers = signed_headers(SECRET, "msg_7", body, timestamp=1_800_000_000)
    assert headers["webhook-id"] == "msg_7" and headers["webhook-timestamp"] == "1800000000"
    assert headers["webhook-signature"] == our_signature(KEY, "msg_7", "1800000000", body)
    # A secret without the whsec_ prefix: its UTF-8 bytes are the key (SPEC 10).
    plain = signed_headers("plain secret", "m", body, timestamp=1_800_000_000)
    assert plain["webhook-signature"] == our_signature(b"plain secret", "m", "1800000000", body)


def test_verify_accepts_the_real_thing_and_rejects_the_rest():
    body = b'{"type": "job.failed"}'
    now = str(int(time.time()))
    headers = {
        "webhook-id": "msg_1",
        "webhook-timestamp": now,
        "webhook-signature": our_signature(KEY, "msg_1", now, body),
    }
    verify(SECRET, headers, body)  # no exception
    verify(SECRET, {k.title(): v for k, v in headers.items()}, body)  # header case
    with pytest.raises(WebhookVerificationError):
        verify(SECRET, headers, body.replace(b"failed", b"completed"))  # tampered
    with pytest.raises(WebhookVerificationError):
        verify("whsec_" + base64.b64encode(b"another key").decode(), headers, body)
    with pytest.raises(WebhookVerificationError):
        verify("whsec_!!", headers, body)  # an unusable secret
    old = str(int(time.time()) - 3600)
    stale = {**headers, "webhook-timestamp": old,
             "webhook-signature": our_signature(KEY, "msg_1", old, body)}  # fmt: skip
    with pytest.raises(WebhookVerificationError, match="too old"):
        verify(SECRET, stale, body)
    with pytest.raises(WebhookVerificationError):
        verify(SECRET, {"webhook-id": "msg_1"}, body)  # headers missing


def test_one_webhook_url_twice_is_refused(settings):
    hook = {"URL": "https://hooks.example.com/jobs", "SECRET": SECRET}
    assert ids(settings, {"WEBHOOKS": [hook, {**hook, "EVENTS": ["retrying"]}]}) == [
        "django_jobs.E025"
    ]
