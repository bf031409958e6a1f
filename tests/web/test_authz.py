"""Authorisation, table-driven: every route of the web app against every role.

Roles: anonymous, alice (advocate; case "a" is hers), bob (advocate; not hers), admin. Access
kinds: public (anyone), staff (any signed-in user), admin (admins only), own (the user's case or
match: alice and admin yes, bob 404 because he must not learn it exists).
"""

from __future__ import annotations

from starlette.routing import Mount

from tests.web.conftest import csrf_of, make_hash_file

# (method, path, access, body) — {a} is alice's case reference, {ma} her match id, {feed} the site's feed URL.
TABLE = [
    # pages
    ("GET", "/", "staff", None),
    ("GET", "/review", "staff", None),
    ("GET", "/review?case={a}", "own", None),
    ("GET", "/matches/{ma}", "own", None),
    ("GET", "/review/matches/{ma}", "staff", None),  # the alerts' link: a redirect to /matches/ID
    ("GET", "/matches/{ma}/preview", "own", None),
    ("POST", "/matches/{ma}/reveal", "own", {}),
    ("POST", "/matches/{ma}/decision", "own", {"decision": "confirmed"}),
    ("POST", "/review/decide", "own", {"match_id": "{ma}", "decision": "rejected", "reason": "not-a-copy"}),
    ("GET", "/cases", "staff", None),
    ("GET", "/cases/new", "staff", None),
    ("POST", "/cases", "staff", {"jurisdiction": "GB"}),
    ("GET", "/cases/{a}", "own", None),
    ("POST", "/cases/{a}/assign", "admin", {"username": "alice"}),
    ("POST", "/cases/{a}/details", "own", {"jurisdiction": "FR"}),
    ("POST", "/cases/{a}/notes", "own", {"body": "called the victim back"}),
    ("POST", "/cases/{a}/hashes", "own", "hashfile"),
    ("POST", "/cases/{a}/terms", "own", {"terms": "Some Name", "kind": "name"}),
    ("POST", "/cases/{a}/terms/999999/delete", "own-404", {}),
    ("GET", "/sources", "staff", None),
    ("GET", "/sources/new", "admin", None),
    ("POST", "/sources", "admin", {"url": "{feed}", "kind": "rss", "name": "feed-{role}", "interval": "1h"}),
    ("GET", "/sources/fixture-feed/edit", "admin", None),
    ("POST", "/sources/fixture-feed/edit", "admin", {"interval": "2h"}),
    ("POST", "/sources/fixture-feed/pause", "admin", {}),
    ("POST", "/sources/fixture-feed/resume", "admin", {}),
    ("POST", "/sources/fixture-feed/test", "admin", {}),
    ("GET", "/users", "admin", None),
    ("POST", "/users", "admin", {"username": "new-{role}", "role": "advocate"}),
    ("POST", "/users/carol/enable", "admin", {}),
    ("GET", "/account", "staff", None),
    ("POST", "/account/tokens", "staff", {"name": "laptop"}),
    ("POST", "/account/tokens/999999/revoke", "staff-404", {}),
    ("POST", "/account/password", "staff-422", {"current": "wrong", "new": "x"}),
    ("GET", "/login", "public", None),
    ("GET", "/self-service", "public", None),
    ("GET", "/self-service/case", "self", None),
    ("GET", "/self-service/withdraw", "self", None),
    # API
    ("GET", "/api/me", "staff", None),
    ("GET", "/api/dashboard", "staff", None),
    ("GET", "/api/review/reasons", "staff", None),
    ("GET", "/api/matches", "staff", None),
    ("GET", "/api/matches?case={a}", "own", None),
    ("GET", "/api/matches/{ma}", "own", None),
    ("GET", "/api/matches/{ma}/preview", "own", None),
    ("POST", "/api/matches/{ma}/reveal", "own", None),
    ("POST", "/api/matches/{ma}/decision", "own", {"decision": "confirmed"}),
    ("POST", "/api/matches/decisions", "own", {"match_ids": ["{ma}"], "decision": "rejected", "reason": "other"}),
    ("GET", "/api/cases", "staff", None),
    ("POST", "/api/cases", "staff", {"jurisdiction": "DE"}),
    ("GET", "/api/cases/{a}", "own", None),
    ("PATCH", "/api/cases/{a}", "own", {"involves_minor": False}),
    ("PUT", "/api/cases/{a}/assignment", "admin", {"username": "alice"}),
    ("POST", "/api/cases/{a}/notes", "own", {"body": "note"}),
    ("POST", "/api/cases/{a}/hashes", "own", "hashfile"),
    ("POST", "/api/cases/{a}/terms", "own", {"terms": ["A Name"], "kind": "name"}),
    ("DELETE", "/api/cases/{a}/terms/999999", "own-404", None),
    ("GET", "/api/sources", "staff", None),
    ("POST", "/api/sources", "admin", {"url": "{feed}", "kind": "rss", "name": "api-{role}"}),
    ("PATCH", "/api/sources/fixture-feed", "admin", {"enabled": True}),
    ("POST", "/api/sources/fixture-feed/test", "admin", None),
    ("GET", "/api/users", "admin", None),
    ("POST", "/api/users", "admin", {"username": "api-{role}", "role": "advocate"}),
    ("POST", "/api/users/carol/disable", "admin", None),
    ("POST", "/api/users/carol/enable", "admin", None),
    ("GET", "/api/tokens", "staff", None),
    ("POST", "/api/tokens", "token-403", {"name": "tool"}),  # the table calls the API with tokens: no minting
    ("DELETE", "/api/tokens/999999", "staff-404", None),
    # destructive last
    ("POST", "/sources/fixture-feed/delete", "admin", {}),
    ("DELETE", "/api/sources/api-admin", "admin", None),
    ("POST", "/users/carol/disable", "admin", {}),
    ("POST", "/logout", "logout", {}),
]

ROLES = ("anonymous", "bob", "alice", "admin")
OWN_MODULES = {f"monitor.web.routes.{m}" for m in ("api", "auth", "cases", "review", "selfservice", "sources", "users")}
#: Routes not driven by TABLE, with the test that covers them.
ELSEWHERE = {"/self-service/hashes", "/self-service/logout", "/self-service/withdraw",  # test_selfservice
             "/login", "/self-service"}  # POST: sign-in tests


def _expected(access: str, role: str, api: bool) -> str:
    if access == "public":
        return "ok"
    if access == "self":
        return "self-denied"
    if role == "anonymous":
        return "401" if api else "login"
    if access == "admin":
        return "ok" if role == "admin" else "403"
    if access == "own":
        return "404" if role == "bob" else "ok"
    if access == "own-404":
        return "404"
    if access == "staff-404":
        return "404"
    if access == "logout":
        return "login"
    if access == "staff-422":
        return "422"
    if access == "token-403":
        return "403"
    return "ok"


def _fill(text: str, world, role: str) -> str:
    return (text.replace("{a}", world.cases["a"]).replace("{ma}", str(world.matches["a"]))
            .replace("{feed}", world.site.url("/feed.xml")).replace("{role}", role))


def _hash_file() -> bytes:
    return make_hash_file(55)


def _call(client, world, role, method, path, body, api, token):
    url = _fill(path, world, role)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    if api:
        if body == "hashfile":
            return client.request(method, url, files={"file": ("h.jsonl", _hash_file())}, headers=headers)
        json_body = None
        if isinstance(body, dict):
            json_body = {k: ([int(_fill(x, world, role)) for x in v] if k == "match_ids"
                             else _fill(v, world, role) if isinstance(v, str) else v) for k, v in body.items()}
        return client.request(method, url, json=json_body, headers=headers, follow_redirects=False)
    if method == "GET":
        return client.get(url, follow_redirects=False)
    csrf = csrf_of(client.get("/account").text) if role != "anonymous" else "x"
    if body == "hashfile":
        return client.post(url, data={"csrf_token": csrf}, files={"file": ("h.jsonl", _hash_file())},
                           follow_redirects=False)
    data = {k: _fill(v, world, role) for k, v in (body or {}).items()}
    return client.post(url, data={**data, "csrf_token": csrf}, follow_redirects=False)


def test_every_route_against_every_role(world, clients):
    from monitor import accounts, db

    with db.transaction(world.engine) as s:
        accounts.create_user(s, "carol", "advocate", "another long password", actor="test")
    failures = []
    for method, path, access, body in TABLE:
        api = path.startswith("/api/")
        for role in ROLES:
            if path == "/logout" and role != "admin":
                continue  # signing out alice or bob would end their sessions for later rows
            token = world.tokens.get(role) if api else None
            client = clients["anonymous"] if api else clients[role]
            r = _call(client, world, role, method, path, body, api, token)
            want = _expected(access, role, api)
            ok = {
                "ok": r.status_code < 400 and not (r.status_code == 303 and "/login" in r.headers.get("location", "")),
                "401": r.status_code == 401,
                "403": r.status_code == 403,
                "404": r.status_code == 404,
                "422": r.status_code == 422,
                "login": r.status_code == 303 and r.headers.get("location", "").startswith("/login"),
                "self-denied": r.status_code == 401 and "self-service" in r.text,
            }[want]
            if not ok:
                failures.append(f"{method} {path} as {role}: wanted {want}, got {r.status_code} {r.text[:200]!r}")
    assert not failures, "\n".join(failures)


def test_the_table_covers_every_route(world):
    """A new route must be added to TABLE (or to ELSEWHERE with the test that covers it)."""
    import re

    covered = {(m, re.sub(r"\?.*", "", p)) for m, p, _a, _b in TABLE}
    missing = []
    for route in world.app.router.routes:
        if isinstance(route, Mount) or not getattr(route, "endpoint", None):
            continue
        module = route.endpoint.__module__
        if module not in OWN_MODULES:
            continue  # other features' routes (takedowns) are tested with them
        for method in route.methods - {"HEAD"}:
            path = (route.path.replace("{reference}", "{a}").replace("{match_id}", "{ma}")
                    .replace("{name}", "fixture-feed").replace("{username}", "carol"))
            if (method, path) in covered or route.path in ELSEWHERE:
                continue
            if any(m == method and re.fullmatch(re.sub(r"\\\{\w+\\\}", r"[^/]+", re.escape(path)), p)
                   for m, p in covered):
                continue
            missing.append(f"{method} {route.path}")
    assert not missing, f"routes missing from the authorisation table: {missing}"


def test_an_advocate_sees_only_her_cases_in_lists(world, clients):
    alice = clients["alice"].get("/api/cases").json()["cases"]
    bob = clients["bob"].get("/api/cases").json()["cases"]
    assert {c["reference"] for c in alice} == {world.cases["a"], world.cases["minor"]}
    assert {c["reference"] for c in bob} == {world.cases["b"]}
    admin = clients["admin"].get("/api/cases").json()["cases"]
    assert {world.cases["a"], world.cases["b"], world.cases["minor"]} <= {c["reference"] for c in admin}
    ids = {m["id"] for m in clients["bob"].get("/api/matches").json()["matches"]}
    assert ids == {world.matches["b"]}
    page = clients["bob"].get("/review").text
    assert world.cases["a"] not in page and world.cases["b"] in page


def test_a_bulk_decision_cannot_reach_another_advocates_match(world, clients):
    r = clients["anonymous"].post("/api/matches/decisions", headers={"Authorization": f"Bearer {world.tokens['bob']}"},
                                  json={"match_ids": [world.matches["b"], world.matches["a"]], "decision": "confirmed"})
    assert r.status_code == 404
    # all or nothing: bob's own match was not confirmed either
    m = clients["bob"].get(f"/api/matches/{world.matches['b']}").json()
    assert m["review_status"] == "pending"
