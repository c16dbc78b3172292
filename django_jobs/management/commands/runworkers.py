from __future__ import annotations

import argparse
import logging
import sys

from django.core.management.base import BaseCommand, CommandError
from django.db import connections, router

from ...conf import jobs_settings
from ...models import Job
from ...worker.process import WorkerProcess, default_worker_id
from ...worker.supervisor import Supervisor


def positive_int(value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not an integer") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"{value!r} must be 1 or more")
    return n


def seconds(value: str) -> float:
    try:
        n = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number of seconds") from None
    if n < 0:
        raise argparse.ArgumentTypeError(f"{value!r} must not be negative")
    return n


def queue_list(value: str) -> list[str]:
    names = [q.strip() for q in value.split(",") if q.strip()]
    if not names:
        raise argparse.ArgumentTypeError("give at least one queue name")
    return names


def configure_logging(verbosity: int) -> None:
    level = {0: logging.ERROR, 1: logging.INFO, 2: logging.DEBUG}.get(verbosity, logging.DEBUG)
    logger = logging.getLogger("django_jobs")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s")
        )
        logger.addHandler(handler)
    logger.setLevel(level)


class Command(BaseCommand):
    help = "Run django_jobs workers: claim and run jobs until stopped (SIGTERM/SIGINT)."

    def add_arguments(self, parser):
        parser.add_argument(
            "--queues",
            type=queue_list,
            default=None,
            help="Comma-separated queues to take jobs from (default: all).",
        )
        parser.add_argument(
            "--exclude-queues",
            type=queue_list,
            default=None,
            help="Comma-separated queues never to take jobs from.",
        )
        parser.add_argument(
            "--concurrency",
            type=positive_int,
            default=None,
            help="Jobs run at once per process (default: 4; SQLite: 1).",
        )
        parser.add_argument(
            "--processes",
            type=positive_int,
            default=None,
            help="Worker processes under one supervisor (default: 1).",
        )
        parser.add_argument(
            "--burst", action="store_true", help="Process until no job is due, then exit 0."
        )
        parser.add_argument(
            "--max-jobs",
            type=positive_int,
            default=None,
            help="Stop after this many jobs (per process).",
        )
        parser.add_argument(
            "--worker-id", default=None, help="Worker id (default: hostname-pid-random)."
        )
        parser.add_argument(
            "--no-scheduler", action="store_true", help="Do not fire schedules in this worker."
        )
        parser.add_argument(
            "--shutdown-timeout",
            type=seconds,
            default=None,
            help="Seconds running jobs get to finish after SIGTERM "
            "(default: DJANGO_JOBS['SHUTDOWN_TIMEOUT'], 30).",
        )
        parser.add_argument(
            "--health-file",
            default=None,
            metavar="PATH",
            help="Touch PATH at every successful heartbeat, for a liveness probe that "
            "needs no database: `manage.py jobs health --worker-file PATH`.",
        )
        parser.add_argument(
            "--database",
            default=None,
            help="Database alias of the job tables (default: "
            "DJANGO_JOBS['DATABASE'] or the router's choice).",
        )

    def handle(
        self,
        *,
        queues,
        exclude_queues,
        concurrency,
        processes,
        burst,
        max_jobs,
        worker_id,
        no_scheduler,
        shutdown_timeout,
        database,
        health_file,
        verbosity,
        **_,
    ):
        configure_logging(verbosity)
        db = database or jobs_settings.DATABASE or router.db_for_write(Job)
        if db not in connections:
            raise CommandError(f"Unknown database alias {db!r}.")
        sqlite = connections[db].vendor == "sqlite"
        if concurrency is None:
            concurrency = 1 if sqlite else 4
        if processes is None:
            processes = 1
        options = {
            "worker_id": worker_id or default_worker_id(),
            "queues": queues,
            "exclude_queues": exclude_queues,
            "concurrency": concurrency,
            "burst": burst,
            "max_jobs": max_jobs,
            "shutdown_timeout": shutdown_timeout,
            "scheduler": not no_scheduler,
            "database": database,
            "health_file": health_file,
        }
        if processes == 1:
            code = WorkerProcess(**options).run()
        else:
            code = Supervisor(processes, options).run()
        if code:
            raise SystemExit(code)
