"""Victim self-service: reference + secret, uniform failures, throttling, status counts, hash file
upload (pictures refused), withdrawal; the session sees only its own case."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import select

from monitor import db
from monitor.demo import pictures as P
from monitor.models import AuditEntry, Case
from tests.web.conftest import BASE_URL, csrf_of, make_hash_file


def _victim(world) -> TestClient:
    return TestClient(world.app, base_url=BASE_URL)


def _sign_in(c: TestClient, reference: str, secret: str):
    token = csrf_of(c.get("/self-service").text)
    return c.post("/self-service", data={"reference": reference, "secret": secret, "csrf_token": token})


def test_status_shows_counts_of_the_victims_own_case_only(world, clients):
    from tests.web.conftest import add_match

    auth = {"Authorization": f"Bearer {world.tokens['alice']}"}
    clients["alice"].post(f"/api/matches/{world.matches['a']}/decision", json={"decision": "confirmed"}, headers=auth)
    not_hers = add_match(world.engine, world.cases["a"], world.site, "not-hers", seed=90)
    clients["alice"].post(f"/api/matches/{not_hers}/decision", json={"decision": "rejected", "reason": "not-a-copy"},
                          headers=auth)  # a rejected match is not a copy: not counted as found
    c = _victim(world)
    r = _sign_in(c, world.cases["a"].lower().replace("-", " "), world.secrets["a"])  # typed loosely
    assert r.status_code == 200, r.text
    assert world.cases["a"] in r.text and world.cases["b"] not in r.text
    assert 'id="found">1<' in r.text and 'id="confirmed">1<' in r.text and 'id="taken-down">0<' in r.text
    assert "/matches/" not in r.text and "<img" not in r.text  # never the images, never staff links
    # the self-service cookie is not a staff session
    assert c.get("/api/me").status_code == 401
    assert c.get("/review", follow_redirects=False).status_code == 303


def test_wrong_secret_and_unknown_reference_get_the_same_answer_and_are_throttled(world):
    c = _victim(world)
    wrong = _sign_in(c, world.cases["a"], "AAAAA-BBBBB-CCCCC-DDDDD-EEEEE")
    unknown = _sign_in(c, "NC-ZZZZ-ZZZZ", "AAAAA-BBBBB-CCCCC-DDDDD-EEEEE")
    other = _sign_in(c, world.cases["a"], world.secrets["b"])  # another case's secret
    assert wrong.status_code == unknown.status_code == other.status_code == 401
    assert wrong.text.replace(csrf_of(wrong.text), "") == unknown.text.replace(csrf_of(unknown.text), "")
    for _ in range(3):
        _sign_in(c, world.cases["a"], "AAAAA-BBBBB-CCCCC-DDDDD-EEEEE")
    # five failures for this reference: now even the right secret is refused for a while
    r = _sign_in(c, world.cases["a"], world.secrets["a"])
    assert r.status_code == 401 and "Too many attempts" in r.text
    with db.session(world.engine) as s:
        failed = list(s.scalars(select(AuditEntry).where(AuditEntry.action == "self_service.sign_in_failed")))
    assert len(failed) == 6 and all(e.case_id is None for e in failed)  # never says which case was tried


def test_uploading_a_hash_file_adds_hashes_and_a_picture_is_refused(world):
    c = _victim(world)
    page = _sign_in(c, world.cases["a"], world.secrets["a"])
    token = csrf_of(page.text)
    r = c.post("/self-service/hashes", data={"csrf_token": token},
               files={"file": ("photo.jpg", P.jpeg_bytes(P.picture(3), 90), "image/jpeg")})
    assert r.status_code == 415 and "ncii hash" in r.text and "never uploaded" in r.text
    r = c.post("/self-service/hashes", data={"csrf_token": token}, files={"file": ("notes.txt", b"hello\n")})
    assert r.status_code == 422 and "not a valid hash file" in r.text
    r = c.post("/self-service/hashes", data={"csrf_token": token},
               files={"file": ("my-hashes.jsonl", make_hash_file(61))})
    assert r.status_code == 200 and "Added" in r.text
    assert 'id="hashes">0 ' not in r.text
    # without the CSRF token nothing is accepted
    r = c.post("/self-service/hashes", files={"file": ("my-hashes.jsonl", make_hash_file(62))})
    assert r.status_code == 403


def test_withdrawal_needs_confirmation_then_stops_the_case_and_ends_the_session(world):
    c = _victim(world)
    _sign_in(c, world.cases["a"], world.secrets["a"])
    page = c.get("/self-service/withdraw")
    token = csrf_of(page.text)
    r = c.post("/self-service/withdraw", data={"csrf_token": token})
    assert r.status_code == 422
    r = c.post("/self-service/withdraw", data={"csrf_token": token, "confirm": "yes"})
    assert r.status_code == 200 and "withdrawn" in r.text
    with db.session(world.engine) as s:
        assert s.scalar(select(Case.status).where(Case.reference == world.cases["a"])) == "withdrawn"
    assert c.get("/self-service/case").status_code == 401
