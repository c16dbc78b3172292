import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.db import connection

ROOT = Path(__file__).resolve().parent.parent


def wait_until(condition, timeout=20.0, interval=0.05, message="condition"):
    """Poll ``condition`` until it is truthy; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {message}")
        time.sleep(interval)


class WorkerProcs:
    """Starts ``manage.py runworkers`` as real subprocesses on the test database."""

    def __init__(self, tmp_path):
        self.procs = []
        self.tmp_path = tmp_path

    def env(self, extra=None):
        env = dict(os.environ)
        env["JOBS_TEST_DB_NAME"] = str(connection.settings_dict["NAME"])
        env["DJANGO_SETTINGS_MODULE"] = "tests.settings"
        env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
        env.update(extra or {})
        return env

    def start(self, *args, env=None):
        log = open(self.tmp_path / f"worker-{len(self.procs)}.log", "w+")  # noqa: SIM115 - closed by stop_all
        proc = subprocess.Popen(
            [sys.executable, "-m", "django", "runworkers", *args],
            env=self.env(env),
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        proc.log = log
        self.procs.append(proc)
        return proc

    def run(self, *args, timeout=120, env=None):
        """Run to completion (e.g. --burst); returns (exit code, output)."""
        proc = self.start(*args, env=env)
        try:
            code = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            pytest.fail(f"runworkers {args} did not exit in {timeout}s:\n{self.output(proc)}")
        return code, self.output(proc)

    @staticmethod
    def output(proc):
        proc.log.flush()
        proc.log.seek(0)
        return proc.log.read()

    def stop_all(self):
        """SIGKILL every process the test started and everything they started (worker
        processes under a supervisor run in process groups of their own), and wait until
        they are gone, so none keeps a connection to the test database open."""
        doomed = set()
        for proc in self.procs:
            doomed |= descendants(proc.pid)
            if proc.poll() is None:
                doomed.add(proc.pid)
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        for pid in doomed:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for proc in self.procs:
            proc.wait(timeout=10)
            proc.log.close()
        deadline = time.monotonic() + 10
        while any(_exists(pid) for pid in doomed) and time.monotonic() < deadline:
            time.sleep(0.05)


def _parents() -> dict[int, int]:
    """pid -> parent pid of every process (from /proc)."""
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        # pid (comm) state ppid ...: comm may hold spaces and parentheses.
        found[int(entry)] = int(stat[stat.rindex(")") + 2 :].split()[1])
    return found


def descendants(pid: int) -> set[int]:
    parents = _parents()
    found, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def _exists(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"  # a zombie holds no connection
    except OSError:
        return False


@pytest.fixture
def workers(tmp_path):
    procs = WorkerProcs(tmp_path)
    yield procs
    procs.stop_all()


def vendor():
    return connection.vendor


def pytest_collection_modifyitems(config, items):
    current = connection.vendor if connection.settings_dict else None
    marks = {"postgresql": "postgresql", "mysql": "mysql", "sqlite": "sqlite"}
    for item in items:
        for name, vendor_name in marks.items():
            if item.get_closest_marker(name) and current != vendor_name:
                item.add_marker(pytest.mark.skip(reason=f"needs {vendor_name}"))


@pytest.fixture(autouse=True)
def _rollups_flushed_by_hand():
    """No thread writes counts behind a test's back; what a test leaves unflushed is
    dropped with it (its tables are gone when the process exits)."""
    from django_jobs.models.rollup import rollups

    rollups.autoflush = False
    yield
    rollups.take()
