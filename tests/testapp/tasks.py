"""Tasks used by the test suite (discovered like any app's tasks.py)."""

import asyncio
import os
import time

from django_jobs import PermanentError, Retry, current_job, job, progress
from django_jobs._compat import task

from .models import Execution


def record(label):
    j = current_job()
    Execution.objects.create(
        label=label,
        job_id=j.pk if j else None,
        worker_pid=os.getpid(),
        attempt=j.attempts if j else 0,
    )


@job
def noop():
    return None


@job
def add(a, b):
    return a + b


@job(queue="records")
def record_label(label):
    record(label)
    return label


@job(max_retries=2, retry_delay=0.2, retry_backoff=2.0, retry_jitter=False)
def flaky_until(label, succeed_on_attempt):
    record(label)
    j = current_job()
    if j.attempts < succeed_on_attempt:
        raise ConnectionError("temporary connection problem")
    return j.attempts


@job(max_retries=3, retry_delay=0.1, retry_jitter=False)
def always_transient(label):
    record(label)
    raise TimeoutError("upstream timeout")


@job(max_retries=3, retry_delay=0.1)
def permanent_failure(label):
    record(label)
    raise ValueError("bad input, never retry")


@job(max_retries=3, retry_delay=0.1)
def raises_permanent(label):
    record(label)
    raise PermanentError("stop")


@job(max_retries=1)
def forced_retry(label):
    record(label)
    if current_job().attempts == 1:
        raise Retry(delay=0.1)
    return "second time"


@job(max_retries=0, timeout=1)
def spin_forever(label):
    record(label)
    while True:  # never yields
        pass


@job(max_retries=0)
def sleeper(label, seconds):
    record(label)
    time.sleep(seconds)
    record(label + ":done")
    return seconds


@job(max_retries=0)
def progress_steps(label, steps=5, pause=0.05, progress_callback=None):
    for i in range(steps):
        progress_callback((i + 1) / steps, f"step {i + 1}/{steps}", step=i + 1)
        time.sleep(pause)
    record(label)
    return steps


@job(max_retries=0)
def cooperative(label, seconds=30):
    record(label)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        progress(0.5, "working")
        time.sleep(0.05)
    return "finished"


@job
async def async_add(a, b):
    await asyncio.sleep(0.01)
    return a + b


@job(max_retries=0)
def returns_nul(text="a\x00b"):
    return {"text": text}


@job
def returns_unserializable():
    return object()


@task
def django_task_add(a, b):
    return a + b


@task(takes_context=True)
def django_task_context(context, value):
    return {"attempt": context.attempt, "id": context.task_result.id, "value": value}


@task
def django_task_fail():
    raise ValueError("django task failure")


@task(priority=10, queue_name="other")
def django_task_other_queue():
    return "other"


@job(max_retries=0)
def crash_interpreter(label):
    record(label)
    os._exit(3)


# -- used by the unit tests (test_manager, test_enqueue, test_eager) -----------------------


@job(
    queue="configured",
    priority="high",
    max_retries=5,
    retry_delay=7,
    retry_backoff=3.0,
    retry_jitter=False,
    max_retry_delay=99,
    timeout=12,
    tags=["cfg"],
)
def configured(value=None):
    return value


@job(max_retries=2)
def retry_in_30s():
    raise Retry(delay=30)


@job(max_retries=2, retry_delay=60, retry_jitter=False, retry_on=[KeyError])
def retried_key_error():
    raise KeyError("missing")


@job(max_retries=2, retry_delay=60, retry_jitter=False, dont_retry_on=[ConnectionResetError])
def unretried_connection_reset():
    raise ConnectionResetError("connection reset by peer")


@job(max_retries=2, retry_delay=60, retry_jitter=False)
def transient_by_message():
    raise RuntimeError("Service temporarily unavailable")


@job(max_retries=0)
def report_current_job():
    j = current_job()
    return {"id": j.pk, "task": j.task_name, "attempts": j.attempts, "status": j.status}


@job(max_retries=0)
async def async_report_current_job():
    await asyncio.sleep(0)
    j = current_job()
    return {"id": j.pk, "task": j.task_name}


@job(max_retries=0)
def progress_then_read():
    from django_jobs.models import Job

    progress(0.25, "a quarter", item="a")
    row = Job.objects.get(pk=current_job().pk)
    return [row.progress, row.progress_message, row.progress_details]


@job(queue="records")
def batch_done(batch_id):
    record(f"batch-done:{batch_id}")
    return batch_id


@job(queue="records")
def record_item(n):
    record(f"item-{n}")


@job(unique=True)
def unique_by_args(n):
    return n


# -- schedules (tests/test_schedules.py) --------------------------------------------------


@job(queue="scheduled")
def scheduled_tick(label="tick"):
    return label


# Declared only in worker subprocesses started with this variable, so no other test
# (nor the test database's post_migrate) sees a code-declared schedule.
if os.environ.get("JOBS_TEST_CODE_SCHEDULES"):

    @job(name="testapp.code_cron", cron="0 4 * * *")
    def code_cron():
        return "cron"

    @job(name="testapp.code_interval", interval=3600)
    def code_interval():
        return "interval"


# -- trust and reliability (tests/test_trust.py, tests/reliability/) -----------------------


@job(queue="tracked", max_retries=5, retry_delay=0, retry_jitter=False)
def tracked(label, seconds=0.0):
    """One Execution row per run with its start and end: runs that overlap, or a second
    run of a job that completed, are visible afterwards."""
    j = current_job()
    row = Execution.objects.create(
        label=label,
        job_id=j.pk if j else None,
        worker_pid=os.getpid(),
        parent_pid=os.getppid(),
        attempt=j.attempts if j else 0,
        started=time.time(),
    )
    if seconds:
        time.sleep(seconds)
    Execution.objects.filter(pk=row.pk).update(ended=time.time())
    return label


@job(max_retries=0)
def sql_sleeper(label, seconds):
    """Blocks inside a database query (PostgreSQL's pg_sleep, MySQL's SLEEP)."""
    from django.db import connection

    record(label)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT pg_sleep(%s)", [seconds])
        elif connection.vendor == "mysql":
            cursor.execute("SELECT SLEEP(%s)", [seconds])
        else:
            time.sleep(seconds)
    record(label + ":done")


@job(max_retries=0)
def fails_unless_marked(key):
    """Fails for good until an Execution labelled ``ok:<key>`` exists."""
    if not Execution.objects.filter(label=f"ok:{key}").exists():
        raise PermanentError(f"{key} is not marked")
    record(f"ran:{key}")
    return key


@job(queue="batches")
def batch_callback(batch_id):
    record(f"callback:{batch_id}")
    return batch_id


@job(max_retries=5, retry_delay=0)
def kills_its_process(label):
    """A poison job: takes down the process running it, every time."""
    record(label)
    os.kill(os.getpid(), 9)


@job(max_retries=0)
def fails_at_once():
    raise PermanentError("no")


@job(queue="tracked", max_retries=5, retry_delay=0, retry_jitter=False)
def tracked_once(label):
    """Records its run (start and end) in one write at its end: for drains where no
    process is killed."""
    j = current_job()
    started = time.time()
    Execution.objects.create(
        label=label,
        job_id=j.pk if j else None,
        worker_pid=os.getpid(),
        parent_pid=os.getppid(),
        attempt=j.attempts if j else 0,
        started=started,
        ended=time.time(),
    )
    return label


@job
def current_span_id():
    """The id of the OpenTelemetry span current while the job's code runs (hex)."""
    from opentelemetry import trace  # imported here: the suite runs without it too

    return format(trace.get_current_span().get_span_context().span_id, "016x")
