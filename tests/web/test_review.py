"""Review: previews (blurred by default, reveal audited, never for a minor's case, not cached),
decisions (single, bulk, reasons, audited), CSRF, escaping of scraped text, security headers,
sign-in throttling, API tokens."""

from __future__ import annotations

import io

from PIL import Image
from sqlalchemy import select

from monitor import db
from monitor.models import AuditEntry, Match, MatchReview
from tests.web.conftest import BASE_URL, add_match, csrf_of, sign_in


def _actions(engine, case_id=None):
    with db.session(engine) as s:
        q = select(AuditEntry.action, AuditEntry.details)
        return [(a, d) for a, d in s.execute(q.order_by(AuditEntry.id))]


def _size(jpeg: bytes) -> tuple[int, int]:
    return Image.open(io.BytesIO(jpeg)).size


def test_preview_is_blurred_until_a_deliberate_reveal_which_is_audited(world, clients):
    c, mid = clients["alice"], world.matches["a"]
    blurred = c.get(f"/matches/{mid}/preview")
    assert blurred.status_code == 200 and blurred.headers["content-type"] == "image/jpeg"
    assert "no-store" in blurred.headers["cache-control"]
    assert max(_size(blurred.content)) <= 240
    # The blurred preview carries almost no detail: neighbouring pixels barely differ.
    im = Image.open(io.BytesIO(blurred.content)).convert("L")
    px = list(im.tobytes())
    assert sum(abs(a - b) for a, b in zip(px, px[1:])) / len(px) < 3
    assert c.get(f"/matches/{mid}/preview?full=true").status_code == 403  # no reveal yet
    page = c.get(f"/matches/{mid}")
    assert "Reveal preview" in page.text
    r = c.post(f"/matches/{mid}/reveal", data={"csrf_token": csrf_of(page.text)}, follow_redirects=False)
    assert r.status_code == 303
    full = c.get(f"/matches/{mid}/preview?full=true")
    assert full.status_code == 200 and _size(full.content) == (320, 240)
    actions = [a for a, d in _actions(world.engine) if d.get("match_id") == mid]
    assert actions.count("match.viewed") == 1 and actions.count("match.preview_revealed") == 1
    # Bob revealed nothing: the reveal belongs to alice only (and he cannot see the match at all).
    assert clients["bob"].get(f"/matches/{mid}/preview?full=true").status_code == 404


def test_a_minor_case_never_fetches_or_shows_a_preview(world, clients):
    c, mid = clients["alice"], world.matches["minor"]
    before = dict(world.site.hits)
    assert c.get(f"/matches/{mid}/preview").status_code == 403
    page = c.get(f"/matches/{mid}")
    assert "NCMEC" in page.text and f"/matches/{mid}/preview" not in page.text and "Reveal preview" not in page.text
    assert c.post(f"/matches/{mid}/reveal", data={"csrf_token": csrf_of(page.text)}).status_code == 403
    assert world.site.hits.get("/media/pic-minor.jpg", 0) == before.get("/media/pic-minor.jpg", 0)
    assert "match.preview_revealed" not in [a for a, _d in _actions(world.engine)]


def test_confirm_reject_and_bulk_decisions_are_recorded_and_audited(world, clients):
    c = clients["alice"]
    extra = [add_match(world.engine, world.cases["a"], world.site, f"more-{i}", seed=20 + i) for i in range(3)]
    page = c.get("/review").text
    token = csrf_of(page)
    # a rejection needs a reason
    r = c.post(f"/matches/{world.matches['a']}/decision", data={"csrf_token": token, "decision": "rejected"})
    assert r.status_code == 422 and "reason" in r.text
    r = c.post(f"/matches/{world.matches['a']}/decision", data={"csrf_token": token, "decision": "confirmed"},
               follow_redirects=False)
    assert r.status_code == 303
    r = c.post("/review/decide", data={"csrf_token": token, "decision": "rejected", "reason": "not-a-copy",
                                       "match_id": [str(i) for i in extra]}, follow_redirects=False)
    assert r.status_code == 303
    with db.session(world.engine) as s:
        status = dict(s.execute(select(Match.id, Match.review_status)).all())
        reviews = list(s.scalars(select(MatchReview).order_by(MatchReview.id)))
    assert status[world.matches["a"]] == "confirmed" and all(status[i] == "rejected" for i in extra)
    assert [r.reason for r in reviews] == ["copy", "not-a-copy", "not-a-copy", "not-a-copy"]
    assert all(r.reviewer == "user:alice" for r in reviews)
    audited = [(a, d) for a, d in _actions(world.engine) if a in ("match.confirmed", "match.rejected")]
    assert len(audited) == 4 and all(d["bulk"] for a, d in audited if a == "match.rejected")


def test_forms_without_the_csrf_token_are_refused(world, clients):
    c = clients["alice"]
    r = c.post(f"/matches/{world.matches['a']}/decision", data={"decision": "confirmed"})
    assert r.status_code == 403
    r = c.post(f"/matches/{world.matches['a']}/decision", data={"decision": "confirmed", "csrf_token": "forged"})
    assert r.status_code == 403
    # The JSON API with a session cookie needs the token in a header; with a bearer token it does not.
    assert c.post(f"/api/matches/{world.matches['a']}/reveal").status_code == 403
    r = clients["anonymous"].post(f"/api/matches/{world.matches['a']}/reveal",
                                  headers={"Authorization": f"Bearer {world.tokens['alice']}"})
    assert r.status_code == 200
    with db.session(world.engine) as s:
        assert s.get(Match, world.matches["a"]).review_status == "pending"


def test_scraped_text_and_urls_are_escaped_and_pages_send_security_headers(world, clients):
    evil = "<script>alert('owned')</script>"
    mid = add_match(world.engine, world.cases["a"], world.site, "xss",
                    page_url='javascript:alert(1)//"><script>alert(2)</script>', context=f"look {evil} here")
    c = clients["alice"]
    for path in (f"/matches/{mid}", "/review", f"/cases/{world.cases['a']}"):
        r = c.get(path)
        assert r.status_code == 200
        assert "<script>alert" not in r.text
        assert 'href="javascript:' not in r.text
        assert "default-src 'self'" in r.headers["content-security-policy"]
        assert "'unsafe-inline'" not in r.headers["content-security-policy"]
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["x-frame-options"] == "DENY"
        assert "frame-ancestors 'none'" in r.headers["content-security-policy"]
    assert "&lt;script&gt;alert(&#39;owned&#39;)&lt;/script&gt;" in c.get(f"/matches/{mid}").text
    # http(s) page URLs are links that send no referrer and are not followed by crawlers
    page = c.get(f"/matches/{world.matches['a']}").text
    assert 'rel="noopener noreferrer nofollow"' in page


def test_sign_in_is_throttled_per_account_and_failures_are_audited(world):
    from fastapi.testclient import TestClient

    c = TestClient(world.app, base_url=BASE_URL)
    token = csrf_of(c.get("/login").text)
    for _ in range(5):
        r = c.post("/login", data={"username": "bob", "password": "wrong password!!", "csrf_token": token})
        assert r.status_code == 401 and "not right" in r.text
    r = c.post("/login", data={"username": "bob", "password": "correct horse battery staple", "csrf_token": token})
    assert r.status_code == 401 and "Too many" in r.text and int(r.headers["retry-after"]) > 0
    failed = [d for a, d in _actions(world.engine) if a == "user.sign_in_failed"]
    assert len(failed) == 6 and failed[-1]["reason"] == "throttled"
    # an unknown user gets the same answer as a wrong password
    r = c.post("/login", data={"username": "nobody", "password": "whatever password", "csrf_token": token})
    assert r.status_code == 401 and "not right" in r.text
    # alice is not locked out by bob's failures
    sign_in(world.app, "alice")
    assert "user.signed_in" in [a for a, _d in _actions(world.engine)]


def test_session_cookie_attributes(world):
    from fastapi.testclient import TestClient

    c = TestClient(world.app, base_url=BASE_URL)
    token = csrf_of(c.get("/login").text)
    r = c.post("/login", data={"username": "alice", "password": "correct horse battery staple", "csrf_token": token},
               follow_redirects=False)
    cookie = r.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie and "secure" not in cookie  # plain http on loopback
    https = TestClient(world.app, base_url="https://monitor.example")
    token = csrf_of(https.get("/login").text)
    r = https.post("/login", data={"username": "alice", "password": "correct horse battery staple",
                                   "csrf_token": token}, follow_redirects=False)
    assert "secure" in r.headers["set-cookie"].lower()


def test_api_needs_a_valid_token_and_revoked_tokens_stop_working(world, clients):
    anon = clients["anonymous"]
    assert anon.get("/api/me").status_code == 401
    assert anon.get("/api/me", headers={"Authorization": "Bearer ncii_not-a-token"}).status_code == 401
    auth = {"Authorization": f"Bearer {world.tokens['alice']}"}
    assert anon.get("/api/me", headers=auth).json()["username"] == "alice"
    assert anon.post("/api/tokens", headers=auth, json={"name": "script"}).status_code == 403  # tokens mint none
    csrf = csrf_of(clients["alice"].get("/account").text)
    new = clients["alice"].post("/api/tokens", headers={"X-CSRF-Token": csrf}, json={"name": "script"}).json()
    assert new["token"].startswith("ncii_")
    mine = {"Authorization": f"Bearer {new['token']}"}
    assert anon.get("/api/me", headers=mine).status_code == 200
    assert anon.delete(f"/api/tokens/{new['id']}", headers=auth).status_code == 200
    assert anon.get("/api/me", headers=mine).status_code == 401
    actions = [a for a, _d in _actions(world.engine)]
    assert "token.created" in actions and "token.revoked" in actions


def test_case_changes_assignment_and_notes_are_audited_and_notes_encrypted(world, clients):
    admin = clients["admin"]
    ref = world.cases["b"]
    token = csrf_of(admin.get(f"/cases/{ref}").text)
    admin.post(f"/cases/{ref}/details", data={"csrf_token": token, "jurisdiction": "fr", "involves_minor": "1"})
    admin.post(f"/cases/{ref}/notes", data={"csrf_token": token, "body": "Victim prefers email, not phone"})
    admin.post(f"/cases/{ref}/assign", data={"csrf_token": token, "username": "alice"})
    detail = admin.get(f"/api/cases/{ref}").json()
    assert detail["jurisdiction"] == "FR" and detail["involves_minor"] is True
    assert detail["assigned_to"] == "alice" and detail["notes"][0]["body"] == "Victim prefers email, not phone"
    actions = [e["action"] for e in detail["timeline"]]
    assert {"case.updated", "case.note_added", "case.assigned"} <= set(actions)
    # now alice sees it and bob does not
    assert clients["alice"].get(f"/cases/{ref}").status_code == 200
    assert clients["bob"].get(f"/cases/{ref}").status_code == 404
    with world.engine.connect() as conn:
        raw = b"".join(bytes(r[0]) for r in conn.exec_driver_sql("SELECT body_enc FROM case_notes"))
    assert b"prefers email" not in raw


def test_audit_chain_stays_intact_after_web_activity(world, clients, env, monkeypatch):
    from typer.testing import CliRunner

    from monitor.cli import app

    clients["alice"].get(f"/matches/{world.matches['a']}")
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    r = CliRunner().invoke(app, ["audit", "verify", "--json"])
    assert r.exit_code == 0, r.output
    assert '"intact": true' in r.output


def test_source_forms_show_the_connectors_validation_errors(world, clients):
    admin = clients["admin"]
    token = csrf_of(admin.get("/sources/new").text)
    r = admin.post("/sources", data={"csrf_token": token, "url": "ftp://example.invalid/feed", "kind": "rss",
                                     "interval": "1h"})
    assert r.status_code == 422 and 'role="alert"' in r.text and "ftp://example.invalid/feed" in r.text
    r = admin.post("/sources", data={"csrf_token": token, "url": world.site.url("/feed.xml"), "kind": "rss",
                                     "interval": "soon"})
    assert r.status_code == 422 and "interval" in r.text
    r = admin.post("/sources", data={"csrf_token": token, "url": world.site.url("/g.html"), "kind": "gallery",
                                     "interval": "1h", "options": "no_such_setting=1"})
    assert r.status_code == 422 and "no_such_setting" in r.text
    r = admin.post("/sources/fixture-feed/edit", data={"csrf_token": token, "interval": "30m",
                                                      "options": "url=http://elsewhere.invalid/"})
    assert r.status_code == 422 and "cannot be changed" in r.text
    r = admin.post("/sources/fixture-feed/edit", data={"csrf_token": token, "interval": "30m"},
                   follow_redirects=False)
    assert r.status_code == 303
    listed = admin.get("/api/sources").json()["sources"]
    assert [s["interval_seconds"] for s in listed if s["name"] == "fixture-feed"] == [1800]
    # a dry poll of the (empty) loopback feed
    r = admin.post("/sources/fixture-feed/test", data={"csrf_token": token})
    assert r.status_code == 200 and "0 item(s) listed" in r.text


def test_staff_register_a_hash_file_and_open_a_case(world, clients):
    from tests.web.conftest import make_hash_file

    alice = clients["alice"]
    token = csrf_of(alice.get(f"/cases/{world.cases['a']}").text)
    r = alice.post(f"/cases/{world.cases['a']}/hashes", data={"csrf_token": token},
                   files={"file": ("h.jsonl", make_hash_file(81))})
    assert r.status_code == 200 and "hash(es) added from 1 picture(s)" in r.text
    r = alice.post("/cases", data={"csrf_token": token, "jurisdiction": "ie"})
    import re

    ref = re.search(r"Case (NC-[A-Z0-9-]+) opened", r.text).group(1)
    assert "shown only this once" in r.text
    assert alice.get(f"/cases/{ref}").status_code == 200  # assigned to the advocate who opened it
    assert clients["bob"].get(f"/cases/{ref}").status_code == 404


def test_sign_in_never_redirects_to_another_site(world):
    from fastapi.testclient import TestClient

    for target in ("//evil.example/", "https://evil.example/", "/\\evil.example"):
        c = TestClient(world.app, base_url=BASE_URL)
        token = csrf_of(c.get(f"/login?next={target}").text)
        r = c.post("/login", data={"username": "alice", "password": "correct horse battery staple",
                                   "csrf_token": token, "next": target}, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == "/"


def test_local_scan_previews_are_for_admins_only(world, clients, tmp_path):
    from monitor.demo import pictures as P

    picture = tmp_path / "scanned.jpg"
    picture.write_bytes(P.jpeg_bytes(P.picture(41, (300, 200)), 85))
    with db.transaction(world.engine) as s:
        media = s.get(Match, world.matches["a"]).media_id
        from monitor.models import Media, MediaSighting

        s.get(Media, media).url = picture.as_uri()
        for sighting in s.scalars(select(MediaSighting).where(MediaSighting.media_id == media)):
            sighting.gone_at = sighting.last_seen_at  # only the local file is left
    r = clients["alice"].get(f"/matches/{world.matches['a']}/preview")
    assert r.status_code == 404 and "admins only" in r.text
    r = clients["admin"].get(f"/matches/{world.matches['a']}/preview")
    assert r.status_code == 200 and _size(r.content)[0] <= 240
    picture.unlink()
    r = clients["admin"].get(f"/matches/{world.matches['a']}/preview")
    assert r.status_code == 404 and "no longer readable" in r.text


def test_the_review_link_in_alerts_opens_the_match_after_sign_in(world, clients):
    from monitor.alerts import message
    from monitor.models import Alert

    link = message(Alert(id=1, kind="match", match_id=world.matches["a"], case_id=1, payload={}),
                   "http://127.0.0.1")["review_url"]
    path = link.removeprefix("http://127.0.0.1")
    r = clients["anonymous"].get(path, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/login?next=")
    r = clients["alice"].get(path)
    assert r.status_code == 200 and f"Match {world.matches['a']}" in r.text


def test_changing_your_password_ends_your_other_sessions(world, clients):
    alice = clients["alice"]
    other = sign_in(world.app, "alice")
    token = csrf_of(alice.get("/account").text)
    r = alice.post("/account/password", data={"csrf_token": token, "current": "wrong", "new": "a new long password"})
    assert r.status_code == 422 and "current password" in r.text
    r = alice.post("/account/password", data={"csrf_token": token, "current": "correct horse battery staple",
                                              "new": "a new long password"}, follow_redirects=False)
    assert r.status_code == 200 and "Password changed" in r.text  # this session goes on under a new id
    assert other.get("/", follow_redirects=False).headers["location"].startswith("/login")
    sign_in(world.app, "alice", "a new long password")
    assert "user.password_changed" in [a for a, _d in _actions(world.engine)]


def test_watch_terms_panel_adds_shows_and_removes_terms(world, clients):
    alice, ref = clients["alice"], world.cases["a"]
    token = csrf_of(alice.get(f"/cases/{ref}").text)
    alice.post(f"/cases/{ref}/terms", data={"csrf_token": token, "kind": "handle", "terms": "@someone\n\n@else"})
    terms = alice.get(f"/api/cases/{ref}").json()["watch_terms"]
    assert sorted(t["term"] for t in terms) == ["@else", "@someone"]
    assert "@someone" in alice.get(f"/cases/{ref}").text
    r = alice.post(f"/cases/{ref}/terms/{terms[0]['id']}/delete", data={"csrf_token": token}, follow_redirects=False)
    assert r.status_code == 303
    assert len(alice.get(f"/api/cases/{ref}").json()["watch_terms"]) == 1
    # bob cannot add terms to alice's case through the API either
    r = clients["anonymous"].post(f"/api/cases/{ref}/terms", json={"terms": ["x"]},
                                  headers={"Authorization": f"Bearer {world.tokens['bob']}"})
    assert r.status_code == 404


def test_oversized_requests_are_refused_before_they_are_read(world, clients):
    big = b"x" * (9 * 1024 * 1024)
    r = clients["alice"].post(f"/cases/{world.cases['a']}/hashes", files={"file": ("h.jsonl", big)})
    assert r.status_code == 413
    assert r.headers["x-content-type-options"] == "nosniff"


def test_token_use_is_recorded(world, clients):
    auth = {"Authorization": f"Bearer {world.tokens['bob']}"}
    assert clients["anonymous"].get("/api/me", headers=auth).status_code == 200
    tokens = clients["anonymous"].get("/api/tokens", headers=auth).json()["tokens"]
    assert tokens[0]["last_used_at"] is not None
