"""The monitor service runs the takedown tracking pass on its scheduler."""

from __future__ import annotations

import threading
from types import SimpleNamespace

import pytest
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.schedulers.background import BackgroundScheduler

from monitor import db
from monitor.demo.site import LoopbackSite, Route
from monitor.models import TakedownNotice
from monitor.takedowns import notices as N
from monitor.takedowns.service import JOB_ID, register_tracking
from tests.takedowns.conftest import T0, add_copy, make_case, picture_bytes

pytestmark = pytest.mark.usefixtures("loopback_only")


def test_the_tracking_job_is_scheduled_and_records_a_removal(engine, tsettings, http):
    scheduler = BackgroundScheduler(jobstores={"memory": MemoryJobStore()})
    service = SimpleNamespace(stop=threading.Event(), engine=engine, pipeline=SimpleNamespace(http=http))
    register_tracking(service, scheduler, tsettings)
    job = scheduler.get_job(JOB_ID)
    assert job is not None and job.trigger.interval.total_seconds() == 60 * 60
    case = make_case(engine, "US")
    with LoopbackSite() as site:
        site.add("/img/61.jpg", Route(picture_bytes(61), "image/jpeg"))
        add_copy(engine, case, picture_bytes(61), [(site.url("/img/61.jpg"), None)])
        with db.transaction(engine) as s:
            [notice] = N.draft_for_case(s, case.case_id, tsettings, actor="t", now=T0)
            N.approve(s, notice, tsettings, actor="t")
            N.mark(s, notice, "sent", actor="t")
            nid = notice.id
        del site.routes["/img/61.jpg"]
        job.func()
    with db.session(engine) as s:
        assert s.get(TakedownNotice, nid).state == "removed"
