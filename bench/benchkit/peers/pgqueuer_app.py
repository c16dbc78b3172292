"""pgqueuer: the factory ``pgq run benchkit.peers.pgqueuer_app:create`` starts (asyncpg)."""

import os
from contextlib import asynccontextmanager

import asyncpg
from pgqueuer import PgQueuer
from pgqueuer.db import AsyncpgDriver
from pgqueuer.models import Job

from benchkit.probe import record

DSN = os.environ.get("BENCH_PGQUEUER_DSN", "postgresql://postgres@127.0.0.1:5432/bench_pgqueuer")


@asynccontextmanager
async def create():
    connection = await asyncpg.connect(DSN)
    pgq = PgQueuer(AsyncpgDriver(connection))

    @pgq.entrypoint("noop")
    async def noop(job: Job) -> None:
        record(job.payload.decode() if job.payload else "-")

    try:
        yield pgq
    finally:
        await connection.close()


def main() -> None:
    """``pgq run`` without the CLI (pgqueuer 1.6's CLI fails to set up its logger with the
    installed typer): the documented ``pgqueuer.run`` on uvloop, as the CLI does."""
    import argparse
    import logging
    from datetime import timedelta

    import uvloop
    from pgqueuer import run
    from pgqueuer.types import QueueExecutionMode

    parser = argparse.ArgumentParser()
    parser.add_argument("--batch-size", type=int, default=10)
    parser.add_argument("--mode", default="continuous", choices=["continuous", "drain"])
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    uvloop.run(
        run(
            create,
            batch_size=args.batch_size,
            mode=QueueExecutionMode(args.mode),
            dequeue_timeout=timedelta(seconds=30),
        )
    )


if __name__ == "__main__":
    main()
