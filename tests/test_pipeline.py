"""The monitor's pipeline end to end: real connectors polling real HTTP servers on 127.0.0.1,
real hashing, matching and recording, on SQLite and PostgreSQL (the `engine` fixture).

Also the crash test: `ncii monitor once` as a child process, killed with SIGKILL mid-pass and
restarted, must process every candidate exactly once, with no duplicate match or alert.
"""

from __future__ import annotations

import io
import os
import signal
import struct
import subprocess
import sys
import threading
import time
import zlib
from pathlib import Path

import pytest
from sqlalchemy import func, select

from connectors.http import HttpClient, HttpSettings
from hashes.compute import HashOptions, hash_bytes
from hashes.hashfile import HashFileWriter, make_header, read_hash_file
from monitor import db, registry, sources
from monitor.demo import pictures as P
from monitor.demo.site import LoopbackSite, Route, gallery_page, rss_feed
from monitor.fetcher import Workers
from monitor.matching import Matcher
from monitor.models import Alert, Match, Media, MediaSighting, MediaStatus, Source, SourceCandidate
from monitor.pipeline import Pipeline
from monitor.scheduler import MonitorService
from monitor.settings import MonitorSettings

pytestmark = pytest.mark.usefixtures("loopback_only")

SIZE = (400, 300)


# --- helpers (also used by the other monitor test files) ------------------------------------------

def jpeg(seed: int, alter=None, quality: int = 85, size=SIZE) -> bytes:
    img = P.picture(seed, size)
    return P.jpeg_bytes(alter(img) if alter else img, quality)


def register_case(engine, seeds=(1, 2), size=SIZE) -> str:
    buf = io.StringIO()
    w = HashFileWriter(buf, "jsonl", make_header(HashOptions().algorithms, "register", "test"))
    for seed in seeds:
        w.write(hash_bytes(P.jpeg_bytes(P.picture(seed, size), 92), options=HashOptions(regions="register")))
    w.close()
    with db.transaction(engine) as s:
        new = registry.create_case(s, actor="test")
        registry.register_hash_file(s, new.reference, read_hash_file(buf.getvalue()), actor="test")
    return new.reference


def serve_feed(site: LoopbackSite, images: dict, path: str = "/feed.xml") -> str:
    """An RSS feed at `path` with one entry per image (served under /img/)."""
    items = []
    for name, body in images.items():
        site.add(f"/img/{name}", Route(body, "image/jpeg") if isinstance(body, bytes) else body)
        items.append((f"/post/{name}", site.url(f"/img/{name}"), name))
    return site.add(path, Route(rss_feed(site.url(""), "test feed", items), "application/rss+xml"))


def test_http() -> HttpClient:
    return HttpClient(HttpSettings(allow_loopback=True, min_interval=0.0, retries=0, connect_timeout=2.0,
                                   read_timeout=3.0, total_timeout=10.0))


test_http.__test__ = False  # a helper, not a test


def monitor_settings(**overrides) -> MonitorSettings:
    base = dict(allow_loopback=True, http_min_interval=0.0, hash_workers=0, fetch_workers=4,
                item_retry_base=0, item_max_attempts=3, source_max_backoff=3600)
    base.update(overrides)
    return MonitorSettings(**base)


def make_pipeline(engine, **overrides) -> Pipeline:
    ms = monitor_settings(**overrides)
    return Pipeline(engine, Matcher(engine), test_http(), Workers(fetch_threads=ms.fetch_workers,
                                                                  hash_processes=ms.hash_workers), settings=ms)


def add_source(engine, url: str, kind: str = "auto", name: str | None = None, **options) -> int:
    with db.transaction(engine) as s:
        summary = sources.add_source(s, url, kind=kind, name=name, interval=600, jitter=0, options=options,
                                     actor="test")
        return s.scalar(select(Source.id).where(Source.name == summary.name))


def count(engine, model, *where) -> int:
    with db.session(engine) as s:
        return s.scalar(select(func.count()).select_from(model).where(*where)) or 0


def png_bomb(width: int = 40_000, height: int = 40_000) -> bytes:
    """A tiny PNG that claims 1.6 billion pixels."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 4096))
            + chunk(b"IEND", b""))


@pytest.fixture
def site():
    s = LoopbackSite()
    yield s
    s.close()


@pytest.fixture
def pipeline(engine):
    p = make_pipeline(engine)
    yield p
    p.close()


# --- end to end --------------------------------------------------------------------------------------

def test_rss_source_finds_planted_copies_and_never_fetches_twice(engine, site, pipeline):
    case = register_case(engine)
    images = {"copy.jpg": jpeg(1, P.recompressed, 60), "other-1.jpg": jpeg(50), "mirror.jpg": jpeg(2, P.mirrored),
              "other-2.jpg": jpeg(51)}
    sid = add_source(engine, serve_feed(site, images))

    report = pipeline.poll(sid)
    assert report.ok and report.new == 4 and report.hashed == 4 and report.failed == 0
    assert {m["url"].rsplit("/", 1)[-1] for m in report.match_list} == {"copy.jpg", "mirror.jpg"}
    assert all(m["case"] == case and m["new"] for m in report.match_list)
    assert report.alerts == 2 and count(engine, Alert) == 2 and count(engine, Match) == 2
    assert count(engine, SourceCandidate, SourceCandidate.status == "done") == 4
    with db.session(engine) as s:
        src = s.get(Source, sid)
        assert src.cursor and src.last_success_at and src.consecutive_failures == 0 and src.next_due_at

    # Second poll: the feed has nothing new; no picture is fetched again.
    image_hits = sum(n for p, n in site.hits.items() if p.startswith("/img/"))
    again = pipeline.poll(sid)
    assert again.ok and again.new == 0 and again.hashed == 0
    assert sum(n for p, n in site.hits.items() if p.startswith("/img/")) == image_hits

    # Even if the connector lists everything again (cursor lost), the seen-candidate table holds.
    with db.transaction(engine) as s:
        s.get(Source, sid).cursor = None
    relisted = pipeline.poll(sid)
    assert relisted.listed == 4 and relisted.new == 0
    assert sum(n for p, n in site.hits.items() if p.startswith("/img/")) == image_hits
    assert count(engine, Match) == 2 and count(engine, Alert) == 2

    # A new entry: only it is fetched.
    images["new.jpg"] = jpeg(52)
    serve_feed(site, images)
    latest = pipeline.poll(sid)
    assert latest.new == 1 and latest.hashed == 1
    assert sum(n for p, n in site.hits.items() if p.startswith("/img/")) == image_hits + 1


def test_the_same_picture_at_several_addresses_is_hashed_once(engine, site, pipeline):
    register_case(engine)
    copy = jpeg(1, P.captioned)
    feed = serve_feed(site, {"a.jpg": copy, "b.jpg": copy, "c.jpg": jpeg(60)})
    site.add("/elsewhere/d.jpg", Route(copy, "image/jpeg"))
    gallery = site.add("/gallery.html", Route(gallery_page("g", [(site.url("/elsewhere/d.jpg"), "x")]), "text/html"))
    feed_id, gallery_id = add_source(engine, feed), add_source(engine, gallery, kind="gallery")

    first = pipeline.poll(feed_id)
    second = pipeline.poll(gallery_id)
    assert pipeline.workers.hashed == 2  # the copy and c.jpg; never the copy's bytes a second time
    assert first.hashed + first.reused == 3 and second.reused == 1 and second.hashed == 0
    assert count(engine, Media) == 2
    assert count(engine, MediaSighting) == 4  # a, b, c and d: every address is kept for takedowns
    assert count(engine, Match) == 1 and count(engine, Alert) == 1  # one picture, one match, one alert


def test_poisoned_and_broken_items_fail_alone_and_are_never_retried_forever(engine, site, pipeline):
    register_case(engine)
    truncated = jpeg(1)[:3000]
    images = {
        "good.jpg": jpeg(1, P.recompressed, 60),
        "truncated.jpg": truncated,
        "bomb.png": Route(png_bomb(), "image/png"),
        "page.jpg": Route(b"<!DOCTYPE html><html><body>not a picture</body></html>", "image/jpeg"),
        "gone.jpg": Route(b"not found", "text/plain", status=404),
        "other.jpg": jpeg(70),
    }
    sid = add_source(engine, serve_feed(site, images))
    report = pipeline.poll(sid)
    assert report.ok, report.error
    assert report.hashed == 2 and report.new_matches == 1
    assert report.failed == 4 and report.retry == 0
    codes = {e["url"].rsplit("/", 1)[-1]: e["code"] for e in report.errors}
    assert codes["truncated.jpg"] in ("truncated", "corrupt")
    assert codes["bomb.png"] in ("decompression-bomb", "too-many-pixels")
    assert codes["page.jpg"] == "not-an-image" and codes["gone.jpg"] == "http-status"
    # The poison bytes are remembered as failed media: found again elsewhere, never decoded again.
    assert count(engine, Media, Media.status == MediaStatus.FAILED.value) == 2
    hashed_before = pipeline.workers.hashed
    site.add("/again/truncated.jpg", Route(truncated, "image/jpeg"))
    gallery = site.add("/g.html", Route(gallery_page("g", [(site.url("/again/truncated.jpg"), "x")]), "text/html"))
    again = pipeline.poll(add_source(engine, gallery, kind="gallery"))
    assert again.failed == 1 and again.hashed == 0 and pipeline.workers.hashed == hashed_before
    # And the failed items of the first source are not fetched again on the next polls.
    with db.transaction(engine) as s:
        s.get(Source, sid).cursor = None
    hits = dict(site.hits)
    pipeline.poll(sid)
    assert all(site.hits.get(f"/img/{n}") == hits.get(f"/img/{n}") for n in images)


def test_temporary_item_failures_are_retried_a_bounded_number_of_times(engine, site, pipeline):
    calls = {"flaky": 0, "down": 0}

    def flaky(_path: str) -> Route:
        calls["flaky"] += 1
        return Route(b"busy", "text/plain", status=503) if calls["flaky"] < 3 else Route(jpeg(80), "image/jpeg")

    def down(_path: str) -> Route:
        calls["down"] += 1
        return Route(b"busy", "text/plain", status=503)

    sid = add_source(engine, serve_feed(site, {"flaky.jpg": flaky, "down.jpg": down, "ok.jpg": jpeg(81)}))
    # item_retry_base=0: a retry is due at once; each poll tries each due item once more.
    first = pipeline.poll(sid)
    assert first.ok and first.hashed == 1 and first.retry == 4 and first.retried == 2
    second = pipeline.poll(sid)
    assert second.ok and second.retried == 2 and second.hashed == 1 and second.failed == 1
    with db.session(engine) as s:
        rows = {r.media_url.rsplit("/", 1)[-1]: r for r in s.scalars(select(SourceCandidate))}
    assert rows["flaky.jpg"].status == "done" and rows["flaky.jpg"].attempts == 3
    assert rows["down.jpg"].status == "failed" and rows["down.jpg"].attempts == 3
    assert "gave up after 3 attempts" in rows["down.jpg"].error
    assert calls == {"flaky": 3, "down": 3}
    pipeline.poll(sid)
    assert calls == {"flaky": 3, "down": 3}  # given up: never fetched again


def test_a_temporary_failure_waits_for_its_retry_time(engine, site):
    p = make_pipeline(engine, item_retry_base=3600)
    try:
        sid = add_source(engine, serve_feed(site, {"x.jpg": Route(b"", "text/plain", status=500)}))
        report = p.poll(sid)
        assert report.ok and report.retry == 1
        p.poll(sid)
        assert site.hits["/img/x.jpg"] == 1  # not due for an hour
        with db.session(engine) as s:
            row = s.scalar(select(SourceCandidate))
            assert row.status == "retry" and row.attempts == 1 and row.next_attempt_at is not None
    finally:
        p.close()


def test_a_failing_source_backs_off_and_is_unhealthy_while_the_others_poll(engine, site, settings):
    register_case(engine)
    bad = site.add("/broken.xml", Route(b"oops", "text/plain", status=500))
    good = serve_feed(site, {"copy.jpg": jpeg(2, P.mirrored)})
    bad_id, good_id = add_source(engine, bad, kind="rss", name="broken"), add_source(engine, good, name="fine")
    service = MonitorService(engine, settings, pipeline=make_pipeline(engine), channels=[])
    try:
        first = service.once(every=True)
        by_name = {r.source: r for r in first.sources}
        assert not by_name["broken"].ok and by_name["broken"].error["code"] == "http-status"
        assert by_name["fine"].ok and by_name["fine"].new_matches == 1
        with db.session(engine) as s:
            listed = {x.name: x for x in sources.list_sources(s)}
        assert listed["broken"].state == "failing" and listed["broken"].consecutive_failures == 1
        assert "HTTP 500" in listed["broken"].last_error and listed["fine"].state == "ok"
        first_backoff = listed["broken"].backoff_seconds
        assert first_backoff > 0

        # Neither is due now (the broken one backs off); a forced pass doubles the back-off.
        assert service.once().sources == []
        service.once(every=True)
        with db.session(engine) as s:
            broken = s.get(Source, bad_id)
            assert broken.consecutive_failures == 2 and broken.backoff_seconds == 2 * first_backoff
            assert s.get(Source, good_id).consecutive_failures == 0

        # Fixed: healthy again, back-off cleared.
        site.add("/broken.xml", Route(rss_feed(site.url(""), "t", []), "application/rss+xml"))
        service.once(every=True)
        with db.session(engine) as s:
            broken = s.get(Source, bad_id)
            assert broken.consecutive_failures == 0 and broken.backoff_seconds == 0 and broken.last_error is None
    finally:
        service.shutdown()


def test_a_stopped_poll_abandons_its_page_without_committing_anything(engine, site, pipeline):
    register_case(engine)
    first_fetch = threading.Event()

    def slow(i: int):
        def handler(_path: str) -> Route:
            # Stop the poll while it is fetching this page's media (once: the second poll must run),
            # rather than after a fixed time that a loaded machine can overrun.
            if not first_fetch.is_set():
                first_fetch.set()
                pipeline.stop.set()
            return Route(jpeg(90 + i), "image/jpeg", delay=0.3)
        return handler

    sid = add_source(engine, serve_feed(site, {f"slow-{i}.jpg": slow(i) for i in range(6)}))
    report = pipeline.poll(sid)
    assert report.interrupted and not report.error
    assert count(engine, SourceCandidate) == 0 and count(engine, Media) == 0
    with db.session(engine) as s:
        src = s.get(Source, sid)
        assert src.cursor is None and src.lease_owner is None and src.consecutive_failures == 0
    pipeline.stop.clear()
    again = pipeline.poll(sid)
    assert again.ok and again.new == 6 and count(engine, SourceCandidate, SourceCandidate.status == "done") == 6


@pytest.mark.parametrize("backend", ["sqlite"])  # the pool does not depend on the database
def test_hashing_on_worker_processes(engine, site):
    """The default: perceptual hashing on a process pool (here 2 processes)."""
    register_case(engine)
    p = make_pipeline(engine, hash_workers=2)
    try:
        sid = add_source(engine, serve_feed(site, {"a.jpg": jpeg(1, P.recompressed, 60), "b.jpg": jpeg(40),
                                                   "c.jpg": jpeg(41), "bad.jpg": b"\xff\xd8\xff\xe0 nope"}))
        report = p.poll(sid)
        assert report.hashed == 3 and report.failed == 1 and report.new_matches == 1
    finally:
        p.close()


# --- crash safety ------------------------------------------------------------------------------------

def _descendants(pid: int) -> list[int]:
    out: list[int] = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                for child in f.read().split():
                    out += [int(child), *_descendants(int(child))]
    except OSError:
        pass
    return out


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _child_env(settings_env: dict[str, str], guard: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NCII_")}
    env.update(settings_env)
    env.update({"NCII_HTTP_ALLOW_LOOPBACK": "1", "NCII_HTTP_MIN_INTERVAL": "0", "NCII_HTTP_RETRIES": "0",
                "NCII_HASH_WORKERS": "1",
                "NCII_FETCH_WORKERS": "4", "NCII_ITEM_RETRY_BASE": "0",
                "PYTHONPATH": os.pathsep.join([str(guard), str(Path(__file__).resolve().parents[1])])})
    return env


def test_kill_minus_9_mid_pass_then_restart_processes_every_candidate_exactly_once(
        engine, env, site, tmp_path, loopback_sitecustomize):
    case = register_case(engine, size=(320, 240))
    total = 40
    images: dict[str, bytes | Route] = {}
    for i in range(total):
        if i % 20 == 3:
            body = jpeg(1, P.recompressed, 60, size=(320, 240))  # copies: the same bytes twice
        elif i % 20 == 11:
            body = jpeg(2, P.mirrored, size=(320, 240))
        else:
            body = jpeg(1000 + i, size=(320, 240))
        images[f"item-{i:03d}.jpg"] = Route(body, "image/jpeg", delay=0.1)
    url = serve_feed(site, images)
    with db.transaction(engine) as s:
        sources.add_source(s, url, kind="rss", name="many", interval=600, options={"page_size": "4"}, actor="test")

    cmd = [sys.executable, "-m", "monitor.cli", "monitor", "once", "--all", "--json"]
    child_env = _child_env(env, loopback_sitecustomize)
    proc = subprocess.Popen(cmd, env=child_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            done = count(engine, SourceCandidate)
            if done >= 8 or proc.poll() is not None:
                break
            time.sleep(0.05)
        assert proc.poll() is None, "the pass finished before it could be killed: " + proc.stderr.read().decode()
        workers = _descendants(proc.pid)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    killed_at = count(engine, SourceCandidate)
    assert 0 < killed_at < total
    # Its hashing processes notice that the monitor is gone and exit (no orphans left behind).
    assert workers, "the monitor should hash on worker processes"
    gone_by = time.monotonic() + 10
    while any(_running(w) for w in workers) and time.monotonic() < gone_by:
        time.sleep(0.1)
    assert not [w for w in workers if _running(w)]

    # The restart hashes in its own process (the pool was exercised above; this saves a start-up).
    again = subprocess.run(cmd, env={**child_env, "NCII_HASH_WORKERS": "0"}, capture_output=True, timeout=120)
    assert again.returncode == 0, again.stderr.decode()[-2000:]
    assert b"NETWORK VIOLATION" not in again.stderr

    with db.session(engine) as s:
        rows = list(s.scalars(select(SourceCandidate)))
        assert len(rows) == total and {r.status for r in rows} == {"done"}
        assert len({r.key_sha256 for r in rows}) == total
        assert all(r.media_id is not None for r in rows)
        assert s.scalar(select(func.count()).select_from(Media)) == total - 2  # the 2+2 copies are 2 media
        matches = list(s.execute(select(Match.media_id, Match.registered_hash_id, Match.query_region, Match.id)))
        assert len(matches) == len({m[:3] for m in matches}) == 2
        alerts = list(s.scalars(select(Alert.match_id)))
        assert sorted(alerts) == sorted(m.id for m in matches)  # exactly one alert per match
        assert s.scalar(select(func.count()).select_from(MediaSighting)) == total
        src = s.scalar(select(Source))
        assert src.lease_owner is None and src.consecutive_failures == 0

    # Another pass finds nothing new and records nothing twice.
    p = make_pipeline(engine)
    try:
        third = p.poll(src.id)
    finally:
        p.close()
    assert third.ok and third.new == 0
    assert count(engine, SourceCandidate) == total and count(engine, Alert) == 2
    assert case
