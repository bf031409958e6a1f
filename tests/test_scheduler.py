"""Scheduling: APScheduler 3 jobs persisted in the project's database, one per enabled source,
moved to each source's next due time (interval + jitter, or back-off after a failure); and the
foreground service stopping cleanly on SIGTERM."""

from __future__ import annotations

import datetime as dt
import signal
import subprocess
import sys
import time

import pytest
from sqlalchemy import select, text, update

from monitor import db, sources
from monitor.demo.site import LoopbackSite, Route
from monitor.models import Source, SourceCandidate, utcnow
from monitor.scheduler import MonitorService, job_id
from tests.test_pipeline import _child_env, add_source, count, jpeg, make_pipeline, serve_feed

pytestmark = pytest.mark.usefixtures("loopback_only")


@pytest.fixture
def site():
    s = LoopbackSite()
    yield s
    s.close()


def _jobs(engine) -> dict[str, float]:
    with engine.connect() as conn:
        return {r[0]: r[1] for r in conn.execute(text("SELECT id, next_run_time FROM apscheduler_jobs"))}


def _service(engine, settings) -> MonitorService:
    return MonitorService(engine, settings, pipeline=make_pipeline(engine), channels=[], housekeeping_seconds=3600)


def test_source_jobs_are_kept_in_the_database_and_follow_the_sources_table(engine, settings, site):
    later = utcnow() + dt.timedelta(hours=1)
    a = add_source(engine, site.url("/a.xml"), kind="rss", name="a")
    b = add_source(engine, site.url("/b.xml"), kind="rss", name="b")
    with db.transaction(engine) as s:
        s.execute(update(Source).values(next_due_at=later))  # nothing runs during the test
        sources.set_enabled(s, "b", False, actor="test")

    first = _service(engine, settings)
    first.start()
    try:
        jobs = _jobs(engine)
        assert set(jobs) == {job_id(a)}  # the paused source has no job
        assert abs(jobs[job_id(a)] - later.timestamp()) < 1
    finally:
        first.shutdown()
    assert set(_jobs(engine)) == {job_id(a)}  # still there with the service stopped

    second = _service(engine, settings)
    second.start()
    try:
        assert second.sync_jobs() == {"added": 0, "updated": 0, "removed": 0}  # found in the store
        job = second.scheduler.get_job(job_id(a))
        assert job.trigger.interval == dt.timedelta(seconds=600) and abs(job.next_run_time - later) < dt.timedelta(seconds=1)
        with db.transaction(engine) as s:
            sources.set_enabled(s, "b", True, actor="test")
            s.get(Source, b).next_due_at = later
            sources.remove_source(s, "a", actor="test")
        assert second.sync_jobs() == {"added": 1, "updated": 0, "removed": 1}
        assert set(_jobs(engine)) == {job_id(b)}
    finally:
        second.shutdown()


def test_the_scheduler_polls_due_sources_and_moves_each_job_to_its_next_due_time(engine, settings, site):
    good = add_source(engine, serve_feed(site, {"x.jpg": jpeg(30)}), name="good")
    bad = add_source(engine, site.add("/down.xml", Route(b"", "text/plain", status=503)), kind="rss", name="bad")
    service = _service(engine, settings)
    service.start()
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with db.session(engine) as s:
                polled = [s.get(Source, i).last_poll_at for i in (good, bad)]
            if all(polled):
                break
            time.sleep(0.1)
        assert all(polled), "both sources should have been polled"
        time.sleep(0.3)  # the job is moved right after the poll returns
        with db.session(engine) as s:
            g, b = s.get(Source, good), s.get(Source, bad)
            assert g.last_success_at and g.consecutive_failures == 0
            assert b.consecutive_failures == 1 and b.backoff_seconds > 0 and "HTTP 503" in b.last_error
            due = {good: g.next_due_at, bad: b.next_due_at}
        jobs = _jobs(engine)
        for sid, when in due.items():
            assert when > utcnow() and abs(jobs[job_id(sid)] - when.timestamp()) < 1
        assert count(engine, SourceCandidate) == 1
    finally:
        service.shutdown()


@pytest.mark.parametrize("backend", ["sqlite"])  # signal handling does not depend on the database
def test_monitor_run_stops_cleanly_on_sigterm_without_half_a_page(engine, env, site, loopback_sitecustomize):
    images = {f"slow-{i:02d}.jpg": Route(jpeg(300 + i, size=(160, 120)), "image/jpeg", delay=0.25) for i in range(24)}
    with db.transaction(engine) as s:
        sources.add_source(s, serve_feed(site, images), kind="rss", name="slow", interval=600,
                           options={"page_size": "4"}, actor="test")
    child_env = {**_child_env(env, loopback_sitecustomize), "NCII_HASH_WORKERS": "0", "NCII_FETCH_WORKERS": "2"}
    proc = subprocess.Popen([sys.executable, "-m", "monitor.cli", "monitor", "run"], env=child_env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and count(engine, SourceCandidate) < 4 and proc.poll() is None:
            time.sleep(0.05)
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    log = err.decode()
    assert proc.returncode == 0, log[-2000:]
    assert "SIGTERM received" in log and "NETWORK VIOLATION" not in log
    rows = count(engine, SourceCandidate)
    assert 4 <= rows < 24 and rows % 4 == 0  # whole pages only: the one in progress was abandoned
    with db.session(engine) as s:
        src = s.scalar(select(Source))
        assert src.lease_owner is None  # released on the way out


def test_shutdown_while_a_finishing_poll_reschedules_its_source_does_not_hang(engine, settings, site):
    """A poll that ends (not interrupted) just as the service shuts down moves its job; APScheduler's
    shutdown holds its job-store lock while it waits for that poll, so the move must not reach it."""
    import threading

    later = utcnow() + dt.timedelta(hours=1)
    a = add_source(engine, site.url("/a.xml"), kind="rss", name="a")
    with db.transaction(engine) as s:
        s.execute(update(Source).values(next_due_at=later))  # no real poll during the test
    service = _service(engine, settings)
    release, inside = threading.Event(), threading.Event()

    def finishing_poll() -> None:  # what poll_source does after its last page
        inside.set()
        release.wait(30)
        service._reschedule(a)

    service.start()
    service.scheduler.add_job(finishing_poll, id="finishing", jobstore="memory")
    assert inside.wait(30)
    stopper = threading.Thread(target=service.shutdown)
    stopper.start()
    deadline = time.monotonic() + 5
    while service.scheduler is not None and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.2)  # let shutdown get to waiting for the running job
    release.set()
    stopper.join(30)
    assert not stopper.is_alive(), "shutdown hung waiting for a job that was waiting for the scheduler"
    assert set(_jobs(engine)) == {job_id(a)}
