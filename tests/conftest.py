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
        log = open(self.tmp_path / f"worker-{len(self.procs)}.log", "w+")
        proc = subprocess.Popen(
            [sys.executable, "-m", "django", "runworkers", *args],
            env=self.env(env), cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
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
        for proc in self.procs:
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait(timeout=10)
            proc.log.close()


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
