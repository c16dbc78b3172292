"""The HTTP read paths on a big table: ``/metrics/``, ``/stats/``, ``/health/``, the API's
job list (issue #11) and the admin's dashboard, job list and failures page (issue #12)
with 10 million finished and 100,000 pending jobs (target: each under 300 ms).

    python bench/api_bigtable.py                       # fill (once, ~10 min) and measure
    python bench/api_bigtable.py --finished 1000000    # a smaller table
    python bench/api_bigtable.py --refill              # drop the table's rows, fill again

Runs with any venv that has the project and its ``api`` extra (``.venv312`` of CI, or
``pip install -e '.[api,postgres]'``). Uses its own PostgreSQL database
(``bench_api`` on 127.0.0.1:5432, user postgres) which it keeps between runs: the fill
is the slow part. The rows are written by one ``INSERT ... SELECT generate_series``
copying a job made by ``enqueue()``, then ``VACUUM ANALYZE`` (what autovacuum would
have done on a table that grew over weeks).

Each request goes through Django's test ``Client`` in this process, logged in as a
staff user: the time is the server's (middleware, DRF, serialization, the queries),
without a socket. Every path is requested once to warm up, then ``--repeat`` times; the
table shows the median and the worst, and the slowest SQL statement of the last request.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def configure(dbname: str) -> None:
    import django
    from django.conf import settings

    settings.configure(
        DEBUG=False,
        SECRET_KEY="bench-only",
        USE_TZ=True,
        ALLOWED_HOSTS=["testserver", "127.0.0.1"],
        DEFAULT_AUTO_FIELD="django.db.models.BigAutoField",
        DATABASES={
            "default": {
                "ENGINE": "django.db.backends.postgresql",
                "NAME": dbname,
                "USER": "postgres",
                "HOST": "127.0.0.1",
                "PORT": "5432",
                "CONN_MAX_AGE": None,
            }
        },
        INSTALLED_APPS=[
            "django.contrib.admin",
            "django.contrib.contenttypes",
            "django.contrib.auth",
            "django.contrib.sessions",
            "django.contrib.messages",
            "django.contrib.staticfiles",
            "rest_framework",
            "django_jobs",
        ],
        MIDDLEWARE=[
            "django.contrib.sessions.middleware.SessionMiddleware",
            "django.middleware.common.CommonMiddleware",
            "django.contrib.auth.middleware.AuthenticationMiddleware",
            "django.contrib.messages.middleware.MessageMiddleware",
        ],
        TEMPLATES=[
            {
                "BACKEND": "django.template.backends.django.DjangoTemplates",
                "APP_DIRS": True,
                "OPTIONS": {
                    "context_processors": [
                        "django.template.context_processors.request",
                        "django.contrib.auth.context_processors.auth",
                        "django.contrib.messages.context_processors.messages",
                    ]
                },
            }
        ],
        STATIC_URL="/static/",
        ROOT_URLCONF=__name__,
        TASKS={"default": {"BACKEND": "django_jobs.backend.JobsBackend"}},
        DJANGO_JOBS={},
    )
    django.setup()


def mount_api() -> None:
    """This module is the project's ROOT_URLCONF."""
    from django.contrib import admin
    from django.urls import include, path

    urlpatterns[:] = [
        path("admin/", admin.site.urls),
        path("api/jobs/", include("django_jobs.api.urls")),
    ]


def ensure_database(dbname: str) -> None:
    import psycopg

    with psycopg.connect("host=127.0.0.1 user=postgres dbname=postgres", autocommit=True) as c:
        if not c.execute("SELECT 1 FROM pg_database WHERE datname = %s", [dbname]).fetchone():
            c.execute(f'CREATE DATABASE "{dbname}"')


QUEUES = ["default", "emails", "reports", "webhooks", "imports"]
TASKS = [f"bench.tasks.task_{i}" for i in range(10)]


def fill(finished: int, pending: int) -> None:
    """One template job, copied ``finished`` + ``pending`` times by the server."""
    from django.db import connection

    from django_jobs.models import Job

    table = Job._meta.db_table
    template = Job.objects.create(task_name=TASKS[0], queue="default")
    columns = [
        f.column for f in Job._meta.concrete_fields if f.column not in {"id", "unique_active"}
    ]
    overrides = {
        "task_name": f"(ARRAY{TASKS!r})[1 + (g %% {len(TASKS)})]",
        "queue": f"(ARRAY{QUEUES!r})[1 + (g %% {len(QUEUES)})]",
        "priority": "(g %% 3) * 10",
    }
    finished_cols = {
        **overrides,
        # 90 % completed, 8 % failed, 2 % cancelled, over the last seven days
        "status": "CASE WHEN g %% 50 = 0 THEN 'cancelled' WHEN g %% 50 < 5 THEN 'failed' "
        "ELSE 'completed' END",
        "created_at": "now() - (g %% 604800) * interval '1 second' - interval '2 seconds'",
        "scheduled_at": "now() - (g %% 604800) * interval '1 second' - interval '2 seconds'",
        "started_at": "now() - (g %% 604800) * interval '1 second' - interval '1 second'",
        "finished_at": "now() - (g %% 604800) * interval '1 second'",
        "attempts": "1",
        # failed for good: moved to the dead-letter queue, the queue it ran in kept
        "queue": f"CASE WHEN g %% 50 BETWEEN 1 AND 4 THEN 'dead-letter' "
        f"ELSE {overrides['queue']} END",
        "original_queue": f"CASE WHEN g %% 50 BETWEEN 1 AND 4 THEN {overrides['queue']} "
        "ELSE '' END",
        # three causes of failure, keyed as django_jobs.errorgroups does
        "error_group": "CASE WHEN g %% 50 BETWEEN 1 AND 4 THEN (ARRAY["
        "'ConnectionError: timeout after <n>s talking to <ip>:<n>', "
        "'ValueError: invoice <n> has no lines', 'KeyError: ''customer_<n>'''"
        "])[1 + (g %% 3)] ELSE '' END",
        "result": "CASE WHEN g %% 50 >= 5 THEN to_jsonb(g) END",
    }
    pending_cols = {
        **overrides,
        "status": "'pending'",
        "created_at": "now() - (g %% 3600) * interval '1 second'",
        "scheduled_at": "now() - (g %% 3600) * interval '1 second'",
    }
    quoted = ", ".join(connection.ops.quote_name(c) for c in columns)
    with connection.cursor() as cursor:
        for label, n, cols in (
            ("finished", finished, finished_cols),
            ("pending", pending, pending_cols),
        ):
            select = ", ".join(cols.get(c, f"t.{connection.ops.quote_name(c)}") for c in columns)
            step = 1_000_000
            for start in range(1, n + 1, step):
                stop = min(n, start + step - 1)
                t0 = time.monotonic()
                cursor.execute(
                    f"INSERT INTO {table} ({quoted}) SELECT {select} "
                    f"FROM {table} t, generate_series(%s, %s) g WHERE t.id = %s",
                    [start, stop, template.pk],
                )
                print(
                    f"  {label}: rows {start:,}..{stop:,} in {time.monotonic() - t0:.1f}s",
                    flush=True,
                )
        cursor.execute(f"DELETE FROM {table} WHERE id = %s", [template.pk])
    print("  VACUUM ANALYZE ...", flush=True)
    with connection.cursor() as cursor:
        cursor.execute(f"VACUUM ANALYZE {table}")


def measure(paths: list[str], repeat: int) -> list[dict]:
    from django.contrib.auth import get_user_model
    from django.core.cache import cache
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    user, _ = get_user_model().objects.get_or_create(
        username="bench-staff", defaults={"is_staff": True, "is_superuser": True}
    )
    client = Client()
    client.force_login(user)
    rows = []
    for path in paths:
        response = client.get(path)
        assert response.status_code in (200, 503), (path, response.status_code)
        times = []
        for _ in range(repeat):
            cache.clear()  # the dashboard's snapshot: measure computing it, not the cache
            with CaptureQueriesContext(connection) as queries:
                t0 = time.perf_counter()
                response = client.get(path)
                times.append((time.perf_counter() - t0) * 1000)
        slowest = max(queries.captured_queries, key=lambda q: float(q["time"]), default=None)
        rows.append(
            {
                "path": path,
                "status": response.status_code,
                "median_ms": statistics.median(times),
                "max_ms": max(times),
                "queries": len(queries.captured_queries),
                "slowest_ms": float(slowest["time"]) * 1000 if slowest else 0.0,
                "slowest_sql": (slowest["sql"][:160] + "...") if slowest else "",
            }
        )
        print(f"  {path}: median {rows[-1]['median_ms']:.1f} ms", flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--finished", type=int, default=10_000_000)
    parser.add_argument("--pending", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--database", default="bench_api")
    parser.add_argument("--refill", action="store_true")
    args = parser.parse_args()

    ensure_database(args.database)
    configure(args.database)
    mount_api()
    from django.core.management import call_command
    from django.db import connection

    from django_jobs.models import Job

    call_command("migrate", verbosity=0)
    have = Job.objects.count()
    want = args.finished + args.pending
    if args.refill or have != want:
        print(f"filling: {have:,} rows, want {want:,}", flush=True)
        with connection.cursor() as cursor:
            cursor.execute(f"TRUNCATE {Job._meta.db_table} CASCADE")
        fill(args.finished, args.pending)
    from django_jobs.models import Queue

    for name in [*QUEUES, "dead-letter"]:  # enqueue() declares the queues it uses
        Queue.objects.get_or_create(name=name)
    with connection.cursor() as cursor:
        # What autovacuum does after every 10,000 changed rows (migration 0003); also fills
        # the (queue, status) statistics of migration 0009 on a table filled before it.
        cursor.execute(f"ANALYZE {Job._meta.db_table}")
        cursor.execute("SELECT pg_size_pretty(pg_total_relation_size(%s))", [Job._meta.db_table])
        size = cursor.fetchone()[0]
        cursor.execute("SHOW server_version")
        version = cursor.fetchone()[0]
    first_id = Job.objects.order_by("-id").values_list("id", flat=True)[5000]
    paths = [
        "/api/jobs/metrics/",
        "/api/jobs/stats/",
        "/api/jobs/health/",
        "/api/jobs/jobs/",
        "/api/jobs/jobs/?status=failed",
        "/api/jobs/jobs/?queue=emails&status=pending",
        "/api/jobs/jobs/?task=bench.tasks.task_3",
        f"/api/jobs/jobs/{first_id}/",
        "/api/jobs/queues/",
        # The admin console (issue #12): the dashboard (its cache emptied before every
        # request, so each one computes), the job list, filtered, 200 pages deep, a
        # search, the failures grouped by cause, the queue list and a job's page.
        "/admin/django_jobs/dashboard/",
        "/admin/django_jobs/job/",
        "/admin/django_jobs/job/?status__exact=failed",
        "/admin/django_jobs/job/?queue__exact=emails&status__exact=pending",
        "/admin/django_jobs/job/?p=200",
        "/admin/django_jobs/job/?q=bench.tasks.task_3",
        "/admin/django_jobs/job/failures/",
        "/admin/django_jobs/queue/",
        f"/admin/django_jobs/job/{first_id}/change/",
    ]
    print(f"measuring ({want:,} jobs, table {size}, PostgreSQL {version})", flush=True)
    rows = measure(paths, args.repeat)
    print()
    print("| path | status | median ms | worst ms | queries | slowest statement ms |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| `{r['path']}` | {r['status']} | {r['median_ms']:.1f} | {r['max_ms']:.1f} "
            f"| {r['queries']} | {r['slowest_ms']:.1f} |"
        )
    print()
    for r in rows:
        print(f"{r['path']}: slowest: {r['slowest_sql']}")
    accuracy()


def accuracy() -> None:
    """The estimated counts of /metrics/ against an exact GROUP BY (and what that costs);
    a dead-lettered job counts under the queue it ran in, as in /metrics/."""
    from django.db.models import Case, Count, F, When

    from django_jobs.models import Job
    from django_jobs.models.counts import job_counts

    t0 = time.perf_counter()
    shown, estimated = job_counts("default", by_queue=True)
    ours = (time.perf_counter() - t0) * 1000
    t0 = time.perf_counter()
    origin = Case(When(original_queue="", then=F("queue")), default=F("original_queue"))
    rows = (
        Job.objects.order_by()
        .annotate(origin=origin)
        .values_list("origin", "status")
        .annotate(n=Count("id"))
    )
    exact = {(q, s): n for q, s, n in rows}
    full = (time.perf_counter() - t0) * 1000
    print()
    print(
        f"counts by (queue, status): {ours:.0f} ms (estimated: {estimated}), "
        f"exact GROUP BY {full:.0f} ms"
    )
    print("| queue | status | shown | exact | error |")
    print("|---|---|---|---|---|")
    for key in sorted(set(shown) | set(exact)):
        a, b = shown.get(key, 0), exact.get(key, 0)
        error = f"{(a - b) / b:+.1%}" if b else "-"
        print(f"| {key[0]} | {key[1]} | {a:,} | {b:,} | {error} |")


urlpatterns: list = []

if __name__ == "__main__":
    main()
