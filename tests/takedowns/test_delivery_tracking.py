"""Delivery to a real SMTP server (aiosmtpd) and exactly once across a crash; removal detection
against a local site that deletes the image after the notice; deadlines and escalation with a
controllable clock; re-uploads; the report's figures."""

from __future__ import annotations

import datetime as dt
import email

import pytest
from sqlalchemy import select

from monitor import db
from monitor.demo.site import LoopbackSite, Route
from monitor.models import MediaSighting, TakedownNotice, TakedownNoticeUrl
from monitor.takedowns import delivery, reports, tracking
from monitor.takedowns import notices as N
from tests.takedowns.conftest import T0, add_copy, make_case, picture_bytes

pytestmark = pytest.mark.usefixtures("loopback_only")
H = dt.timedelta(hours=1)


def _approved_notice(engine, tsettings, site: LoopbackSite, seeds=(11,), jurisdiction="US") -> tuple[int, list[str]]:
    case = make_case(engine, jurisdiction)
    urls = []
    for seed in seeds:
        data = picture_bytes(seed)
        path = f"/img/{seed}.jpg"
        site.add(path, Route(data, "image/jpeg"))
        urls.append(site.url(path))
        add_copy(engine, case, data, [(site.url(path), site.url(f"/post/{seed}"))])
    with db.transaction(engine) as s:
        [notice] = N.draft_for_case(s, case.case_id, tsettings, actor="test:advocate", now=T0)
        assert notice.platform == "demo-board" and notice.recipient["email"] == "takedowns@demo-board.test"
        N.approve(s, notice, tsettings, actor="test:advocate", now=T0)
        return notice.id, urls


def test_an_approved_notice_is_emailed_once_with_its_pdf(engine, tsettings, smtp_server):
    box, smtp = smtp_server
    with LoopbackSite() as site:
        nid, urls = _approved_notice(engine, tsettings, site)
    report = delivery.send_approved(engine, smtp, tsettings, now=lambda: T0)
    assert report.sent == [nid]
    assert delivery.send_approved(engine, smtp, tsettings, now=lambda: T0).sent == []  # nothing twice
    [envelope] = box.messages
    assert envelope.rcpt_tos == ["takedowns@demo-board.test"]
    msg = email.message_from_bytes(envelope.original_content)
    with db.session(engine) as s:
        notice = s.get(TakedownNotice, nid)
        assert notice.state == "sent" and notice.sent_at == T0 and notice.deadline_at == T0 + 48 * H
        assert msg["Message-ID"] == notice.message_id
    parts = {p.get_content_type(): p for p in msg.walk()}
    assert "TAKE IT DOWN Act" in parts["text/plain"].get_payload(decode=True).decode()
    assert urls[0] in parts["text/plain"].get_payload(decode=True).decode()
    assert parts["application/pdf"].get_payload(decode=True).startswith(b"%PDF")


def test_a_restart_between_send_and_commit_never_sends_twice(engine, tsettings, smtp_server):
    box, smtp = smtp_server
    with LoopbackSite() as site:
        nid, _ = _approved_notice(engine, tsettings, site, seeds=(12,))

    class Crash(BaseException):
        pass

    def crash(_notice_id):
        raise Crash("the process died after the server accepted the message")

    with pytest.raises(Crash):
        delivery.send_approved(engine, smtp, tsettings, _after_accept=crash)
    assert len(box.messages) == 1
    # "Restart": a new run (any number of them) does not send it again; it reports it as uncertain.
    for _ in range(2):
        again = delivery.send_approved(engine, smtp, tsettings)
        assert again.sent == [] and again.uncertain == [nid]
    assert len(box.messages) == 1
    with db.transaction(engine) as s:  # a person checked the copy and records it as sent
        N.mark(s, N.get(s, nid), "sent", actor="test:advocate", now=T0)
    with db.session(engine) as s:
        assert N.get(s, nid).state == "sent"
    assert len(box.messages) == 1


def test_a_refused_delivery_is_retried_and_a_draft_is_never_sent(engine, tsettings, smtp_server):
    box, smtp = smtp_server
    import dataclasses
    closed = dataclasses.replace(smtp, port=1)  # nothing listens there: connection refused
    with LoopbackSite() as site:
        nid, _ = _approved_notice(engine, tsettings, site, seeds=(13,))
        case = make_case(engine, "US")
        site.add("/img/draft.jpg", Route(picture_bytes(14), "image/jpeg"))
        add_copy(engine, case, picture_bytes(14), [(site.url("/img/draft.jpg"), None)])
        with db.transaction(engine) as s:
            [draft] = N.draft_for_case(s, case.case_id, tsettings, actor="t")
            draft_id = draft.id
    failed = delivery.send_approved(engine, closed, tsettings)
    assert failed.failed == [nid] and "cannot reach" in failed.errors[0]
    ok = delivery.send_approved(engine, smtp, tsettings)
    assert ok.sent == [nid] and len(box.messages) == 1
    assert delivery.send_approved(engine, smtp, tsettings, notice_ids=[draft_id]).sent == []  # not approved
    with db.session(engine) as s:
        assert N.get(s, draft_id).state == "draft"


def test_removal_is_detected_after_the_site_deletes_the_image(engine, tsettings, http):
    with LoopbackSite() as site:
        nid, urls = _approved_notice(engine, tsettings, site, seeds=(21, 22, 23))
        with db.transaction(engine) as s:
            N.mark(s, N.get(s, nid), "submitted", actor="t", ticket="T-1", now=T0)
        first = tracking.recheck(engine, http, now=T0 + H)
        assert first.checked == 3 and first.still_there == 3 and first.removed == []
        # The site removes one picture (404), replaces one with another picture, keeps the third.
        del site.routes["/img/21.jpg"]
        site.add("/img/22.jpg", Route(picture_bytes(99), "image/jpeg"))
        second = tracking.recheck(engine, http, now=T0 + 5 * H)
        assert second.gone == 2 and second.partly_removed == [nid]
        site.routes["/img/23.jpg"] = Route(b"gone", "text/plain", 410)
        third = tracking.recheck(engine, http, now=T0 + 30 * H)
        assert third.checked == 1 and third.removed == [nid]
    with db.session(engine) as s:
        notice = s.get(TakedownNotice, nid)
        assert notice.state == "removed" and notice.removed_at == T0 + 30 * H and notice.ticket == "T-1"
        reasons = {u.url.rsplit("/", 1)[-1]: (u.gone_reason, u.gone_at)
                   for u in s.scalars(select(TakedownNoticeUrl).where(TakedownNoticeUrl.notice_id == nid))}
        assert reasons == {"21.jpg": ("gone-404", T0 + 5 * H), "22.jpg": ("gone-changed", T0 + 5 * H),
                           "23.jpg": ("gone-410", T0 + 30 * H)}
        assert all(g is not None for g in s.scalars(select(MediaSighting.gone_at)))
        [row] = reports.takedown_report(s, now=T0 + 40 * H)
        assert (row.platform, row.notice_type, row.sent, row.removed) == ("demo-board", "take_it_down", 1, 1)
        assert row.median_hours == 30.0 and row.within_deadline_share == 1.0 and row.open == row.overdue == 0


def test_overdue_notices_escalate_step_by_step_each_needing_approval(engine, tsettings, http):
    with LoopbackSite() as site:
        nid, _ = _approved_notice(engine, tsettings, site, seeds=(31,))
        with db.transaction(engine) as s:
            N.mark(s, N.get(s, nid), "submitted", actor="t", now=T0)
        clock = T0 + 47 * H
        assert tracking.run(engine, http, tsettings, now=clock).escalations == []  # within 48 hours
        clock = T0 + 49 * H
        r1 = tracking.run(engine, http, tsettings, now=clock)
        assert r1.expired == [nid] and len(r1.escalations) == 1
        assert tracking.run(engine, http, tsettings, now=clock + H).escalations == []  # waits for a person
        with db.transaction(engine) as s:
            reminder = s.get(TakedownNotice, r1.escalations[0])
            assert (reminder.kind, reminder.step, reminder.state, reminder.parent_id) == ("reminder", 1, "draft", nid)
            assert reminder.recipient["email"] == "takedowns@demo-board.test" and N.reference(nid) in reminder.body
            N.approve(s, reminder, tsettings, actor="t")
            N.mark(s, reminder, "sent", actor="t", now=clock)
        # No finder (no network look-ups): step 2 cannot find an abuse contact, so the regulator is next.
        r2 = tracking.run(engine, http, tsettings, now=clock + 49 * H)
        with db.session(engine) as s:
            regulator = s.get(TakedownNotice, r2.escalations[0])
            assert regulator.kind == "regulator" and regulator.recipient["name"] == "Federal Trade Commission"
            assert regulator.delivery == "web_form" and regulator.elements["ok"], regulator.elements
        # The site removes the picture: the notice is removed (late) and the open escalation is not needed.
        del site.routes["/img/31.jpg"]
        r3 = tracking.run(engine, http, tsettings, now=clock + 60 * H)
        assert r3.removed == [nid]
    with db.transaction(engine) as s:
        with pytest.raises(N.NoticeError, match="removed"):
            N.approve(s, s.get(TakedownNotice, r2.escalations[0]), tsettings, actor="t")
        [row] = reports.takedown_report(s, now=clock + 70 * H)
        assert row.removed == 1 and row.within_deadline_share == 0.0


def test_a_reupload_after_removal_is_flagged_with_a_follow_up(engine, tsettings, http):
    with LoopbackSite() as site:
        nid, _ = _approved_notice(engine, tsettings, site, seeds=(41,))
        with db.transaction(engine) as s:
            N.mark(s, N.get(s, nid), "submitted", actor="t", now=T0)
        del site.routes["/img/41.jpg"]
        assert tracking.run(engine, http, tsettings, now=T0 + 2 * H).removed == [nid]
        with db.session(engine) as s:
            case_id = s.get(TakedownNotice, nid).case_id
        from tests.takedowns.conftest import CaseData
        case = CaseData(case_id, "")
        site.add("/img/41-again.jpg", Route(picture_bytes(41), "image/jpeg"))
        add_copy(engine, case, picture_bytes(41), [(site.url("/img/41-again.jpg"), None)], first_seen=T0 + 10 * H)
        r = tracking.run(engine, http, tsettings, now=T0 + 11 * H)
        assert len(r.reuploads) == 1
        assert tracking.run(engine, http, tsettings, now=T0 + 12 * H).reuploads == []  # flagged once
    with db.session(engine) as s:
        follow = s.get(TakedownNotice, r.reuploads[0])
        assert (follow.kind, follow.parent_id, follow.notice_type) == ("reupload", nid, "take_it_down")
        assert "41-again.jpg" in follow.body and follow.state == "draft" and follow.elements["ok"]
        assert "RE-UPLOAD" in follow.body and N.reference(nid) in follow.body
        assert "reference" in follow.elements["checked"]  # it must keep quoting the earlier notice


def test_report_figures_on_known_data(engine):
    case = make_case(engine, "US")
    rows = [  # (sent hours after T0, removed hours after sent or None)
        (0, 10), (0, 20), (0, 30), (0, 40), (0, 100), (0, None)]
    with db.transaction(engine) as s:
        for i, (sent, removed) in enumerate(rows):
            n = TakedownNotice(case_id=case.case_id, kind="notice", notice_type="take_it_down", profile="US",
                               platform="demo-board", host="127.0.0.1", state="removed" if removed else "sent",
                               delivery="email", recipient={}, subject="s", body="b", elements={}, deadline_hours=48,
                               created_by="t", sent_at=T0 + sent * H, deadline_at=T0 + (sent + 48) * H,
                               removed_at=(T0 + (sent + removed) * H) if removed else None)
            s.add(n)
        s.add(TakedownNotice(case_id=case.case_id, kind="notice", notice_type="dmca", profile="US", platform="x",
                             host="x.com", state="draft", delivery="web_form", recipient={}, subject="s", body="b",
                             elements={}, deadline_hours=48, created_by="t"))
    with db.session(engine) as s:
        by = {(r.platform, r.notice_type): r for r in reports.takedown_report(s, now=T0 + 200 * H)}
    r = by[("demo-board", "take_it_down")]
    assert (r.notices, r.sent, r.removed, r.open, r.overdue) == (6, 6, 5, 1, 1)
    assert r.median_hours == 30.0 and r.p90_hours == 100.0
    assert r.within_deadline_share == round(4 / 6, 3)
    d = by[("x", "dmca")]
    assert (d.notices, d.sent, d.median_hours, d.within_deadline_share) == (1, 0, None, None)
    csv_text = reports.to_csv(list(by.values()))
    assert csv_text.splitlines()[0].startswith("platform,notice_type,notices")
    assert "demo-board,take_it_down,6,6,5,30.0,100.0,0.667,1,1" in csv_text


def test_the_report_csv_never_hands_a_spreadsheet_a_formula():
    """`ncii report takedowns --csv` and the web download share one writer: a platform name that
    starts like a formula is quoted, numbers (including negative ones) stay numbers."""
    import csv
    import io

    row = reports.Row(platform='=HYPERLINK("http://127.0.0.1/x","open")', notice_type="dmca", notices=1,
                      sent=1, removed=0, median_hours=None, p90_hours=None, within_deadline_share=None,
                      open=1, overdue=0)
    cells = list(csv.reader(io.StringIO(reports.to_csv([row]))))[1]
    assert cells[0] == "'" + row.platform and cells[1:5] == ["dmca", "1", "1", "0"] and cells[5] == ""
    assert reports._spreadsheet_cell("-1.5") == "-1.5" and reports._spreadsheet_cell("@x") == "'@x"


def test_a_case_withdrawn_after_approval_is_never_sent_nor_escalated(engine, tsettings, smtp_server, http):
    from monitor import registry
    from monitor.models import Case

    box, smtp = smtp_server
    with LoopbackSite() as site:
        nid, _ = _approved_notice(engine, tsettings, site, seeds=(71,))
        other, _ = _approved_notice(engine, tsettings, site, seeds=(72,))
        with db.transaction(engine) as s:
            N.mark(s, N.get(s, other), "sent", actor="t", now=T0)
            for notice_id in (nid, other):
                ref = s.get(Case, s.get(TakedownNotice, notice_id).case_id).reference
                registry.withdraw_case(s, ref, actor="test:victim")
        report = delivery.send_approved(engine, smtp, tsettings)
        assert report.cancelled == [nid] and report.sent == [] and box.messages == []
        with db.session(engine) as s:
            n = s.get(TakedownNotice, nid)
            assert n.state == "draft" and "withdrawn" in n.last_error
        with db.transaction(engine) as s, pytest.raises(N.NoticeError, match="withdrawn"):
            N.approve(s, N.get(s, nid), tsettings, actor="t")
        assert tracking.run(engine, http, tsettings, now=T0 + 100 * H).escalations == []
