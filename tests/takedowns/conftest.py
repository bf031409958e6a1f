"""Fixtures for the takedown tests: an organisation's settings, a case with confirmed matches on
loopback sites, a real SMTP server (aiosmtpd) and a controllable clock."""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass, field

import pytest

from connectors.http import HttpClient, HttpSettings
from hashes.compute import HashOptions, hash_bytes
from monitor import db, registry
from monitor.demo import pictures as P
from sqlalchemy import select

from monitor.models import Case, Match, Media, MediaSighting
from monitor.settings import SmtpSettings
from monitor.takedowns.config import TakedownSettings
from tests.helpers import Mailbox, free_port
from tests.web import conftest as web_fixtures

# The web tests' world (users, cases, signed-in clients) for the notices tab's tests.
world = web_fixtures.world
clients = web_fixtures.clients

ORG = dict(org_name="Helpline Example", org_email="notices@helpline.example", org_address="1 Example Street, Springfield",
           org_phone="+1 555 0100", signatory="Alex Advocate", sender="notices@helpline.example", bcc=None,
           pdf_font=None)
T0 = dt.datetime(2026, 6, 1, 9, 0, tzinfo=dt.timezone.utc)


@pytest.fixture
def tsettings(tmp_path) -> TakedownSettings:
    return TakedownSettings(**ORG)


def picture_bytes(seed: int) -> bytes:
    """A synthetic picture (never a real person)."""
    return P.jpeg_bytes(P.picture(seed), 85)


def confirm(engine, match_id: int, reviewer: str = "test:advocate") -> None:
    """Confirm a match the way a person does (monitor.review.confirm, issue 7)."""
    from monitor import review

    with db.transaction(engine) as s:
        review.confirm(s, match_id, actor=reviewer)


@dataclass
class CaseData:
    case_id: int
    reference: str
    matches: list[int] = field(default_factory=list)
    media: list[int] = field(default_factory=list)


def make_case(engine, jurisdiction: str | None = "US") -> CaseData:
    with db.transaction(engine) as s:
        new = registry.create_case(s, jurisdiction=jurisdiction, label="test", actor="test:advocate")
        case_id = s.scalar(select(Case.id).where(Case.reference == new.reference))
    return CaseData(case_id, new.reference)


def add_copy(engine, case: CaseData, data: bytes, urls: list[tuple[str, str | None]], *, confirmed: bool = True,
             first_seen: dt.datetime = T0) -> int:
    """Record a found picture with its sightings and a match to the case; returns the match id."""
    h = hash_bytes(data, options=HashOptions(algorithms=("pdq",)))
    with db.transaction(engine) as s:
        media = s.query(Media).filter_by(sha256=h.sha256).one_or_none()
        if media is None:
            media = Media(sha256=h.sha256, md5=h.md5, url=urls[0][0], page_url=urls[0][1], source="test",
                          hashes=[{"alg": v.algorithm, "hash": v.value, "region": v.region} for v in h.hashes],
                          first_seen_at=first_seen, last_seen_at=first_seen)
            s.add(media)
            s.flush()
        for url, page in urls:
            s.add(MediaSighting(media_id=media.id, url=url, url_sha256=hashlib.sha256(url.encode()).hexdigest(),
                                page_url=page, source="test", first_seen_at=first_seen, last_seen_at=first_seen))
        match = Match(media_id=media.id, registered_hash_id=None, case_id=case.case_id, algorithm="pdq", distance=4,
                      query_region="full")
        s.add(match)
        s.flush()
        match_id = match.id
        case.media.append(media.id)
    case.matches.append(match_id)
    if confirmed:
        confirm(engine, match_id)
    return match_id


@pytest.fixture
def smtp_server():
    """A real SMTP server (aiosmtpd) on 127.0.0.1 without TLS; yields (mailbox, SmtpSettings)."""
    pytest.importorskip("aiosmtpd")
    from aiosmtpd.controller import Controller

    box = Mailbox()
    port = free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port, server_hostname="localhost", ready_timeout=5.0)
    controller.start()
    settings = SmtpSettings(host="127.0.0.1", port=port, security="none", sender="notices@helpline.example",
                            recipients=("advocate@helpline.example",), timeout=5)
    yield box, settings
    controller.stop()


@pytest.fixture
def http() -> HttpClient:
    client = HttpClient(HttpSettings(allow_loopback=True, min_interval=0.0, retries=0, respect_robots=False,
                                     connect_timeout=2, read_timeout=2, total_timeout=5))
    yield client
    client.close()
