"""Fetching and hashing candidates with bounded work in flight.

``Workers`` owns a pool of fetch threads (network-bound; the connectors' ``HttpClient`` is
thread-safe) and a pool of hashing processes (CPU-bound; one per core by default). Each fetch
thread carries one item from download to hash result::

    fetch (SSRF-safe, size-capped, sniffed)  ->  SHA-256 of the bytes
      -> seen these bytes already?  (in-flight, then a small memory cache, then media.sha256 in the DB)
           yes: reuse the stored hashes (never hash the same bytes twice)
           no:  hash_bytes() on the process pool (regions="query"), wait for it

so at most ``fetch_threads`` items hold their bytes at any moment, however large a page or a
source is, and the bytes are dropped as soon as they are hashed. Two items with the same bytes
in flight at once share one hashing job.

A hashing process that dies (a decoder crash, the kernel's OOM killer) breaks the pool: it is
replaced, the item is tried once more on its own, and if that fails too it is reported as
``crashed`` (the pipeline retries it a bounded number of times, then records it as failed). An
image that takes longer than ``hash_timeout`` (``NCII_HASH_TIMEOUT``, 60 s) to decode and hash
has its worker killed and is recorded as a failed, hostile image at once (``hashes.pool``).
"""

from __future__ import annotations

import hashlib
import logging
import multiprocessing
import os
import threading
import time
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, Literal, Sequence

from connectors.base import Candidate, Media, MediaType
from connectors.errors import ConnectorError
from hashes.batch import default_jobs
from hashes.compute import HashOptions, hash_bytes
from hashes.errors import HashingError
from hashes.pool import DEFAULT_TIMEOUT, HashingPool, HashTimeout
from hashes.types import HashValue, ImageHashes

log = logging.getLogger(__name__)

#: What the monitor computes for every found picture: the default algorithms with the query-side
#: regions (trimmed borders, embedded pictures, collage cells) and PDQ's dihedral variants.
QUERY_OPTIONS = HashOptions(regions="query")

Outcome = Literal["hashed", "reused", "known-failed", "hash-failed", "fetch-failed", "skipped", "crashed"]


@dataclass(frozen=True)
class KnownMedia:
    """What the database (or the memory cache) already knows about some bytes."""

    media_id: int | None
    status: str  # "hashed" | "failed"
    error: str | None
    image: ImageHashes | None  # rebuilt from media.hashes when hashed


@dataclass
class ItemResult:
    """What happened to one candidate."""

    index: int
    candidate: Candidate
    outcome: Outcome
    url: str | None = None  # where the bytes came from in the end (after redirects)
    sha256: str | None = None
    md5: str | None = None
    image: ImageHashes | None = None
    known: KnownMedia | None = None
    error: BaseException | None = None

    @property
    def error_code(self) -> str:
        e = self.error
        if e is None:
            return self.known.error if self.known and self.known.error else "error"
        return str(getattr(e, "code", None) or type(e).__name__)


def image_from_stored(sha256: str, md5: str, hashes: Sequence[dict], width: int | None, height: int | None,
                      fmt: str | None) -> ImageHashes:
    """ImageHashes rebuilt from a media row (media.hashes is in the hash-file vocabulary)."""
    out = ImageHashes(md5=md5, sha256=sha256, width=width or 0, height=height or 0, format=fmt or "")
    out.hashes.append(HashValue("md5", md5))
    out.hashes.append(HashValue("sha256", sha256))
    for h in hashes or ():
        out.hashes.append(HashValue(h["alg"], h["hash"], h.get("quality"), h.get("region", "full")))
    return out


def hash_job(data: bytes, source: str, options: HashOptions = QUERY_OPTIONS) -> ImageHashes | HashingError:
    """Runs in a hashing process: the hashes of `data`, or the HashingError saying why not."""
    try:
        return hash_bytes(data, source=source, options=options)
    except HashingError as e:
        return e
    except MemoryError:
        return HashingError("ran out of memory decoding this image", source)
    except Exception as e:  # a bug must cost one item, not the page
        return HashingError(f"internal error while hashing ({type(e).__name__}: {e})", source)


def _worker_init(parent_pid: int) -> None:  # pragma: no cover - runs in the worker processes
    import signal

    # Ctrl-C goes to the whole process group: the parent decides, workers just finish or exit.
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    # If the monitor dies without shutting the pool down (kill -9, the OOM killer), nothing would
    # ever tell its workers: they would wait on their queue forever. An orphan is re-parented at
    # once, so a worker whose parent changed exits.
    def watch() -> None:
        while True:
            time.sleep(1.0)
            if os.getppid() != parent_pid:
                os._exit(0)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _mp_context():
    # spawn, not fork: the monitor has threads (scheduler, fetchers, database pool) that a forked
    # child would inherit in whatever state they were; and not forkserver: its workers are the
    # fork server's children, so they could not notice that the monitor itself died.
    return multiprocessing.get_context("spawn")


class Workers:
    """Fetch threads and hashing processes shared by every source this process polls."""

    def __init__(self, *, fetch_threads: int = 8, hash_processes: int | None = None,
                 options: HashOptions = QUERY_OPTIONS, cache_size: int = 4096,
                 hash_timeout: float | None = DEFAULT_TIMEOUT) -> None:
        self.fetch_threads = max(1, fetch_threads)
        self.hash_processes = default_jobs() if hash_processes is None else max(0, hash_processes)
        self.options = options
        self._fetch_pool = ThreadPoolExecutor(max_workers=self.fetch_threads, thread_name_prefix="ncii-fetch")
        # hash_processes=0 hashes in the fetch threads (tests, tiny machines): no time limit there,
        # since only a process can be stopped.
        self._hash_pool = (HashingPool(self.hash_processes, timeout=hash_timeout, mp_context=_mp_context(),
                                       initializer=_worker_init, initargs=(os.getpid(),))
                           if self.hash_processes else None)
        self._lock = threading.Lock()
        self._inflight: dict[str, Future] = {}
        self._cache: OrderedDict[str, ImageHashes] = OrderedDict()
        self._cache_size = cache_size
        self.hashed = 0  # images perceptually hashed by this instance (for reports and tests)
        self.closed = False

    # -- the hashing pool

    def warm_up(self) -> None:
        """Start the hashing processes now (so the first page does not pay for it)."""
        if self._hash_pool is not None:
            self._hash_pool.warm_up()

    def _hash(self, data: bytes, source: str) -> ImageHashes | HashingError:
        if self._hash_pool is None:
            return hash_job(data, source, self.options)
        try:
            return self._hash_pool.run(hash_job, data, source, self.options, source=source)
        except HashTimeout as e:  # a hostile image: recorded as failed, its bytes never decoded again
            return e

    # -- one item

    def _cached(self, sha256: str) -> ImageHashes | None:
        with self._lock:
            image = self._cache.get(sha256)
            if image is not None:
                self._cache.move_to_end(sha256)
            return image

    def _remember(self, image: ImageHashes) -> None:
        with self._lock:
            self._cache[image.sha256] = image
            self._cache.move_to_end(image.sha256)
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)

    def process_item(self, index: int, candidate: Candidate, fetch: Callable[[Candidate], Media],
                     lookup: Callable[[str], KnownMedia | None], stop: threading.Event | None = None) -> ItemResult:
        """Fetch, deduplicate and hash one candidate (runs in a fetch thread)."""
        if stop is not None and stop.is_set():
            return ItemResult(index, candidate, "skipped", error=InterruptedError("stopping"))
        if candidate.media_type is MediaType.VIDEO:
            return ItemResult(index, candidate, "skipped", error=_Skipped("video", "videos are not hashed yet"))
        try:
            media = fetch(candidate)
        except ConnectorError as e:
            return ItemResult(index, candidate, "fetch-failed", error=e)
        except OSError as e:  # a local connector's file problem not wrapped by the connector
            return ItemResult(index, candidate, "fetch-failed", error=e)
        except Exception as e:  # a connector bug costs this item (recorded as failed), not the page
            log.exception("fetching %s failed unexpectedly", candidate.media_url)
            return ItemResult(index, candidate, "fetch-failed", error=_Skipped("internal-error", f"{type(e).__name__}: {e}"))
        data = media.content
        url = media.final_url or media.url
        sha256 = hashlib.sha256(data).hexdigest()
        md5 = hashlib.md5(data, usedforsecurity=False).hexdigest()
        result = ItemResult(index, candidate, "hashed", url=url, sha256=sha256, md5=md5)
        if media.media_type is MediaType.VIDEO:
            result.outcome, result.error = "skipped", _Skipped("video", "videos are not hashed yet")
            return result
        image = self._cached(sha256)
        if image is not None:
            result.outcome, result.image = "reused", image
            return result
        known = lookup(sha256)
        if known is not None:
            result.known = known
            if known.status == "hashed" and known.image is not None:
                result.outcome, result.image = "reused", known.image
                self._remember(known.image)
            else:
                result.outcome = "known-failed"
            return result
        # Not known: hash it, unless the same bytes are being hashed right now for another item
        # (or were, a moment ago: a finished job is cached before it leaves the in-flight table,
        # and both are checked under one lock, so there is no gap in between).
        mine: Future | None = None
        with self._lock:
            image = self._cache.get(sha256)
            shared = self._inflight.get(sha256) if image is None else None
            if image is None and shared is None:
                mine = Future()
                self._inflight[sha256] = mine
        if image is not None:
            result.outcome, result.image = "reused", image
            return result
        if shared is not None:
            try:
                outcome = shared.result()
            except BaseException as e:  # the other item's worker crashed: treat as ours
                result.outcome, result.error = "crashed", e
                return result
            return self._finish(result, outcome, reused=True)
        assert mine is not None
        try:
            outcome = self._hash(data, url)
        except BaseException as e:
            mine.set_exception(e)
            with self._lock:
                self._inflight.pop(sha256, None)
            result.outcome, result.error = "crashed", _Crashed(url)
            return result
        del data, media
        with self._lock:
            if isinstance(outcome, ImageHashes):
                self._cache[sha256] = outcome
                self._cache.move_to_end(sha256)
                while len(self._cache) > self._cache_size:
                    self._cache.popitem(last=False)
                self.hashed += 1
            self._inflight.pop(sha256, None)
        mine.set_result(outcome)
        return self._finish(result, outcome, reused=False)

    @staticmethod
    def _finish(result: ItemResult, outcome: ImageHashes | HashingError, *, reused: bool) -> ItemResult:
        if isinstance(outcome, HashingError):
            result.outcome, result.error = "hash-failed", outcome
        else:
            result.outcome, result.image = ("reused" if reused else "hashed"), outcome
        return result

    def submit(self, index: int, candidate: Candidate, fetch: Callable[[Candidate], Media],
               lookup: Callable[[str], KnownMedia | None], stop: threading.Event | None = None) -> Future:
        """process_item on a fetch thread."""
        return self._fetch_pool.submit(self.process_item, index, candidate, fetch, lookup, stop)

    def close(self, *, wait: bool = True) -> None:
        """Stop the pools (queued work is cancelled; running items finish or time out)."""
        self.closed = True
        self._fetch_pool.shutdown(wait=wait, cancel_futures=True)
        if self._hash_pool is not None:
            self._hash_pool.close(wait=wait)

    def __enter__(self) -> "Workers":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Skipped(Exception):
    def __init__(self, code: str, problem: str) -> None:
        super().__init__(problem)
        self.code = code


class _Crashed(Exception):
    code = "worker-crashed"

    def __init__(self, url: str) -> None:
        super().__init__(f"{url}: the hashing process died on this item")
