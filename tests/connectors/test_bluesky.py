"""The Bluesky connector against a fake AppView + PDS on loopback: getAuthorFeed with cursor
paging, searchPosts behind an app-password session (createSession, expired tokens and
refreshSession), image / recordWithMedia / video embeds, deleted posts, RateLimit-* headers."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from connectors.base import MediaType, SearchTerm
from connectors.bluesky import _SESSIONS
from connectors.clock import FakeClock
from connectors.errors import AuthRequired, SourceFormatError
from connectors.registry import connector_for_url, get_connector

from .platforms import ApiServer, Reply, end_to_end
from .test_mastodon import client

B = get_connector("bluesky")
T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def iso(n: int) -> str:
    return (T0 + timedelta(minutes=n)).isoformat().replace("+00:00", "Z")


def post(n: int, base: str, embed=None, text="never kept") -> dict:
    if embed is None:
        embed = {"$type": "app.bsky.embed.images#view",
                 "images": [{"thumb": f"{base}/thumb/{n}.jpg", "fullsize": f"{base}/full/{n}.jpg", "alt": "x"}]}
    return {"uri": f"at://did:plc:abc/app.bsky.feed.post/{n:04d}", "cid": f"c{n}",
            "author": {"did": "did:plc:abc", "handle": "alice.test"},
            "record": {"text": text, "createdAt": iso(n)}, "embed": embed, "indexedAt": iso(n)}


class FakeBluesky:
    def __init__(self, n: int = 9) -> None:
        self.posts: dict[int, dict] = {}
        self.search_hits: dict[str, list[int]] = {}
        self.valid_access = {"acc-1"}
        self.sessions = 0
        self.refreshes = 0
        self.script: list[Reply] = []
        self.server = ApiServer(self.handle)
        self.base = self.server.base
        for i in range(1, n + 1):
            self.posts[i] = post(i, self.base)

    def handle(self, req):
        if self.script:
            return self.script.pop(0)
        headers = {"RateLimit-Limit": "3000", "RateLimit-Remaining": "2999",
                   "RateLimit-Reset": str(int(FakeClock().time()) + 300)}
        if req.path == "/xrpc/com.atproto.server.createSession":
            body = req.json()
            if body != {"identifier": "alice.test", "password": "app-pass-1"}:
                return Reply(401, {"error": "AuthenticationRequired", "message": "Invalid identifier or password"})
            self.sessions += 1
            return Reply(data={"accessJwt": "acc-1", "refreshJwt": "ref-1", "did": "did:plc:abc"})
        if req.path == "/xrpc/com.atproto.server.refreshSession":
            if req.headers.get("authorization") != "Bearer ref-1":
                return Reply(400, {"error": "ExpiredToken"})
            self.refreshes += 1
            self.valid_access = {"acc-2"}
            return Reply(data={"accessJwt": "acc-2", "refreshJwt": "ref-1", "did": "did:plc:abc"})
        if req.path == "/xrpc/app.bsky.feed.getAuthorFeed":
            assert req.query["filter"] == "posts_with_media" and req.query["actor"] == "alice.test"
            ids = sorted(self.posts, reverse=True)
            items = [{"post": self.posts[i]} for i in ids]
        elif req.path == "/xrpc/app.bsky.feed.searchPosts":
            token = (req.headers.get("authorization") or "").removeprefix("Bearer ")
            if not token:
                return Reply(403, {"error": "Forbidden"})
            if token not in self.valid_access:
                return Reply(400, {"error": "ExpiredToken", "message": "Token has expired"})
            ids = sorted(self.search_hits.get(req.query["q"], []), reverse=True)
            items = [self.posts[i] for i in ids]
        else:
            return Reply(404, {"error": "MethodNotImplemented"})
        limit = int(req.query.get("limit", 50))
        start = int(req.query.get("cursor") or 0)
        chunk = items[start:start + limit]
        data = {"feed" if "Author" in req.path else "posts": chunk}
        if start + limit < len(items):
            data["cursor"] = str(start + limit)
        return Reply(data=data, headers=headers)

    def close(self):
        self.server.close()


@pytest.fixture
def fake():
    _SESSIONS._tokens.clear()
    f = FakeBluesky()
    yield f
    f.close()
    _SESSIONS._tokens.clear()


def author(fake, **extra):
    return B.settings_from_url("https://bsky.app/profile/alice.test", **{"api_base": fake.base, "limit": 3, **extra})


def search(fake, **extra):
    base = dict(api_base=fake.base, pds_base=fake.base, limit=3, identifier="alice.test",
                app_password="app-pass-1")
    base.update(extra)
    return B.settings_from_url("", **base)


def poll(s, cursor, http=None):
    pages = list(B.poll(s, cursor, http or client()))
    return pages, [c for p in pages for c in p.candidates]


def test_urls_and_settings():
    s = B.settings_from_url("https://bsky.app/profile/alice.bsky.social")
    assert (s.mode, s.actor) == ("author", "alice.bsky.social")
    assert connector_for_url("https://bsky.app/profile/x.test").kind == "bluesky"
    s = B.settings_from_url("https://bsky.app/search?q=jane+doe")
    assert s.mode == "search" and s.query == "jane doe" and "jane" not in s.url
    assert s.to_dict(redact=True)["query"] == "***" and "jane" not in repr(s)


def test_author_feed_bounded_first_poll_then_only_new(fake):
    s = author(fake, first_pages=2)
    pages, found = poll(s, None)
    assert [c.key.split("/")[-1] for c in found] == [f"{i:04d}#0" for i in range(4, 10)]
    c = found[-1]
    assert c.media_url == f"{fake.base}/full/9.jpg" and c.media_type is MediaType.IMAGE
    assert c.page_url == "https://bsky.app/profile/did:plc:abc/post/0009" and c.text is None
    assert c.posted_at == T0 + timedelta(minutes=9)
    cursor = json.loads(json.dumps(pages[-1].cursor))
    again, none = poll(s, cursor)
    assert none == [] and again[-1].cursor == cursor
    for i in range(10, 15):
        fake.posts[i] = post(i, fake.base)
    pages, found = poll(s, cursor, client())  # a restart: new client, stored cursor
    assert [c.key.split("/")[-1] for c in found] == [f"{i:04d}#0" for i in range(10, 15)]


def test_embeds_videos_record_with_media_deleted_and_no_media(fake):
    fake.posts.clear()
    b = fake.base
    fake.posts[1] = post(1, b, embed={"$type": "app.bsky.embed.recordWithMedia#view",
                                      "record": {"record": {"uri": "at://x"}},
                                      "media": {"$type": "app.bsky.embed.images#view",
                                                "images": [{"fullsize": f"{b}/a.jpg"}, {"thumb": f"{b}/b-t.jpg"}]}})
    fake.posts[2] = post(2, b, embed={"$type": "app.bsky.embed.video#view", "playlist": f"{b}/v.m3u8"})
    fake.posts[3] = post(3, b, embed={"$type": "app.bsky.embed.external#view", "external": {}})
    fake.posts[4] = {"$type": "app.bsky.feed.defs#notFoundPost", "uri": "at://gone", "notFound": True}
    fake.posts[5] = post(5, b, embed="junk")
    _, found = poll(author(fake, limit=10), None)
    assert [(c.media_url.rsplit("/", 1)[-1], c.media_type.value) for c in found] == [
        ("a.jpg", "image"), ("b-t.jpg", "image"), ("v.m3u8", "video")]


def test_search_needs_an_app_password(fake):
    with pytest.raises(AuthRequired, match="app password"):
        poll(search(fake, query="jane", app_password=""), None)
    with pytest.raises(AuthRequired, match="createSession: HTTP 401: .* needs credentials"):
        poll(search(fake, query="jane", app_password="wrong"), None)


def test_search_with_session_refresh_and_watch_terms(fake):
    fake.search_hits = {"jane doe": [2, 3], "@jd.test": [3, 5]}
    s = search(fake, query="jane doe", use_watch_terms=True)
    s = s.with_terms([SearchTerm(case_id=7, term_id=41, term="@jd.test")])
    pages, found = poll(s, None)
    assert [(c.key.split("/")[-1], c.extra.get("case_id")) for c in found] == [
        ("0002#0", None), ("0003#0", None), ("0003#0", 7), ("0005#0", 7)]
    assert set(pages[-1].cursor) == {"q", "t41"}
    assert fake.sessions == 1
    assert "jane" not in json.dumps([p.cursor for p in pages]) and "jd.test" not in json.dumps(
        [p.cursor for p in pages])
    # the access token expires: refreshed once, the poll goes on; nothing seen is listed again
    fake.valid_access = {"acc-2"}
    fake.search_hits["jane doe"].append(8)
    pages, found = poll(s, pages[-1].cursor)
    assert [c.key.split("/")[-1] for c in found] == ["0008#0"] and fake.refreshes == 1
    assert fake.sessions == 1
    # a term removed from the case: its mark is dropped
    pages, _ = poll(search(fake, query="jane doe"), pages[-1].cursor)
    assert set(pages[-1].cursor) == {"q"}


def test_search_terms_never_appear_in_errors(fake):
    fake.search_hits = {"jane doe": [1]}
    fake.script = []
    s = search(fake, query="jane doe")
    poll(s, None)  # a session exists now
    fake.script = [Reply(500, body=b"oops")] * 4
    with pytest.raises(Exception) as info:
        poll(s, None, client(retries=0))
    assert "jane" not in str(info.value) and "q=***" in str(info.value)


def test_malformed_json(fake):
    fake.script = [Reply(body=b"{not json")]
    with pytest.raises(SourceFormatError, match="invalid JSON"):
        poll(author(fake), None)
    fake.script = [Reply(data={"feed": {"no": "list"}})]
    with pytest.raises(SourceFormatError, match="expected a JSON list 'feed'"):
        poll(author(fake), None)


def test_finds_a_planted_altered_copy_through_the_pipeline(engine, fake):
    def plant(copy, decoy):
        for n in fake.posts:
            fake.server.files[f"/full/{n}.jpg"] = decoy(100 + n)
        fake.posts[10] = post(10, fake.base)
        fake.server.files["/full/10.jpg"] = copy
    ref, first, second = end_to_end(engine, "https://bsky.app/profile/alice.test", "bluesky", plant,
                                    api_base=fake.base, limit=5)
    assert first.ok and first.failed == 0, first.error or first.errors
    assert [m["url"] for m in first.match_list] == [f"{fake.base}/full/10.jpg"]
    assert first.match_list[0]["case"] == ref
    assert second.ok and second.new == 0


def test_429_and_rate_limit_headers(fake):
    from connectors.errors import RateLimited
    clock = FakeClock()
    fake.script = [Reply(429, {"error": "RateLimitExceeded"}, headers={"Retry-After": "7"})]
    _, found = poll(author(fake), None, client(clock))
    assert found and 7.0 in clock.sleeps
    fake.script = [Reply(429, {"error": "RateLimitExceeded"}, headers={"Retry-After": "900"})]
    with pytest.raises(RateLimited):
        poll(author(fake), None, client(FakeClock()))
    # RateLimit-Remaining at the margin: wait for RateLimit-Reset (epoch seconds) before going on
    clock = FakeClock()
    low = {"RateLimit-Limit": "3000", "RateLimit-Remaining": "3", "RateLimit-Reset": str(int(clock.time()) + 25)}
    fake.script = [Reply(data={"feed": [{"post": fake.posts[9]}], "cursor": "1"}, headers=low)]
    poll(author(fake, first_pages=2), None, client(clock))
    assert any(20 <= s <= 25 for s in clock.sleeps)
