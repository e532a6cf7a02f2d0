"""Worker processes that make the readable copy: parse, anonymise, classify.

Two reasons for them. That work is most of intake's CPU time, and a ward's
server has more than one core. And it runs C libraries (Pillow, libheif) on
bytes from anyone on the internet: if one of them crashes, it takes down a
worker, not the daemon — the message goes to quarantine as "crash" and intake
goes on, instead of the daemon dying on the same message at every restart.

Workers only compute. Everything that must happen exactly once — sealing,
the commit, moving the message — stays in the main process, in UID order.
"""

from __future__ import annotations

import ctypes
import logging
import multiprocessing
import os
import signal
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from . import pipeline
from .errors import MessageError
from .models import RawMail

log = logging.getLogger(__name__)

Job = tuple[RawMail, str]  # the message and the reference code reserved for it
Result = pipeline.Readable | MessageError
Work = Callable[[RawMail, str], Result]

PR_SET_PDEATHSIG = 1
_context: pipeline.Context | None = None


def _start(context: pipeline.Context, parent: int) -> None:
    """In each worker: ignore stop signals (the main process decides when to stop),
    and die with the main process. `context` comes by fork, not by pickling."""
    global _context
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    # A worker outliving a `kill -9`-ed parent would keep its lock file locked.
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)
    _context = context


def readable(raw: RawMail, ref: str) -> Result:
    assert _context is not None
    return pipeline.attempt(raw, ref, _context)


def _ready() -> None:
    """A first job, so that the workers are forked at once (see Workers.start)."""


class Workers:
    def __init__(self, context: pipeline.Context, size: int | None = None,
                 work: Work = readable) -> None:
        self.context = context
        self.size = size or max(1, min(2, os.cpu_count() or 1))
        self.work = work
        self._pool: ProcessPoolExecutor | None = None

    def start(self) -> Workers:
        """Fork the workers now. Called before the store is opened, so that they do not
        start life holding its file descriptors (with fork, all workers start at the first job)."""
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                self.size, mp_context=multiprocessing.get_context("fork"),
                initializer=_start, initargs=(self.context, os.getpid()),
            )
            self._pool.submit(_ready).result()
        return self

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def __enter__(self) -> Workers:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def results(self, jobs: list[Job]) -> Iterator[Result]:
        """Hand every job to the workers now; the results come back one per job, in order."""
        return self._collect(jobs, [self._submit(job) for job in jobs])

    def _collect(self, jobs: list[Job], futures: list[Future[Result]]) -> Iterator[Result]:
        # After a crash the rest go one at a time, so that the message that crashes a
        # worker again is the one quarantined.
        for i, future in enumerate(futures):
            try:
                yield future.result()
            except BrokenProcessPool:
                self._restart()
                for job in jobs[i:]:
                    yield self._alone(job)
                return

    def _alone(self, job: Job) -> Result:
        try:
            return self._submit(job).result()
        except BrokenProcessPool:
            self._restart()
            raw, ref = job
            log.error("uid %s (%s): a worker process died on this message", raw.uid, ref)
            return MessageError("crash", "worker process died")

    def _submit(self, job: Job) -> Future[Result]:
        pool = self.start()._pool
        assert pool is not None
        return pool.submit(self.work, *job)

    def _restart(self) -> None:
        self.close()
