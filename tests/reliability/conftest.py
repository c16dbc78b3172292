"""Helpers of the fault-injection suite: real worker processes, real signals, a real
PostgreSQL restarted under them, hosts in network namespaces of their own.

Run with ``python -m pytest -m reliability tests/reliability`` on PostgreSQL
(``DATABASE_URL=postgres://...``); the README's default test command skips this suite.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import pytest
from django.db import connection

from tests.conftest import ROOT, WorkerProcs, _parents

HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config, items):
    # Several hosts' worth of processes on one SQLite file is not a supported setup; the
    # tests that restart PostgreSQL or reach it from other hosts are marked `postgresql`.
    for item in items:
        if HERE in Path(str(item.fspath)).parents and connection.vendor == "sqlite":
            item.add_marker(
                pytest.mark.skip(
                    reason="the fault-injection suite needs PostgreSQL or MySQL/MariaDB"
                )
            )


# -- the results table ---------------------------------------------------------------------

RESULTS: list[dict] = []


@pytest.fixture
def reliability_report():
    """``reliability_report(what, seconds, jobs, faults, lost=, doubled=, rerun=, note=)``
    adds a row to the results table printed at the end of the run (and written as
    Markdown to ``JOBS_RELIABILITY_REPORT`` when set). *doubled*: jobs that ran twice at
    once, or ran again without a fault to explain it; *rerun*: jobs run again because a
    fault interrupted them (a killed process, a failed query), as at-least-once delivery
    allows."""

    def add(what, seconds, jobs, faults, *, lost, doubled, rerun=0, note=""):
        RESULTS.append(
            {
                "what": what,
                "seconds": seconds,
                "jobs": jobs,
                "faults": faults,
                "lost": lost,
                "doubled": doubled,
                "rerun": rerun,
                "note": note,
            }
        )

    return add


def results_table() -> str:
    lines = [
        "| what ran | seconds | jobs | faults injected | lost | doubled | re-run after "
        "a fault | notes |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in RESULTS:
        lines.append(
            f"| {r['what']} | {r['seconds']:.0f} | {r['jobs']:,} | {r['faults']} | "
            f"{r['lost']} | {r['doubled']} | {r['rerun']} | {r['note']} |"
        )
    return "\n".join(lines)


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if not RESULTS:
        return
    terminalreporter.section("reliability results")
    terminalreporter.write_line(results_table())
    path = os.environ.get("JOBS_RELIABILITY_REPORT")
    if path:
        Path(path).write_text(results_table() + "\n")


def children(pid: int) -> list[int]:
    """Process ids whose parent is ``pid`` (from /proc)."""
    return [child for child, parent in _parents().items() if parent == pid]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


class Cluster(WorkerProcs):
    """Worker subprocesses with a log of the faults injected into them."""

    def __init__(self, tmp_path):
        super().__init__(tmp_path)
        self.kills: list[tuple[float, int, str]] = []  # (time.time(), pid, what)

    def kill(self, pid: int, what: str) -> None:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            return
        self.kills.append((time.time(), pid, what))

    def killed_pids(self) -> set[int]:
        return {pid for _, pid, _ in self.kills}


@pytest.fixture
def cluster(tmp_path):
    procs = Cluster(tmp_path)
    yield procs
    procs.stop_all()


def runs_by_job(label_prefix: str = "") -> dict[int, list]:
    from tests.testapp.models import Execution

    runs = defaultdict(list)
    for run in Execution.objects.filter(label__startswith=label_prefix).order_by("started"):
        runs[run.job_id].append(run)
    return runs


# -- PostgreSQL restarts --------------------------------------------------------------------


def pg_cluster() -> tuple[str, str]:
    version = sorted(os.listdir("/etc/postgresql"))[-1]
    return version, "main"


def restart_postgresql() -> float:
    """Restart the PostgreSQL server (fast shutdown: every connection is cut); returns how
    long it took."""
    version, name = pg_cluster()
    started = time.monotonic()
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", version, name, "restart", "-m", "fast"],
        check=True,
        capture_output=True,
        timeout=120,
    )
    return time.monotonic() - started


def ensure_postgresql_running() -> None:
    version, name = pg_cluster()
    status = subprocess.run(["pg_ctlcluster", version, name, "status"], capture_output=True)
    if status.returncode != 0:
        subprocess.run(
            ["pg_ctlcluster", "--skip-systemctl-redirect", version, name, "start"],
            check=False,
            capture_output=True,
            timeout=120,
        )


def reconnect() -> None:
    """This process's connection after the server went away."""
    deadline = time.monotonic() + 60
    while True:
        connection.close()
        try:
            connection.ensure_connection()
            return
        except Exception:  # not back yet
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


# -- hosts in network namespaces ------------------------------------------------------------


class Hosts:
    """Network namespaces ``jobs-h1``... each with a veth link to this namespace, and a
    TCP forwarder per host from the link's address to PostgreSQL on 127.0.0.1 (which
    listens on loopback only): each host reaches the database over its own network."""

    def __init__(self, count: int, tmp_path: Path):
        self.count = count
        self.tmp_path = tmp_path
        self.forwarders: list[subprocess.Popen] = []
        self.logs: list = []
        self.names = [f"jobs-h{i}" for i in range(1, count + 1)]

    @staticmethod
    def available() -> bool:
        return os.geteuid() == 0 and shutil.which("ip") is not None

    def address(self, i: int) -> str:
        return f"10.231.{i}.1"

    def _ip(self, *args: str) -> None:
        subprocess.run(["ip", *args], check=True, capture_output=True)

    def up(self) -> None:
        self.down()
        for i, name in enumerate(self.names, start=1):
            self._ip("netns", "add", name)
            self._ip("link", "add", f"jh{i}a", "type", "veth", "peer", "name", f"jh{i}b")
            self._ip("link", "set", f"jh{i}b", "netns", name)
            self._ip("addr", "add", f"{self.address(i)}/24", "dev", f"jh{i}a")
            self._ip("link", "set", f"jh{i}a", "up")
            self._ip(
                "netns", "exec", name, "ip", "addr", "add", f"10.231.{i}.2/24", "dev", f"jh{i}b"
            )
            self._ip("netns", "exec", name, "ip", "link", "set", f"jh{i}b", "up")
            self._ip("netns", "exec", name, "ip", "link", "set", "lo", "up")
            log = open(self.tmp_path / f"forward-{i}.log", "w")  # noqa: SIM115
            self.logs.append(log)
            self.forwarders.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        str(HERE / "forward.py"),
                        self.address(i),
                        "5432",
                        "127.0.0.1",
                        "5432",
                    ],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
        time.sleep(0.5)

    def down(self) -> None:
        for proc in self.forwarders:
            proc.kill()
            proc.wait(timeout=10)
        for log in self.logs:
            log.close()
        self.forwarders, self.logs = [], []
        for i, name in enumerate(self.names, start=1):
            subprocess.run(["ip", "netns", "del", name], capture_output=True)
            subprocess.run(["ip", "link", "del", f"jh{i}a"], capture_output=True)

    def command(self, i: int) -> list[str]:
        return ["ip", "netns", "exec", self.names[i - 1]]


def worker_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "django", "runworkers", *args]


def start_on_host(cluster: Cluster, hosts: Hosts, i: int, *args: str, env=None):
    """``runworkers`` inside host ``i``'s namespace, on the test database through the
    host's link."""
    settings_db = connection.settings_dict
    url = f"postgres://{settings_db['USER'] or 'postgres'}@{hosts.address(i)}:5432/x"
    log = open(cluster.tmp_path / f"host{i}-{len(cluster.procs)}.log", "w+")  # noqa: SIM115 - closed by stop_all
    proc = subprocess.Popen(
        [*hosts.command(i), *worker_command(*args)],
        env=cluster.env({"DATABASE_URL": url, **(env or {})}),
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    proc.log = log
    cluster.procs.append(proc)
    return proc
