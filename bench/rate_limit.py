"""How close to its rate limit a saturated queue runs, and that it never runs over.

    .venv/bin/python bench/rate_limit.py                                 # SQLite, 50/s, 20 s
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench_rate .venv/bin/python bench/rate_limit.py
    .venv/bin/python bench/rate_limit.py --rates 20/s,200/s,600/m --seconds 30 --processes 2

For each rate: a queue with that ``rate_limit`` gets more no-op jobs than the limit allows
in ``--seconds``; ``runworkers --processes P --burst`` drains it (real processes, the
database given by ``DATABASE_URL``, the test suite's settings and tasks). From the jobs'
``started_at`` (the database clock): the starts per second after the first period's
burst (``(jobs - limit) / (last start - first start)``) against the limit, and the most
starts seen in any window of one period (never above the limit). Prints a table;
asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rates", default="50/s,200/s,300/m")
    parser.add_argument("--seconds", type=float, default=20.0, help="drain length per rate")
    parser.add_argument("--processes", type=int, default=2)
    args = parser.parse_args()

    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    from django_jobs.models import Job, Queue
    from django_jobs.models.rate import parse_rate
    from tests.testapp.tasks import noop

    call_command("migrate", verbosity=0)
    env = dict(os.environ, JOBS_TEST_DB_NAME=str(connection.settings_dict["NAME"]))
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    print(f"database: {connection.vendor}, {args.processes} worker processes, --burst")
    print(f"{'limit':>8} {'jobs':>6} {'drain s':>8} {'steady/s':>9} {'of limit':>9} "
          f"{'max/period':>11}")  # fmt: skip
    for text in args.rates.split(","):
        rate = parse_rate(text)
        name = f"bench-rate-{text.replace('/', '-per-')}"
        Job.objects.filter(queue=name).delete()
        Queue.objects.filter(name=name).delete()
        Queue.objects.create(name=name, rate_limit=text)
        n = int(rate.limit * max(1.0, args.seconds / rate.period)) + rate.limit
        Job.objects.bulk_create(Job(task_name=noop.name, queue=name) for _ in range(n))
        began = time.monotonic()
        subprocess.run(
            [sys.executable, "-m", "django", "runworkers", "--burst", "--queues", name,
             "--processes", str(args.processes)],
            env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            timeout=args.seconds * 4 + 120,
        )  # fmt: skip
        took = time.monotonic() - began
        starts = sorted(
            s.timestamp()
            for s in Job.objects.filter(queue=name).values_list("started_at", flat=True)
            if s is not None
        )
        worst = _most_in_any_window(starts, rate.period)
        # The first period may start with a full burst of `limit` starts: what follows
        # it, over the whole span, is the rate the queue keeps up.
        span = starts[-1] - starts[0]
        per_second = (len(starts) - rate.limit) / span if span > 0 else 0.0
        limit_per_second = rate.limit / rate.period
        print(f"{text:>8} {len(starts):>6} {took:>8.1f} {per_second:>9.2f} "
              f"{per_second / limit_per_second:>8.1%} {worst:>6} / {rate.limit}")  # fmt: skip
        Job.objects.filter(queue=name).delete()
        Queue.objects.filter(name=name).delete()


def _most_in_any_window(starts: list[float], period: float) -> int:
    worst, j = 0, 0
    for i, t in enumerate(starts):
        while starts[j] <= t - period:
            j += 1
        worst = max(worst, i - j + 1)
    return worst


if __name__ == "__main__":
    main()
