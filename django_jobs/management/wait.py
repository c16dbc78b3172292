"""``jobs wait`` and ``jobs enqueue --wait``: follow a job until it finishes.

On a terminal a live progress bar (status, bar, percent, ETA from ``Job.eta``, time
running, message) is redrawn in place; when the output is a pipe or a file a plain line is
written each time the status, the percent or the message changes, so logs stay readable.
"""

from __future__ import annotations

import time

from django.utils import timezone
from rich.console import Console
from rich.progress import BarColumn, Progress, ProgressColumn, Task, TextColumn
from rich.text import Text

from ..models import Job
from .terminal import console_for, short_duration, status_style

POLL_SECONDS = 0.2
# What following a job reads on each poll: its arguments and result only at the end.
WATCHED = ["status", "progress", "progress_message", "started_at", "finished_at"]
PLAIN_BAR_WIDTH = 30
STEPS = 1000  # the live bar's resolution (rich counts steps in integers)


def follow(job: Job, out, *, timeout: float | None = None, poll: float = POLL_SECONDS) -> Job:
    """Refresh ``job`` until it is finished, showing its progress on ``out`` (a command's
    stdout); returns it, reloaded in full. Raises ``TimeoutError`` after ``timeout``
    seconds (the job goes on)."""
    deadline = None if timeout is None else time.monotonic() + timeout
    console = console_for(out)
    if console.is_terminal:
        _live(job, console, deadline, timeout, poll)
    else:
        _plain(job, out, deadline, timeout, poll)
    job.refresh_from_db()
    return job


def _wait_a_poll(job: Job, deadline: float | None, timeout: float | None, poll: float) -> None:
    if deadline is not None and time.monotonic() > deadline:
        raise TimeoutError(f"Job {job.pk} is not finished after {timeout}s ({job.status}).")
    time.sleep(poll)
    job.refresh_from_db(fields=WATCHED)


# -- a pipe or a file: a line per change -------------------------------------------------


def _plain(job: Job, out, deadline: float | None, timeout: float | None, poll: float) -> None:
    last = None
    while not job.is_finished:
        seen = (job.status, round(job.progress * 100), job.progress_message)
        if seen != last:
            out.write(plain_line(job))
            out.flush()
            last = seen
        _wait_a_poll(job, deadline, timeout, poll)


def plain_line(job: Job, width: int = PLAIN_BAR_WIDTH) -> str:
    """``[#########---------------------]  30% running   step 3/10 · ETA 7s · 3s elapsed``"""
    done = int(job.progress * width)
    line = f"[{'#' * done}{'-' * (width - done)}] {job.progress:4.0%} {job.status:9}"
    extras = [job.progress_message] if job.progress_message else []
    eta = job.eta_seconds
    if eta is not None:
        extras.append(f"ETA {short_duration(eta)}")
    runtime = _runtime(job)
    if runtime is not None:
        extras.append(f"{short_duration(runtime)} elapsed")
    return f"{line} {' · '.join(extras)}".rstrip()


# -- a terminal: a live bar --------------------------------------------------------------


class _StatusColumn(ProgressColumn):
    def render(self, task: Task) -> Text:
        status = task.fields["status"]
        return Text(f"{status:9}", style=status_style(status))


class _EtaColumn(ProgressColumn):
    def render(self, task: Task) -> Text:
        eta = task.fields["eta"]
        return Text(f"ETA {short_duration(eta):>6}", style="cyan" if eta is not None else "dim")


class _RuntimeColumn(ProgressColumn):
    def render(self, task: Task) -> Text:
        runtime = task.fields["runtime"]
        return Text(f"{short_duration(runtime):>7} elapsed", style="dim")


def _fields(job: Job) -> dict:
    return {
        "status": job.status,
        "message": job.progress_message,
        "eta": job.eta_seconds,
        "runtime": _runtime(job),
    }


def _live(
    job: Job, console: Console, deadline: float | None, timeout: float | None, poll: float
) -> None:
    bar = BarColumn(bar_width=40, complete_style="green", finished_style="bold green")
    progress = Progress(
        TextColumn(f"job {job.pk}", style="bold"),
        _StatusColumn(),
        bar,
        TextColumn("{task.percentage:>3.0f}%"),
        _EtaColumn(),
        _RuntimeColumn(),
        TextColumn("{task.fields[message]}", markup=False),
        console=console,
        refresh_per_second=10,
    )
    with progress:
        task = progress.add_task("", total=STEPS, completed=_steps(job), **_fields(job))
        while not job.is_finished:
            _wait_a_poll(job, deadline, timeout, poll)
            progress.update(task, completed=_steps(job), **_fields(job))
        if job.status != "completed":
            bar.complete_style = "red"
        progress.refresh()


def _steps(job: Job) -> int:
    return round(job.progress * STEPS)


def _runtime(job: Job) -> float | None:
    if job.started_at is None:
        return None
    return ((job.finished_at or timezone.now()) - job.started_at).total_seconds()
