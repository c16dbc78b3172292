"""What ``manage.py jobs top`` and ``jobs wait`` share on a terminal: a rich console over
the command's output, durations in a few characters, status colours."""

from __future__ import annotations

import os
from typing import TextIO

from rich.console import Console

from ..enums import JobStatus

# Output that is not a terminal (a pipe, a file, a test's StringIO) is drawn this wide
# unless COLUMNS says otherwise: wide enough for every column of `jobs top`.
PLAIN_WIDTH = 120

STATUS_STYLES: dict[str, str] = {
    JobStatus.WAITING.value: "magenta",
    JobStatus.PENDING.value: "cyan",
    JobStatus.RESERVED.value: "blue",
    JobStatus.RUNNING.value: "bold blue",
    JobStatus.RETRYING.value: "yellow",
    JobStatus.COMPLETED.value: "bold green",
    JobStatus.FAILED.value: "bold red",
    JobStatus.CANCELLED.value: "dim",
}


def raw_stream(out) -> TextIO:
    """The stream under a management command's ``OutputWrapper``: rich writes pieces of
    lines, and the wrapper would end each piece with a newline."""
    return getattr(out, "_out", out)


def console_for(out) -> Console:
    """A rich console on ``out``: colours and cursor movement only on a real terminal
    (whatever FORCE_COLOR says, so that logs stay plain), no colour with NO_COLOR."""
    stream = raw_stream(out)
    tty = is_terminal(stream)
    width = None if tty else (_columns() or PLAIN_WIDTH)
    return Console(file=stream, force_terminal=tty, width=width, highlight=False)


def is_terminal(stream) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def _columns() -> int:
    try:
        return int(os.environ.get("COLUMNS", ""))
    except ValueError:
        return 0


def short_duration(seconds: float | None) -> str:
    """``-``, ``4s``, ``3m 05s``, ``2h 07m``, ``3d 04h``."""
    if seconds is None:
        return "-"
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m {seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h {minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d {hours:02d}h"


def status_style(status: str) -> str:
    return STATUS_STYLES.get(status, "")
