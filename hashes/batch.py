"""Hashing many files on every core, in order, with one bad file never stopping the batch."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Callable, Iterable, Iterator

from hashes.compute import DEFAULT_OPTIONS, HashOptions, hash_file
from hashes.errors import HashingError
from hashes.pool import DEFAULT_TIMEOUT, HashingPool, HashTimeout
from hashes.types import ImageHashes

Outcome = tuple[Path, ImageHashes | HashingError]

#: Below this many files a process pool costs more (start-up, imports) than it saves.
_POOL_THRESHOLD = 8


def _hash_one(args: tuple[Path, HashOptions]) -> Outcome:
    path, options = args
    try:
        return path, hash_file(path, options)
    except HashingError as e:
        return path, e
    except MemoryError:
        return path, HashingError("ran out of memory decoding this image", str(path))
    except Exception as e:  # a bug must cost one file, not the batch; the message says so
        return path, HashingError(f"internal error while hashing ({type(e).__name__}: {e})", str(path))


def default_jobs() -> int:
    """Worker processes to use: the cores this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def hash_paths(
    paths: Iterable[Path],
    options: HashOptions = DEFAULT_OPTIONS,
    *,
    jobs: int | None = None,
    initializer: Callable[[], None] | None = None,
    timeout: float | None = DEFAULT_TIMEOUT,
) -> Iterator[Outcome]:
    """Yield (path, hashes or error) for each path, in input order.

    With worker processes (more than one job, or any `timeout`), an image that takes longer than
    `timeout` seconds, or that kills its worker, becomes that file's error and the batch goes on.
    """
    items = [(Path(p), options) for p in paths]
    jobs = default_jobs() if jobs is None else max(1, jobs)
    if timeout is None and (jobs == 1 or len(items) < _POOL_THRESHOLD):
        for item in items:
            yield _hash_one(item)
        return
    with HashingPool(jobs, timeout=timeout, initializer=initializer) as pool:
        # One thread per worker process carries one file at a time, so each file's time limit
        # starts when a worker takes it; map() hands the outcomes back in input order.
        with ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="ncii-hash") as threads:
            yield from threads.map(lambda item: _in_pool(pool, item), items)


def _in_pool(pool: HashingPool, item: tuple[Path, HashOptions]) -> Outcome:
    path = item[0]
    try:
        return pool.run(_hash_one, item, source=str(path))
    except HashTimeout as e:
        return path, e
    except BrokenProcessPool:
        return path, HashingError("the hashing process died on this image (twice): a decoder crash or out of "
                                  "memory", str(path))
