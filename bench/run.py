#!/usr/bin/env python3
"""django_jobs against its peers, on the local PostgreSQL (and Redis for Celery).

    python3 bench/run.py [--quick] [--jobs N] [--processes 2] [--only ours,pgqueuer,...]
                         [--workloads drain,enqueue,latency,sustained,dbcost]
                         [--sustained-seconds 300]

The first run creates bench/.venv (Python 3.12) and installs this project and the peers
into it; then the script re-runs itself inside it. See bench/README.md.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
VENV = BENCH / ".venv"
VENV_PY = VENV / "bin" / "python"
PYTHONS = ["/root/.pyenv/versions/3.12.1/bin/python", "python3.12", "python3"]
REQUIREMENTS = [
    "-e",
    f"{REPO}[postgres]",
    "Django>=6.1,<6.2",
    "django-tasks-db",
    "procrastinate",
    "pgqueuer",
    "asyncpg",
    "uvloop",
    "celery[redis]",
    "psycopg[binary,pool]>=3.2",
]
ALL_SYSTEMS = ["ours", "dtdb", "procrastinate", "pgqueuer", "pgqueuer25", "celery"]
ALL_WORKLOADS = ["drain", "dbcost", "sustained", "enqueue", "latency"]


def bootstrap() -> None:
    """Create/refresh the virtual environment, then exec this script inside it."""
    if Path(sys.prefix).resolve() == VENV.resolve():
        return
    if not VENV_PY.exists():
        for candidate in PYTHONS:
            try:
                subprocess.run([candidate, "-m", "venv", str(VENV)], check=True)
                break
            except (OSError, subprocess.CalledProcessError):
                continue
        else:
            sys.exit("no Python 3.12+ found to create bench/.venv")
    stamp = VENV / ".bench-requirements"
    wanted = hashlib.sha256(json.dumps(REQUIREMENTS).encode()).hexdigest()
    if "--reinstall" in sys.argv or not stamp.exists() or stamp.read_text() != wanted:
        print("bench: installing into bench/.venv ...", flush=True)
        subprocess.run(
            [str(VENV_PY), "-m", "pip", "install", "-q", "--upgrade", "pip"], check=False
        )
        subprocess.run([str(VENV_PY), "-m", "pip", "install", "-q", *REQUIREMENTS], check=True)
        stamp.write_text(wanted)
    argv = [a for a in sys.argv[1:] if a != "--reinstall"]
    os.execv(str(VENV_PY), [str(VENV_PY), str(Path(__file__).resolve()), *argv])


def csv(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="small sizes: 5,000-job drain, 30 s sustained, 200 latency samples",
    )
    p.add_argument(
        "--jobs",
        type=str,
        default=None,
        help="drain size(s), comma-separated (default 100000; --quick 5000)",
    )
    p.add_argument("--processes", type=int, default=2, help="worker processes per system")
    p.add_argument(
        "--ours-concurrency",
        type=int,
        default=4,
        help="runworkers --concurrency (default 4, the documented default)",
    )
    p.add_argument(
        "--only",
        type=csv,
        default=ALL_SYSTEMS,
        help=f"systems, comma-separated: {','.join(ALL_SYSTEMS)}",
    )
    p.add_argument(
        "--workloads",
        type=csv,
        default=ALL_WORKLOADS,
        help=f"workloads, comma-separated: {','.join(ALL_WORKLOADS)}",
    )
    p.add_argument(
        "--sustained-seconds",
        type=float,
        default=None,
        help="sustained duration (default 300; --quick 30)",
    )
    p.add_argument(
        "--sustained-backlog",
        type=int,
        default=10_000,
        help="the producer tops the backlog up to this many jobs, 4 times a "
        "second, 1,000 per enqueue call (default 10000)",
    )
    p.add_argument(
        "--ours-producer",
        choices=["enqueue_batch", "rows"],
        default="enqueue_batch",
        help="how the sustained producer enqueues our jobs: jobs.enqueue_batch "
        "(a Batch per call, the public API; default) or rows (copies of one "
        "enqueue()'d row, no Batch: isolates the batch bookkeeping)",
    )
    p.add_argument(
        "--enqueue-single",
        type=int,
        default=None,
        help="enqueue() calls timed (default 10000; --quick 2000)",
    )
    p.add_argument(
        "--enqueue-batch",
        type=int,
        default=None,
        help="jobs in the timed batch enqueue (default 100000; --quick 20000)",
    )
    p.add_argument(
        "--latency-samples",
        type=int,
        default=None,
        help="pickup-latency samples (default 1000; --quick 200)",
    )
    p.add_argument(
        "--latency-spacing",
        type=float,
        default=0.05,
        help="seconds between latency jobs, plus up to as much random jitter",
    )
    p.add_argument(
        "--log-sample-rate",
        type=float,
        default=0.05,
        help="share of statements logged to time the claim query (sustained)",
    )
    p.add_argument(
        "--engine-ref",
        default=None,
        help="benchmark django_jobs as of this git commit/ref (exported to "
        "bench/results/.engine/) instead of the working tree",
    )
    p.add_argument(
        "--wait-idle",
        type=float,
        default=300,
        help="before each measurement, wait up to this many seconds for other "
        "processes to leave the CPUs idle (default 300)",
    )
    p.add_argument(
        "--idle-threshold",
        type=float,
        default=0.15,
        help="CPU share used by others that counts as idle (default 0.15)",
    )
    p.add_argument(
        "--server-autovacuum",
        choices=["on", "as-is"],
        default="on",
        help="on (default): if the PostgreSQL server has autovacuum off, turn "
        "it on for the run (ALTER SYSTEM, reload) and restore it after; "
        "as-is: measure with the server's own setting",
    )
    p.add_argument(
        "--keep-databases", action="store_true", help="leave the bench_* databases for inspection"
    )
    p.add_argument("--reinstall", action="store_true", help="reinstall bench/.venv packages")
    a = p.parse_args()
    q = a.quick
    a.drain_sizes = [int(x) for x in csv(a.jobs)] if a.jobs else [5000 if q else 100_000]
    a.sustained_seconds = a.sustained_seconds or (30.0 if q else 300.0)
    a.enqueue_single = a.enqueue_single or (2000 if q else 10_000)
    a.enqueue_batch = a.enqueue_batch or (20_000 if q else 100_000)
    a.latency_samples = a.latency_samples or (200 if q else 1000)
    bad = set(a.only) - set(ALL_SYSTEMS) or set(a.workloads) - set(ALL_WORKLOADS)
    if bad:
        p.error(f"unknown name(s): {', '.join(sorted(bad))}")
    return a


def export_engine(ref: str) -> tuple[Path, str]:
    """``django_jobs/`` as of ``ref``, exported once per commit; (its parent dir, sha)."""
    sha = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", ref],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    target = BENCH / "results" / ".engine" / sha
    if not (target / "django_jobs").exists():
        target.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(
            ["git", "-C", str(REPO), "archive", sha, "django_jobs"], check=True, capture_output=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)
    return target, sha


def environment(engine_sha: str | None) -> dict:
    import platform
    import time
    from importlib.metadata import PackageNotFoundError, version

    from benchkit import pg

    def v(name: str) -> str | None:
        try:
            return version(name)
        except PackageNotFoundError:
            return None

    def sh(*cmd: str) -> str:
        try:
            return subprocess.run(cmd, capture_output=True, text=True, check=False).stdout.strip()
        except OSError:
            return ""

    mem = ""
    try:
        with open("/proc/meminfo") as f:
            kb = int(f.readline().split()[1])
        mem = f"{kb / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    return {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "command": "python3 bench/run.py " + " ".join(sys.argv[1:]),
        "git_commit": engine_sha or sh("git", "-C", str(REPO), "rev-parse", "--short", "HEAD"),
        # Engine code benchmarked from the working tree with uncommitted changes?
        "git_dirty": False
        if engine_sha
        else bool(sh("git", "-C", str(REPO), "status", "--porcelain", "--", "django_jobs")),
        "engine_source": f"git archive {engine_sha}" if engine_sha else "working tree",
        "machine": {
            "cpus": os.cpu_count(),
            "memory": mem,
            "platform": platform.platform(),
            "loadavg_at_start": os.getloadavg(),
        },
        "python": platform.python_version(),
        "postgresql": pg.server_version(),
        "redis": sh("redis-server", "--version").split(" v=")[-1].split(" ")[0],
        "packages": {
            name: v(name)
            for name in [
                "django",
                "django-jobs",
                "django-tasks-db",
                "procrastinate",
                "pgqueuer",
                "celery",
                "kombu",
                "redis",
                "psycopg",
                "asyncpg",
                "uvloop",
            ]
        },
    }


def main() -> None:
    bootstrap()
    sys.path.insert(0, str(BENCH))
    args = parse_args()
    import time

    from benchkit import pg, report, workloads
    from benchkit.systems import make_systems

    os.environ["BENCH_OURS_PRODUCER"] = args.ours_producer
    engine_sha = None
    if args.engine_ref:
        engine_dir, engine_sha = export_engine(args.engine_ref)
        os.environ["BENCH_ENGINE_PATH"] = str(engine_dir)
    systems = make_systems(args.processes, args.ours_concurrency)
    order = [k for k in ALL_SYSTEMS if k in args.only]
    stamp = time.strftime("%Y%m%d-%H%M%S")
    run_dir = BENCH / "results" / stamp
    ctx = workloads.Context(args, run_dir)
    env = environment(engine_sha)
    results: dict = {
        "environment": env,
        "settings": dict(vars(args).items()),
        "systems": {k: {"label": systems[k].label, "config": systems[k].config} for k in order},
        "results": {k: {} for k in order},
    }
    print(
        f"bench: commit {env['git_commit']}{' (engine modified)' if env['git_dirty'] else ''}"
        f", {env['machine']['cpus']} CPUs, PostgreSQL {env['postgresql']}, "
        f"{args.processes} worker processes per system; results in {run_dir}",
        flush=True,
    )
    if not pg.pg_stat_statements_available():
        print(
            "bench: pg_stat_statements is not preloaded; claim-query times come from a "
            f"{args.log_sample_rate:.0%} sample of the server's statement log",
            flush=True,
        )

    def save() -> None:
        run_dir.mkdir(parents=True, exist_ok=True)
        text = json.dumps(results, indent=2, default=str)
        (run_dir / "results.json").write_text(text)
        (BENCH / "results" / "latest.json").write_text(text)

    import contextlib

    autovacuum, source = pg.autovacuum_setting()
    env["autovacuum"] = {"server": autovacuum, "source": source, "during_run": autovacuum}
    server_settings = contextlib.ExitStack()
    # A SIGTERM (a timeout, a cancelled job) must still restore the server's settings.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    plan = []
    if "drain" in args.workloads or "dbcost" in args.workloads:
        plan += [("drain", n) for n in args.drain_sizes]
    for w in ("sustained", "enqueue", "latency"):
        if w in args.workloads:
            plan.append((w, None))
    try:
        if args.server_autovacuum == "on" and autovacuum != "on":
            during = server_settings.enter_context(pg.autovacuum_on())
            env["autovacuum"]["during_run"] = during
        if autovacuum != "on":
            print(
                f"bench: the server's autovacuum is {autovacuum} ({source}); during this "
                f"run: {env['autovacuum']['during_run']}"
                + (
                    " (turned on with ALTER SYSTEM, restored after)"
                    if env["autovacuum"]["during_run"] == "on"
                    else ""
                ),
                flush=True,
            )
        for workload, n in plan:
            for key in order:
                system = systems[key]
                try:
                    if workload == "drain":
                        out = workloads.drain(ctx, system, n)
                        results["results"][key].setdefault("drain", {})[str(n)] = out
                    elif workload == "sustained":
                        out = workloads.sustained(ctx, system, args.sustained_seconds)
                        results["results"][key]["sustained"] = out
                    elif workload == "enqueue":
                        out = workloads.enqueue(
                            ctx, system, args.enqueue_single, args.enqueue_batch
                        )
                        results["results"][key]["enqueue"] = out
                    elif workload == "latency":
                        out = workloads.latency(ctx, system, args.latency_samples)
                        results["results"][key]["latency"] = out
                except Exception as exc:  # noqa: BLE001 - one failing peer must not lose the others
                    workloads.say(f"{key}: {workload} FAILED: {exc!r}")
                    results["results"][key].setdefault("errors", []).append(
                        f"{workload}{'' if n is None else ' ' + str(n)}: {exc!r}"
                    )
                save()
    finally:
        server_settings.close()
        if not args.keep_databases:
            for key in order:
                if systems[key].dbname:
                    try:
                        pg.drop_database(systems[key].dbname)
                    except Exception:  # noqa: BLE001
                        pass
        save()

    labels = {k: systems[k].label for k in order}
    print()
    print(
        f"django_jobs benchmark - {env['date']} - commit {env['git_commit']} - "
        f"{env['machine']['cpus']} CPUs, {env['machine']['memory']} - "
        f"{args.processes} worker processes each"
    )
    print(report.render(results["results"], order, labels, args.drain_sizes))
    for key in order:
        for err in results["results"][key].get("errors", []):
            print(f"! {labels[key]}: {err}")
    print(f"\nraw results: {run_dir / 'results.json'}")


if __name__ == "__main__":
    main()
