"""OpenTelemetry tracing (``django_jobs.tracing``, the ``otel`` extra): a span around each
enqueue, its context stored in the job, a span around each run continuing that trace."""

import json
import subprocess
import sys
import time

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF
from opentelemetry.trace import SpanKind, StatusCode

from django_jobs import JobStatus, jobs, tracing
from django_jobs.execution.runner import run_job
from django_jobs.models import Job
from django_jobs.testing import run_jobs
from tests.conftest import ROOT
from tests.otel_export import read_spans
from tests.testapp import tasks

pytestmark = pytest.mark.django_db


@pytest.fixture
def spans():
    """Tracing on, into memory, for this test only (the global tracer provider can be set
    once per process: ``tracing.set_tracer_provider`` stands in for it)."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.set_tracer_provider(provider)
    exporter.provider = provider
    try:
        yield exporter
    finally:
        tracing.set_tracer_provider(None)
        provider.shutdown()


def request_span(exporter):
    """A span standing for the web request that enqueues (current inside the block)."""
    return exporter.provider.get_tracer("tests").start_as_current_span("request")


def named(exporter, prefix):
    return [s for s in exporter.get_finished_spans() if s.name.startswith(prefix)]


def hex_ids(span):
    context = span.get_span_context()
    return format(context.trace_id, "032x"), format(context.span_id, "016x")


def traceparent_of(job):
    job.refresh_from_db()
    _version, trace_id, span_id, flags = job.trace_context["traceparent"].split("-")
    return trace_id, span_id, bool(int(flags, 16) & 1)  # sampled?


# -- enqueue ---------------------------------------------------------------------------------


def test_enqueue_is_a_producer_span_whose_context_the_job_keeps(spans):
    with request_span(spans) as request:
        job = jobs.enqueue(tasks.add, args=[1, 2], queue="tracing")
    (producer,) = named(spans, "django_jobs enqueue")
    assert producer.name == f"django_jobs enqueue {tasks.add.name}"
    assert producer.kind == SpanKind.PRODUCER
    assert producer.parent.span_id == request.get_span_context().span_id
    assert dict(producer.attributes) == {
        "messaging.system": "django_jobs",
        "messaging.operation.type": "send",
        "messaging.operation.name": "enqueue",
        "messaging.destination.name": "tracing",
        "messaging.message.id": str(job.pk),
        "django_jobs.task": tasks.add.name,
    }
    assert traceparent_of(job) == (*hex_ids(producer), True)


def test_a_django_task_enqueue_is_traced_too(spans):
    with request_span(spans):
        result = tasks.django_task_add.enqueue(1, 2)
    (producer,) = named(spans, "django_jobs enqueue")
    assert producer.attributes["messaging.message.id"] == str(result.id)
    assert traceparent_of(Job.objects.get(pk=result.id))[:2] == hex_ids(producer)


def test_an_enqueue_outside_any_span_starts_a_trace(spans):
    job = jobs.enqueue(tasks.add, args=[1, 2])
    (producer,) = named(spans, "django_jobs enqueue")
    assert producer.parent is None
    assert traceparent_of(job)[:2] == hex_ids(producer)


def test_a_failed_write_is_an_error_and_stores_nothing(spans):
    with pytest.raises(ValueError, match="depends_on"):
        jobs.enqueue(tasks.add, args=[1, 2], depends_on=[10**12])
    (producer,) = named(spans, "django_jobs enqueue")
    assert producer.status.status_code == StatusCode.ERROR
    assert producer.events[0].attributes["exception.type"] == "ValueError"
    assert "messaging.message.id" not in producer.attributes
    assert not Job.objects.exists()


def test_a_batch_is_one_span_and_every_job_keeps_its_context(spans):
    with request_span(spans):
        batch = jobs.enqueue_batch(tasks.add, [([n, n], {}) for n in range(5)], batch_size=2)
    (producer,) = named(spans, "django_jobs enqueue")
    assert producer.attributes["messaging.batch.message_count"] == 5
    assert producer.attributes["django_jobs.batch_id"] == str(batch.pk)
    contexts = {
        json.dumps(c)
        for c in Job.objects.filter(batch=batch).values_list("trace_context", flat=True)
    }
    (context,) = contexts
    assert json.loads(context)["traceparent"].split("-")[1:3] == list(hex_ids(producer))

    assert run_jobs() == 5
    runs = named(spans, "django_jobs run")
    assert len(runs) == 5
    assert {(hex_ids(r)[0], r.parent.span_id) for r in runs} == {
        (hex_ids(producer)[0], producer.get_span_context().span_id)
    }


# -- runs ------------------------------------------------------------------------------------


def test_a_run_continues_the_trace_of_its_enqueue(spans):
    with request_span(spans):
        job = jobs.enqueue(tasks.current_span_id, queue="tracing")
    assert run_jobs() == 1
    (producer,) = named(spans, "django_jobs enqueue")
    (run,) = named(spans, "django_jobs run")
    assert run.name == f"django_jobs run {tasks.current_span_id.name}"
    assert run.kind == SpanKind.CONSUMER
    assert hex_ids(run)[0] == hex_ids(producer)[0]
    assert run.parent.span_id == producer.get_span_context().span_id
    assert dict(run.attributes) == {
        "messaging.system": "django_jobs",
        "messaging.operation.type": "process",
        "messaging.operation.name": "run",
        "messaging.destination.name": "tracing",
        "messaging.message.id": str(job.pk),
        "django_jobs.task": tasks.current_span_id.name,
        "django_jobs.attempt": 1,
        "django_jobs.outcome": "completed",
    }
    assert run.status.status_code == StatusCode.UNSET and not run.events
    job.refresh_from_db()
    assert job.result == hex_ids(run)[1]  # the span is current while the job's code runs


def test_a_failed_attempt_is_an_error_with_its_exception_and_a_retry_continues(spans):
    with request_span(spans):
        job = jobs.enqueue(tasks.flaky_until, args=["t", 2])  # retry_delay 0.2 s
    (producer,) = named(spans, "django_jobs enqueue")
    assert run_jobs() == 1
    time.sleep(0.3)
    assert run_jobs() == 1
    job.refresh_from_db()
    assert job.status == JobStatus.COMPLETED
    first, second = named(spans, "django_jobs run")
    assert first.attributes["django_jobs.outcome"] == "retrying"
    assert first.attributes["django_jobs.attempt"] == 1
    assert first.status.status_code == StatusCode.ERROR
    assert first.status.description == "ConnectionError: temporary connection problem"
    (event,) = first.events
    assert event.name == "exception"
    assert event.attributes["exception.type"] == "builtins.ConnectionError"
    assert event.attributes["exception.message"] == "temporary connection problem"
    assert "Traceback" in event.attributes["exception.stacktrace"]
    # The retry: same trace, same parent; the first attempt's error is not its own.
    assert second.attributes["django_jobs.outcome"] == "completed"
    assert second.attributes["django_jobs.attempt"] == 2
    assert second.status.status_code == StatusCode.UNSET and not second.events
    for run in (first, second):
        assert run.parent.span_id == producer.get_span_context().span_id


def test_a_job_failed_for_good_is_an_error(spans):
    jobs.enqueue(tasks.permanent_failure, args=["t"])
    run_jobs()
    (run,) = named(spans, "django_jobs run")
    assert run.attributes["django_jobs.outcome"] == "failed"
    assert run.attributes["messaging.destination.name"] == "default"  # where it ran
    assert run.status.status_code == StatusCode.ERROR
    assert run.events[0].attributes["exception.type"] == "builtins.ValueError"


def test_a_cancelled_run_ends_its_span_as_cancelled(spans):
    jobs.enqueue(tasks.add, args=[1, 2])
    (job,) = Job.objects.claim("tests", 1)
    Job.objects.filter(pk=job.pk).update(cancel_requested=True)
    job.cancel_requested = True
    assert run_job(job) == JobStatus.CANCELLED
    (run,) = named(spans, "django_jobs run")
    assert run.attributes["django_jobs.outcome"] == "cancelled"
    assert run.status.status_code == StatusCode.UNSET


def test_eager_runs_inside_the_enqueue_span(spans, settings):
    settings.DJANGO_JOBS = {**settings.DJANGO_JOBS, "EAGER": True}
    job = jobs.enqueue(tasks.add, args=[1, 2])
    assert job.status == JobStatus.COMPLETED
    (producer,) = named(spans, "django_jobs enqueue")
    (run,) = named(spans, "django_jobs run")
    assert run.parent.span_id == producer.get_span_context().span_id


def test_a_job_enqueued_without_tracing_runs_in_a_trace_of_its_own(spans):
    tracing.set_tracer_provider(trace.NoOpTracerProvider())
    job = jobs.enqueue(tasks.add, args=[1, 2])
    assert job.trace_context is None
    tracing.set_tracer_provider(spans.provider)
    run_jobs()
    (run,) = named(spans, "django_jobs run")
    assert run.parent is None and run.attributes["django_jobs.outcome"] == "completed"


@pytest.mark.parametrize(
    "stored", ["00-not-a-carrier", {"traceparent": 1}, {"baggage": 5}, {"traceparent": [1]}]
)
def test_a_stored_context_that_is_no_carrier_never_fails_a_run(spans, stored):
    job = jobs.enqueue(tasks.add, args=[1, 2])
    Job.objects.filter(pk=job.pk).update(trace_context=stored)  # raw SQL, say
    assert run_jobs() == 1
    job.refresh_from_db()
    assert job.status == JobStatus.COMPLETED
    (run,) = named(spans, "django_jobs run")
    assert run.parent is None


# -- when nothing records --------------------------------------------------------------------


def test_without_a_configured_provider_nothing_is_stored(spans):
    if not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
        pytest.skip("something in this process configured OpenTelemetry's global provider")
    with request_span(spans):  # a real span is current, but django_jobs' provider is unset
        tracing.set_tracer_provider(None)
        assert not tracing.enabled()
        job = jobs.enqueue(tasks.add, args=[1, 2])
        batch = jobs.enqueue_batch(tasks.add, [([1, 1], {})])
    assert run_jobs() == 2
    job.refresh_from_db()
    assert job.trace_context is None and job.status == JobStatus.COMPLETED
    # (Python's None: a batch written by MariaDB's JSON_TABLE stores JSON null, not NULL.)
    assert [j.trace_context for j in Job.objects.filter(batch=batch)] == [None]
    assert [s.name for s in spans.get_finished_spans()] == ["request"]


def test_a_provider_configured_later_is_used_within_a_second(spans, monkeypatch):
    tracing.set_tracer_provider(None)
    configured = []
    monkeypatch.setattr(
        tracing.trace,
        "get_tracer_provider",
        lambda: spans.provider if configured else trace.ProxyTracerProvider(),
    )
    monkeypatch.setattr(tracing, "RECHECK_SECONDS", 0.2)
    assert not tracing.enabled()
    configured.append(True)  # e.g. an SDK set up after the first job
    assert not tracing.enabled()  # not looked up again at every job...
    time.sleep(0.25)
    assert tracing.enabled()  # ...but soon


def test_a_sampled_out_enqueue_passes_the_decision_on():
    provider = TracerProvider(sampler=ALWAYS_OFF)
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.set_tracer_provider(provider)
    try:
        job = jobs.enqueue(tasks.add, args=[1, 2])
        assert traceparent_of(job)[2] is False  # stored: the run is not sampled either
        run_jobs()
    finally:
        tracing.set_tracer_provider(None)
    assert exporter.get_finished_spans() == ()


# -- real worker processes -------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_one_trace_from_enqueue_to_a_real_worker(spans, workers, tmp_path):
    path = tmp_path / "spans.jsonl"
    env = {"JOBS_TEST_SPANS_FILE": str(path)}  # tests/settings.py configures an SDK
    with request_span(spans) as request:
        ok = jobs.enqueue(tasks.current_span_id)
        failing = jobs.enqueue(tasks.permanent_failure, args=["t"])
    # The worker's processes export through a batch span processor: these spans reach
    # the file only because its executors flush it before they exit.
    code, out = workers.run("--burst", "--concurrency", "2", env=env)
    assert code == 0, out
    with request_span(spans):
        # Run by itself: its executor is killed, and with it the spans it had not
        # exported yet; the worker writes the span of the job it stopped.
        timed_out = jobs.enqueue(tasks.spin_forever, args=["t"])
    # Under a supervisor: a worker process that exits without atexit flushes it too.
    code, out = workers.run("--burst", "--processes", "2", env=env)
    assert code == 0, out

    producers = {
        int(s.attributes["messaging.message.id"]): s for s in named(spans, "django_jobs enqueue")
    }
    found = read_spans(path)
    runs = {  # the spans of the schedules its scheduler fired are not these
        int(s["attributes"]["messaging.message.id"]): s for s in found if s["kind"] == "CONSUMER"
    }
    assert sorted(runs) == sorted([ok.pk, failing.pk, timed_out.pk]), found
    for job_id, run in runs.items():
        assert run["name"] == f"django_jobs run {Job.objects.get(pk=job_id).task_name}"
        assert run["trace_id"] == hex_ids(producers[job_id])[0]
        assert run["parent_id"] == hex_ids(producers[job_id])[1]
        assert run["attributes"]["django_jobs.attempt"] == 1
    assert runs[ok.pk]["trace_id"] == hex_ids(request)[0]
    assert runs[ok.pk]["attributes"]["django_jobs.outcome"] == "completed"
    ok.refresh_from_db()
    assert ok.result == runs[ok.pk]["span_id"]  # current while its code ran
    for job in (failing, timed_out):
        assert runs[job.pk]["attributes"]["django_jobs.outcome"] == "failed"
        assert runs[job.pk]["status"] == "ERROR"
    (event,) = runs[timed_out.pk]["events"]
    assert event["attributes"]["exception.type"].endswith("JobTimeout")


NO_OTEL = """
import json, sys
sys.modules["opentelemetry"] = None  # as if the extra were not installed
import django
django.setup()
from django.core.management import call_command
from django_jobs import jobs, tracing
from django_jobs.models import Job
from tests.testapp import tasks

job = jobs.enqueue(tasks.add, args=[2, 3])
batch = jobs.enqueue_batch(tasks.add, [([1, 1], {})])
call_command("runworkers", "--burst")
rows = list(Job.objects.filter(task_name=tasks.add.name).values_list("status", "trace_context"))
print(json.dumps({"installed": tracing.INSTALLED, "enabled": tracing.enabled(), "rows": rows}))
"""


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_without_opentelemetry_jobs_enqueue_and_run_as_ever(workers):
    done = subprocess.run(
        [sys.executable, "-c", NO_OTEL],
        env=workers.env(),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["installed"] is False and report["enabled"] is False
    assert report["rows"] == [["completed", None], ["completed", None]]
