"""What tracing costs per job, in the three states a process can be in (docs/monitoring.md,
"Tracing"): OpenTelemetry not installed, installed without a configured tracer provider,
an SDK configured (spans recorded and handed to a span processor), and an SDK whose
sampler drops the trace.

    .venv/bin/python bench/tracing_overhead.py

Times the calls ``execution.runner.execute`` makes around every run
(``tracing.running`` + ``tracing.finished``) and ``enqueue_job`` around every write
(``tracing.producing``), against the same ``with`` over a bare ``nullcontext``, each state
in a fresh interpreter. No database: the job is a plain object with the attributes read.
"""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CHILD = r"""
import json, sys, timeit
from contextlib import nullcontext
from types import SimpleNamespace

state = sys.argv[1]
if state == "absent":
    sys.modules["opentelemetry"] = None  # as if the extra were not installed
from django_jobs import tracing

if state.startswith("sdk"):
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ParentBased
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

    class Discard(SpanExporter):
        def export(self, spans):
            return SpanExportResult.SUCCESS

    # "sdk-dropped": what a sampler's dropped share of the traces costs.
    provider = TracerProvider(sampler=ParentBased(ALWAYS_OFF) if state == "sdk-dropped" else None)
    provider.add_span_processor(SimpleSpanProcessor(Discard()))
    tracing.set_tracer_provider(provider)

job = SimpleNamespace(
    pk=1, task_name="shop.tasks.send_receipt", queue="default", attempts=1, status="running",
    trace_context=None, error=None, batch_id=None,
)
if state.startswith("sdk"):
    with tracing.producing(job):
        pass  # a stored context, as a job enqueued with tracing on has
NOTHING = nullcontext()

def baseline():
    with NOTHING as span:
        pass

def run():
    with tracing.running(job) as span:
        tracing.finished(span, "completed", job)

def enqueue():
    saved = job.trace_context
    with tracing.producing(job):
        pass
    job.trace_context = saved

def per_call(fn, n):
    return min(timeit.repeat(fn, number=n, repeat=7)) / n

n = 20_000 if state.startswith("sdk") else 1_000_000
base = per_call(baseline, n)
print(json.dumps({
    "state": state,
    "enabled": tracing.enabled(),
    "run_ns": (per_call(run, n) - base) * 1e9,
    "enqueue_ns": (per_call(enqueue, n) - base) * 1e9,
}))
"""


def main() -> None:
    print(
        f"{'state':<12} {'tracing':<8} {'per run':>12} {'per enqueue':>12}   (beyond a bare with)"
    )
    for state in ("absent", "no-provider", "sdk", "sdk-dropped"):
        out = subprocess.run(
            [sys.executable, "-c", CHILD, state],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        r = json.loads(out)
        print(
            f"{r['state']:<12} {'on' if r['enabled'] else 'off':<8} "
            f"{r['run_ns'] / 1000:>9.2f} µs {r['enqueue_ns'] / 1000:>9.2f} µs"
        )


if __name__ == "__main__":
    main()
