"""Regression tests of the security review of 2026-11-25 (docs/web.md, "Security review").

Each test drives the app as a user (or an attacker) would and checks what they would notice.
No test reaches anything but the loopback address: the guard below fails a test on any attempt.
"""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from monitor import db
from monitor.models import ApiToken, Case, Match, User, utcnow
from tests.web.conftest import BASE_URL, PASSWORD, csrf_of, sign_in

pytestmark = pytest.mark.usefixtures("loopback_only")

NEW_PASSWORD = "a different long passphrase"


def _bearer(world, who: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {world.tokens[who]}"}


def _token_count(world, username: str) -> int:
    with db.session(world.engine) as s:
        user = s.query(User).filter_by(username=username).one()
        return s.query(ApiToken).filter_by(user_id=user.id).count()


def test_api_tokens_work_on_the_api_only_not_on_pages_or_their_forms(world):
    """A token (meant for scripts, no CSRF check) must not drive the cookie-only pages and forms."""
    anon = TestClient(world.app, base_url=BASE_URL)
    assert anon.get("/api/users", headers=_bearer(world, "admin")).status_code == 200  # the API: yes
    r = anon.get("/users", headers=_bearer(world, "admin"), follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/login")
    before = _token_count(world, "alice")
    r = anon.post("/account/tokens", data={"name": "minted"}, headers=_bearer(world, "alice"), follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/login")
    r = anon.post("/account/password", data={"current": PASSWORD, "new": NEW_PASSWORD},
                  headers=_bearer(world, "alice"), follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/login")
    assert _token_count(world, "alice") == before
    sign_in(world.app, "alice", PASSWORD)  # the password did not change


def test_the_account_page_title_is_just_the_title(world, clients):
    """The <title> held the password form and the session's CSRF token (kept in browser history)."""
    page = clients["alice"].get("/account").text
    title = re.search(r"<title>(.*?)</title>", page, re.S).group(1)
    assert title == "Account · NCII monitor"
    assert csrf_of(page) not in title
    assert page.count('action="/account/password"') == 1


def test_a_huge_notice_id_is_refused_cleanly(world, clients):
    """Notice ids out of range crashed (500) instead of a clear refusal."""
    alice = clients["alice"]
    token = csrf_of(alice.get("/account").text)
    huge = 2**70
    for r in (alice.get(f"/notices/{huge}"), alice.get(f"/notices/{huge}/notice.eml"),
              alice.post(f"/notices/{huge}/mark", data={"csrf_token": token, "state": "acknowledged"})):
        assert r.status_code == 422, r.text
        assert "notice_id" in r.text


def _same_picture_match(world, case_key: str, of_match: str) -> int:
    from monitor.models import Case

    with db.transaction(world.engine) as s:
        media_id = s.get(Match, world.matches[of_match]).media_id
        case = s.query(Case).filter_by(reference=world.cases[case_key]).one()
        m = Match(media_id=media_id, registered_hash_id=None, case_id=case.id, algorithm="pdq", distance=20,
                  query_region="full", review_status="pending", created_at=utcnow())
        s.add(m)
        s.flush()
        return m.id


def test_a_picture_that_matched_a_minors_case_has_no_preview_through_another_case(world, clients):
    """The minor's case refused previews, but the same picture matched to another case was shown."""
    other = _same_picture_match(world, "b", "minor")  # bob's ordinary case, the minor case's picture
    bob = clients["bob"]
    hits = dict(world.site.hits)
    r = bob.get(f"/matches/{other}/preview")
    assert r.status_code == 403 and "minor" in r.text and r.headers["content-type"].startswith("text/html")
    token = csrf_of(bob.get("/account").text)
    assert bob.post(f"/matches/{other}/reveal", data={"csrf_token": token}).status_code == 403
    assert bob.get(f"/matches/{other}/preview?full=true").status_code == 403
    assert world.site.hits == hits  # nothing was fetched
    page = bob.get(f"/matches/{other}").text
    assert "no preview is ever fetched or shown" in page and f"/matches/{other}/preview" not in page
    queue = bob.get("/review").text
    assert f'src="/matches/{other}/preview"' not in queue
    assert f'src="/matches/{world.matches["b"]}/preview"' in queue  # other pictures keep their previews
    api = TestClient(world.app, base_url=BASE_URL)
    assert api.get(f"/api/matches/{other}/preview", headers=_bearer(world, "bob")).status_code == 403
    assert api.get(f"/api/matches/{other}", headers=_bearer(world, "bob")).json()["minor_elsewhere"] is True


def test_signing_in_again_ends_the_session_the_browser_had(world):
    """Sign-in starts a new session id and ends the one the browser presented."""
    c = TestClient(world.app, base_url=BASE_URL)
    token = csrf_of(c.get("/login").text)
    form = {"password": PASSWORD, "csrf_token": token, "next": "/"}
    assert c.post("/login", data={**form, "username": "alice"}, follow_redirects=False).status_code == 303
    first = c.cookies.get("ncii_session")
    assert c.post("/login", data={**form, "username": "bob"}, follow_redirects=False).status_code == 303
    second = c.cookies.get("ncii_session")
    assert first and second and first != second
    old = TestClient(world.app, base_url=BASE_URL, cookies={"ncii_session": first})
    assert old.get("/api/me").status_code == 401
    assert c.get("/api/me").json()["username"] == "bob"


def test_guessing_the_current_password_on_the_account_page_is_throttled(world, clients):
    """Wrong current passwords were unlimited: a borrowed session could guess the password."""
    alice = clients["alice"]
    token = csrf_of(alice.get("/account").text)
    for _ in range(5):
        r = alice.post("/account/password", data={"csrf_token": token, "current": "a wrong guess", "new": NEW_PASSWORD})
        assert r.status_code == 422
    r = alice.post("/account/password", data={"csrf_token": token, "current": PASSWORD, "new": NEW_PASSWORD},
                   follow_redirects=False)
    assert r.status_code == 429 and "too many" in r.text
    from monitor.models import AuditEntry

    with db.session(world.engine) as s:
        failed = s.query(AuditEntry).filter_by(action="user.password_change_failed").count()
        assert failed == 5
        assert s.query(AuditEntry).filter_by(action="user.password_changed").count() == 0


def test_the_production_preview_client_refuses_loopback_and_private_addresses(world, settings):
    """`ncii serve` builds its preview client from the settings: loopback only when the operator allows it."""
    from monitor.models import Media, MediaSighting
    from monitor.pipeline import http_client
    from monitor.settings import MonitorSettings
    from monitor.web import create_app

    http = http_client(MonitorSettings())  # the defaults: NCII_HTTP_ALLOW_LOOPBACK unset
    try:
        app = create_app(world.engine, settings, http_client=http)
        alice = sign_in(app, "alice")
        hits = dict(world.site.hits)
        r = alice.get(f"/matches/{world.matches['a']}/preview")
        assert r.status_code == 404 and "no preview" in r.text
        assert world.site.hits == hits  # the loopback site was never asked
        with db.transaction(world.engine) as s:  # a picture on a private address
            media = s.get(Media, s.get(Match, world.matches["a"]).media_id)
            media.url = "http://10.20.30.40/private.jpg"
            for sighting in s.query(MediaSighting).filter_by(media_id=media.id):
                sighting.gone_at = utcnow()
        r = alice.get(f"/matches/{world.matches['a']}/preview")
        assert r.status_code == 404 and "no preview" in r.text
    finally:
        http.close()


def test_forwarded_for_headers_do_not_escape_the_sign_in_throttle(world):
    """The app takes the client address from the connection (uvicorn trusts X-Forwarded-For from 127.0.0.1 only)."""
    c = TestClient(world.app, base_url=BASE_URL)
    token = csrf_of(c.get("/login").text)
    codes = []
    for i in range(21):
        r = c.post("/login", data={"username": f"nobody{i}", "password": "wrong", "csrf_token": token, "next": "/"},
                   headers={"X-Forwarded-For": f"203.0.113.{i}", "X-Real-IP": f"203.0.113.{i}"})
        codes.append("Too many" in r.text)
    assert codes[-1] is True  # the 21st attempt from one client is throttled whatever the headers say


def test_disabling_a_user_ends_their_session_and_their_api_tokens(world, clients):
    admin = clients["admin"]
    token = csrf_of(admin.get("/users").text)
    assert clients["bob"].get("/api/me").status_code == 200
    r = admin.post("/users/bob/disable", data={"csrf_token": token}, follow_redirects=False)
    assert r.status_code == 303
    assert clients["bob"].get("/api/me").status_code == 401
    assert clients["bob"].get("/review", follow_redirects=False).headers["location"].startswith("/login")
    assert TestClient(world.app, base_url=BASE_URL).get("/api/me", headers=_bearer(world, "bob")).status_code == 401


def test_user_provided_text_is_escaped_and_script_urls_are_never_links(world, clients):
    from tests.web.conftest import add_match

    evil = '"><script>alert(1)</script>'
    alice = clients["alice"]
    ref = world.cases["a"]
    token = csrf_of(alice.get("/account").text)
    alice.post(f"/cases/{ref}/notes", data={"csrf_token": token, "body": evil})
    alice.post(f"/cases/{ref}/terms", data={"csrf_token": token, "terms": evil, "kind": "name"})
    mid = add_match(world.engine, ref, world.site, "js-link", page_url="javascript:alert(1)", seed=31)
    alice.post(f"/matches/{mid}/decision", data={"csrf_token": token, "decision": "rejected", "reason": "other",
                                                 "note": evil})
    pages = [alice.get(f"/cases/{ref}").text, alice.get(f"/matches/{mid}").text, alice.get("/review?status=all").text,
             alice.post(f"/cases/{ref}/details", data={"csrf_token": token, "jurisdiction": evil}).text]
    for page in pages:
        assert "<script>alert(1)" not in page
        assert 'href="javascript:' not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in pages[0]  # the note and the term are shown, as text
    assert "javascript:alert(1)" in pages[1]  # the address is shown, not linked


def _draft_notice(world, clients, monkeypatch) -> tuple[int, str]:
    from monitor import review

    for k, v in (("NCII_ORG_NAME", "Helpline Example"), ("NCII_ORG_EMAIL", "notices@helpline.example"),
                 ("NCII_ORG_SIGNATORY", "Alex Advocate")):
        monkeypatch.setenv(k, v)
    with db.transaction(world.engine) as s:
        review.confirm(s, world.matches["a"], actor="user:alice")
    ref = world.cases["a"]
    token = csrf_of(clients["alice"].get(f"/cases/{ref}/notices").text)
    r = clients["alice"].post(f"/cases/{ref}/notices", data={"csrf_token": token, "notice_type": "take_it_down"},
                              follow_redirects=False)
    assert r.status_code == 303, r.text
    return int(r.headers["location"].rsplit("/", 1)[1]), token


def test_a_notice_subject_with_a_line_break_or_a_script_form_address_is_refused(world, clients, monkeypatch):
    """A CR/LF in the subject was saved and then broke the .eml export and sending (500)."""
    from monitor.models import TakedownNotice

    nid, token = _draft_notice(world, clients, monkeypatch)
    alice = clients["alice"]
    with db.session(world.engine) as s:
        n = s.get(TakedownNotice, nid)
        subject, body = n.subject, n.body
    r = alice.post(f"/notices/{nid}/edit", data={"csrf_token": token, "subject": "Takedown\r\nBcc: spy@evil.example",
                                                  "body": body, "to_email": "", "form_url": ""})
    assert r.status_code == 422 and "one line" in r.text
    r = alice.post(f"/notices/{nid}/edit", data={"csrf_token": token, "subject": subject, "body": body,
                                                  "to_email": "", "form_url": "javascript:alert(1)"})
    assert r.status_code == 422 and "https://" in r.text
    with db.session(world.engine) as s:
        assert s.get(TakedownNotice, nid).subject == subject
    eml = alice.get(f"/notices/{nid}/notice.eml")
    assert eml.status_code == 200 and b"spy@evil.example" not in eml.content


def test_withdraw_and_sign_out_without_the_csrf_token_change_nothing(world, clients):
    from monitor.models import Case

    victim = TestClient(world.app, base_url=BASE_URL)
    token = csrf_of(victim.get("/self-service").text)
    r = victim.post("/self-service", data={"reference": world.cases["a"], "secret": world.secrets["a"],
                                           "csrf_token": token})
    assert r.status_code == 200
    assert victim.post("/self-service/withdraw", data={"confirm": "yes"}).status_code == 403
    assert victim.post("/self-service/logout").status_code == 403
    assert victim.get("/self-service/case").status_code == 200  # still signed in, case still active
    with db.session(world.engine) as s:
        assert s.query(Case).filter_by(reference=world.cases["a"]).one().status == "active"
    assert clients["alice"].post("/logout", follow_redirects=False).status_code == 403
    assert clients["alice"].get("/api/me").status_code == 200


def test_the_takedown_report_csv_never_hands_a_spreadsheet_a_formula(world, clients, monkeypatch):
    """Text cells starting with = + - @ were written as they were (a formula when the CSV is opened)."""
    import csv
    import io

    from monitor.models import TakedownNotice

    nid, _token = _draft_notice(world, clients, monkeypatch)
    with db.transaction(world.engine) as s:
        s.get(TakedownNotice, nid).platform = '=HYPERLINK("http://127.0.0.1/x","open")'
    r = clients["alice"].get("/notices/report.csv")
    assert r.status_code == 200
    rows = list(csv.reader(io.StringIO(r.text)))
    assert rows[1][0] == "'" + '=HYPERLINK("http://127.0.0.1/x","open")'
    assert all(not v.startswith(("=", "+", "@")) for row in rows for v in row)
    assert rows[0][0] == "platform" and rows[1][2] == "1"  # the rest of the report is unchanged


def test_a_second_self_service_sign_in_ends_the_first_cases_session(world):
    """On a shared browser, the earlier victim's case session stayed alive after someone else signed in."""
    c = TestClient(world.app, base_url=BASE_URL)
    token = csrf_of(c.get("/self-service").text)
    c.post("/self-service", data={"reference": world.cases["a"], "secret": world.secrets["a"], "csrf_token": token})
    first = c.cookies.get("ncii_self", path="/self-service")
    r = c.post("/self-service", data={"reference": world.cases["b"], "secret": world.secrets["b"],
                                      "csrf_token": token})
    assert r.status_code == 200 and world.cases["b"] in r.text
    old = TestClient(world.app, base_url=BASE_URL)
    old.cookies.set("ncii_self", first, path="/self-service")
    assert old.get("/self-service/case").status_code == 401


def test_only_an_admin_clears_a_cases_minor_flag(world, clients):
    """Clearing the flag turns previews back on, so an advocate may set it but not clear it."""
    ref = world.cases["minor"]
    alice, admin = clients["alice"], clients["admin"]
    page = alice.get(f"/cases/{ref}").text
    assert "only an admin can clear this" in page
    r = alice.post(f"/cases/{ref}/details", data={"jurisdiction": "GB", "csrf_token": csrf_of(page)})
    assert r.status_code == 403
    # Saving other details keeps the flag (the page sends it), and the admin can clear it.
    r = alice.post(f"/cases/{ref}/details", data={"jurisdiction": "IE", "involves_minor": "1",
                                                  "csrf_token": csrf_of(page)})
    assert r.status_code in (200, 303)
    with db.session(world.engine) as s:
        case = s.query(Case).filter_by(reference=ref).one()
        assert case.involves_minor and case.jurisdiction == "IE"
    r = admin.post(f"/cases/{ref}/details", data={"jurisdiction": "IE",
                                                  "csrf_token": csrf_of(admin.get(f"/cases/{ref}").text)})
    assert r.status_code in (200, 303)
    with db.session(world.engine) as s:
        assert not s.query(Case).filter_by(reference=ref).one().involves_minor
