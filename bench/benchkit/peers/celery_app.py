"""Celery with the local Redis as broker, configured for many short tasks.

Celery's "Optimizing" guide: a large prefetch multiplier for many short tasks, results
off; the worker runs with --without-gossip --without-mingle --without-heartbeat.
"""

import os

from celery import Celery

from benchkit.probe import record

REDIS_URL = os.environ.get("BENCH_CELERY_BROKER", "redis://127.0.0.1:6379/15")

app = Celery("bench", broker=REDIS_URL)
app.conf.update(
    task_ignore_result=True,
    result_backend=None,
    worker_prefetch_multiplier=int(os.environ.get("BENCH_CELERY_PREFETCH", "64")),
    task_acks_late=False,
    worker_disable_rate_limits=True,
    task_default_queue="bench",
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
)


@app.task(name="bench.noop")
def noop(tag="-"):
    record(tag)
