from __future__ import annotations

import argparse
import getpass
import json
import re
import sys
from datetime import timedelta
from json import dumps

from django.core.management.base import BaseCommand, CommandError

from ...conf import jobs_settings
from ...health import CHECKS, worker_file_age
from ...manager import jobs
from ...models import AuditEntry, Delivery, Job, Queue
from ...notifications import deliveries
from .. import notifications, top
from ..wait import follow

DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")
UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def duration(value: str) -> timedelta:
    """``90``, ``90s``, ``15m``, ``12h``, ``7d``, ``2w``."""
    match = DURATION.match(value)
    if not match:
        raise argparse.ArgumentTypeError(f"{value!r} is not a duration like 30s, 15m, 12h or 7d")
    return timedelta(seconds=float(match.group(1)) * UNITS[match.group(2)])


def positive(kind):
    def parse(value: str):
        try:
            number = kind(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{value!r} is not a number") from None
        if number <= 0:
            raise argparse.ArgumentTypeError(f"{value!r} is not above 0")
        return number

    return parse


def json_value(kind):
    def parse(value: str):
        try:
            data = json.loads(value)
        except json.JSONDecodeError as exc:
            raise argparse.ArgumentTypeError(f"not valid JSON: {exc}") from None
        if not isinstance(data, kind):
            raise argparse.ArgumentTypeError(f"expected a JSON {kind.__name__}")
        return data

    return parse


class Command(BaseCommand):
    help = "Inspect and control django_jobs: stats, list, show, enqueue, wait, cancel, ..."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="subcommand", required=True, metavar="subcommand")
        sub.add_parser("stats", help="Counts by status, queue and priority.")
        p = sub.add_parser("list", help="List jobs, newest first.")
        p.add_argument("--status", default=None)
        p.add_argument("--queue", default=None)
        p.add_argument("--task", default=None)
        p.add_argument("--limit", type=int, default=20)
        p = sub.add_parser("show", help="One job in full.")
        p.add_argument("id")
        p = sub.add_parser("enqueue", help="Enqueue a registered task.")
        p.add_argument("task")
        p.add_argument(
            "--args",
            dest="job_args",
            type=json_value(list),
            default=[],
            help="JSON list of positional arguments",
        )
        p.add_argument(
            "--kwargs",
            dest="job_kwargs",
            type=json_value(dict),
            default={},
            help="JSON object of keyword arguments",
        )
        p.add_argument("--queue", default=None)
        p.add_argument("--priority", default=None)
        p.add_argument("--delay", type=duration, default=None)
        p.add_argument(
            "--wait", action="store_true", help="Wait for the job to finish, as `jobs wait`."
        )
        p.add_argument("--timeout", type=float, default=None, help="Seconds --wait waits.")
        p = sub.add_parser(
            "wait",
            help="Wait for a job, with a live progress bar (a line per change when the "
            "output is not a terminal); exit status 0 only if it completed.",
        )
        p.add_argument("id")
        p.add_argument(
            "--timeout", type=float, default=None, help="Give up after this many seconds."
        )
        p = sub.add_parser(
            "top", help="A live view of queues, workers, throughput and running jobs."
        )
        p.add_argument(
            "--interval",
            type=positive(float),
            default=1.0,
            help="Seconds between refreshes (default: %(default)r).",
        )
        p.add_argument(
            "--limit",
            type=positive(int),
            default=20,
            help="Running jobs shown, the longest-running first (default: %(default)r).",
        )
        p.add_argument(
            "--once", action="store_true", help="Print one frame and exit (for scripts)."
        )
        p = sub.add_parser("cancel", help="Cancel a job.")
        p.add_argument("id")
        p.add_argument("--terminate", action="store_true", help="Kill it if running.")
        p = sub.add_parser("retry", help="Retry a failed or cancelled job.")
        p.add_argument("id")
        for name, text in (
            ("pause", "Pause a queue."),
            ("resume", "Resume a queue."),
            ("clear", "Cancel a queue's pending jobs."),
        ):
            p = sub.add_parser(name, help=text)
            p.add_argument("queue")
        sub.add_parser("queues", help="Queues with their pending counts.")
        sub.add_parser("workers", help="Workers and their heartbeat state.")
        sub.add_parser("schedules", help="Schedules: timing, next and last run, enabled.")
        p = sub.add_parser("prune", help="Delete finished jobs older than --older-than.")
        p.add_argument("--older-than", type=duration, default=timedelta(days=7))
        p.add_argument(
            "--status", action="append", default=None, choices=["completed", "failed", "cancelled"]
        )
        p = sub.add_parser("requeue-stuck", help="Rescue jobs of workers that stopped.")
        p.add_argument("--older-than", type=duration, default=None)
        sub.add_parser("metrics", help="The Prometheus metrics, in the text exposition format.")
        p = sub.add_parser(
            "notifications",
            help="The notification channels and the latest deliveries; send a test or resend.",
        )
        p.add_argument("--limit", type=positive(int), default=20)
        p.add_argument(
            "--test",
            metavar="CHANNEL",
            default=None,
            help="Send a test notification to 'email' or a configured webhook URL.",
        )
        p.add_argument(
            "--resend", metavar="ID", type=positive(int), action="append", default=None,
            help="Send this delivery again (repeatable).",
        )  # fmt: skip
        p = sub.add_parser(
            "health",
            help="Run the health checks; exit status 0 when healthy, 1 when not.",
        )
        p.add_argument(
            "--check",
            action="append",
            default=None,
            choices=CHECKS,
            help="Run only this check (repeatable).",
        )
        p.add_argument("--json", action="store_true", help="Print the report as JSON.")
        p.add_argument(
            "--worker-file",
            default=None,
            help="Check only that `runworkers --health-file` touched this file lately "
            "(no database needed: a liveness probe for worker containers).",
        )
        p.add_argument(
            "--max-age",
            type=duration,
            default=None,
            help="How old --worker-file may be (default: WORKER_TIMEOUT).",
        )

    def handle(self, *args, subcommand, **options):
        handler = getattr(self, "do_" + subcommand.replace("-", "_"))

        try:
            handler(**options)
        except Job.DoesNotExist:
            raise CommandError(f"No job with id {options.get('id')!r}.") from None
        except (ValueError, TypeError, LookupError, TimeoutError) as exc:
            raise CommandError(str(exc)) from None

    # -- subcommands: thin callers of the manager -------------------------------------------

    def do_stats(self, **_):
        stats = jobs.get_statistics()
        for key, value in stats.items():
            if isinstance(value, dict):
                inner = ", ".join(f"{k}={v}" for k, v in value.items()) or "-"
                self.stdout.write(f"{key:28} {inner}")
            else:
                self.stdout.write(f"{key:28} {value if value is not None else '-'}")

    def do_list(self, status, queue, task, limit, **_):
        qs = jobs.objects.all()
        if status:
            qs = qs.filter(status=status)
        if queue:
            qs = qs.filter(queue=queue)
        if task:
            qs = qs.filter(task_name__icontains=task)
        self.stdout.write(f"{'ID':>8}  {'STATUS':10} {'QUEUE':14} {'PRI':>4}  {'PROG':>5}  TASK")
        for job in qs.order_by("-id")[:limit]:
            self.stdout.write(
                f"{job.pk:>8}  {job.status:10} {job.queue[:14]:14} {job.priority:>4}  "
                f"{job.progress:>5.0%}  {job.task_name}"
            )

    def do_show(self, id, **_):
        job = jobs.get_job(id)
        fields = [
            "id",
            "task_name",
            "status",
            "queue",
            "original_queue",
            "priority",
            "created_at",
            "scheduled_at",
            "started_at",
            "finished_at",
            "attempts",
            "retry_count",
            "max_retries",
            "timeout",
            "progress",
            "progress_message",
            "worker_id",
            "owner",
            "tags",
            "metadata",
            "args",
            "kwargs",
            "result",
        ]
        for name in fields:
            value = getattr(job, name)
            if isinstance(value, (dict, list)):
                value = json.dumps(value)
            self.stdout.write(f"{name:18} {value}")
        for n, error in enumerate(job.errors or [], 1):
            self.stdout.write(f"\nerror {n}: {error.get('type')}: {error.get('message')}")
            if error.get("traceback"):
                self.stdout.write(error["traceback"].rstrip())

    def do_enqueue(self, task, job_args, job_kwargs, queue, priority, delay, wait, timeout, **_):
        job = jobs.enqueue(
            task, args=job_args, kwargs=job_kwargs, queue=queue, priority=priority, delay=delay
        )
        _audit("enqueue", "job", [job.pk], task=job.task_name)
        self.stdout.write(str(job.pk))
        if wait:
            self.do_wait(job.pk, timeout)

    def do_wait(self, id, timeout=None, **_):
        job = jobs.get_job(id)
        try:
            follow(job, self.stdout, timeout=timeout)
        except KeyboardInterrupt:
            self.stderr.write(f"Stopped waiting: job {job.pk} is still {job.status}.")
            sys.exit(130)
        self.stdout.write(f"job {job.pk} {job.status}")
        if job.status == "completed":
            self.stdout.write(json.dumps(job.result))
        elif job.error:
            self.stdout.write(f"{job.error.get('type')}: {job.error.get('message')}")
        if job.status != "completed":
            sys.exit(1)

    def do_cancel(self, id, terminate, **_):
        jobs.get_job(id)  # an unknown id is "no such job", not "already finished"
        if jobs.cancel(id, terminate=terminate):
            _audit("cancel", "job", [int(id)], terminate=terminate)
            self.stdout.write(f"job {id}: cancel requested")
        else:
            raise CommandError(f"Job {id} is already finished.")

    def do_retry(self, id, **_):
        job = jobs.retry(id)
        _audit("retry", "job", [job.pk])
        self.stdout.write(f"job {job.pk} is {job.status} again in queue {job.queue}")

    def do_pause(self, queue, **_):
        jobs.pause_queue(queue)
        _audit("pause", "queue", [queue])
        self.stdout.write(f"queue {queue} paused")

    def do_resume(self, queue, **_):
        jobs.resume_queue(queue)
        _audit("resume", "queue", [queue])
        self.stdout.write(f"queue {queue} resumed")

    def do_clear(self, queue, **_):
        n = jobs.clear_queue(queue)
        _audit("clear", "queue", [queue], jobs_cancelled=n)
        self.stdout.write(f"queue {queue}: {n} job(s) cancelled")

    def do_queues(self, **_):
        rows = Queue.objects.using(jobs.db).values_list(
            "name", "paused", "concurrency_limit", "rate_limit"
        )
        settings = {name: (paused, limit, rate) for name, paused, limit, rate in rows}
        for name in jobs.get_queue_names():
            paused, limit, rate = settings.get(name, (False, None, ""))
            flags = ["(paused)"] if paused else []
            if limit is not None:
                flags.append(f"at most {limit} running")
            if rate:
                flags.append(f"at most {rate} starts")
            flag = " " + ", ".join(flags) if flags else ""
            self.stdout.write(f"{name:30} {jobs.queue_length(name):>8}{flag}")

    def do_top(self, interval, limit, once, **_):
        top.run(self.stdout, jobs.db, interval=interval, limit=limit, once=once)

    def do_workers(self, **_):
        for w in jobs.get_workers().unstopped():
            state = "alive" if w.is_alive else "stale"
            age = w.heartbeat_age.total_seconds()
            self.stdout.write(
                f"{w.id:40} {state:5} {age:6.1f}s  pid={w.pid} jobs={w.current_jobs} "
                f"processed={w.jobs_processed}"
            )

    def do_schedules(self, **_):
        def when(value):
            return value.strftime("%Y-%m-%d %H:%M:%S") if value else "-"

        self.stdout.write(
            f"{'NAME':30} {'TASK':36} {'SCHEDULE':36} {'NEXT RUN (UTC)':19}  "
            f"{'LAST RUN (UTC)':19}  ENABLED"
        )
        for s in jobs.list_scheduled():
            self.stdout.write(
                f"{s.name:30} {s.task_name:36} {s.describe()[:36]:36} "
                f"{when(s.next_run_at):19}  {when(s.last_run_at):19}  "
                f"{'yes' if s.enabled else 'no'}"
            )

    def do_prune(self, older_than, status, **_):
        statuses = status or ["completed", "failed", "cancelled"]
        n = jobs.prune(statuses=statuses, older_than=older_than)
        _audit("prune", "job", [], count=n, statuses=statuses, older_than=str(older_than))
        self.stdout.write(f"{n} job(s) deleted")

    def do_requeue_stuck(self, older_than, **_):
        n = jobs.requeue_stuck(older_than=older_than)
        _audit("requeue-stuck", "job", [], count=n)
        self.stdout.write(f"{n} job(s) requeued")

    def do_notifications(self, limit, test, resend, **_):
        if test is not None:
            delivery = deliveries.send_test(jobs.db, test)
            _audit("send_test", "delivery", [delivery.pk], count=1, channel=delivery.target)
            self.stdout.write(
                f"Test notification {delivery.pk} to {delivery.target} enqueued on the "
                f"{jobs_settings.NOTIFICATIONS_QUEUE!r} queue: a worker sends it."
            )
            return
        if resend:
            chosen = list(Delivery.objects.using(jobs.db).filter(pk__in=resend))
            missing = sorted(set(resend) - {d.pk for d in chosen})
            if missing:
                raise CommandError(f"No delivery with id {', '.join(map(str, missing))}.")
            n = deliveries.resend(chosen, jobs.db)
            _audit("resend", "delivery", [d.pk for d in chosen], count=n)
            self.stdout.write(f"{n} delivery(ies) will be sent again")
            return
        for line in notifications.report(jobs.db, limit):
            self.stdout.write(line)

    def do_health(self, check, json, worker_file, max_age, **_):
        if worker_file is not None:
            limit = max_age.total_seconds() if max_age else jobs_settings.WORKER_TIMEOUT
            age = worker_file_age(worker_file)
            healthy = age is not None and age <= limit
            report = {
                "status": "ok" if healthy else "fail",
                "worker_file": worker_file,
                "age_seconds": None if age is None else round(age, 1),
                "max_age_seconds": limit,
            }
            if json:
                self.stdout.write(dumps(report))
            elif age is None:
                self.stdout.write(f"fail  {worker_file} does not exist: no worker wrote it")
            else:
                word = "ok  " if healthy else "fail"
                self.stdout.write(
                    f"{word}  {worker_file} touched {age:.1f} s ago (limit {limit:g} s)"
                )
        else:
            result = jobs.health(check)
            healthy = result.ok
            if json:
                self.stdout.write(dumps(result.as_dict()))
            else:
                for item in result.checks:
                    word = "ok  " if item.ok else "fail"
                    self.stdout.write(f"{word}  {item.name:11} {item.message}")
        if not healthy:
            sys.exit(1)

    def do_metrics(self, **_):
        try:
            # Here, not at the top: prometheus-client is the optional extra "metrics".
            from ...metrics import render
        except ImportError as exc:
            raise CommandError(
                f"{exc}: the metrics need prometheus-client (pip install 'django-jobs[metrics]')."
            ) from None
        self.stdout.write(render().decode(), ending="")


def _audit(action: str, target_type: str, targets: list, count: int | None = None, **details):
    """Record a state change made from the command line, under the operating-system user."""
    AuditEntry.record(
        source=AuditEntry.CLI,
        action=action,
        target_type=target_type,
        targets=targets,
        count=count,
        username=getpass.getuser(),
        using=jobs.db,
        **details,
    )
