"""A stuck or crashing image never hangs or kills a batch: the hashing pool's time limit."""

from __future__ import annotations

import io
import os
import threading
import time
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from connectors.base import Candidate, Media
from connectors.sniff import sniff
from hashes.signals import PDQ
from hashes.batch import hash_paths
from hashes.compute import HashOptions, hash_bytes, window_source
from hashes.errors import HashingError
from hashes.pool import HashingPool, HashTimeout
from monitor.cli import app
from monitor.demo.pictures import jpeg_bytes, picture, png_bytes
from monitor.fetcher import Workers

runner = CliRunner()


def _big_png() -> bytes:
    """48 megapixels of smooth ramps: a legal image (small file, under the pixel limit) whose
    decode and hashing take most of a second, far beyond the tiny limits used below."""
    y = np.arange(6000, dtype=np.uint32)[:, None]
    x = np.arange(8000, dtype=np.uint32)[None, :]
    a = ((x * 7 + y * 3) % 251).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(np.dstack([a, 255 - a, a])).save(buf, "PNG", compress_level=1)
    return buf.getvalue()


@pytest.fixture(scope="module")
def big_png() -> bytes:
    return _big_png()


# Run in worker processes (the default fork context inherits this module).
def _wait_for(started: str, flag: str) -> str:
    Path(started).write_text(str(os.getpid()))
    deadline = time.monotonic() + 60
    while not Path(flag).exists():
        if time.monotonic() > deadline:
            return "gave up"
        time.sleep(0.02)
    return "done"


def _die() -> None:
    os._exit(3)


def test_a_job_that_overruns_is_stopped_and_the_pool_carries_on():
    with HashingPool(1, timeout=0.5, warm=None) as pool:
        assert pool.run(int, "7") == 7
        start = time.monotonic()
        with pytest.raises(HashTimeout) as caught:
            pool.run(time.sleep, 600, source="stuck.png")
        assert time.monotonic() - start < 30
        err = caught.value
        assert err.code == "timeout" and err.source == "stuck.png"
        assert "longer than 0.5 s" in err.problem
        assert pool.restarts == 1
        assert pool.run(int, "8") == 8  # a fresh worker took over


def test_jobs_sharing_the_pool_with_a_stuck_one_are_run_again_not_lost(tmp_path: Path):
    started, flag = tmp_path / "started", tmp_path / "flag"
    result: dict[str, object] = {}

    def keep(name, fn, *args):
        try:
            result[name] = pool.run(fn, *args)
        except BaseException as e:
            result[name] = e

    with HashingPool(2, timeout=3.0, warm=None) as pool:
        stuck = threading.Thread(target=keep, args=("stuck", time.sleep, 600))
        stuck.start()
        time.sleep(0.3)  # the stuck job's clock started first, so it overruns first
        neighbour = threading.Thread(target=keep, args=("neighbour", _wait_for, str(started), str(flag)))
        neighbour.start()
        deadline = time.monotonic() + 30
        while not started.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        first_pid = started.read_text()
        stuck.join(60)
        assert isinstance(result["stuck"], HashTimeout)
        # The neighbour's worker was killed with the stuck one; it is waiting again on a new worker.
        flag.write_text("go")
        neighbour.join(60)
        assert result["neighbour"] == "done"
        assert started.read_text() != first_pid
        assert pool.restarts == 1


def test_a_job_that_kills_its_worker_twice_is_reported():
    with HashingPool(1, timeout=5, warm=None) as pool:
        with pytest.raises(BrokenProcessPool):
            pool.run(_die)
        assert pool.run(int, "1") == 1


def test_bad_pool_settings_are_refused():
    with pytest.raises(ValueError, match="at least one process"):
        HashingPool(0)
    with pytest.raises(ValueError, match="positive"):
        HashingPool(1, timeout=0)


def test_batch_reports_a_too_slow_image_and_hashes_the_rest_in_order(tmp_path: Path, big_png: bytes):
    files = []
    for i in range(3):
        p = tmp_path / f"small{i}.jpg"
        p.write_bytes(jpeg_bytes(picture(i + 1)))
        files.append(p)
    slow = tmp_path / "huge.png"
    slow.write_bytes(big_png)
    files.insert(1, slow)
    results = list(hash_paths(files, HashOptions(regions="register"), jobs=2, timeout=0.15))
    assert [p for p, _ in results] == files
    outcome = dict(results)
    assert isinstance(outcome[slow], HashTimeout)
    assert str(outcome[slow]).startswith(str(slow) + ": decoding and hashing took longer than 0.15 s")
    assert all(not isinstance(outcome[p], HashingError) for p in files if p != slow)


def test_ncii_hash_timeout_flag(tmp_path: Path, big_png: bytes):
    (tmp_path / "a.jpg").write_bytes(jpeg_bytes(picture(4)))
    (tmp_path / "b.png").write_bytes(big_png)
    out = tmp_path / "h.jsonl"
    result = runner.invoke(app, ["hash", str(tmp_path / "a.jpg"), str(tmp_path / "b.png"), "-o", str(out),
                                 "--timeout", "0.15", "--json"])
    assert result.exit_code == 1, result.output
    printed = " ".join(result.output.split())  # the console wraps long error lines
    assert "b.png: decoding and hashing took longer than 0.15 s" in printed
    assert '"hashed": 1' in printed and '"error": "timeout"' in printed
    assert "--timeout" in runner.invoke(app, ["hash", "--help"]).output


def test_monitor_records_a_too_slow_image_as_failed_and_goes_on(big_png: bytes):
    small = jpeg_bytes(picture(5))

    def fetch(c: Candidate) -> Media:
        data = big_png if "huge" in c.media_url else small
        return Media(url=c.media_url, content=data, sniffed=sniff(data))

    with Workers(fetch_threads=2, hash_processes=1, hash_timeout=0.15) as workers:
        workers.warm_up()
        slow = workers.process_item(0, Candidate("http://127.0.0.1/huge.png", None, "test"), fetch, lambda _: None)
        fine = workers.process_item(1, Candidate("http://127.0.0.1/ok.jpg", None, "test"), fetch, lambda _: None)
    assert slow.outcome == "hash-failed" and slow.error_code == "timeout"
    assert fine.outcome == "hashed" and fine.image is not None


def test_registration_windows_of_a_large_png_are_hashed_on_a_reduced_copy():
    rgb = np.asarray(Image.open(io.BytesIO(png_bytes(picture(6, (1600, 1200))))).convert("RGB"))
    reduced = window_source(rgb, 256)
    assert reduced.shape[:2] == (300, 400)  # 1200 // 256 = 4
    assert window_source(reduced, 256) is reduced  # JPEGs arrive at this scale: left alone
    assert window_source(rgb, 0) is rgb
    data = png_bytes(Image.fromarray(rgb))
    fast = hash_bytes(data, options=HashOptions(regions="register"))
    exact = hash_bytes(data, options=HashOptions(regions="register", limits=_no_reduction()))
    whole = [h.value for h in fast.hashes if h.algorithm == "pdq" and h.region == "full"]
    assert whole == [h.value for h in exact.hashes if h.algorithm == "pdq" and h.region == "full"]
    fast_regions = {h.region: h.value for h in fast.hashes if h.algorithm == "pdq" and h.region != "full"}
    exact_regions = {h.region: h.value for h in exact.hashes if h.algorithm == "pdq" and h.region != "full"}
    assert fast_regions.keys() == exact_regions.keys() and len(fast_regions) > 40
    distances = [PDQ.distance(fast_regions[k], exact_regions[k]) for k in fast_regions]
    assert max(distances) <= 24 and np.mean(distances) <= 10, distances


def _no_reduction():
    from hashes.decode import DecodeLimits
    return DecodeLimits(min_side=0)


def _broken_warm() -> None:
    raise RuntimeError("cannot load the hashing code")


def test_a_pool_whose_workers_cannot_load_says_so_at_once():
    with HashingPool(2, timeout=5, warm=_broken_warm) as pool:
        start = time.monotonic()
        with pytest.raises(RuntimeError, match="cannot load the hashing code"):
            pool.run(int, "1")
        assert time.monotonic() - start < 60  # the other worker was not left waiting at the barrier
