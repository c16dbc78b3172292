"""A real HTTP receiver on 127.0.0.1 (a thread in the test process) and notification
settings pointing at it."""

import base64
import http.server
import threading

import pytest

KEY = b"0123456789abcdef0123456789abcdef"
SECRET = "whsec_" + base64.b64encode(KEY).decode()


class Receiver:
    """Records every POST (headers, body); answers with ``answers`` in order (status,
    headers), then 200."""

    def __init__(self):
        self.received = []
        self.answers = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver.lock:
                    receiver.received.append((dict(self.headers), body))
                    status, headers = receiver.answers.pop(0) if receiver.answers else (200, {})
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/jobs"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def notify(settings):
    """``notify(webhooks=[...], email={...})`` sets DJANGO_JOBS["NOTIFICATIONS"] on top of
    the test settings."""

    def configure(webhook_url=None, events=("failed",), email=None, **hook):
        notifications = {}
        if webhook_url:
            notifications["WEBHOOKS"] = [
                {"URL": webhook_url, "SECRET": SECRET, "EVENTS": list(events), **hook}
            ]
        if email:
            notifications["EMAIL"] = email
        settings.DJANGO_JOBS = {
            **settings.DJANGO_JOBS,
            "NOTIFICATIONS": notifications,
            "BASE_URL": "https://jobs.example.com",
        }

    return configure


def mailer(backend: str, **options) -> dict:
    """The settings for a mail backend: ``MAILERS`` from Django 6.1 (``EMAIL_BACKEND`` and
    friends are deprecated there), the old settings before."""
    import django

    if django.VERSION >= (6, 1):
        return {"MAILERS": {"default": {"BACKEND": backend, "OPTIONS": options}}}
    old = {"EMAIL_BACKEND": backend}
    names = {"host": "EMAIL_HOST", "port": "EMAIL_PORT", "file_path": "EMAIL_FILE_PATH"}
    old.update({names[k]: v for k, v in options.items()})
    return old


@pytest.fixture
def mail_backend(settings):
    """``mail_backend(path, **options)`` switches this test's mail backend."""

    def use(backend, **options):
        for name, value in mailer(backend, **options).items():
            setattr(settings, name, value)

    return use
