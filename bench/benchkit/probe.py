"""Timestamps written by the peers' no-op tasks, cheaply.

The peers (procrastinate, pgqueuer, Celery) keep no start/finish times we can read back
uniformly, so their task's first line calls ``record(tag)``: it appends ``(tag, time)`` to
an in-process list, and a daemon thread writes the list to a per-process file every 50 ms
(no network, no database, so nothing is added to the system under test's own
traffic). The orchestrator reads the files of a run directory.

Each line is ``<tag> <unix time>``; the tag is ``-`` for anonymous jobs.
"""

from __future__ import annotations

import atexit
import os
import threading
import time
from pathlib import Path

_lock = threading.Lock()
_buf: list[str] = []
_pid: int | None = None
_path: Path | None = None

FLUSH_EVERY = 0.05  # seconds


def _flusher() -> None:
    global _buf
    while True:
        time.sleep(FLUSH_EVERY)
        _flush()


def _flush() -> None:
    global _buf
    with _lock:
        lines, _buf = _buf, []
    if lines and _path is not None:
        with open(_path, "a") as f:
            f.write("".join(lines))


def _start() -> None:
    global _pid, _path, _buf
    directory = os.environ.get("BENCH_PROBE_DIR")
    _pid = os.getpid()
    _buf = []  # a forked child must not re-write its parent's lines
    if not directory:
        _path = None
        return
    Path(directory).mkdir(parents=True, exist_ok=True)
    _path = Path(directory) / f"{_pid}.txt"
    threading.Thread(target=_flusher, name="bench-probe", daemon=True).start()
    atexit.register(_flush)  # a worker that exits on its own (drain mode) keeps its tail


def record(tag: object = "-") -> None:
    now = time.time()
    if _pid != os.getpid():  # first call in this process (Celery forks its children)
        with _lock:
            if _pid != os.getpid():
                _start()
    with _lock:
        _buf.append(f"{tag} {now:.6f}\n")


# -- reading, for the orchestrator ---------------------------------------------------


class ProbeReader:
    """Reads the files of one probe directory incrementally."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.offsets: dict[Path, int] = {}
        self.records: list[tuple[str, float]] = []
        self._partial: dict[Path, str] = {}

    def poll(self) -> int:
        """Read what was appended since the last poll; returns the total record count."""
        if self.directory.exists():
            for path in self.directory.glob("*.txt"):
                offset = self.offsets.get(path, 0)
                with open(path) as f:
                    f.seek(offset)
                    chunk = f.read()
                    self.offsets[path] = f.tell()
                if not chunk:
                    continue
                chunk = self._partial.pop(path, "") + chunk
                lines = chunk.split("\n")
                if lines[-1]:
                    self._partial[path] = lines[-1]
                for line in lines[:-1]:
                    tag, _, ts = line.partition(" ")
                    if ts:
                        self.records.append((tag, float(ts)))
        return len(self.records)
