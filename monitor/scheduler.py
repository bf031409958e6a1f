"""Scheduling: each enabled source is an APScheduler 3 job in a persistent job store (the
project's own database, table ``apscheduler_jobs``), run at its interval with jitter.

The ``sources`` table is the truth (interval, jitter, paused, next due time, back-off); the job
store follows it. After every poll the source's ``next_due_at`` is set (interval plus jitter
when it went well, exponential back-off when it failed, see monitor.sources) and the job's next
run time is moved to it. A housekeeping job (every 15 s, in memory) adds jobs for sources added
by the CLI while the service runs, removes those of removed or paused sources, delivers pending
alerts and notices hashes registered by other processes. Another (at start, then every 30 min)
purges the web app's expired sessions, reveals and sign-in throttle rows (monitor.accounts).

One failing source never stops the others: every poll catches its own errors (they become the
source's health), jobs run on a thread pool (``NCII_MONITOR_CONCURRENCY`` at once) and each
source has at most one poll running (``max_instances=1``; a lease in the sources table keeps a
second process such as ``ncii monitor once`` off it too).

Shutdown (SIGTERM, Ctrl-C): the stop event is set, running polls abandon the page they are
working on (nothing of it is committed, its cursor is not advanced), the scheduler waits for
them and exits. A second Ctrl-C exits at once; the database is consistent either way, because a
page commits in one transaction or not at all.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import signal
import threading
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

from apscheduler.executors.pool import ThreadPoolExecutor as APThreadPool
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import select
from sqlalchemy.engine import Engine

from monitor import db, sources
from monitor.alerts import AlertSender, Channel, SendReport, channels_from_settings, pending_count
from monitor.models import Source, utcnow
from monitor.pipeline import Pipeline, PollReport, poll_sources
from monitor.settings import Settings

log = logging.getLogger(__name__)

HOUSEKEEPING_SECONDS = 15
JOB_PREFIX = "source:"
PURGE_JOB = "web-sessions"
_service: "MonitorService | None" = None


def job_id(source_id: int) -> str:
    """The APScheduler job id of a source."""
    return f"{JOB_PREFIX}{source_id}"


def poll_source_job(source_id: int) -> None:
    """What the persisted jobs call (by reference, so it must stay importable under this name)."""
    service = _service
    if service is None:  # pragma: no cover - a job store shared with a process that is not the service
        log.warning("no monitor service running in this process; source %d not polled", source_id)
        return
    service.poll_source(source_id)


@dataclass
class OnceReport:
    """What `ncii monitor once` did."""

    sources: list[PollReport] = field(default_factory=list)
    alerts: SendReport = field(default_factory=SendReport)

    @property
    def ok(self) -> bool:
        return all(r.ok or r.busy for r in self.sources)

    def to_dict(self) -> dict[str, Any]:
        return {
            "polled": len(self.sources),
            "failed": sum(1 for r in self.sources if not r.ok and not r.busy),
            "busy": sum(1 for r in self.sources if r.busy),
            "new": sum(r.new for r in self.sources),
            "hashed": sum(r.hashed for r in self.sources),
            "new_matches": sum(r.new_matches for r in self.sources),
            "sources": [r.to_dict() for r in self.sources],
            "alerts": self.alerts.to_dict(),
        }


class MonitorService:
    """The pipeline, the alert sender and (for `monitor run`) the scheduler, in one process."""

    def __init__(self, engine: Engine, settings: Settings, *, pipeline: Pipeline | None = None,
                 channels: Sequence[Channel] | None = None, stop: threading.Event | None = None,
                 housekeeping_seconds: float = HOUSEKEEPING_SECONDS) -> None:
        self.engine = engine
        self.settings = settings
        self.stop = stop or (pipeline.stop if pipeline is not None else threading.Event())
        self.pipeline = pipeline or Pipeline.from_settings(engine, settings, stop=self.stop)
        self.pipeline.stop = self.stop
        self.channels = list(channels_from_settings(settings) if channels is None else channels)
        self.sender = AlertSender(engine, self.channels, public_url=settings.public_url)
        self.housekeeping_seconds = housekeeping_seconds
        self.scheduler: BackgroundScheduler | None = None
        # Held by jobs while they change the schedule and by shutdown() while it lets go of the
        # scheduler: APScheduler's shutdown(wait=True) holds its job-store lock while it waits for
        # running jobs, so a job that then asked it for a job (get_job, modify) would never return.
        self._schedule_lock = threading.RLock()
        self._warned_no_channel = False

    # -- one pass ------------------------------------------------------------------------------

    def once(self, *, every: bool = False, names: Iterable[str] | None = None,
             send_alerts: bool = True) -> OnceReport:
        """Poll every due source (every enabled one with every=True, or the named ones), then
        deliver pending alerts."""
        names = list(names or [])
        with db.session(self.engine) as s:
            ids = sources.source_ids_by_name(s, names) if names else sources.due_source_ids(s, every=every)
        report = OnceReport()
        report.sources = poll_sources(self.pipeline, ids, concurrency=self.settings.monitor.concurrency)
        if send_alerts:
            report.alerts = self.send_alerts()
        return report

    def poll_source(self, source_id: int) -> PollReport:
        """Poll one source (a scheduler job), then move its job to the source's next due time."""
        report = self.pipeline.poll(source_id)
        if report.busy:
            log.info("source %s is being polled by another process; skipped", report.source)
        elif report.interrupted:
            log.info("source %s: stopped mid-poll; the unfinished page will be polled again", report.source)
        elif report.ok:
            log.info("source %s: %d listed, %d new, %d hashed, %d reused, %d to retry, %d failed, "
                     "%d new match(es) in %.1fs", report.source, report.listed, report.new, report.hashed,
                     report.reused, report.retry, report.failed, report.new_matches, report.seconds)
        else:
            log.warning("source %s failed: %s", report.source, (report.error or {}).get("message"))
        if not report.interrupted:
            self._reschedule(source_id)
        if report.new_matches and not self.stop.is_set():
            self.send_alerts()
        return report

    def send_alerts(self) -> SendReport:
        """Deliver pending alerts (a no-op, with a warning, when no channel is configured)."""
        try:
            report = self.sender.send_pending()
        except Exception:  # the database is down: alerts stay in the outbox
            log.exception("could not deliver alerts")
            return SendReport(channels=[c.name for c in self.channels])
        if not self.channels and report.pending and not self._warned_no_channel:
            log.warning("%d alert(s) waiting, but no alert channel is configured (set NCII_SMTP_HOST and "
                        "NCII_SMTP_TO, or NCII_WEBHOOK_URL and NCII_WEBHOOK_SECRET); they are kept until one is",
                        report.pending)
            self._warned_no_channel = True
        return report

    # -- the scheduler --------------------------------------------------------------------------

    def start(self) -> BackgroundScheduler:
        """Start the scheduler (jobs persisted in the database) and schedule every enabled source."""
        global _service
        if _service is not None and _service is not self:
            raise RuntimeError("a monitor service is already running in this process")
        _service = self
        scheduler = BackgroundScheduler(
            jobstores={"default": SQLAlchemyJobStore(engine=self.engine), "memory": MemoryJobStore()},
            executors={"default": APThreadPool(max_workers=self.settings.monitor.concurrency + 1)},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
            timezone=dt.timezone.utc,
        )
        scheduler.start()
        self.scheduler = scheduler
        self.sync_jobs()
        scheduler.add_job(self.housekeeping, IntervalTrigger(seconds=self.housekeeping_seconds, timezone=dt.timezone.utc),
                          id="housekeeping", jobstore="memory", replace_existing=True)
        # The web app's expired sessions, reveals and throttle rows: now, then every 30 minutes
        # (the same job id `ncii serve` used, so one process never runs two).
        self.purge_expired()
        scheduler.add_job(self.purge_expired, IntervalTrigger(minutes=30, timezone=dt.timezone.utc),
                          id=PURGE_JOB, jobstore="memory", replace_existing=True)
        from monitor.takedowns.service import register_tracking  # issue 8: re-checks, deadlines, escalation

        register_tracking(self, scheduler)
        return scheduler

    def housekeeping(self) -> None:
        """Keep the jobs in step with the sources table; deliver alerts; reload changed hashes."""
        if self.stop.is_set():
            return
        try:
            self.sync_jobs()
            self.pipeline.matcher.refresh()
        except Exception:
            log.exception("housekeeping failed (will try again)")
        self.send_alerts()

    def purge_expired(self) -> dict[str, int]:
        """Delete expired web sessions, lapsed reveals and stale sign-in throttle rows (idempotent)."""
        from monitor import accounts

        try:
            with db.transaction(self.engine) as s:
                counts = accounts.purge_expired(s)
        except Exception:
            log.exception("could not purge expired sessions (will try again)")
            return {}
        if any(counts.values()):
            log.info("purged %d expired session(s), %d lapsed reveal(s), %d stale throttle row(s)",
                     counts["sessions"], counts["reveals"], counts["throttle"])
        return counts

    def sync_jobs(self) -> dict[str, int]:
        """Add, update or remove source jobs so they match the sources table."""
        if self.scheduler is None:
            return {}
        with db.session(self.engine) as s:
            rows = list(s.execute(select(Source.id, Source.name, Source.interval_seconds, Source.jitter_seconds,
                                         Source.next_due_at).where(Source.enabled.is_(True))))
        with self._schedule_lock:
            scheduler = self.scheduler
            if scheduler is None:  # shutting down
                return {}
            return self._sync_jobs(scheduler, rows)

    def _sync_jobs(self, scheduler: BackgroundScheduler, rows: list) -> dict[str, int]:
        existing = {j.id: j for j in scheduler.get_jobs(jobstore="default") if j.id.startswith(JOB_PREFIX)}
        counts = {"added": 0, "updated": 0, "removed": 0}
        now = utcnow()
        for r in rows:
            jid = job_id(r.id)
            due = r.next_due_at or now
            trigger = IntervalTrigger(seconds=r.interval_seconds, jitter=r.jitter_seconds or None,
                                      timezone=dt.timezone.utc)
            job = existing.pop(jid, None)
            if job is None:
                scheduler.add_job(poll_source_job, trigger, args=[r.id], id=jid, name=r.name, jobstore="default",
                                  next_run_time=due, replace_existing=True)
                counts["added"] += 1
                continue
            same_trigger = (isinstance(job.trigger, IntervalTrigger)
                            and job.trigger.interval == dt.timedelta(seconds=r.interval_seconds)
                            and (job.trigger.jitter or 0) == (r.jitter_seconds or 0))
            if not same_trigger:
                job.modify(trigger=trigger, next_run_time=due, name=r.name)
                counts["updated"] += 1
            elif job.next_run_time is not None and abs((job.next_run_time - due).total_seconds()) > 1 \
                    and not self._running(jid):
                job.modify(next_run_time=due)  # e.g. `ncii monitor once` polled it meanwhile
                counts["updated"] += 1
        for jid in existing:
            scheduler.remove_job(jid, jobstore="default")
            counts["removed"] += 1
        return counts

    def _running(self, jid: str) -> bool:
        # A job being executed right now has already been moved to its next trigger time; its
        # poll will set the real due time when it ends.
        scheduler = self.scheduler
        executor = scheduler._executors.get("default") if scheduler else None  # noqa: SLF001
        return bool(executor and executor._instances.get(jid))  # noqa: SLF001

    def _reschedule(self, source_id: int) -> None:
        if self.scheduler is None:
            return
        try:
            with db.session(self.engine) as s:
                row = s.execute(select(Source.enabled, Source.next_due_at).where(Source.id == source_id)).first()
            with self._schedule_lock:
                scheduler = self.scheduler
                if scheduler is None:  # shutting down: the next start schedules from next_due_at
                    return
                job = scheduler.get_job(job_id(source_id), jobstore="default")
                if row is None or not row.enabled:
                    if job is not None:
                        scheduler.remove_job(job.id, jobstore="default")
                elif job is not None:
                    job.modify(next_run_time=row.next_due_at or utcnow())
        except Exception:
            log.exception("could not reschedule source %d (housekeeping will)", source_id)

    def run(self, *, install_signals: bool = True) -> None:
        """The foreground service: runs until SIGTERM or Ctrl-C, then shuts down cleanly."""
        if install_signals:
            self._install_signal_handlers()
        self.pipeline.workers.warm_up()
        self.start()
        with db.session(self.engine) as s:
            n = len(sources.due_source_ids(s, every=True))
            waiting = pending_count(s)
        log.info("monitor running: %d enabled source(s), %d alert(s) pending, alert channels: %s",
                 n, waiting, ", ".join(c.name for c in self.channels) or "none")
        self.send_alerts()
        try:
            while not self.stop.wait(1.0):
                pass
        finally:
            self.shutdown()

    def _install_signal_handlers(self) -> None:
        def handler(signum: int, _frame: Any) -> None:
            if self.stop.is_set():
                log.warning("second signal: exiting at once (nothing half-committed: pages are atomic)")
                os._exit(130)
            log.info("%s received: finishing up (the page in progress is abandoned, not half-committed)",
                     signal.Signals(signum).name)
            self.stop.set()

        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)

    def shutdown(self) -> None:
        """Stop polling, wait for running polls to abandon or finish, release everything."""
        global _service
        self.stop.set()
        with self._schedule_lock:  # from here on no job touches the scheduler
            scheduler, self.scheduler = self.scheduler, None
        if scheduler is not None:
            try:
                scheduler.shutdown(wait=True)
            except Exception:  # pragma: no cover - already stopped
                pass
        self.pipeline.close()
        for c in self.channels:
            close = getattr(c, "close", None)
            if close:
                close()
        if _service is self:
            _service = None
