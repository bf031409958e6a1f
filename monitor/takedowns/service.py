"""The monitor service's takedown job: a tracking pass (re-checks, deadlines, escalation drafts,
re-uploads) every NCII_TAKEDOWN_RECHECK_MINUTES, on the service's scheduler."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from apscheduler.triggers.interval import IntervalTrigger

from monitor.takedowns import tracking
from monitor.takedowns.config import TakedownSettings
from monitor.takedowns.recipients import RecipientFinder

log = logging.getLogger(__name__)
JOB_ID = "takedown-tracking"


def register_tracking(service: Any, scheduler: Any, settings: TakedownSettings | None = None) -> None:
    """Add the tracking job (in memory: it is derived from the notices table, nothing to persist)."""
    try:
        ts = settings or TakedownSettings.load()
    except Exception as e:  # a bad takedown setting must not stop the monitor
        log.warning("takedown tracking not scheduled: %s", e)
        return

    def job() -> None:
        if service.stop.is_set():
            return
        http = service.pipeline.http
        try:
            report = tracking.run(service.engine, http, ts, finder=RecipientFinder(ts, http))
        except Exception:
            log.exception("takedown tracking failed (will try again)")
            return
        if report.removed or report.escalations or report.reuploads:
            log.info("takedowns: %d removed, %d partly, %d escalation(s) drafted, %d re-upload(s) flagged",
                     len(report.removed), len(report.partly_removed), len(report.escalations), len(report.reuploads))

    scheduler.add_job(job, IntervalTrigger(minutes=ts.recheck_minutes, timezone=dt.timezone.utc), id=JOB_ID,
                      jobstore="memory", replace_existing=True)
