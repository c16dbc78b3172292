"""Spans of worker subprocesses, for the tracing tests: ``tests/settings.py`` calls
:func:`trace_to_file` when ``JOBS_TEST_SPANS_FILE`` is set, and every process of that
worker (executors and sidecar included) appends the spans it ends to that file, one JSON
object a line. A batch span processor, as a project would configure: the spans reach the
file only if the worker's processes flush it before they exit."""

import json
import os

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult


def span_record(span) -> dict:
    context, parent = span.get_span_context(), span.parent
    return {
        "name": span.name,
        "kind": span.kind.name,
        "trace_id": format(context.trace_id, "032x"),
        "span_id": format(context.span_id, "016x"),
        "parent_id": format(parent.span_id, "016x") if parent is not None else None,
        "attributes": dict(span.attributes or {}),
        "status": span.status.status_code.name,
        "events": [{"name": e.name, "attributes": dict(e.attributes or {})} for e in span.events],
        "pid": os.getpid(),
    }


class FileSpanExporter(SpanExporter):
    def __init__(self, path: str):
        self.path = path

    def export(self, spans):
        # One write per call in append mode: lines from several processes never mix.
        text = "".join(json.dumps(span_record(span)) + "\n" for span in spans)
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(text)
        return SpanExportResult.SUCCESS


def trace_to_file(path: str) -> None:
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(FileSpanExporter(path)))
    trace.set_tracer_provider(provider)


def read_spans(path) -> list[dict]:
    try:
        with open(path, encoding="utf-8") as f:
            return [json.loads(line) for line in f if line.strip()]
    except FileNotFoundError:
        return []
