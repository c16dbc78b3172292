"""``manage.py demo``: migrate, create an admin and a plain user, enqueue demo jobs, then
run the workers (``runworkers``, a subprocess) and the development server until Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.db import connection
from django.utils import timezone

from django_jobs import Priority, jobs
from django_jobs.conf import jobs_settings
from django_jobs.models import Job

MANAGE_PY = Path(__file__).resolve().parents[3] / "manage.py"
DEFAULT_ADDRPORT = "127.0.0.1:8000"
ADMIN_USERNAME = ADMIN_PASSWORD = "admin"
# Not staff: on /reports/ this user sees the progress of their own jobs only.
USER_USERNAME = USER_PASSWORD = "demo"


def _die_with_parent() -> None:
    """Run in the child before exec: SIGTERM it if this command dies without cleaning up
    (Linux only; elsewhere Ctrl-C and SIGTERM still stop it through our handlers)."""
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, int(signal.SIGTERM), 0, 0, 0)
        except OSError:
            pass


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt


class Command(BaseCommand):
    help = (
        "Run the django_jobs demo: migrate, create the superuser admin/admin and the user "
        "demo/demo, enqueue demo jobs, start `runworkers` in a subprocess and the "
        "development server. Ctrl-C (or SIGTERM) stops both cleanly."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "addrport",
            nargs="?",
            default=DEFAULT_ADDRPORT,
            help="Address and port of the development server (default: %(default)r).",
        )
        parser.add_argument(
            "--no-server",
            action="store_true",
            help="Do not run the development server: wait until the demo jobs have "
            "finished, print a summary and exit.",
        )
        parser.add_argument(
            "--no-workers",
            action="store_true",
            help="Do not start workers (run `manage.py runworkers` yourself).",
        )
        parser.add_argument(
            "--wait-timeout",
            type=float,
            default=180.0,
            help="With --no-server: seconds to wait for the demo jobs (default: %(default)r).",
        )

    def handle(self, *, addrport, no_server, no_workers, wait_timeout, verbosity, **_):
        self.verbosity = verbosity
        # The workers' webhooks and links point at the server this command starts.
        os.environ["DEMO_BASE_URL"] = f"http://{_host_port(addrport)}"
        self.stdout.write(self.style.MIGRATE_HEADING("Migrating the database..."))
        call_command("migrate", interactive=False, verbosity=max(0, verbosity - 1))
        self._ensure_superuser()
        self._ensure_user()
        ids = self._enqueue_demo_jobs()

        if no_workers and no_server:
            self.stdout.write(
                f"Nothing else to do. Process the jobs with:\n"
                f"  {sys.executable} {MANAGE_PY} runworkers"
            )
            return

        # SIGTERM behaves like Ctrl-C: both end in the clean stop below.
        previous = signal.signal(signal.SIGTERM, _raise_interrupt)
        workers = server = None
        failure = None
        try:
            if not no_workers:
                workers = self._start_workers()
            if no_server:
                failure = self._wait_for_jobs(ids, workers, wait_timeout)
            else:
                server = self._start_server(addrport)
                failure = self._watch(server, workers)
        except KeyboardInterrupt:
            self.stdout.write("\nInterrupted.")
        finally:
            if server is not None:
                self._stop_server(server)
            if workers is not None:
                self._stop_workers(workers)
            signal.signal(signal.SIGTERM, previous)
        if no_server:
            self._print_summary(ids)
        if failure:
            raise CommandError(failure)

    # -- set-up --------------------------------------------------------------------------

    def _ensure_superuser(self) -> None:
        User = get_user_model()
        if User.objects.filter(username=ADMIN_USERNAME).exists():
            self.stdout.write(f"Superuser {ADMIN_USERNAME!r} already exists.")
            return
        User.objects.create_superuser(ADMIN_USERNAME, "admin@example.com", ADMIN_PASSWORD)
        self.stdout.write(
            self.style.SUCCESS(
                f"Created superuser: username {ADMIN_USERNAME!r}, password {ADMIN_PASSWORD!r}"
            )
        )

    def _ensure_user(self) -> None:
        User = get_user_model()
        if not User.objects.filter(username=USER_USERNAME).exists():
            User.objects.create_user(USER_USERNAME, "demo@example.com", USER_PASSWORD)
            self.stdout.write(
                self.style.SUCCESS(
                    f"Created user: username {USER_USERNAME!r}, password {USER_PASSWORD!r}"
                )
            )

    def _enqueue_demo_jobs(self) -> list[int]:
        """A handful of each demo task, through each way of enqueueing."""
        from demo.tasks import (
            build_report,
            charge_payment,
            clear_expired_sessions,
            fetch_exchange_rates,
            import_legacy_file,
            send_order_confirmation,
            send_welcome_email,
            validate_order,
        )

        now = timezone.now()
        ids: list[int] = []
        people = [
            ("ada@example.com", "Ada"),
            ("alan@example.com", "Alan"),
            ("grace@example.com", "Grace"),
            ("linus@example.com", "Linus"),
        ]
        for i, (to, name) in enumerate(people):
            ids.append(
                jobs.enqueue(
                    send_welcome_email,
                    kwargs={"to": to, "name": name},
                    priority=Priority.CRITICAL if i == 0 else None,
                    tags=["email", "signup"],
                    metadata={"user_id": i + 1},
                ).pk
            )
        ids.append(
            jobs.enqueue_delayed(
                send_welcome_email,
                timedelta(seconds=10),
                kwargs={"to": "margaret@example.com", "name": "Margaret"},
                tags=["signup"],
            ).pk
        )
        # The django.tasks way: returns a TaskResult whose id is the job id.
        result = send_welcome_email.enqueue(to="barbara@example.com", name="Barbara")
        ids.append(int(result.id))

        for report_id, priority, delay in (
            (1, Priority.LOW, None),
            (2, Priority.NORMAL, None),
            (3, Priority.HIGH, 5),
        ):
            ids.append(
                jobs.enqueue(
                    build_report,
                    kwargs={"report_id": report_id},
                    priority=priority,
                    delay=delay,
                    metadata={"requested_by": "admin"},
                ).pk
            )

        for base in ("EUR", "USD", "GBP", "JPY"):
            ids.append(jobs.enqueue(fetch_exchange_rates, kwargs={"base": base}).pk)
        # Always down: uses up its retries and lands in the dead-letter queue.
        ids.append(
            jobs.enqueue(
                fetch_exchange_rates,
                kwargs={"base": "CHF", "failure_rate": 1.0},
                max_retries=2,
                tags=["external", "always-down"],
            ).pk
        )

        # Fails for good at once: notified by email and to the webhook receiver.
        ids.append(jobs.enqueue(import_legacy_file, args=["/data/customers-2019.csv"]).pk)

        ids.append(int(clear_expired_sessions.enqueue().id))
        later = clear_expired_sessions.using(priority=-20, run_after=now + timedelta(seconds=15))
        ids.append(int(later.enqueue().id))

        # A chain: each step runs after the previous one completed.
        order = jobs.chain(
            [
                (validate_order, (), {"order_id": 1001}),
                (charge_payment, (), {"order_id": 1001, "amount": 42.0}),
                (send_order_confirmation, (), {"order_id": 1001}),
            ]
        )
        ids += [step.pk for step in order.jobs]

        self.stdout.write(self.style.SUCCESS(f"Enqueued {len(ids)} demo jobs:"))
        for job in Job.objects.filter(pk__in=ids).order_by("id"):
            when = ""
            if job.scheduled_at > job.created_at + timedelta(seconds=1):
                when = f", runs in {(job.scheduled_at - now).total_seconds():.0f}s"
            self.stdout.write(
                f"  #{job.pk:<5} {job.task_name:<40} queue={job.queue:<8} "
                f"priority={Priority.label_for(job.priority)}{when}"
            )
        return ids

    # -- children ------------------------------------------------------------------------

    def _spawn(self, *args: str, env: dict | None = None) -> subprocess.Popen:
        # Own session: a Ctrl-C in the terminal reaches only this command, which then
        # signals each child once (a second signal would make the workers stop at once).
        return subprocess.Popen(
            [sys.executable, str(MANAGE_PY), *args],
            env={**os.environ, **(env or {})},
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )

    def _start_workers(self) -> subprocess.Popen:
        args = ["runworkers"]
        if connection.vendor == "sqlite":
            args += ["--concurrency", "1"]  # one writer at a time on SQLite anyway
        self.stdout.write(
            self.style.MIGRATE_HEADING(f"Starting workers: manage.py {' '.join(args)}")
        )
        # A long-running worker has no use for DEBUG's per-query log.
        return self._spawn(*args, env={"DEBUG": "False"})

    def _start_server(self, addrport: str) -> subprocess.Popen:
        site = f"http://{_host_port(addrport)}"
        self.stdout.write(
            self.style.SUCCESS(
                f"\nAdmin: {site}/admin/  (username {ADMIN_USERNAME!r}, password "
                f"{ADMIN_PASSWORD!r})\n"
                f"A user's reports and their progress bars: {site}/reports/  (username "
                f"{USER_USERNAME!r}, password {USER_PASSWORD!r})\n"
                "Press Ctrl-C to stop the server and the workers.\n"
            )
        )
        return self._spawn("runserver", "--noreload", addrport)

    def _watch(self, server: subprocess.Popen, workers: subprocess.Popen | None) -> str | None:
        """Block until Ctrl-C/SIGTERM (KeyboardInterrupt) or until a child exits."""
        while True:
            code = server.poll()
            if code is not None:
                return f"The development server exited with code {code}."
            if workers is not None and workers.poll() is not None:
                return f"The workers exited with code {workers.returncode}."
            time.sleep(0.5)

    def _wait_for_jobs(self, ids, workers, timeout: float) -> str | None:
        deadline = time.monotonic() + timeout
        last = None
        while True:
            counts = {}
            for status in Job.objects.filter(pk__in=ids).values_list("status", flat=True):
                counts[status] = counts.get(status, 0) + 1
            line = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
            if line != last:
                self.stdout.write(f"Demo jobs: {line}")
                last = line
            if not Job.objects.filter(pk__in=ids).unfinished().exists():
                return None
            if workers is not None and workers.poll() is not None:
                return f"The workers exited with code {workers.returncode}."
            if time.monotonic() > deadline:
                return f"The demo jobs did not all finish within {timeout:g}s."
            time.sleep(1.0)

    def _stop_server(self, server: subprocess.Popen) -> None:
        if server.poll() is None:
            # SIGTERM, not SIGINT: a child started with SIGINT ignored (a background job
            # of a non-interactive shell) would never see it.
            self._signal_group(server, signal.SIGTERM)
            self._wait(server, 10)

    def _stop_workers(self, workers: subprocess.Popen) -> None:
        if workers.poll() is not None:
            return
        grace = (jobs_settings.SHUTDOWN_TIMEOUT or 0) + 10
        self.stdout.write(
            "Stopping the workers (running jobs get a moment to finish; Ctrl-C again to stop "
            "at once)..."
        )
        workers.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace
        while workers.poll() is None:
            try:
                workers.wait(timeout=0.2)
            except subprocess.TimeoutExpired:
                if time.monotonic() > deadline:
                    self.stderr.write("The workers did not stop in time; killing them.")
                    self._signal_group(workers, signal.SIGKILL)
                    workers.wait()
            except KeyboardInterrupt:
                # A second signal: the worker hands its jobs back and exits at once.
                workers.send_signal(signal.SIGTERM)
                deadline = min(deadline, time.monotonic() + 5)
        self.stdout.write(f"Workers stopped (exit code {workers.returncode}).")

    def _wait(self, proc: subprocess.Popen, seconds: float) -> None:
        try:
            proc.wait(timeout=seconds)
        except subprocess.TimeoutExpired:
            self._signal_group(proc, signal.SIGKILL)
            proc.wait()

    @staticmethod
    def _signal_group(proc: subprocess.Popen, sig: int) -> None:
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass

    # -- report --------------------------------------------------------------------------

    def _print_summary(self, ids) -> None:
        self.stdout.write(self.style.MIGRATE_HEADING("\nDemo jobs:"))
        for job in Job.objects.filter(pk__in=ids).order_by("id"):
            if job.status == "completed":
                outcome = repr(job.result)
            elif job.error:
                outcome = f"{job.error.get('type')}: {job.error.get('message')}"
            else:
                outcome = job.progress_message or ""
            if len(outcome) > 70:
                outcome = outcome[:67] + "..."
            self.stdout.write(
                f"  #{job.pk:<5} {job.task_name.rsplit('.', 1)[-1]:<24} {job.status:<10} "
                f"attempts={job.attempts}  {outcome}"
            )


def _host_port(addrport: str) -> str:
    """``runserver``'s address as a browser reaches it."""
    host, _, port = addrport.rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    if host in ("0", "0.0.0.0", "::"):
        host = "127.0.0.1"
    return f"{host}:{port or '8000'}"
