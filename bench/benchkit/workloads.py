"""The five workloads. Each returns a JSON-able dict; none asserts anything."""

from __future__ import annotations

import json
import math
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from benchkit import pg
from benchkit.probe import ProbeReader
from benchkit.systems import BENCH, System, Workers


class Context:
    def __init__(self, args, run_dir: Path) -> None:
        self.args = args
        self.run_dir = run_dir
        (run_dir / "logs").mkdir(parents=True, exist_ok=True)

    def probe_dir(self, system: System, workload: str) -> Path:
        return self.run_dir / "probe" / f"{system.key}-{workload}"

    def log(self, system: System, what: str) -> Path:
        return self.run_dir / "logs" / f"{system.key}-{what}.log"


def say(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def client(ctx: Context, system: System, action: str, timeout: float = 3600, **params) -> dict:
    env = system.env(ctx.probe_dir(system, "client"))
    with open(ctx.log(system, f"client-{action}"), "ab") as log:
        out = subprocess.run(
            [sys.executable, "-m", "benchkit.client", system.client, action, json.dumps(params)],
            env=env,
            cwd=str(BENCH),
            stdout=subprocess.PIPE,
            stderr=log,
            timeout=timeout,
        )
    lines = [ln for ln in out.stdout.decode().splitlines() if ln.strip()]
    if out.returncode != 0 or not lines:
        raise RuntimeError(
            f"client {system.client} {action} failed (exit {out.returncode}); "
            f"see {ctx.log(system, 'client-' + action)}"
        )
    return json.loads(lines[-1])


def cpu_busy(seconds: float = 2.0) -> float:
    """Share of all CPUs busy over ``seconds`` (from /proc/stat)."""

    def snap():
        with open("/proc/stat") as f:
            vals = [int(x) for x in f.readline().split()[1:]]
        idle = vals[3] + vals[4]
        return idle, sum(vals)

    i0, t0 = snap()
    time.sleep(seconds)
    i1, t1 = snap()
    return 1 - (i1 - i0) / max(t1 - t0, 1)


def wait_for_quiet(ctx: Context, label: str) -> dict:
    """Before a measurement: wait (up to --wait-idle seconds) until the machine is idle,
    since other work on this 2-core machine (a test suite, CI) skews every number."""
    limit = ctx.args.wait_idle
    start = time.time()
    busy = cpu_busy()
    warned = False
    while busy > ctx.args.idle_threshold and time.time() - start < limit:
        if not warned:
            say(f"{label}: machine busy ({busy:.0%} CPU by others); waiting up to {limit:.0f}s")
            warned = True
        time.sleep(5)
        busy = cpu_busy()
    return {
        "cpu_busy_before": round(busy, 3),
        "waited_seconds": round(time.time() - start, 1),
        "loadavg_before": os.getloadavg(),
    }


def fresh(ctx: Context, system: System) -> None:
    """A new, empty database (or Redis db) with the system's schema."""
    if system.dbname:
        pg.recreate_database(system.dbname)
    client(ctx, system, "setup")


def percentiles(values: list[float], ps=(50, 95, 99)) -> dict:
    if not values:
        return {f"p{p}": None for p in ps}
    s = sorted(values)
    out = {}
    for p in ps:
        k = (len(s) - 1) * p / 100
        lo, hi = math.floor(k), math.ceil(k)
        out[f"p{p}"] = s[lo] + (s[hi] - s[lo]) * (k - lo)
    return out


def db_timings(system: System) -> list[tuple[float, float]]:
    with pg.connect(system.dbname) as conn:
        return [tuple(r) for r in conn.execute(system.finished_rows_sql()).fetchall()]


# -- 1 + 5: drain, and the database cost measured during it ----------------------------


def drain(ctx: Context, system: System, n: int) -> dict:
    fresh(ctx, system)
    say(f"{system.key}: drain {n:,} - pre-enqueueing")
    prefill = client(ctx, system, "prefill", n=n)
    probe = ProbeReader(ctx.probe_dir(system, f"drain{n}"))
    if system.dbname:
        pg.settle_stats()
    quiet = wait_for_quiet(ctx, system.key)
    redis_before = redis_commands() if system.key == "celery" else None
    if system.dbname:
        before = pg.xact_counts(system.dbname)
    say(f"{system.key}: drain {n:,} - workers started")
    workers = Workers(
        system,
        ctx.args.processes,
        drain=True,
        probe_dir=probe.directory,
        log_path=ctx.log(system, f"drain{n}-workers"),
    )
    timeout = 120 + n / 100
    timed_out = False
    if system.drain_exits():
        timed_out = not workers.wait(timeout)
        if timed_out:
            workers.stop()
    else:
        end = time.time() + timeout
        while probe.poll() < n and time.time() < end:
            time.sleep(0.2)
        timed_out = probe.poll() < n
        redis_after = redis_commands()
        workers.stop()
    wall = time.time() - workers.started_at
    result: dict = {
        "jobs": n,
        "prefill_seconds": prefill["seconds"],
        "timed_out": timed_out,
        "wall_seconds_incl_startup": wall,
        **quiet,
        "loadavg_after": os.getloadavg(),
    }
    if system.db_timings:
        rows = db_timings(system)
        done = len(rows)
        first, last = (min(r[0] for r in rows), max(r[1] for r in rows)) if rows else (0, 0)
    else:
        probe.poll()
        times = [t for _, t in probe.records]
        done = len(times)
        first, last = (min(times), max(times)) if times else (0, 0)
    result["finished"] = done
    result["span_seconds"] = last - first
    result["throughput"] = done / (last - first) if last > first else None
    if system.dbname:
        pg.settle_stats()
        after = pg.xact_counts(system.dbname)
        result["xact_commit"] = after[0] - before[0]
        result["xact_rollback"] = after[1] - before[1]
        result["commits_per_job"] = (after[0] - before[0]) / done if done else None
    if redis_before is not None:
        result["redis_commands_per_job"] = (redis_after - redis_before) / done if done else None
    say(
        f"{system.key}: drain {n:,} - {fmt(result['throughput'])} jobs/s, "
        f"{fmt(result.get('commits_per_job'), 2)} commits/job, finished {done:,}"
    )
    if done < n:
        raise RuntimeError(
            f"only {done:,} of {n:,} jobs finished"
            f"{' (timed out)' if timed_out else ''}; see "
            f"{ctx.log(system, f'drain{n}-workers')}"
        )
    return result


def redis_commands() -> int:
    import redis

    return int(redis.Redis(host="127.0.0.1", port=6379).info("stats")["total_commands_processed"])


# -- 2: sustained ---------------------------------------------------------------------


def sustained(ctx: Context, system: System, seconds: float) -> dict:
    fresh(ctx, system)
    target, chunk = ctx.args.sustained_backlog, 1000
    log_offset = None
    if system.dbname:
        log_offset = pg.enable_statement_sampling(system.dbname, ctx.args.log_sample_rate)
    probe = ProbeReader(ctx.probe_dir(system, "sustained"))
    quiet = wait_for_quiet(ctx, system.key)
    env = system.env(ctx.probe_dir(system, "producer"))
    producer_log = open(ctx.log(system, "sustained-producer"), "ab")  # noqa: SIM115 - closed below
    # The producer starts first and fills the backlog; then the jobs table is ANALYZEd
    # (a deployment in steady state has statistics, a table created a second ago has
    # none, and the first autoanalyze would only come a minute into the run), and the
    # workers start. The measured window runs from the workers' first finished job to the
    # producer's end.
    producer = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "benchkit.client",
            system.client,
            "produce",
            json.dumps(
                {
                    "seconds": seconds + 60,
                    "target": target,
                    "chunk": chunk,
                    "backlog_sql": system.backlog_sql,
                }
            ),
        ],
        env=env,
        cwd=str(BENCH),
        stdout=subprocess.PIPE,
        stderr=producer_log,
    )
    monitor = pg.connect(system.dbname) if system.dbname else None

    def backlog() -> int:
        if monitor is not None:
            return monitor.execute(system.backlog_sql).fetchone()[0]
        import redis

        return redis.Redis(host="127.0.0.1", port=6379, db=15).llen("bench")

    fill_deadline = time.time() + 15
    while backlog() < target and time.time() < fill_deadline and producer.poll() is None:
        time.sleep(0.2)
    if monitor is not None:
        monitor.execute(f"ANALYZE {system.table}")
    say(f"{system.key}: sustained {seconds:.0f}s - backlog {backlog():,}, workers started")
    workers = Workers(
        system,
        ctx.args.processes,
        drain=False,
        probe_dir=probe.directory,
        log_path=ctx.log(system, "sustained-workers"),
    )
    t0 = time.time()
    samples = []
    every = min(10.0, max(1.0, seconds / 30))
    # The window starts at the first finished job: allow for the workers' start-up.
    run_for = seconds + min(5.0, seconds * 0.1)
    while producer.poll() is None and time.time() - t0 < run_for:
        time.sleep(max(0.0, min(every, run_for - (time.time() - t0))))
        sample = {"t": time.time() - t0, "backlog": backlog()}
        if monitor is not None:
            sample.update(pg.table_stats(monitor, system.table))
        samples.append(sample)
    producer.terminate()
    out = producer.communicate(timeout=60)[0].decode().splitlines()
    producer_log.close()
    produced = json.loads(out[-1]) if out else {}
    t_end = produced.get("ended_at", time.time())
    workers.stop()
    if monitor is not None:
        final = pg.table_stats(monitor, system.table)
        monitor.close()
    else:
        final = {}
    if system.db_timings:
        finishes = [r[1] for r in db_timings(system)]
    else:
        probe.poll()
        finishes = [t for _, t in probe.records]
    finishes = sorted(f for f in finishes if f <= t_end)
    result: dict = {
        "seconds": seconds,
        "producer": produced,
        "samples": samples,
        "table_after": final,
        "finished": len(finishes),
        **quiet,
        "loadavg_after": os.getloadavg(),
    }
    if finishes:
        start = finishes[0]
        bucket = 60.0 if seconds >= 180 else max(5.0, seconds / 3)
        nb = min(int((t_end - start) // bucket), round(seconds / bucket))
        counts = [0] * max(nb, 0)
        for f in finishes:
            i = int((f - start) // bucket)
            if i < nb:
                counts[i] += 1
        rates = [c / bucket for c in counts]
        result.update(
            bucket_seconds=bucket,
            rates=rates,
            first=rates[0] if rates else None,
            last=rates[-1] if rates else None,
            last_over_first=(rates[-1] / rates[0]) if rates and rates[0] else None,
            mean=statistics.fmean(rates) if rates else None,
        )
    backlogs = [s["backlog"] for s in samples]
    result["backlog_last"] = backlogs[-1] if backlogs else None
    result["backlog_max"] = max(backlogs) if backlogs else None
    deads = [s.get("dead") for s in samples if s.get("dead") is not None]
    result["dead_tuples_max"] = max(deads) if deads else None
    result["dead_tuples_last"] = deads[-1] if deads else None
    if system.dbname:
        if log_offset is not None:
            durations = pg.sampled_durations(system.dbname, log_offset, system.claim_pattern)
            result["claim_ms"] = {
                **percentiles(durations),
                "samples": len(durations),
                "sample_rate": ctx.args.log_sample_rate,
                "method": "sampled server log (log_statement_sample_rate)",
            }
        else:
            result["claim_ms"] = {"p99": None, "method": "n/a: server log not readable"}
        pg.disable_statement_sampling(system.dbname)
    say(
        f"{system.key}: sustained - per {result.get('bucket_seconds', 0):.0f}s: "
        f"{', '.join(fmt(r) for r in result.get('rates', []))} jobs/s; "
        f"backlog end {result['backlog_last']}, dead max {result['dead_tuples_max']}, "
        f"claim p99 {fmt((result.get('claim_ms') or {}).get('p99'), 2)} ms"
    )
    return result


# -- 3: enqueue rate ------------------------------------------------------------------


def enqueue(ctx: Context, system: System, single: int, batch: int) -> dict:
    fresh(ctx, system)
    quiet = wait_for_quiet(ctx, system.key)
    say(f"{system.key}: enqueue - {single:,} single calls")
    one = client(ctx, system, "enqueue_single", n=single)
    fresh(ctx, system)
    say(f"{system.key}: enqueue - batch of {batch:,}")
    many = client(ctx, system, "enqueue_batch", n=batch, chunk=1000)
    result = {"single": {**one, "rate": one["n"] / one["seconds"]}, **quiet}
    result["batch"] = {**many, "rate": many["n"] / many["seconds"]} if "seconds" in many else many
    if system.key == "ours":  # SPEC 5.1's transactional enqueue, one job per transaction
        for variant in ("atomic", "on_commit"):
            fresh(ctx, system)
            say(f"{system.key}: enqueue - {single:,} single calls, {variant}")
            timed = client(ctx, system, f"enqueue_single_{variant}", n=single)
            result[f"single_{variant}"] = {**timed, "rate": timed["n"] / timed["seconds"]}
    say(
        f"{system.key}: enqueue - single {fmt(result['single']['rate'])}/s, "
        f"batch {fmt(result['batch'].get('rate'))}/s"
    )
    return result


# -- 4: pickup latency ----------------------------------------------------------------


def latency(ctx: Context, system: System, n: int) -> dict:
    fresh(ctx, system)
    probe = ProbeReader(ctx.probe_dir(system, "latency"))
    quiet = wait_for_quiet(ctx, system.key)
    workers = Workers(
        system,
        ctx.args.processes,
        drain=False,
        probe_dir=probe.directory,
        log_path=ctx.log(system, "latency-workers"),
    )
    time.sleep(3.0)  # let the workers start and go idle
    say(f"{system.key}: latency - {n} jobs one at a time")
    try:
        res = client(
            ctx,
            system,
            "latency",
            n=n,
            spacing=ctx.args.latency_spacing,
            jitter=ctx.args.latency_spacing,
        )
        samples = res["samples"]
        starts: dict[str, float] = {}
        end = time.time() + 30
        while time.time() < end:
            if system.db_timings:
                with pg.connect(system.dbname) as conn:
                    rows = conn.execute(
                        f"SELECT id::text, extract(epoch FROM started_at)::float8 FROM "
                        f"{system.table} WHERE started_at IS NOT NULL"
                    ).fetchall()
                starts = dict(rows)
            else:
                probe.poll()
                starts = dict(probe.records)
            if all(str(k) in starts for k, _ in samples):
                break
            time.sleep(0.5)
    finally:
        workers.stop()
    lat = [(starts[str(k)] - t) * 1000 for k, t in samples if str(k) in starts]
    result = {
        "n": n,
        "measured": len(lat),
        **percentiles(lat),
        **quiet,
        "min": min(lat) if lat else None,
        "max": max(lat) if lat else None,
    }
    say(
        f"{system.key}: latency - p50 {fmt(result['p50'], 1)} ms, p95 {fmt(result['p95'], 1)} ms,"
        f" p99 {fmt(result['p99'], 1)} ms ({len(lat)}/{n})"
    )
    return result


def fmt(v, digits: int = 0) -> str:
    if v is None:
        return "n/a"
    return f"{v:,.{digits}f}"
