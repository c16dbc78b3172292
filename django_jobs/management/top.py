"""``manage.py jobs top``: queues, workers and running jobs, redrawn in the terminal.

:func:`gather` reads a :class:`Snapshot` with queries that stay cheap on a table of ten
million jobs: the queues with the counts the admin and the API show (``with_counts``:
unfinished jobs counted through their indexes, failed ones bounded or estimated), the
rates from the per-minute rollup rows the workers write (indexed by period, whatever the
job table holds), the workers' own rows, and at most ``limit`` held jobs (reserved or
running: few, and indexed). :func:`render` draws a snapshot with rich; :func:`run`
redraws it every ``interval`` seconds until Ctrl-C.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.db import DatabaseError, connections
from django.db.models import F
from django.utils import timezone
from rich import box
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from ..models import Job, Queue, Worker
from ..models.queue_counts import with_counts
from ..models.rollup import COMPLETED, FAILED, per_minute
from .terminal import console_for, short_duration, status_style

RATE_MINUTES = 5  # rates are per minute over the last five minutes, this one included
SPARK_MINUTES = 15  # the throughput sparkline: completed jobs in each of the last 15
MAX_WORKERS_SHOWN = 20
MAX_WORKERS_READ = 500
BAR_WIDTH = 16
NARROW = 110  # a terminal narrower than this gets fewer columns
SPARKS = "▁▂▃▄▅▆▇█"
# What the running-jobs table shows of a job: no arguments, results or errors to load.
JOB_FIELDS = (
    "id",
    "task_name",
    "queue",
    "status",
    "worker_id",
    "started_at",
    "progress",
    "progress_message",
)


@dataclass
class QueueLine:
    name: str
    paused: bool
    pending: int  # claimable: pending, or waiting for a retry (delayed ones included)
    running: int  # held: reserved or running
    failed: int  # failed in this queue (dead-lettered ones included); estimated when huge
    oldest_pending: float | None  # seconds the oldest due job has waited
    completed_per_minute: float
    failed_per_minute: float
    completed_by_minute: list[int]  # the last SPARK_MINUTES minutes, oldest first


@dataclass
class Snapshot:
    db: str
    at: datetime
    queues: list[QueueLine]
    workers: list[Worker]  # not stopped: alive first, then stale
    running: list[Job]  # the longest-running held jobs, at most ``limit``
    running_total: int
    seconds: float  # how long reading it took

    @property
    def alive(self) -> int:
        return sum(1 for w in self.workers if w.is_alive)


def gather(db: str, limit: int = 20, now: datetime | None = None) -> Snapshot:
    """Everything ``top`` shows, read now from the job database ``db``."""
    started = time.monotonic()
    now = now or datetime.now(UTC)
    current = now.replace(second=0, microsecond=0)
    minutes = [current - timedelta(minutes=SPARK_MINUTES - 1 - i) for i in range(SPARK_MINUTES)]
    counts = per_minute(db, minutes[0], (COMPLETED, FAILED))
    recent = minutes[-RATE_MINUTES:]
    # The current minute is counted as far as it went (its row is a few seconds behind at
    # most: workers write every few seconds), so a rate moves as soon as work does.
    window = (now - recent[0]).total_seconds() / 60

    queues = []
    for queue in with_counts(Queue.objects.using(db).all()).order_by("name"):
        done = [counts.get((queue.name, COMPLETED, m), 0) for m in minutes]
        failed = sum(counts.get((queue.name, FAILED, m), 0) for m in recent)
        oldest = queue.oldest_due  # type: ignore[attr-defined]
        queues.append(
            QueueLine(
                name=queue.name,
                paused=queue.paused,
                pending=queue.pending,  # type: ignore[attr-defined]
                running=queue.running,  # type: ignore[attr-defined]
                failed=queue.failed,  # type: ignore[attr-defined]
                oldest_pending=max(0.0, (now - oldest).total_seconds()) if oldest else None,
                completed_per_minute=sum(done[-RATE_MINUTES:]) / window,
                failed_per_minute=failed / window,
                completed_by_minute=done,
            )
        )

    # Stale rows stay until they are aged out (a day): the freshest are enough to count.
    latest = Worker.objects.using(db).unstopped().order_by("-last_heartbeat_at")
    workers = sorted(
        latest[:MAX_WORKERS_READ], key=lambda w: (not w.is_alive, w.hostname, w.pid, w.pk)
    )
    running = list(
        Job.objects.using(db)
        .held()
        .order_by(F("started_at").asc(nulls_last=True), "id")
        .only(*JOB_FIELDS)[:limit]
    )
    return Snapshot(
        db=db,
        at=now,
        queues=queues,
        workers=workers,
        running=running,
        running_total=max(len(running), sum(q.running for q in queues)),
        seconds=time.monotonic() - started,
    )


# -- drawing ----------------------------------------------------------------------------


def render(snapshot: Snapshot, interval: float | None = None, width: int = 120) -> Group:
    """A snapshot as rich renderables: a header, then the queues, workers and running
    jobs tables. Below :data:`NARROW` columns of ``width``, the sparkline and the worker
    of each running job are left out."""
    gap = Text("")
    narrow = width < NARROW
    return Group(
        _header(snapshot, interval),
        gap,
        _queues(snapshot, narrow),
        gap,
        _workers(snapshot),
        gap,
        _running(snapshot, narrow),
    )


def _header(snapshot: Snapshot, interval: float | None) -> Text:
    at = timezone.localtime(snapshot.at).strftime("%Y-%m-%d %H:%M:%S %Z")
    title = Text.assemble(
        ("django_jobs top", "bold"),
        f"  database {snapshot.db!r} · {at} · read in {snapshot.seconds * 1000:.0f} ms",
    )
    if interval is not None:
        title.append(f" · every {interval:g} s, Ctrl-C quits", style="dim")
    queues = snapshot.queues
    stale = len(snapshot.workers) - snapshot.alive
    done = sum(q.completed_per_minute for q in queues)
    failed_rate = sum(q.failed_per_minute for q in queues)
    summary = Text.assemble(
        ("pending ", "dim"),
        (str(sum(q.pending for q in queues)), "bold cyan"),
        ("  running ", "dim"),
        (str(snapshot.running_total), "bold blue"),
        ("  failed ", "dim"),
        (str(sum(q.failed for q in queues)), "bold red"),
        ("  workers ", "dim"),
        (f"{snapshot.alive} alive", "bold green"),
        (f", {stale} stale" if stale else "", "bold yellow"),
        ("  completed ", "dim"),
        (f"{done:.1f}/min", "bold green"),
        ("  failed ", "dim"),
        (f"{failed_rate:.1f}/min", "bold red" if failed_rate else ""),
        (f"  (last {RATE_MINUTES} min)", "dim"),
    )
    return Text("\n").join([title, summary])


def _table(title: str, empty: str) -> Table:
    return Table(
        title=title,
        title_justify="left",
        title_style="bold",
        box=box.SIMPLE_HEAD,
        show_edge=False,
        header_style="bold",
        pad_edge=False,
        padding=(0, 1, 0, 0),
        expand=False,
        caption=empty or None,
        caption_justify="left",
        caption_style="dim",
    )


def _number(table: Table, header: str) -> None:
    """A column that keeps its width (and never wraps) when the terminal is narrow."""
    table.add_column(header, justify="right", no_wrap=True)


def _words(table: Table, header: str, max_width: int, min_width: int = 8) -> None:
    """A column that gives up width first when the terminal is narrow (its cells,
    ``_cut``, end in an ellipsis instead of wrapping)."""
    table.add_column(header, min_width=min_width, max_width=max_width)


def _cut(text: str, style: str = "") -> Text:
    return Text(text, style=style, no_wrap=True, overflow="ellipsis")


def _queues(snapshot: Snapshot, narrow: bool = False) -> Table:
    table = _table("Queues", "" if snapshot.queues else "no queues yet")
    _words(table, "queue", 30, min_width=10)
    table.add_column("state", no_wrap=True)
    for name in ("pending", "running", "failed", "oldest", "done/min", "failed/min"):
        _number(table, name)
    if not narrow:
        table.add_column(f"last {SPARK_MINUTES} min", no_wrap=True)
    for q in snapshot.queues:
        cells: list[RenderableType] = [
            _cut(q.name),
            Text("paused", style="bold yellow") if q.paused else Text("active", style="dim"),
            str(q.pending),
            Text(str(q.running), style="blue" if q.running else ""),
            Text(str(q.failed), style="red" if q.failed else ""),
            short_duration(q.oldest_pending),
            f"{q.completed_per_minute:.1f}",
            Text(f"{q.failed_per_minute:.1f}", style="red" if q.failed_per_minute else ""),
        ]
        if not narrow:
            cells.append(Text(sparkline(q.completed_by_minute), style="green"))
        table.add_row(*cells)
    return table


def _workers(snapshot: Snapshot) -> Table:
    shown = snapshot.workers[:MAX_WORKERS_SHOWN]
    more = len(snapshot.workers) - len(shown)
    title = "Workers" + (f" ({len(shown)} of {len(snapshot.workers)} shown)" if more else "")
    table = _table(title, "" if shown else "no worker is running")
    _words(table, "host", 30)
    _number(table, "pid")
    _words(table, "queues", 40)
    for name in ("concurrency", "heartbeat"):
        _number(table, name)
    table.add_column("state", no_wrap=True)
    for name in ("running", "processed"):
        _number(table, name)
    for w in shown:
        queues = ", ".join(w.queues) if w.queues else "*"
        if w.exclude_queues:
            queues += " but " + ", ".join(w.exclude_queues)
        table.add_row(
            _cut(w.hostname),
            str(w.pid),
            _cut(queues),
            str(w.concurrency),
            short_duration(w.heartbeat_age.total_seconds()) + " ago",
            Text("alive", style="bold green") if w.is_alive else Text("stale", style="bold yellow"),
            str(len(w.current_jobs or [])),
            str(w.jobs_processed),
        )
    return table


def _running(snapshot: Snapshot, narrow: bool = False) -> Table:
    shown, total = len(snapshot.running), snapshot.running_total
    title = "Running jobs" + (f" (the {shown} longest-running of {total})" if total > shown else "")
    table = _table(title, "" if shown else "no job is running")
    _number(table, "id")
    _words(table, "task", 40, min_width=12)
    _words(table, "queue", 16)
    if not narrow:
        _words(table, "worker", 24)
    table.add_column("progress", no_wrap=True)
    _number(table, "%")
    _words(table, "message", 40)
    _number(table, "ETA")
    _number(table, "runtime")
    now = timezone.now()
    for job in snapshot.running:
        started = job.started_at
        message = _cut(job.progress_message)
        if job.status != "running":
            message = _cut(f"({job.status})", style=status_style(job.status))
        bar = ProgressBar(
            total=100.0,
            completed=job.progress * 100,
            width=BAR_WIDTH // 2 if narrow else BAR_WIDTH,
            complete_style="green",
            finished_style="bold green",
        )
        worker = [] if narrow else [_cut(job.worker_id or "-")]
        table.add_row(
            str(job.pk),
            _cut(job.task_name),
            _cut(job.queue),
            *worker,
            bar,
            f"{job.progress:.0%}",
            message,
            short_duration(job.eta_seconds),
            short_duration((now - started).total_seconds() if started else None),
        )
    return table


def sparkline(values: list[int]) -> str:
    """One block per value, scaled to the largest; a blank for nothing."""
    top = max(values, default=0)
    if not top:
        return " " * len(values)
    last = len(SPARKS) - 1
    return "".join(SPARKS[min(last, round(v / top * last))] if v else " " for v in values)


# -- running ----------------------------------------------------------------------------


def frames(
    db: str, limit: int, interval: float, width: Callable[[], int]
) -> Iterator[RenderableType]:
    """A frame every ``interval`` seconds (minus the time it took to read it). A database
    error is shown in place of a frame and the connection reopened for the next."""
    while True:
        started = time.monotonic()
        try:
            yield render(gather(db, limit), interval, width())
        except DatabaseError as exc:
            connections[db].close()
            yield Text(f"django_jobs top: the database is not answering ({exc})", style="red")
        time.sleep(max(0.0, interval - (time.monotonic() - started)))


def run(out, db: str, *, interval: float = 1.0, limit: int = 20, once: bool = False):
    """``jobs top`` on ``out``: one frame with ``once``; else a full-screen view redrawn
    every ``interval`` seconds on a terminal, or a frame after another when ``out`` is a
    pipe or a file. Returns on Ctrl-C."""
    console = console_for(out)
    if once:
        _print(console, render(gather(db, limit), width=console.width))
        return
    try:
        if console.is_terminal:
            with Live(console=console, screen=True, auto_refresh=False) as live:
                for frame in frames(db, limit, interval, lambda: console.width):
                    live.update(frame, refresh=True)
        else:
            for frame in frames(db, limit, interval, lambda: console.width):
                _print(console, frame)
                console.file.write("\n")
                console.file.flush()
    except KeyboardInterrupt:
        return


def _print(console: Console, frame: RenderableType) -> None:
    """``console.print``, without the blanks that pad each line to the full width when
    the output is plain text (a log, a file, a pipe)."""
    if console.is_terminal:
        console.print(frame)
        return
    with console.capture() as captured:
        console.print(frame)
    lines = captured.get().splitlines()
    console.file.write("".join(line.rstrip() + "\n" for line in lines))


def record(snapshot: Snapshot, width: int = 120) -> Console:
    """A console that drew ``snapshot`` and can export it (``save_svg``, ``export_text``)."""
    console = Console(record=True, width=width, force_terminal=True, file=io.StringIO())
    console.print(render(snapshot, width=width))
    return console
