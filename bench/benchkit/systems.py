"""The systems under test, as the orchestrator sees them: databases, worker commands,
and where timings come from. The library calls live in :mod:`benchkit.client`."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from benchkit import pg

BENCH = Path(__file__).resolve().parent.parent
DJPROJECT = BENCH / "djproject"
VENV_BIN = Path(sys.executable).parent


@dataclass
class System:
    key: str  # --only name
    client: str  # benchkit.client system name
    label: str
    dbname: str | None  # PostgreSQL database, None for Celery
    table: str | None  # the jobs table
    config: str  # how its workers are configured, for the report
    backlog_sql: str = ""
    # Sampled statements that count as "the claim query" (sustained workload).
    claim_pattern: str = r"SKIP LOCKED"
    # Timings from the database (ours, django-tasks-db) or from the probe files (peers).
    db_timings: bool = False
    options: dict = field(default_factory=dict)

    # -- worker processes ---------------------------------------------------------------

    def worker_commands(self, processes: int, drain: bool) -> list[list[str]]:
        raise NotImplementedError

    def drain_exits(self) -> bool:
        """Do drain-mode workers exit by themselves once the queue is empty?"""
        return True

    def env(self, probe_dir: Path) -> dict[str, str]:
        env = dict(os.environ)
        # BENCH_ENGINE_PATH (run.py --engine-ref) shadows the editable install of the
        # working tree, which another engineer may be editing.
        paths = [os.environ.get("BENCH_ENGINE_PATH", ""), str(BENCH), str(DJPROJECT)]
        env["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
        env["BENCH_PROBE_DIR"] = str(probe_dir)
        env["PYTHONUNBUFFERED"] = "1"
        if self.dbname:
            env["BENCH_DB_NAME"] = self.dbname
            env["PGDSN"] = pg.dsn(self.dbname)
        return env

    # -- timings from the database --------------------------------------------------------

    def finished_rows_sql(self) -> str:
        return (
            f"SELECT extract(epoch FROM started_at)::float8, extract(epoch FROM finished_at)"
            f"::float8 FROM {self.table} WHERE finished_at IS NOT NULL"
        )


class Ours(System):
    def worker_commands(self, processes, drain):
        cmd = [
            sys.executable,
            str(DJPROJECT / "manage.py"),
            "runworkers",
            "--processes",
            str(processes),
            "--concurrency",
            str(self.options.get("concurrency", 4)),
            "-v",
            "0",
        ]
        if drain:
            cmd.append("--burst")
        return [cmd]

    def env(self, probe_dir):
        env = super().env(probe_dir)
        env["BENCH_DJANGO_SYSTEM"] = "ours"
        return env


class DjangoTasksDB(System):
    def worker_commands(self, processes, drain):
        cmds = []
        for i in range(processes):
            cmd = [
                sys.executable,
                str(DJPROJECT / "manage.py"),
                "db_worker",
                "--no-reload",
                "--no-startup-delay",
                "--worker-id",
                f"bench-{i}",
                "--interval",
                str(self.options.get("interval", 1.0)),
                "-v",
                "0",
            ]
            if drain:
                cmd.append("--batch")
            cmds.append(cmd)
        return cmds

    def env(self, probe_dir):
        env = super().env(probe_dir)
        env["BENCH_DJANGO_SYSTEM"] = "dtdb"
        return env


class Procrastinate(System):
    def worker_commands(self, processes, drain):
        cmds = []
        for i in range(processes):
            cmd = [
                str(VENV_BIN / "procrastinate"),
                "--app=benchkit.peers.procrastinate_app.app",
                "worker",
                "--name",
                f"bench-{i}",
                "--concurrency",
                str(self.options.get("concurrency", 10)),
            ]
            if drain:
                cmd.append("--one-shot")
            cmds.append(cmd)
        return cmds

    def env(self, probe_dir):
        env = super().env(probe_dir)
        env["BENCH_PROCRASTINATE_DSN"] = pg.dsn(self.dbname)
        return env


class PgQueuer(System):
    def worker_commands(self, processes, drain):
        cmds = []
        for _ in range(processes):
            cmd = [
                sys.executable,
                "-m",
                "benchkit.peers.pgqueuer_app",
                "--batch-size",
                str(self.options.get("batch_size", 100)),
            ]
            if drain:
                cmd += ["--mode", "drain"]
            cmds.append(cmd)
        return cmds

    def env(self, probe_dir):
        env = super().env(probe_dir)
        env["BENCH_PGQUEUER_DSN"] = pg.dsn(self.dbname)
        return env


class Celery(System):
    def worker_commands(self, processes, drain):
        return [
            [
                str(VENV_BIN / "celery"),
                "-A",
                "benchkit.peers.celery_app",
                "worker",
                "--pool",
                "prefork",
                "--concurrency",
                str(processes),
                "-Q",
                "bench",
                "--prefetch-multiplier",
                str(self.options.get("prefetch", 64)),
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
                "--loglevel",
                "WARNING",
                "-n",
                "bench@127.0.0.1",
            ]
        ]

    def drain_exits(self) -> bool:
        return False


def make_systems(processes: int, ours_concurrency: int) -> dict[str, System]:
    return {
        s.key: s
        for s in [
            Ours(
                "ours",
                "ours",
                "django_jobs (ours)",
                "bench_ours",
                "django_jobs_job",
                f"runworkers --processes {processes} --concurrency {ours_concurrency}",
                backlog_sql="SELECT count(*) FROM django_jobs_job WHERE status = 'pending'",
                db_timings=True,
                options={"concurrency": ours_concurrency},
            ),
            DjangoTasksDB(
                "dtdb",
                "dtdb",
                "django-tasks-db",
                "bench_dtdb",
                "django_tasks_database_dbtaskresult",
                f"{processes} x db_worker --interval 1 (default)",
                backlog_sql="SELECT count(*) FROM django_tasks_database_dbtaskresult "
                "WHERE status = 'READY'",
                db_timings=True,
            ),
            Procrastinate(
                "procrastinate",
                "procrastinate",
                "procrastinate",
                "bench_procrastinate",
                "procrastinate_jobs",
                f"{processes} x worker --concurrency 10, async task",
                backlog_sql="SELECT count(*) FROM procrastinate_jobs WHERE status = 'todo'",
                claim_pattern=r"procrastinate_fetch_job",
                options={"concurrency": 10},
            ),
            PgQueuer(
                "pgqueuer",
                "pgqueuer",
                "pgqueuer (batch 100)",
                "bench_pgqueuer",
                "pgqueuer",
                f"{processes} x pgqueuer.run(batch_size=100) (asyncpg, uvloop)",
                backlog_sql="SELECT count(*) FROM pgqueuer WHERE status = 'queued'",
                options={"batch_size": 100},
            ),
            PgQueuer(
                "pgqueuer25",
                "pgqueuer",
                "pgqueuer (batch 25)",
                "bench_pgqueuer25",
                "pgqueuer",
                f"{processes} x pgqueuer.run(batch_size=25) (asyncpg, uvloop)",
                backlog_sql="SELECT count(*) FROM pgqueuer WHERE status = 'queued'",
                options={"batch_size": 25},
            ),
            Celery(
                "celery",
                "celery",
                "Celery + Redis",
                None,
                None,
                f"prefork --concurrency {processes}, prefetch x64, results off, "
                "no gossip/mingle/heartbeat",
            ),
        ]
    }


# -- process handling --------------------------------------------------------------------


class Workers:
    """The worker processes of one system, each in its own session (process group)."""

    def __init__(
        self, system: System, processes: int, drain: bool, probe_dir: Path, log_path: Path
    ) -> None:
        self.log = open(log_path, "ab")  # noqa: SIM115 - closed in stop()
        env = system.env(probe_dir)
        self.started_at = time.time()
        self.procs = [
            subprocess.Popen(
                cmd,
                env=env,
                stdout=self.log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                cwd=str(BENCH),
            )
            for cmd in system.worker_commands(processes, drain)
        ]

    def alive(self) -> bool:
        return any(p.poll() is None for p in self.procs)

    def wait(self, timeout: float) -> bool:
        end = time.time() + timeout
        while time.time() < end:
            if not self.alive():
                return True
            time.sleep(0.05)
        return False

    def stop(self, grace: float = 30.0) -> None:
        for p in self.procs:
            if p.poll() is None:
                try:
                    os.kill(p.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        if not self.wait(grace):
            for p in self.procs:
                if p.poll() is None:
                    try:
                        os.killpg(p.pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
            self.wait(5)
        # Children of a stopped worker (executors, prefork children) go with its group.
        for p in self.procs:
            try:
                os.killpg(p.pid, 0)
            except ProcessLookupError:
                continue
            time.sleep(0.5)
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.log.close()
