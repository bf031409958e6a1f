"""The framework carries API-style sources (JSON pages, Link-header or cursor pagination):
a minimal Mastodon-like connector written against the public API only."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import ClassVar

from connectors.base import Candidate, Connector, MediaType, Page, SourceSettings
from connectors.util import parse_datetime

from .conftest import Reply


@dataclass(frozen=True)
class TimelineSettings(SourceSettings):
    token: str | None = None
    kind: ClassVar[str] = "example-api"
    secret_fields: ClassVar[frozenset[str]] = frozenset({"token"})

    def validate(self) -> None:
        self.require_http_url()


class TimelineConnector(Connector):
    """Statuses newest first; ``since_id`` cursor; pages followed through ``Link: rel=next``
    back to the cursor; every API page becomes one Page, oldest API page last."""

    kind = "example-api"
    settings_class = TimelineSettings

    def poll(self, settings, cursor, http):
        since = (cursor or {}).get("since_id")
        url, params = settings.url, {"limit": 2, "since_id": since}
        newest = since
        batches = []
        while url:
            headers = {"Authorization": f"Bearer {settings.token}"} if settings.token else {}
            statuses, response = http.get_json(url, params=params, headers=headers)
            params = None
            batch = []
            for status in statuses:
                newest = max(newest or status["id"], status["id"])
                for att in status["media"]:
                    batch.append(Candidate(att["url"], status["url"], self.kind,
                                           posted_at=parse_datetime(status["created_at"]),
                                           author=status["account"], text=status["text"],
                                           media_type=MediaType(att["type"]),
                                           key=f"{self.kind}:media:{att['id']}"))
            batches.append(batch)
            url = response.links.get("next") if statuses else None
        # statuses came newest first: hand the whole run over in one page so the since_id
        # cursor cannot skip anything if the caller crashes mid-way
        yield Page(tuple(c for b in batches for c in b), {"since_id": newest})


def test_json_api_connector(site, client):
    def status(i):
        return {"id": f"{i:04d}", "url": site.url(f"/@a/{i}"), "created_at": "2026-01-01T00:00:00Z",
                "account": "a", "text": f"status {i}",
                "media": [{"id": f"m{i}", "url": site.url(f"/m/{i}.png"), "type": "image"}]}

    def timeline(req):
        if "max_id=0002" in req.path:
            return Reply(body=json.dumps([status(2), status(1)]).encode(),
                         content_type="application/json")
        if "since_id=0004" in req.path:
            return Reply(body=b"[]", content_type="application/json")
        return Reply(body=json.dumps([status(4), status(3)]).encode(),
                     content_type="application/json",
                     headers={"Link": f'<{site.url("/api/timeline?max_id=0002")}>; rel="next"'})

    site.add("/api/timeline", timeline)
    connector = TimelineConnector()
    settings = connector.settings_from_url(site.url("/api/timeline"), token="s3cret")
    assert settings.to_dict(redact=True)["token"] == "***"
    pages = list(connector.poll(settings, None, client))
    assert [c.key for p in pages for c in p.candidates] == [
        "example-api:media:m4", "example-api:media:m3", "example-api:media:m2",
        "example-api:media:m1"]
    assert pages[-1].cursor == {"since_id": "0004"}
    assert site.log[-1].headers["Authorization"] == "Bearer s3cret"
    assert site.hits("/robots.txt") == 0  # API endpoints: robots.txt not consulted by default
    assert list(connector.poll(settings, pages[-1].cursor, client))[0].candidates == ()
