"""``manage.py jobs top`` (queues, workers, throughput, running jobs) and the progress of
``jobs wait`` / ``jobs enqueue --wait``: one frame of ``top --once`` on a database holding
jobs in several states, workers and rollup rows; ``jobs wait`` in a new process following
a job a real worker runs, as plain lines (a pipe) and as a live bar (a pseudo-terminal).

``JOBS_DOCS_SCREENSHOTS=1`` writes the picture of ``top`` in ``docs/cli.md`` to
``docs/images/cli-top.svg``; otherwise it goes to the test's temporary directory.
"""

import fcntl
import json
import os
import pty
import re
import select
import signal
import struct
import subprocess
import sys
import tempfile
import termios
import time
from datetime import UTC, datetime, timedelta
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from django_jobs import JobStatus, jobs
from django_jobs.management import top
from django_jobs.models import Job, Queue, Rollup, Worker
from django_jobs.models.rollup import COMPLETED, FAILED, MINUTE
from tests.conftest import ROOT
from tests.testapp import tasks

DOCS = ROOT / "docs" / "images"
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


@pytest.fixture(autouse=True)
def _plain_environment(monkeypatch):
    """What the output looks like must not depend on the shell that runs the tests."""
    for name in ("COLUMNS", "LINES", "FORCE_COLOR", "NO_COLOR", "TTY_COMPATIBLE"):
        monkeypatch.delenv(name, raising=False)


def cli(*args):
    out = StringIO()
    call_command("jobs", *args, stdout=out)
    return out.getvalue()


def line_with(text, word):
    found = [line for line in text.splitlines() if re.search(rf"(^|\s){re.escape(word)}\s", line)]
    assert found, f"no line with {word!r} in:\n{text}"
    return found[0]


def job_line(text, job):
    """The line of ``job`` in the running jobs table (it starts with the job's id)."""
    found = [line for line in text.splitlines() if re.match(rf"\s*{job.pk}\s+\S+\.noop\s", line)]
    assert len(found) == 1, f"job {job.pk} is not shown once in:\n{text}"
    return found[0]


def minute(ago):
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    return now - timedelta(minutes=ago)


def enqueue(n, queue, **options):
    return [jobs.enqueue(tasks.noop, queue=queue, **options) for _ in range(n)]


def set_running(job, *, worker, progress=0.0, message="", started_ago=10.0, status="running"):
    started = None if status == "reserved" else timezone.now() - timedelta(seconds=started_ago)
    Job.objects.filter(pk=job.pk).update(
        status=status,
        worker_id=worker,
        started_at=started,
        progress=progress,
        progress_message=message,
    )


def set_failed(job):
    Job.objects.filter(pk=job.pk).update(
        status=JobStatus.FAILED,
        queue="dead-letter",
        original_queue=job.queue,
        finished_at=timezone.now(),
        error={"type": "ValueError", "message": "no"},
    )


def add_worker(host, pid, *, heartbeat_ago=0.0, **fields):
    return Worker.objects.create(
        id=f"{host}-{pid}-abc123",
        hostname=host,
        pid=pid,
        last_heartbeat_at=timezone.now() - timedelta(seconds=heartbeat_ago),
        **fields,
    )


def add_minutes(queue, kind, counts, task="t"):
    """Minute rollup rows, as workers write them: ``counts`` minutes ago -> count."""
    for ago, n in counts.items():
        Rollup.objects.create(
            resolution=MINUTE, period=minute(ago), queue=queue, task=task, kind=kind, count=n
        )


# -- jobs top --once ----------------------------------------------------------------------


@pytest.mark.django_db
def test_top_once_shows_queues_workers_rates_and_running_jobs():
    emails = enqueue(5, "emails")
    Job.objects.filter(pk=emails[0].pk).update(
        scheduled_at=timezone.now() - timedelta(minutes=5, seconds=30)
    )
    set_failed(emails[3])
    set_failed(emails[4])
    reports = enqueue(3, "reports")
    set_running(
        reports[0], worker="host-a-4242-abc123", progress=0.4, message="section 2/5", started_ago=20
    )
    set_running(reports[1], worker="host-a-4242-abc123", status="reserved")
    enqueue(1, "imports")
    jobs.pause_queue("imports")
    add_worker(
        "host-a",
        4242,
        queues=["emails", "reports"],
        concurrency=4,
        jobs_processed=1234,
        current_jobs=[reports[0].pk, reports[1].pk],
    )
    add_worker("host-b", 99, heartbeat_ago=600, jobs_processed=7)
    Worker.objects.create(  # stopped cleanly: not shown
        id="gone-1", hostname="host-gone", pid=1, stopped_at=timezone.now()
    )
    # 60 completed and 6 failed in the last five minutes (wherever in this minute the
    # frame is drawn, these minutes stay in the window).
    add_minutes("emails", COMPLETED, {1: 40, 2: 20, 30: 500})
    add_minutes("emails", FAILED, {1: 6})

    out = cli("top", "--once")

    assert "\x1b[" not in out  # not a terminal: no colours, no cursor movement
    assert "django_jobs top" in out
    summary = line_with(out, "pending")
    assert re.search(r"pending 5\s+running 2\s+failed 2\s+workers 1 alive, 1 stale", summary)

    row = line_with(out, "emails")
    # queue, state, pending, running, failed, oldest pending, completed/min, failed/min
    match = re.search(r"emails\s+active\s+3\s+0\s+2\s+5m 3\ds\s+(\d+\.\d)\s+(\d+\.\d)", row)
    assert match, row
    completed, failed = (float(g) for g in match.groups())
    # 60 and 6 over a window of 4 to 5 minutes (the current minute as far as it went).
    assert 12.0 <= completed <= 15.0 and 1.2 <= failed <= 1.5, row
    assert re.search(r"reports\s+active\s+1\s+2\s+0\s", line_with(out, "reports"))
    assert re.search(r"imports\s+paused\s+1\s+0\s+0\s", line_with(out, "imports"))

    alive = line_with(out, "host-a")
    assert re.search(r"host-a\s+4242\s+emails, reports\s+4\s+\d+s ago\s+alive\s+2\s+1234$", alive)
    assert re.search(
        r"host-b\s+99\s+\*\s+1\s+10m 0\ds ago\s+stale\s+0\s+7$", line_with(out, "host-b")
    )
    assert "host-gone" not in out

    running = job_line(out, reports[0])
    # Started 20 s ago and 40% done: 30 s to go (and the seconds this test took).
    assert tasks.noop.name in running and "host-a-4242-abc123" in running
    assert re.search(r"40%\s+section 2/5\s+3\ds\s+2\ds$", running), running
    reserved = job_line(out, reports[1])
    assert re.search(r"0%\s+\(reserved\)\s+-\s+-$", reserved), reserved
    # The longest-running first; a reserved job (not started yet) after it.
    assert out.index(running) < out.index(reserved)


@pytest.mark.django_db
def test_top_once_on_an_empty_database():
    out = cli("top", "--once")
    assert "pending 0  running 0  failed 0  workers 0 alive" in out
    assert "no queues yet" in out and "no worker is running" in out
    assert "no job is running" in out


@pytest.mark.django_db
def test_top_shows_the_longest_running_jobs_up_to_the_limit():
    held = enqueue(5, "busy")
    for age, job in zip((50, 10, 40, 20, 30), held, strict=True):
        set_running(job, worker="w-1-x", started_ago=age, message=f"ran {age}")
    out = cli("top", "--once", "--limit", "2")
    assert "Running jobs (the 2 longest-running of 5)" in out
    assert "ran 50" in out and "ran 40" in out
    assert "ran 30" not in out and "ran 20" not in out and "ran 10" not in out
    assert out.index("ran 50") < out.index("ran 40")


@pytest.mark.django_db
def test_top_rejects_a_bad_interval_or_limit():
    for args in (["--interval", "0"], ["--interval", "x"], ["--limit", "-1"]):
        with pytest.raises(CommandError):
            cli("top", "--once", *args)


@pytest.mark.django_db
def test_reading_a_frame_costs_the_same_queries_whatever_the_jobs():
    """No query per running job, worker or minute: a frame costs the same on a table of
    ten jobs and on one of ten million."""

    def queries():
        with CaptureQueriesContext(connection) as captured:
            top.gather(jobs.db)
        return len(captured)

    enqueue(1, "a")
    set_running(enqueue(1, "a")[0], worker="w-1-x", progress=0.5)
    add_worker("h", 1)
    add_minutes("a", COMPLETED, {1: 3})
    few = queries()
    for job in enqueue(12, "a"):
        set_running(job, worker="w-1-x", progress=0.2)
    for i in range(5):
        add_worker(f"h{i}", 10 + i)
    add_minutes("a", COMPLETED, {2: 3, 3: 4, 4: 5})
    add_minutes("a", FAILED, {2: 1})
    assert queries() == few


@pytest.mark.django_db
def test_the_picture_of_top_in_the_docs(tmp_path):
    """``docs/images/cli-top.svg``: a frame recorded with rich and saved as SVG."""
    for name in ("default", "emails", "reports", "imports"):
        Queue.objects.ensure(name)
    for job in enqueue(12, "emails"):
        Job.objects.filter(pk=job.pk).update(task_name="shop.jobs.send_email")
    enqueue(3, "default")
    enqueue(40, "imports")
    jobs.pause_queue("imports")
    for job in enqueue(2, "default"):
        set_failed(job)
    reports = enqueue(4, "reports")
    steps = [(0.85, "section 17/20", 94), (0.6, "section 12/20", 61), (0.25, "section 5/20", 20)]
    for job, (done, message, age) in zip(reports, steps, strict=False):
        Job.objects.filter(pk=job.pk).update(task_name="shop.jobs.build_report")
        set_running(
            job, worker="web-1-31337-9f2c1a", progress=done, message=message, started_ago=age
        )
    Job.objects.filter(pk=reports[3].pk).update(task_name="shop.jobs.build_report")
    add_worker(
        "web-1",
        31337,
        queues=["reports", "default"],
        concurrency=4,
        jobs_processed=1873,
        current_jobs=[job.pk for job in reports[:3]],
    )
    ages = {"emails": 42, "imports": 25 * 60 + 9, "reports": 7}
    for queue, age in ages.items():
        oldest = Job.objects.filter(queue=queue, status=JobStatus.PENDING).order_by("id").first()
        Job.objects.filter(pk=oldest.pk).update(
            scheduled_at=timezone.now() - timedelta(seconds=age)
        )
    add_worker("web-2", 40021, queues=["emails"], concurrency=8, jobs_processed=5310)
    add_worker("batch-1", 2210, heartbeat_ago=240, queues=["imports"], jobs_processed=12)
    shape = [3, 5, 9, 14, 12, 18, 22, 19, 25, 31, 28, 26, 33, 30, 14]
    add_minutes(
        "emails", COMPLETED, {14 - i: n for i, n in enumerate(shape)}, task="shop.jobs.send_email"
    )
    add_minutes("emails", FAILED, {3: 2, 1: 1}, task="shop.jobs.send_email")
    add_minutes(
        "reports",
        COMPLETED,
        {14 - i: n // 6 for i, n in enumerate(shape)},
        task="shop.jobs.build_report",
    )

    recorded = top.record(top.gather(jobs.db), width=118)
    text = recorded.export_text(clear=False)
    assert "shop.jobs.build_report" in text and "section 17/20" in text and "web-2" in text
    out = DOCS if os.environ.get("JOBS_DOCS_SCREENSHOTS") else tmp_path
    path = Path(out) / "cli-top.svg"
    recorded.save_svg(str(path), title="manage.py jobs top")
    svg = path.read_text()
    assert svg.startswith("<svg") and "django_jobs" in svg and "build_report" in svg


# -- jobs wait (no worker) ----------------------------------------------------------------


@pytest.mark.django_db
def test_wait_gives_up_after_the_timeout_and_the_job_goes_on():
    job = jobs.enqueue(tasks.noop)
    out = StringIO()
    with pytest.raises(CommandError, match=rf"Job {job.pk} is not finished after 0.3s \(pending\)"):
        call_command("jobs", "wait", str(job.pk), "--timeout", "0.3", stdout=out)
    assert out.getvalue().splitlines() == ["[------------------------------]   0% pending"]
    assert Job.objects.get(pk=job.pk).status == JobStatus.PENDING


@pytest.mark.django_db
def test_wait_for_a_failed_job_prints_its_error_and_exits_1():
    job = jobs.enqueue(tasks.noop)
    set_failed(job)
    out = StringIO()
    with pytest.raises(SystemExit) as exited:
        call_command("jobs", "wait", str(job.pk), stdout=out)
    assert exited.value.code == 1
    assert out.getvalue().splitlines() == [f"job {job.pk} failed", "ValueError: no"]


@pytest.mark.django_db
def test_wait_for_an_unknown_job_is_a_clear_error():
    with pytest.raises(CommandError, match="No job with id '424242'"):
        cli("wait", "424242")


# -- in new processes, with a real worker -------------------------------------------------


def default_sigint() -> None:
    """In the child: Ctrl-C as in a terminal, even when this test run ignores SIGINT
    (nohup, some CI runners): Python only turns SIGINT into KeyboardInterrupt when it
    starts with the signal's default action."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def command_env(extra=None):
    """The environment of a ``python -m django`` process on the test database."""
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES", "FORCE_COLOR")}
    env["JOBS_TEST_DB_NAME"] = str(connection.settings_dict["NAME"])
    env["DJANGO_SETTINGS_MODULE"] = "tests.settings"
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra or {})
    return env


def in_pty(args, *, when=None, timeout=60.0, size=(40, 120)):
    """Run ``python -m django jobs ARGS`` on a pseudo-terminal; returns (exit code, what
    it drew). ``when``: ``{text: action}``, ``action(process)`` called once as soon as
    ``text`` is on the screen."""
    actions = dict(when or {})
    primary, secondary = pty.openpty()
    fcntl.ioctl(secondary, termios.TIOCSWINSZ, struct.pack("HHHH", *size, 0, 0))
    with tempfile.TemporaryFile("w+") as errors:
        proc = subprocess.Popen(
            [sys.executable, "-m", "django", "jobs", *args],
            stdin=secondary,
            stdout=secondary,
            stderr=errors,
            env=command_env(),
            cwd=ROOT,
            start_new_session=True,
            preexec_fn=default_sigint,
        )
        os.close(secondary)
        drawn = b""
        started = time.monotonic()
        try:
            while True:
                for text, action in list(actions.items()):
                    if text in ANSI.sub("", drawn.decode(errors="replace")):
                        del actions[text]
                        action(proc)
                if time.monotonic() - started > timeout:
                    pytest.fail(f"jobs {args} still running after {timeout}s:\n{drawn!r}")
                if not select.select([primary], [], [], 0.1)[0]:
                    continue
                try:
                    chunk = os.read(primary, 65536)
                except OSError:  # EIO: the process exited and its terminal closed
                    break
                if not chunk:
                    break
                drawn += chunk
            code = proc.wait(timeout=10)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            os.close(primary)
        errors.seek(0)
        logged = errors.read()
    return code, drawn.decode() + (f"\n--- stderr ---\n{logged}" if code else "")


def percents(lines):
    return [int(m.group(1)) for line in lines if (m := re.search(r"\s(\d+)%\s", line))]


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_wait_follows_a_running_job_line_by_line_when_piped(workers):
    job = jobs.enqueue(tasks.progress_steps, args=["piped", 8, 0.4], queue="waitq")
    proc = subprocess.Popen(
        [sys.executable, "-m", "django", "jobs", "wait", str(job.pk), "--timeout", "60"],
        env=command_env(),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # Following the job from before a worker takes it, so every step is seen.
        first = proc.stdout.readline()
        assert first == "[------------------------------]   0% pending\n"
        workers.start("--queues", "waitq", "--concurrency", "1")
        rest, errors = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    output = first + rest
    assert proc.returncode == 0, output + errors
    lines = output.splitlines()
    assert "\x1b[" not in output
    assert lines[-2:] == [f"job {job.pk} completed", "8"], output
    bars = lines[:-2]
    seen = percents(bars)
    assert seen == sorted(seen), output  # progress only goes up
    assert len({p for p in seen if 0 < p < 100}) >= 3, output
    assert any(re.search(r"step \d/8 · ETA \d+s · \d+s elapsed$", line) for line in bars)
    assert len(bars) == len(set(bars)), "a line per change, not per poll"


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_enqueue_wait_of_a_failing_job_exits_1_with_its_error(workers):
    workers.start("--queues", "default", "--concurrency", "1")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "django",
            "jobs",
            "enqueue",
            tasks.permanent_failure.name,
            "--args",
            json.dumps(["boom"]),
            "--wait",
            "--timeout",
            "60",
        ],
        env=command_env(),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    job_id, *_, status, error = done.stdout.splitlines()
    assert status == f"job {job_id} failed" and error.startswith("ValueError: ")


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_wait_draws_a_live_bar_with_eta_on_a_terminal(workers):
    job = jobs.enqueue(tasks.progress_steps, args=["tty", 8, 0.4], queue="waitq")
    start_worker = {"pending": lambda _: workers.start("--queues", "waitq", "--concurrency", "1")}
    code, drawn = in_pty(["wait", str(job.pk)], when=start_worker)
    assert code == 0, drawn
    assert "\x1b[" in drawn  # a terminal: colours and a bar redrawn in place
    frames = [ANSI.sub("", frame) for frame in re.split(r"[\r\n]", drawn)]
    bars = [f for f in frames if f.startswith(f"job {job.pk} ") and "%" in f]
    seen = percents(bars)
    assert seen == sorted(seen) and len({p for p in seen if 0 < p < 100}) >= 3, bars
    assert any(re.search(r"ETA\s+\d+s\s+\d+s elapsed step \d/8", f) for f in bars), bars
    assert re.search(r"completed .* 100% ", bars[-1]), bars[-1]
    assert [f for f in frames if f.strip()][-2:] == [f"job {job.pk} completed", "8"]


@pytest.mark.django_db(transaction=True)
def test_top_takes_the_screen_and_gives_it_back_on_ctrl_c():
    Queue.objects.ensure("screenq")
    ctrl_c = {"screenq": lambda proc: proc.send_signal(signal.SIGINT)}
    code, drawn = in_pty(["top", "--interval", "0.2"], when=ctrl_c)
    assert code == 0, drawn
    assert drawn.count("\x1b[?1049h") == 1 and drawn.rstrip().endswith("\x1b[?1049l")
    assert "screenq" in drawn and "Ctrl-C quits" in drawn
    assert "Traceback" not in drawn


@pytest.mark.django_db(transaction=True)
def test_ctrl_c_stops_waiting_and_leaves_the_job_alone():
    job = jobs.enqueue(tasks.noop, queue="nobody-serves-this")
    proc = subprocess.Popen(
        [sys.executable, "-m", "django", "jobs", "wait", str(job.pk)],
        env=command_env(),
        cwd=ROOT,
        preexec_fn=default_sigint,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout.readline() == "[------------------------------]   0% pending\n"
        proc.send_signal(signal.SIGINT)
        out, errors = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, out + errors
    assert errors.strip() == f"Stopped waiting: job {job.pk} is still pending."
    assert Job.objects.get(pk=job.pk).status == JobStatus.PENDING
