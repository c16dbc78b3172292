"""The client side of each system, run in its own process by the orchestrator:

    python -m benchkit.client SYSTEM ACTION '{"n": 1000, ...}'

prints one JSON object on its last stdout line. Keeping each library in its own process
lets ours and django-tasks-db (two Django configurations) and the asyncio peers share
one harness, and keeps the client's CPU out of the orchestrator.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import sys
import time

from benchkit import pg

CELERY_DB = 15


# -- ours and django-tasks-db: Django -------------------------------------------------


def _django(system: str) -> None:
    os.environ["BENCH_DJANGO_SYSTEM"] = system
    os.environ.setdefault("BENCH_DB_NAME", f"bench_{system}")
    os.environ["DJANGO_SETTINGS_MODULE"] = "benchsite.settings"
    import django

    django.setup()


class Ours:
    table = "django_jobs_job"

    def __init__(self) -> None:
        _django("ours")
        from ours_app.tasks import noop

        from django_jobs import jobs

        self.jobs, self.noop = jobs, noop

    def setup(self, **_):
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        return {}

    def enqueue_one(self, tag=None):
        return self.jobs.enqueue(self.noop, kwargs={"tag": tag} if tag is not None else None).id

    def prefill(self, n, **_):
        t = time.perf_counter()
        first = self.enqueue_one()
        with pg.connect(os.environ["BENCH_DB_NAME"]) as conn:
            pg.clone_rows(conn, self.table, f"t.id = {int(first)}", n - 1)
        return {"seconds": time.perf_counter() - t}

    def enqueue_single(self, n, **_):
        t = time.perf_counter()
        for _ in range(n):
            self.jobs.enqueue(self.noop)
        return {"seconds": time.perf_counter() - t, "n": n}

    def enqueue_batch(self, n, chunk=1000, **_):
        t = time.perf_counter()
        self.jobs.enqueue_batch(self.noop, items=[{} for _ in range(n)], batch_size=chunk)
        return {"seconds": time.perf_counter() - t, "n": n, "api": "jobs.enqueue_batch"}

    def _one_per_transaction(self, n, enqueue):
        # A view's transaction around one enqueue (BEGIN, the call, COMMIT).
        from django.db import transaction

        t = time.perf_counter()
        for _ in range(n):
            with transaction.atomic():
                enqueue(self.noop)
        return {"seconds": time.perf_counter() - t, "n": n}

    def enqueue_single_atomic(self, n, **_):
        return self._one_per_transaction(n, self.jobs.enqueue)

    def enqueue_single_on_commit(self, n, **_):
        # The job is written after the COMMIT.
        return self._one_per_transaction(n, self.jobs.enqueue_on_commit)

    def produce(self, k):
        if os.environ.get("BENCH_OURS_PRODUCER") == "rows":
            # One enqueue() and k-1 copies of its row: jobs without a Batch.
            first = self.enqueue_one()
            with pg.connect(os.environ["BENCH_DB_NAME"]) as conn:
                pg.clone_rows(conn, self.table, f"t.id = {int(first)}", k - 1, analyze=False)
        else:
            self.jobs.enqueue_batch(self.noop, items=[{} for _ in range(k)], batch_size=1000)

    def latency_enqueue(self, tag):
        return self.enqueue_one(tag)


class DjangoTasksDB:
    table = "django_tasks_database_dbtaskresult"

    def __init__(self) -> None:
        _django("dtdb")
        from dtdb_app.tasks import noop

        self.noop = noop

    def setup(self, **_):
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        return {}

    def prefill(self, n, **_):
        t = time.perf_counter()
        first = self.noop.enqueue().id
        with pg.connect(os.environ["BENCH_DB_NAME"]) as conn:
            pg.clone_rows(
                conn, self.table, f"t.id = '{first}'", n - 1, overrides={"id": "gen_random_uuid()"}
            )
        return {"seconds": time.perf_counter() - t}

    def enqueue_single(self, n, **_):
        t = time.perf_counter()
        for _ in range(n):
            self.noop.enqueue()
        return {"seconds": time.perf_counter() - t, "n": n}

    def enqueue_batch(self, n, **_):
        return {"na": "django.tasks has no batch enqueue"}

    def produce(self, k):
        # No batch API: one enqueue(), then k-1 copies of its row in one INSERT.
        first = self.noop.enqueue().id
        with pg.connect(os.environ["BENCH_DB_NAME"]) as conn:
            pg.clone_rows(
                conn,
                self.table,
                f"t.id = '{first}'",
                k - 1,
                overrides={"id": "gen_random_uuid()"},
                analyze=False,
            )

    def latency_enqueue(self, tag):
        return str(self.noop.enqueue(tag=tag).id)


# -- procrastinate and pgqueuer: asyncio -----------------------------------------------


class Procrastinate:
    table = "procrastinate_jobs"

    def __init__(self) -> None:
        from benchkit.peers.procrastinate_app import app, noop

        self.app, self.noop = app, noop
        self.loop = asyncio.new_event_loop()
        self.loop.run_until_complete(self.app.open_async())

    def run(self, coro):
        return self.loop.run_until_complete(coro)

    def setup(self, **_):
        self.run(self.app.schema_manager.apply_schema_async())
        return {}

    def prefill(self, n, **_):
        t = time.perf_counter()
        first = self.run(self.noop.defer_async())
        with pg.connect(os.environ["BENCH_DB_NAME"]) as conn:
            pg.clone_rows(conn, self.table, f"t.id = {int(first)}", n - 1)
        return {"seconds": time.perf_counter() - t}

    def enqueue_single(self, n, **_):
        async def go():
            for _ in range(n):
                await self.noop.defer_async()

        t = time.perf_counter()
        self.run(go())
        return {"seconds": time.perf_counter() - t, "n": n}

    def enqueue_batch(self, n, chunk=1000, **_):
        async def go():
            for start in range(0, n, chunk):
                await self.noop.batch_defer_async(*[{} for _ in range(min(chunk, n - start))])

        t = time.perf_counter()
        self.run(go())
        return {
            "seconds": time.perf_counter() - t,
            "n": n,
            "api": f"batch_defer_async, {chunk} per call",
        }

    def produce(self, k):
        self.run(self.noop.batch_defer_async(*[{} for _ in range(k)]))

    def latency_enqueue(self, tag):
        self.run(self.noop.defer_async(tag=str(tag)))
        return str(tag)


class PgQueuer:
    table = "pgqueuer"

    def __init__(self) -> None:
        import asyncpg
        from pgqueuer.db import AsyncpgDriver
        from pgqueuer.queries import Queries

        self.loop = asyncio.new_event_loop()
        self.conn = self.run(asyncpg.connect(pg.dsn(os.environ["BENCH_DB_NAME"])))
        self.q = Queries(AsyncpgDriver(self.conn))

    def run(self, coro):
        return self.loop.run_until_complete(coro)

    def setup(self, **_):
        import subprocess

        subprocess.run(
            [
                os.path.join(os.path.dirname(sys.executable), "pgq"),
                "--pg-dsn",
                pg.dsn(os.environ["BENCH_DB_NAME"]),
                "install",
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        return {}

    def prefill(self, n, **_):
        t = time.perf_counter()
        first = self.run(self.q.enqueue("noop", None))[0]
        with pg.connect(os.environ["BENCH_DB_NAME"]) as conn:
            pg.clone_rows(conn, self.table, f"t.id = {int(first)}", n - 1)
        return {"seconds": time.perf_counter() - t}

    def enqueue_single(self, n, **_):
        async def go():
            for _ in range(n):
                await self.q.enqueue("noop", None)

        t = time.perf_counter()
        self.run(go())
        return {"seconds": time.perf_counter() - t, "n": n}

    def enqueue_batch(self, n, chunk=1000, **_):
        async def go():
            for start in range(0, n, chunk):
                k = min(chunk, n - start)
                await self.q.enqueue(["noop"] * k, [None] * k, [0] * k)

        t = time.perf_counter()
        self.run(go())
        return {
            "seconds": time.perf_counter() - t,
            "n": n,
            "api": f"Queries.enqueue(lists), {chunk} per call",
        }

    def produce(self, k):
        self.run(self.q.enqueue(["noop"] * k, [None] * k, [0] * k))

    def latency_enqueue(self, tag):
        self.run(self.q.enqueue("noop", str(tag).encode()))
        return str(tag)


# -- Celery ---------------------------------------------------------------------------


class Celery:
    def __init__(self) -> None:
        import redis

        from benchkit.peers.celery_app import noop

        self.noop = noop
        self.redis = redis.Redis(host="127.0.0.1", port=6379, db=CELERY_DB)

    def setup(self, **_):
        self.redis.flushdb()
        return {}

    def prefill(self, n, **_):
        t = time.perf_counter()
        for _ in range(n):
            self.noop.apply_async()
        return {"seconds": time.perf_counter() - t}

    def enqueue_single(self, n, **_):
        t = time.perf_counter()
        for _ in range(n):
            self.noop.apply_async()
        return {"seconds": time.perf_counter() - t, "n": n}

    def enqueue_batch(self, n, **_):
        return {"na": "Celery has no batch enqueue (group() publishes one message per task)"}

    def produce(self, k):
        for _ in range(k):
            self.noop.apply_async()

    def latency_enqueue(self, tag):
        self.noop.apply_async(args=[str(tag)])
        return str(tag)


SYSTEMS = {
    "ours": Ours,
    "dtdb": DjangoTasksDB,
    "procrastinate": Procrastinate,
    "pgqueuer": PgQueuer,
    "celery": Celery,
}


# -- the actions that need a loop: producer and pickup latency -------------------------


def produce(
    client,
    system: str,
    seconds: float,
    target: int,
    chunk: int,
    backlog_sql: str,
    interval: float = 0.25,
    **_,
) -> dict:
    """For ``seconds``: every ``interval`` look at the backlog and, when it is below
    ``target``, top it up in calls of ``chunk`` jobs. Checking at a fixed, slow pace keeps
    the producer's own queries from loading the database it measures."""
    if system == "celery":

        def backlog() -> int:
            return client.redis.llen("bench")
    else:
        conn = pg.connect(os.environ["BENCH_DB_NAME"])

        def backlog() -> int:
            return conn.execute(backlog_sql).fetchone()[0]

    import signal

    enqueued = calls = checks = 0
    start = time.time()
    end = start + seconds

    def stop(*_):  # the orchestrator ends the producer with SIGTERM
        nonlocal end
        end = 0.0

    signal.signal(signal.SIGTERM, stop)
    while True:
        now = time.time()
        if now >= end:
            break
        checks += 1
        missing = target - backlog()
        while missing > 0 and time.time() < end:
            client.produce(chunk)
            enqueued += chunk
            calls += 1
            missing -= chunk
        time.sleep(max(0.0, interval - (time.time() - now)))
    return {"enqueued": enqueued, "calls": calls, "checks": checks, "ended_at": time.time()}


def latency(client, n: int, spacing: float, jitter: float, warmup: int = 10, **_) -> dict:
    """Enqueue ``n`` jobs one at a time into idle workers; the client time right after
    each enqueue returned (committed, in autocommit) is the start of its latency."""
    for i in range(warmup):
        client.latency_enqueue(f"w{i}")
        time.sleep(0.1)
    time.sleep(2.0)
    samples = []
    for i in range(n):
        key = client.latency_enqueue(f"l{i}")
        samples.append([key, time.time()])
        time.sleep(spacing + random.random() * jitter)  # noqa: S311 - spacing, not secrets
    return {"samples": samples}


def main() -> None:
    system, action = sys.argv[1], sys.argv[2]
    params = json.loads(sys.argv[3]) if len(sys.argv) > 3 else {}
    client = SYSTEMS[system]()
    if action == "produce":
        result = produce(client, system, **params)
    elif action == "latency":
        result = latency(client, **params)
    else:
        result = getattr(client, action)(**params)
    sys.stdout.flush()
    print("\n" + json.dumps(result))


if __name__ == "__main__":
    main()
