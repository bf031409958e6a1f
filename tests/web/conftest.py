"""Fixtures for the web app's tests: an app on this test's database (SQLite and PostgreSQL), staff
accounts of each role with API tokens, cases assigned to two advocates, matches whose pictures a
loopback site serves, and TestClients signed in as each of them.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Iterator

import pytest
from fastapi.testclient import TestClient

from connectors.http import HttpClient, HttpSettings
from monitor import accounts, db, registry, sources
from monitor.demo import pictures as P
from monitor.demo.site import LoopbackSite, Route, rss_feed
from monitor.models import Case, CaseAssignment, Match, Media, MediaSighting, Source, SourceCandidate, utcnow

BASE_URL = "http://127.0.0.1"
PASSWORD = "correct horse battery staple"


@dataclass
class World:
    """What the web tests work with."""

    app: object
    engine: object
    site: LoopbackSite
    tokens: dict[str, str] = field(default_factory=dict)  # role name -> API token
    cases: dict[str, str] = field(default_factory=dict)  # "a" / "b" / "minor" -> reference
    secrets: dict[str, str] = field(default_factory=dict)
    matches: dict[str, int] = field(default_factory=dict)  # "a" / "b" / "minor" / "xss" -> match id


def add_match(engine, case_ref: str, site: LoopbackSite, name: str, *, page_url: str | None = None,
              context: str | None = None, seed: int = 7) -> int:
    """A media item served by the loopback site, two sightings, and a pending match to the case."""
    body = P.jpeg_bytes(P.picture(seed, (320, 240)), 85)
    media_url = site.add(f"/media/{name}.jpg", Route(body, "image/jpeg"))
    page_url = page_url or site.url(f"/posts/{name}.html")
    now = utcnow()
    with db.transaction(engine) as s:
        case = s.query(Case).filter_by(reference=case_ref).one()
        source = s.query(Source).filter_by(name="fixture-feed").one_or_none()
        if source is None:
            site.add("/feed.xml", Route(rss_feed(site.url(""), "fixture", []), "application/rss+xml"))
            sources.add_source(s, site.url("/feed.xml"), kind="rss", name="fixture-feed", interval=900, actor="test")
            source = s.query(Source).filter_by(name="fixture-feed").one()
        media = Media(sha256=hashlib.sha256(body + name.encode()).hexdigest(), md5="0" * 32, url=media_url,
                      page_url=page_url, source="fixture-feed", first_seen_at=now, last_seen_at=now, width=320,
                      height=240, format="jpeg", hashes=[], status="hashed")
        s.add(media)
        s.flush()
        for url in (media_url, media_url + "?copy"):
            s.add(MediaSighting(media_id=media.id, url=url, url_sha256=hashlib.sha256(url.encode()).hexdigest(),
                                page_url=page_url, source="fixture-feed", first_seen_at=now, last_seen_at=now))
        s.add(SourceCandidate(source_id=source.id, key_sha256=hashlib.sha256(media_url.encode()).hexdigest(),
                              media_url=media_url, page_url=page_url,
                              candidate={"media_url": media_url, "page_url": page_url, "text": context,
                                         "posted_at": now.isoformat()},
                              status="done", attempts=1, media_id=media.id, first_seen_at=now))
        match = Match(media_id=media.id, registered_hash_id=None, case_id=case.id, algorithm="pdq", distance=12,
                      query_region="full", review_status="pending", created_at=now)
        s.add(match)
        s.flush()
        return match.id


@pytest.fixture
def world(engine, settings) -> Iterator[World]:
    """The app with an admin, advocates A and B, their cases and matches, and a minor's case."""
    from monitor.web import create_app

    site = LoopbackSite()
    http = HttpClient(HttpSettings(allow_loopback=True, min_interval=0.0, retries=0, contact_url=None))
    app = create_app(engine, settings, http_client=http)
    w = World(app=app, engine=engine, site=site)
    with db.transaction(engine) as s:
        for username, role in (("admin", "admin"), ("alice", "advocate"), ("bob", "advocate")):
            user = accounts.create_user(s, username, role, PASSWORD, actor="test")
            w.tokens[username], _ = accounts.create_api_token(s, user, "tests", actor="test")
        for key, owner, minor in (("a", "alice", False), ("b", "bob", False), ("minor", "alice", True)):
            new = registry.create_case(s, jurisdiction="GB", involves_minor=minor, actor="test")
            w.cases[key], w.secrets[key] = new.reference, new.secret
            case = s.query(Case).filter_by(reference=new.reference).one()
            user = accounts.get_user(s, owner)
            s.add(CaseAssignment(case_id=case.id, user_id=user.id, assigned_at=utcnow()))
    for key, seed in (("a", 7), ("b", 8), ("minor", 9)):
        w.matches[key] = add_match(engine, w.cases[key], site, f"pic-{key}", seed=seed)
    try:
        yield w
    finally:
        http.close()
        site.close()


def csrf_of(html: str) -> str:
    """The CSRF token in a page's forms."""
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, "no CSRF token in the page"
    return found.group(1)


def sign_in(app, username: str, password: str = PASSWORD) -> TestClient:
    """A TestClient signed in through the sign-in form."""
    client = TestClient(app, base_url=BASE_URL)
    page = client.get("/login")
    r = client.post("/login", data={"username": username, "password": password, "csrf_token": csrf_of(page.text),
                                    "next": "/"}, follow_redirects=False)
    assert r.status_code == 303, r.text
    return client


@pytest.fixture
def clients(world) -> Iterator[dict[str, TestClient]]:
    """Browser-like clients: anonymous, and signed in as admin, alice and bob."""
    out = {"anonymous": TestClient(world.app, base_url=BASE_URL)}
    for name in ("admin", "alice", "bob"):
        out[name] = sign_in(world.app, name)
    yield out
    for c in out.values():
        c.close()


_HASH_FILES: dict[int, bytes] = {}


def make_hash_file(seed: int) -> bytes:
    """A hash file (as `ncii hash` writes it) of one synthetic picture."""
    if seed not in _HASH_FILES:
        import io

        from hashes.compute import HashOptions, hash_bytes
        from hashes.hashfile import HashFileWriter, make_header

        buf = io.StringIO()
        w = HashFileWriter(buf, "jsonl", make_header(HashOptions().algorithms, "register", "ncii test"))
        w.write(hash_bytes(P.jpeg_bytes(P.picture(seed), 90), options=HashOptions()))
        w.close()
        _HASH_FILES[seed] = buf.getvalue().encode()
    return _HASH_FILES[seed]
