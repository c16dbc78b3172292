"""Data for ``.ci/schemathesis.sh``: a staff user and a little of everything the API
serves, so that generated path parameters (small ids, the names below) hit real objects.

    DATABASE_URL=sqlite:///... python -m django migrate --settings=tests.settings
    DATABASE_URL=sqlite:///... DJANGO_SETTINGS_MODULE=tests.settings \\
        python -m tests.api.schemathesis_seed seed USERNAME PASSWORD
    python -m tests.api.schemathesis_seed createdb|dropdb    # DATABASE_URL's, not SQLite

Not a test module (no ``test_`` prefix): pytest does not collect it.
"""

from __future__ import annotations

import logging
import os
import sys
from datetime import timedelta

import django


def seed(username: str, password: str) -> dict[str, int]:
    from django.contrib.auth.models import User
    from django.utils import timezone

    from django_jobs import JobStatus, jobs
    from django_jobs.models import Job, Queue, Worker
    from django_jobs.testing import run_jobs
    from tests.testapp import tasks

    User.objects.create_user(username, password=password, is_staff=True)
    now = timezone.now()

    # Finished jobs first (ids 1-3), so that small generated ids meet every status.
    jobs.enqueue(tasks.add, args=[2, 3], tags=["seed", "ok"])
    jobs.enqueue(tasks.permanent_failure, args=["seed"], queue="emails")
    logging.disable(logging.ERROR)  # job 2 failing is the point: no traceback for it
    run_jobs(allow_retry=False)
    logging.disable(logging.NOTSET)
    cancelled = jobs.enqueue(tasks.noop, queue="emails", delay=3600)
    jobs.cancel(cancelled.pk)

    pending = jobs.enqueue(tasks.add, args=[1, 1], priority="high", metadata={"by": "seed"})
    jobs.enqueue(tasks.add, args=[1, 2], delay=3600, unique_key="seed-unique")
    jobs.enqueue(tasks.add, args=[1, 3], depends_on=[pending])  # waiting
    running = jobs.enqueue(tasks.sleeper, args=["seed", 1], queue="records")
    Worker.objects.create(
        id="seed-worker",
        hostname="seed-host",
        pid=4242,
        queues=["records"],
        last_heartbeat_at=now,
        current_jobs=[running.pk],
    )
    Job.objects.filter(pk=running.pk).update(
        status=JobStatus.RUNNING,
        worker_id="seed-worker",
        started_at=now - timedelta(seconds=30),
        attempts=1,
        progress=0.4,
        progress_message="seeding",
    )
    Worker.objects.create(
        id="seed-worker-dead",
        hostname="seed-host",
        pid=4243,
        last_heartbeat_at=now - timedelta(hours=1),
        stopped_at=now - timedelta(minutes=59),
    )

    jobs.enqueue_batch(tasks.add, items=[{"a": i, "b": i} for i in range(3)])
    jobs.chain([tasks.noop, tasks.noop])

    Queue.objects.update_or_create(name="paused", defaults={"paused": True, "concurrency_limit": 2})
    Queue.objects.update_or_create(
        name="default", defaults={"max_pending_age": timedelta(minutes=10)}
    )

    jobs.schedule(tasks.add, "0 3 * * *", name="nightly", args=[1, 2], timezone="Europe/Paris")
    jobs.schedule_interval(tasks.noop, 60, name="often")
    jobs.schedule_once(tasks.noop, now + timedelta(days=1), name="once")

    return {"jobs": Job.objects.count(), "queues": Queue.objects.count()}


def recreate_database(create: bool) -> None:
    """Drop the PostgreSQL or MySQL database of DATABASE_URL and (``create``) create it
    anew; only a database whose name says it is this run's."""
    import environ

    conf = environ.Env().db_url_config(os.environ["DATABASE_URL"])
    name = conf["NAME"]
    if "schemathesis" not in name:
        sys.exit(f"Refusing to drop {name!r}: its name must contain 'schemathesis'.")
    params = {
        "host": conf.get("HOST") or "127.0.0.1",
        "user": conf.get("USER") or "root",
        "password": conf.get("PASSWORD") or "",
    }
    if "postgresql" in conf["ENGINE"]:
        import psycopg

        port = int(conf.get("PORT") or 5432)
        with psycopg.connect(dbname="postgres", port=port, autocommit=True, **params) as db:
            db.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            if create:
                db.execute(f'CREATE DATABASE "{name}"')
    elif "mysql" in conf["ENGINE"]:
        import MySQLdb

        db = MySQLdb.connect(port=int(conf.get("PORT") or 3306), **params)
        db.cursor().execute(f"DROP DATABASE IF EXISTS `{name}`")
        if create:
            db.cursor().execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
        db.close()
    else:
        sys.exit(f"Not a PostgreSQL or MySQL URL: {os.environ['DATABASE_URL']!r}.")


if __name__ == "__main__":
    command, *rest = sys.argv[1:]
    if command in ("createdb", "dropdb"):
        recreate_database(create=command == "createdb")
    else:
        django.setup()
        counts = seed(*rest)
        print("seeded:", ", ".join(f"{n} {what}" for what, n in counts.items()), flush=True)
