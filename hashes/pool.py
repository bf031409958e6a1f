"""A pool of hashing processes whose stuck work can be cut off.

Pillow's decoders are bounded by the size and pixel limits of ``hashes.decode``, but a decoder
bug, a pathological file or a swapping machine can still keep one image busy for minutes. A
thread cannot be stopped, and ``concurrent.futures`` cannot cancel a job that is running, so a
job that overruns its time limit costs the whole pool: every worker process is killed (SIGKILL,
which works even inside C code) and a fresh pool starts. The late job's caller gets
``HashTimeout``; the callers of jobs that were merely sharing the pool at that moment get
``BrokenProcessPool`` once and are run again on the new pool, so they lose nothing.

Only as many jobs are handed to the pool as it has processes, so a job's clock starts when a
worker is actually free for it, not while it waits in a queue behind slow neighbours; and each new
worker first loads the hashing code and its compiled kernels (about a second), so that start-up
is not charged to the first image it gets.
"""

from __future__ import annotations

import logging
import multiprocessing
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Callable, TypeVar

from hashes.errors import HashingError

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Seconds one image may take to decode and hash before it is treated as hostile. A 12 MP photo
#: takes ~30 ms and the largest image the default limits admit a few seconds on a small machine.
DEFAULT_TIMEOUT = 60.0


class HashTimeout(HashingError):
    """Decoding and hashing one image took longer than the time limit."""

    code = "timeout"


def preload() -> None:
    """Import the hashing code and load its compiled kernels (runs once in each new worker)."""
    import io

    import numpy as np
    from PIL import Image

    from hashes.compute import HashOptions, hash_bytes

    ramp = (np.add.outer(np.arange(96), np.arange(128)) % 256).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(np.dstack([ramp, ramp[::-1], 255 - ramp])).save(buf, "PNG")
    for mode in ("query", "register"):
        hash_bytes(buf.getvalue(), source="<preload>", options=HashOptions(regions=mode))


_ready: Any = None  # in a worker: the barrier every new worker of its pool meets once loaded


def _init_worker(ready: Any, initializer: Callable[..., None] | None, initargs: tuple) -> None:
    global _ready
    _ready = ready
    if initializer is not None:
        initializer(*initargs)


def _warm_worker(warm: Callable[[], None]) -> None:
    # Each worker runs exactly one of these: it waits at the barrier until every worker has loaded,
    # so no worker can take two and leave another to load while an image's clock runs.
    try:
        warm()
    finally:  # a worker whose loading failed still meets the others, so they are not left waiting
        _ready.wait(timeout=300)


class HashingPool:
    """Worker processes that run one job each at a time, with a time limit per job."""

    def __init__(self, processes: int, *, timeout: float | None = DEFAULT_TIMEOUT,
                 initializer: Callable[..., None] | None = None, initargs: tuple = (),
                 mp_context: Any = None, warm: Callable[[], None] | None = preload) -> None:
        if processes < 1:
            raise ValueError("a hashing pool needs at least one process")
        if timeout is not None and timeout <= 0:
            raise ValueError("the hashing time limit must be positive (or None for no limit)")
        self.processes = processes
        self.timeout = timeout
        self._initializer, self._initargs, self._mp_context = initializer, initargs, mp_context
        self._warm = warm
        self._slots = threading.BoundedSemaphore(processes)
        self._lock = threading.Lock()
        self._executor: ProcessPoolExecutor | None = None
        self._closed = False
        self.restarts = 0  # pools replaced after a timeout or a dead worker (for reports and tests)

    def _current(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._closed:
                raise RuntimeError("the hashing pool is closed")
            if self._executor is None:
                context = self._mp_context or multiprocessing.get_context()
                ready = context.Barrier(self.processes)
                executor = ProcessPoolExecutor(max_workers=self.processes, mp_context=context,
                                               initializer=_init_worker,
                                               initargs=(ready, self._initializer, self._initargs))
                if self._warm is not None:
                    try:
                        for future in [executor.submit(_warm_worker, self._warm) for _ in range(self.processes)]:
                            future.result()
                    except BaseException:
                        executor.shutdown(wait=False, cancel_futures=True)
                        raise
                self._executor = executor
            return self._executor

    def _replace(self, old: ProcessPoolExecutor, *, kill: bool) -> None:
        with self._lock:
            if self._executor is not old:
                return  # another caller replaced it already
            self._executor = None
            self.restarts += 1
        if kill:
            # The executor keeps its worker processes in a private dict (CPython 3.8+); killing them is
            # the only way to stop a job that is running. Anything else in flight on them sees
            # BrokenProcessPool and is run again by its own caller.
            for process in list((getattr(old, "_processes", None) or {}).values()):
                try:
                    process.kill()
                except Exception:  # pragma: no cover - already gone
                    pass
        old.shutdown(wait=False, cancel_futures=True)

    def warm_up(self) -> None:
        """Start (and preload) every worker process now, so the first real job does not wait for it."""
        self._current()

    def run(self, fn: Callable[..., T], *args: Any, source: str = "<image>") -> T:
        """fn(*args) in a worker process; HashTimeout if it overruns, BrokenProcessPool if a worker dies twice."""
        with self._slots:
            for attempt in (1, 2):
                executor = self._current()
                started = time.monotonic()
                future = executor.submit(fn, *args)
                try:
                    return future.result(timeout=self.timeout)
                except FutureTimeout:
                    elapsed = time.monotonic() - started
                    log.warning("a hashing job overran its %g s limit; restarting the hashing processes", self.timeout)
                    self._replace(executor, kill=True)
                    raise HashTimeout(f"decoding and hashing took longer than {self.timeout:g} s "
                                      f"(stopped after {elapsed:.1f} s); the image is treated as hostile",
                                      source) from None
                except BrokenProcessPool:
                    # A worker died: this job's (a decoder crash, the OOM killer) or a neighbour's
                    # that was killed for overrunning. One more try on a fresh pool tells them apart.
                    self._replace(executor, kill=False)
                    if attempt == 2:
                        raise
        raise AssertionError("unreachable")  # pragma: no cover

    def close(self, *, wait: bool = True) -> None:
        """Stop the worker processes (running jobs finish when `wait`; queued ones are cancelled)."""
        with self._lock:
            self._closed = True
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=wait, cancel_futures=True)

    def __enter__(self) -> "HashingPool":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
