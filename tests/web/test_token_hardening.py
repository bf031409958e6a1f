"""API tokens and sessions after the token hardening (docs/web.md, "Security model"): tokens do not
mint tokens; a password change or a disabled account revokes sessions and tokens; expired rows are
purged by one idempotent function that `ncii serve`, `ncii monitor run` and `ncii user
purge-expired` share.
"""

from __future__ import annotations

import datetime as dt
import json

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from monitor import accounts, db
from monitor.cli import app as cli_app
from monitor.models import ApiToken, AuditEntry, PreviewReveal, SignInThrottle, User, WebSession, utcnow
from tests.web.conftest import BASE_URL, PASSWORD, csrf_of, sign_in

pytestmark = pytest.mark.usefixtures("loopback_only")

NEW_PASSWORD = "a different long passphrase"


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _live_tokens(engine, username: str) -> int:
    with db.session(engine) as s:
        user = s.query(User).filter_by(username=username).one()
        return s.query(ApiToken).filter_by(user_id=user.id, revoked_at=None).count()


def _revocations(engine) -> list[dict]:
    with db.session(engine) as s:
        return [e.details for e in s.query(AuditEntry).filter_by(action="user.access_revoked").order_by(AuditEntry.id)]


def _cli(env, monkeypatch, *args, input=None):
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    return CliRunner().invoke(cli_app, list(args), input=input)


# --- a. tokens do not mint tokens -----------------------------------------------------------------

def test_an_api_token_cannot_create_tokens(world):
    c = TestClient(world.app, base_url=BASE_URL)
    before = _live_tokens(world.engine, "alice")
    r = c.post("/api/tokens", json={"name": "successor"}, headers=_bearer(world.tokens["alice"]))
    assert r.status_code == 403
    error = r.json()["error"]
    assert error["code"] == "forbidden" and "API tokens cannot create API tokens" in error["message"]
    assert _live_tokens(world.engine, "alice") == before
    # an admin's token neither
    assert c.post("/api/tokens", json={"name": "x"}, headers=_bearer(world.tokens["admin"])).status_code == 403
    # the token still reads, lists and revokes (only minting is refused)
    listed = c.get("/api/tokens", headers=_bearer(world.tokens["alice"])).json()["tokens"]
    assert [t["name"] for t in listed] == ["tests"]


def test_a_browser_session_creates_tokens_on_the_page_and_through_the_api(world, clients):
    alice = clients["alice"]
    page = alice.get("/account").text
    r = alice.post("/account/tokens", data={"name": "from the page", "csrf_token": csrf_of(page)})
    assert r.status_code == 200 and "shown once" in r.text
    r = alice.post("/api/tokens", json={"name": "from js"}, headers={"X-CSRF-Token": csrf_of(page)})
    assert r.status_code == 201 and r.json()["token"].startswith("ncii_")
    # the session cookie without its CSRF token is refused as before
    assert alice.post("/api/tokens", json={"name": "no csrf"}).status_code == 403
    assert _live_tokens(world.engine, "alice") == 3


def test_a_token_and_a_cookie_together_still_count_as_a_token(world, clients):
    """A bearer token wins over the cookie on /api/: sending both must not unlock minting."""
    alice = clients["alice"]
    token = csrf_of(alice.get("/account").text)
    r = alice.post("/api/tokens", json={"name": "both"},
                   headers={**_bearer(world.tokens["alice"]), "X-CSRF-Token": token})
    assert r.status_code == 403 and _live_tokens(world.engine, "alice") == 1


# --- b. password changes and disabling revoke sessions and tokens --------------------------------

def test_changing_your_password_revokes_other_sessions_and_tokens_and_keeps_this_one(world, clients):
    alice = clients["alice"]
    other = sign_in(world.app, "alice")  # a second browser
    old_cookie = alice.cookies.get("ncii_session")
    token = csrf_of(alice.get("/account").text)
    r = alice.post("/account/password", data={"csrf_token": token, "current": PASSWORD, "new": NEW_PASSWORD})
    assert r.status_code == 200
    assert "Password changed: 1 other session signed out and 1 API token revoked" in r.text
    new_cookie = alice.cookies.get("ncii_session")
    assert new_cookie and new_cookie != old_cookie  # rotated
    # this browser stays signed in, and the page's forms carry the new session's CSRF token
    assert alice.get("/account").status_code == 200
    new_csrf = csrf_of(r.text)
    assert new_csrf != token and new_csrf == csrf_of(alice.get("/account").text)
    # the old cookie, the other browser and the token are all dead
    stale = TestClient(world.app, base_url=BASE_URL, cookies={"ncii_session": old_cookie})
    assert stale.get("/api/me").status_code == 401
    assert other.get("/api/me").status_code == 401
    assert TestClient(world.app, base_url=BASE_URL).get(
        "/api/me", headers=_bearer(world.tokens["alice"])).status_code == 401
    assert _live_tokens(world.engine, "alice") == 0
    # other users keep theirs
    assert _live_tokens(world.engine, "bob") == 1 and clients["bob"].get("/api/me").status_code == 200
    with db.session(world.engine) as s:
        alice_id = s.query(User).filter_by(username="alice").one().id
    assert _revocations(world.engine) == [{"user_id": alice_id, "reason": "password_changed", "sessions": 1,
                                           "tokens": 1}]
    sign_in(world.app, "alice", NEW_PASSWORD)


def test_a_wrong_current_password_revokes_nothing(world, clients):
    alice = clients["alice"]
    token = csrf_of(alice.get("/account").text)
    r = alice.post("/account/password", data={"csrf_token": token, "current": "not it", "new": NEW_PASSWORD})
    assert r.status_code == 422
    assert _live_tokens(world.engine, "alice") == 1 and _revocations(world.engine) == []
    assert alice.get("/api/me").status_code == 200


def test_disabling_a_user_revokes_their_tokens_for_good(world, clients):
    admin = clients["admin"]
    bob_token = world.tokens["bob"]
    token = csrf_of(admin.get("/users").text)
    r = admin.post("/users/bob/disable", data={"csrf_token": token})
    assert r.status_code == 200 and "bob disabled: 1 session signed out and 1 API token revoked." in r.text
    assert _live_tokens(world.engine, "bob") == 0
    assert clients["bob"].get("/api/me").status_code == 401
    # enabling again brings no token back
    admin.post("/users/bob/enable", data={"csrf_token": token})
    anon = TestClient(world.app, base_url=BASE_URL)
    assert anon.get("/api/me", headers=_bearer(bob_token)).status_code == 401
    assert [d["reason"] for d in _revocations(world.engine)] == ["disabled"]
    # a crafted link cannot make the page announce a revocation for an active account
    assert "disabled:" not in admin.get("/users?disabled=alice&sessions=9&tokens=9").text


def test_disabling_through_the_api_reports_what_was_revoked(world):
    c = TestClient(world.app, base_url=BASE_URL)
    r = c.post("/api/users/bob/disable", headers=_bearer(world.tokens["admin"]))
    assert r.status_code == 200
    assert r.json()["disabled"] is True and r.json()["revoked"] == {"sessions": 0, "tokens": 1}


def test_the_cli_password_reset_and_disable_revoke_sessions_and_tokens(world, clients, env, monkeypatch):
    """An admin resetting someone's password (`ncii user password`) does it for the target."""
    r = _cli(env, monkeypatch, "user", "password", "alice", "--json")
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert out["revoked"] == {"sessions": 1, "tokens": 1}
    assert clients["alice"].get("/api/me").status_code == 401
    assert clients["bob"].get("/api/me").status_code == 200
    r = _cli(env, monkeypatch, "user", "disable", "bob")
    assert r.exit_code == 0 and "bob disabled: 1 session signed out and 1 API token revoked" in r.output
    assert _live_tokens(world.engine, "bob") == 0
    # nothing in the audit but ids, codes and counts
    assert {tuple(sorted(d)) for d in _revocations(world.engine)} == {("reason", "sessions", "tokens", "user_id")}


# --- c. listing and revoking your own tokens -----------------------------------------------------

def test_users_list_and_revoke_their_own_tokens_only(world, clients, env, monkeypatch):
    alice = clients["alice"]
    page = alice.get("/account").text
    assert "tests" in page and "Last used" in page
    with db.session(world.engine) as s:
        bob_id = s.query(User).filter_by(username="bob").one().id
        bobs = s.query(ApiToken).filter_by(user_id=bob_id).one().id
    # not alice's token: 404 and untouched
    r = alice.post(f"/account/tokens/{bobs}/revoke", data={"csrf_token": csrf_of(page)})
    assert r.status_code == 404 and _live_tokens(world.engine, "bob") == 1
    r = _cli(env, monkeypatch, "user", "token", "alice", "--list", "--json")
    listed = json.loads(r.output)["tokens"]
    assert [(t["name"], t["revoked_at"]) for t in listed] == [("tests", None)]
    assert set(listed[0]) >= {"id", "name", "created_at", "last_used_at", "revoked_at"}
    assert _cli(env, monkeypatch, "user", "token", "alice", "--revoke", str(listed[0]["id"])).exit_code == 0
    assert _live_tokens(world.engine, "alice") == 0
    assert _cli(env, monkeypatch, "user", "token", "alice", "--revoke", str(bobs)).exit_code == 4


# --- d. one purge for expired rows ---------------------------------------------------------------

def _plant_expired(engine) -> None:
    past = utcnow() - dt.timedelta(days=1)
    with db.transaction(engine) as s:
        user = s.query(User).filter_by(username="alice").one()
        _token, ws = accounts.create_session(s, accounts.SessionKind.STAFF, user_id=user.id)
        ws.expires_at = past
        from monitor.models import Match

        match = s.query(Match).first()
        s.add(PreviewReveal(user_id=user.id, match_id=match.id, revealed_at=past, expires_at=past))
        # stale (old window, no lock), still locked, and recent: only the first may go
        s.add(SignInThrottle(scope="account", key_sha256="a" * 64, failures=2, window_started_at=past))
        s.add(SignInThrottle(scope="account", key_sha256="b" * 64, failures=0, window_started_at=past,
                             locked_until=utcnow() + dt.timedelta(minutes=10)))
        s.add(SignInThrottle(scope="client", key_sha256="c" * 64, failures=1, window_started_at=utcnow()))


def test_purging_expired_rows_is_idempotent_and_keeps_live_ones(world, clients):
    _plant_expired(world.engine)
    with db.transaction(world.engine) as s:
        assert accounts.purge_expired(s) == {"sessions": 1, "reveals": 1, "throttle": 1}
    with db.transaction(world.engine) as s:
        assert accounts.purge_expired(s) == {"sessions": 0, "reveals": 0, "throttle": 0}
    with db.session(world.engine) as s:
        assert sorted(r.key_sha256[0] for r in s.query(SignInThrottle)) == ["b", "c"]
        assert s.query(WebSession).count() == 3  # the signed-in clients
    assert clients["alice"].get("/api/me").status_code == 200


def test_ncii_user_purge_expired(world, env, monkeypatch):
    _plant_expired(world.engine)
    r = _cli(env, monkeypatch, "user", "purge-expired", "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["purged"] == {"sessions": 1, "reveals": 1, "throttle": 1}
    r = _cli(env, monkeypatch, "user", "purge-expired")
    assert r.exit_code == 0 and "purged 0 expired session(s), 0 lapsed reveal(s), 0 stale throttle row(s)" in r.output


def test_the_monitor_scheduler_purges_at_start_and_every_30_minutes(world, settings):
    from monitor.scheduler import PURGE_JOB, MonitorService
    from tests.test_pipeline import make_pipeline

    _plant_expired(world.engine)
    service = MonitorService(world.engine, settings, pipeline=make_pipeline(world.engine), channels=[],
                             housekeeping_seconds=3600)
    service.start()
    try:
        job = service.scheduler.get_job(PURGE_JOB, jobstore="memory")
        assert job is not None and job.trigger.interval == dt.timedelta(minutes=30)
        with db.session(world.engine) as s:
            assert s.query(PreviewReveal).count() == 0
            assert s.query(WebSession).filter(WebSession.expires_at <= utcnow()).count() == 0
    finally:
        service.shutdown()
