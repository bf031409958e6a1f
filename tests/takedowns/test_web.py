"""The web app's notices tab and overdue list (TestClient, signed-in advocates, CSRF, access rules),
on the web tests' world (tests/web/conftest.py) and a real SMTP server."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from monitor import db, review
from monitor.models import TakedownNotice
from tests.web.conftest import csrf_of

pytestmark = pytest.mark.usefixtures("loopback_only")


@pytest.fixture(autouse=True)
def _organisation(monkeypatch):
    for k, v in (("NCII_ORG_NAME", "Helpline Example"), ("NCII_ORG_EMAIL", "notices@helpline.example"),
                 ("NCII_ORG_SIGNATORY", "Alex Advocate")):
        monkeypatch.setenv(k, v)


def test_notices_tab_draft_edit_approve_send_and_overdue_list(world, clients, smtp_server):
    box, smtp = smtp_server
    world.app.state.settings = dataclasses.replace(world.app.state.settings, smtp=smtp)
    alice, bob = clients["alice"], clients["bob"]
    ref = world.cases["a"]
    with db.transaction(world.engine) as s:
        review.confirm(s, world.matches["a"], actor="user:alice")
    tab = alice.get(f"/cases/{ref}/notices")
    assert tab.status_code == 200 and "Draft notices" in tab.text
    assert alice.post(f"/cases/{ref}/notices", data={"notice_type": ""}).status_code == 403  # no CSRF token
    r = alice.post(f"/cases/{ref}/notices", data={"csrf_token": csrf_of(tab.text), "notice_type": "take_it_down"},
                   follow_redirects=False)
    assert r.status_code == 303, r.text
    page = alice.get(r.headers["location"])
    nid = int(r.headers["location"].rsplit("/", 1)[1])
    assert page.status_code == 200 and "all present" in page.text and "takedowns@demo-board.test" in page.text
    assert "you decide whether it is sent" in page.text  # the note for the advocate
    assert bob.get(f"/notices/{nid}").status_code == 404  # another advocate's case: not visible
    with db.session(world.engine) as s:
        n = s.get(TakedownNotice, nid)
        body, subject = n.body, n.subject
    token = csrf_of(page.text)
    # An edit that drops the URLs: the page names the missing element and approval is refused.
    r = alice.post(f"/notices/{nid}/edit", data={"csrf_token": token, "subject": subject, "to_email":
                                                 "takedowns@demo-board.test", "form_url": "",
                                                 "body": body.replace("http://", "hxxp://")}, follow_redirects=True)
    assert "missing: identification" in r.text
    refused = alice.post(f"/notices/{nid}/approve", data={"csrf_token": token})
    assert refused.status_code == 422 and "identification" in refused.text
    alice.post(f"/notices/{nid}/edit", data={"csrf_token": token, "subject": subject, "body": body,
                                             "to_email": "takedowns@demo-board.test", "form_url": ""})
    assert alice.post(f"/notices/{nid}/approve", data={"csrf_token": token}).status_code == 200
    assert alice.post(f"/notices/{nid}/send", data={"csrf_token": token}).status_code == 200
    # To the platform, and a copy to the organisation (what a person checks if a delivery is ever uncertain).
    assert len(box.messages) == 1
    assert box.messages[0].rcpt_tos == ["takedowns@demo-board.test", "notices@helpline.example"]
    assert alice.post(f"/notices/{nid}/send", data={"csrf_token": token}).status_code == 200
    assert len(box.messages) == 1  # never twice
    pdf = alice.get(f"/notices/{nid}/notice.pdf")
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    assert b"Message-ID" in alice.get(f"/notices/{nid}/notice.eml").content
    # Past its deadline it is listed on the dashboard (alice's), never on bob's.
    with db.transaction(world.engine) as s:
        n = s.get(TakedownNotice, nid)
        n.deadline_at = n.sent_at - dt.timedelta(hours=1)
    dash = alice.get("/")
    assert "Overdue takedown notices" in dash.text and f"/notices/{nid}" in dash.text
    assert f"/notices/{nid}" not in bob.get("/").text
    assert f"/notices/{nid}" in alice.get("/notices").text
    mark = alice.post(f"/notices/{nid}/mark", data={"csrf_token": token, "state": "acknowledged", "ticket": "X-1"})
    assert mark.status_code == 200 and "X-1" in mark.text
    report = alice.get("/notices/report")
    assert report.status_code == 200 and "demo-board" in report.text and "take_it_down" in report.text
    assert "demo-board,take_it_down,1,1,0" in alice.get("/notices/report.csv").text
    assert "demo-board" not in bob.get("/notices/report").text  # only the cases one can see


def test_every_notice_route_against_every_role(world, clients):
    """Anonymous: sign-in redirect; bob (not his case): 404; alice (hers) and admin: allowed."""
    ref = world.cases["a"]
    with db.transaction(world.engine) as s:
        review.confirm(s, world.matches["a"], actor="user:alice")
    tab = clients["alice"].get(f"/cases/{ref}/notices")
    r = clients["alice"].post(f"/cases/{ref}/notices", data={"csrf_token": csrf_of(tab.text)}, follow_redirects=False)
    nid = r.headers["location"].rsplit("/", 1)[1]
    table = [("GET", f"/cases/{ref}/notices", None), ("GET", f"/notices/{nid}", None),
             ("GET", f"/notices/{nid}/notice.pdf", None), ("GET", f"/notices/{nid}/notice.eml", None),
             ("POST", f"/notices/{nid}/edit", {"subject": "s", "body": "b"}), ("POST", f"/notices/{nid}/mark",
                                                                                  {"state": "refused"}),
             ("POST", f"/notices/{nid}/approve", {}), ("POST", f"/notices/{nid}/send", {}),
             ("POST", f"/cases/{ref}/notices", {}), ("GET", "/notices", None), ("GET", "/notices/report", None),
             ("GET", "/notices/report.csv", None)]
    for method, path, body in table:
        for role in ("anonymous", "bob", "alice", "admin"):
            c = clients[role]
            if method == "GET":
                got = c.get(path, follow_redirects=False)
            else:
                token = csrf_of(c.get("/account").text) if role != "anonymous" else "x"
                got = c.post(path, data={**body, "csrf_token": token}, follow_redirects=False)
            if role == "anonymous":
                assert got.status_code == 303 and got.headers["location"].startswith("/login"), (path, role)
            elif role == "bob" and "/notices/report" not in path and path != "/notices":
                assert got.status_code == 404, (path, role, got.status_code)
            else:  # allowed: the answer is the page, a redirect, or a refusal naming a notice problem
                assert got.status_code in (200, 303, 409, 422), (path, role, got.status_code, got.text[:300])
    assert clients["bob"].get("/notices").status_code == 200 and f"/notices/{nid}" not in clients["bob"].get(
        "/notices").text
