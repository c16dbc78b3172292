"""procrastinate, plain (no Django), with its async psycopg 3 connector."""

import os

import procrastinate

from benchkit.probe import record

app = procrastinate.App(
    connector=procrastinate.PsycopgConnector(
        conninfo=os.environ.get(
            "BENCH_PROCRASTINATE_DSN", "postgresql://postgres@127.0.0.1:5432/bench_procrastinate"
        ),
    ),
)


@app.task(name="bench.noop", queue="bench")
async def noop(tag: str = "-") -> None:
    record(tag)
