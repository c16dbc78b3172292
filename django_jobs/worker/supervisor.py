"""Several worker processes under one supervisor (``runworkers --processes N``)."""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import time
from multiprocessing.process import BaseProcess

from django.db import connections

from .process import WorkerProcess
from .protocol import die_with_parent

logger = logging.getLogger("django_jobs.worker")
_mp = multiprocessing.get_context("fork")


def _child(options: dict) -> None:
    # Own process group: a terminal's Ctrl-C reaches the supervisor only, which forwards
    # it once; otherwise every worker would see it twice and take it as "stop now".
    os.setpgrp()
    die_with_parent(signal.SIGTERM)

    code = WorkerProcess(**options).run()
    os._exit(code)


class Supervisor:
    """Starts ``processes`` workers, forwards signals, replaces workers that crash."""

    def __init__(self, processes: int, options: dict):
        self.processes = processes
        self.options = options
        self.children: dict[int, BaseProcess] = {}
        self.stopping = False
        self.signals_seen = 0

    def _start(self, index: int) -> None:
        opts = dict(self.options)
        opts["worker_id"] = f"{self.options['worker_id']}-{index}"
        connections.close_all()
        proc = _mp.Process(target=_child, args=(opts,), name=f"django_jobs-worker-{index}")
        proc.start()
        self.children[index] = proc

    def _on_signal(self, signum, frame) -> None:
        self.signals_seen += 1
        self.stopping = True
        for proc in self.children.values():
            if proc.is_alive():
                try:
                    # The second signal is forwarded too: each worker then stops at once
                    # and hands its unfinished jobs back itself.
                    if proc.pid is not None:
                        os.kill(proc.pid, signum)
                except ProcessLookupError:
                    pass

    def run(self) -> int:
        old = {s: signal.signal(s, self._on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
        try:
            for i in range(self.processes):
                self._start(i)
            burst = self.options.get("burst")
            while self.children:
                for index, proc in list(self.children.items()):
                    if proc.is_alive():
                        continue
                    proc.join()
                    del self.children[index]
                    if not self.stopping and not (burst and proc.exitcode == 0):
                        logger.error(
                            "Worker process %s exited with %s; restarting", index, proc.exitcode
                        )
                        time.sleep(1)
                        self._start(index)
                time.sleep(0.1)
        finally:
            for s, h in old.items():
                signal.signal(s, h)
        return 0
