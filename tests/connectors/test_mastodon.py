"""The Mastodon connector against a fake Mastodon server on loopback that speaks the client API:
max_id/since_id/min_id paging with Link headers, X-RateLimit-* headers, 401 for sign-in-only
timelines, 429 with Retry-After, malformed JSON."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from connectors.base import MediaType
from connectors.clock import FakeClock
from connectors.errors import AuthRequired, RateLimited, SourceFormatError, SourceSettingsError
from connectors.http import HttpClient, HttpSettings
from connectors.registry import connector_for_url, get_connector

from .platforms import ApiServer, Reply, end_to_end

M = get_connector("mastodon")
T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def client(clock=None, retries=2) -> HttpClient:
    return HttpClient(HttpSettings(allow_loopback=True, min_interval=0.0, retries=retries),
                      clock=clock or FakeClock())


def status(n: int, base: str, media=None) -> dict:
    if media is None:
        media = [{"id": f"m{n}", "type": "image", "url": f"{base}/media/{n}.jpg",
                  "preview_url": f"{base}/media/{n}-small.jpg", "remote_url": None}]
    return {"id": str(n), "created_at": (T0 + timedelta(minutes=n)).isoformat().replace("+00:00", "Z"),
            "url": f"{base}/@someone/{n}", "uri": f"{base}/users/someone/statuses/{n}", "sensitive": n % 2 == 0,
            "content": "<p>post text never kept</p>", "account": {"acct": "someone"},
            "media_attachments": media, "reblog": None}


class FakeMastodon:
    """Statuses by id; the tag, public and account timelines all list the same ones."""

    def __init__(self, n: int = 10) -> None:
        self.statuses: dict[int, dict] = {}
        self.token: str | None = None  # when set, timelines need it
        self.remaining = 300
        self.script: list[Reply] = []  # replies to send first, whatever the request
        self.server = ApiServer(self.handle)
        self.base = self.server.base
        for i in range(1, n + 1):
            self.add(i)

    def add(self, n: int, media=None) -> None:
        self.statuses[n] = status(n, self.base, media)

    def handle(self, req):
        if self.script:
            return self.script.pop(0)
        if self.token and req.headers.get("authorization") != f"Bearer {self.token}":
            return Reply(401, {"error": "This API requires an authenticated user"})
        if req.path == "/api/v1/accounts/lookup":
            return Reply(data={"id": "77", "acct": req.query["acct"]})
        if not (req.path.startswith("/api/v1/timelines/") or req.path == "/api/v1/accounts/77/statuses"):
            return Reply(404, {"error": "Record not found"})
        assert req.query.get("only_media") == "true"
        limit = int(req.query.get("limit", 20))
        ids = sorted(self.statuses)
        if "max_id" in req.query:
            ids = [i for i in ids if i < int(req.query["max_id"])]
        if "since_id" in req.query:
            ids = [i for i in ids if i > int(req.query["since_id"])]
        if "min_id" in req.query:  # immediately newer than min_id
            ids = [i for i in ids if i > int(req.query["min_id"])][:limit]
        else:
            ids = ids[-limit:]
        page = [self.statuses[i] for i in sorted(ids, reverse=True)]
        headers = {"X-RateLimit-Limit": "300", "X-RateLimit-Remaining": str(self.remaining),
                   "X-RateLimit-Reset": (datetime.fromtimestamp(FakeClock().time(), timezone.utc)
                                         + timedelta(seconds=20)).isoformat()}
        if page:
            path = f"{self.base}{req.path}"
            headers["Link"] = (f'<{path}?max_id={page[-1]["id"]}>; rel="next", '
                               f'<{path}?min_id={page[0]["id"]}>; rel="prev"')
        return Reply(data=page, headers=headers)

    def close(self):
        self.server.close()


@pytest.fixture
def fake():
    f = FakeMastodon()
    yield f
    f.close()


def settings(fake, path="/tags/cats", **extra):
    return M.settings_from_url(f"https://mastodon.example{path}", api_base=fake.base, limit=4, **extra)


def poll(s, cursor, http=None):
    pages = list(M.poll(s, cursor, http or client()))
    return pages, [c for p in pages for c in p.candidates]


def test_urls_a_person_copies():
    for url, timeline, target in [("https://m.example/tags/Cats", "tag", "Cats"),
                                  ("https://m.example/@alice", "account", "alice"),
                                  ("https://m.example/@alice@other.example", "account", "alice@other.example"),
                                  ("https://m.example/public/local", "local", ""),
                                  ("https://m.example/public", "public", "")]:
        s = M.settings_from_url(url)
        assert (s.timeline, s.target) == (timeline, target)
        assert s.base == "https://m.example"
    assert connector_for_url("https://m.example/tags/cats").kind == "mastodon"
    with pytest.raises(SourceSettingsError, match="use https://HOST/tags/NAME"):
        M.settings_from_url("https://m.example/about")
    with pytest.raises(SourceSettingsError, match="api_base"):
        M.settings_from_url("https://m.example/tags/x", api_base="ftp://x")


def test_first_poll_is_bounded_then_second_poll_fetches_nothing_seen(fake):
    s = settings(fake, first_pages=2)
    pages, found = poll(s, None)
    # two pages of four, newest first on the server, handed out oldest first
    assert [c.extra["status_id"] for c in found] == ["3", "4", "5", "6", "7", "8", "9", "10"]
    assert pages[-1].cursor == {"min_id": "10"}
    c = found[0]
    assert c.media_url == f"{fake.base}/media/3.jpg"  # the original, not the preview
    assert c.page_url == f"{fake.base}/@someone/3" and c.media_type is MediaType.IMAGE
    assert c.key == "mastodon:127.0.0.1:media:m3" and c.author is None and c.text is None
    assert c.posted_at == T0 + timedelta(minutes=3)
    # nothing new: one empty page, same cursor
    again, none = poll(s, pages[-1].cursor)
    assert none == [] and again[-1].cursor == {"min_id": "10"}
    # new posts arrive: only those, read forward with min_id, one page per API page
    for i in range(11, 17):
        fake.add(i)
    cursor = json.loads(json.dumps(pages[-1].cursor))  # as stored in the database
    pages, found = poll(s, cursor)
    assert [c.extra["status_id"] for c in found] == [str(i) for i in range(11, 17)]
    assert [p.cursor["min_id"] for p in pages] == ["14", "16"]
    assert all("min_id" in r.query for r in fake.server.requests[-2:])


def test_restart_resumes_from_the_saved_cursor(fake):
    s = settings(fake)
    pages, _ = poll(s, None)
    saved = json.dumps(pages[-1].cursor)
    for i in range(11, 14):
        fake.add(i)
    # a new process: a new client, the cursor read back from storage
    _, found = poll(s, json.loads(saved), client())
    assert [c.extra["status_id"] for c in found] == ["11", "12", "13"]


def test_media_kinds_federated_and_no_media(fake):
    fake.statuses.clear()
    fake.add(1, media=[])  # no media
    fake.add(2, media=[{"id": "v", "type": "video", "url": f"{fake.base}/v.mp4", "preview_url": "x"},
                       {"id": "g", "type": "gifv", "url": f"{fake.base}/g.mp4"},
                       {"id": "a", "type": "audio", "url": f"{fake.base}/a.mp3"}])
    fake.add(3, media=[{"id": "r", "type": "image", "url": None, "remote_url": "https://far.example/r.png",
                        "preview_url": f"{fake.base}/r-small.png"}])
    fake.add(4, media=[{"id": "u", "type": "unknown", "url": None, "remote_url": None}])
    _, found = poll(settings(fake), None)
    assert [(c.media_url.rsplit("/", 1)[-1], c.media_type.value) for c in found] == [
        ("v.mp4", "video"), ("g.mp4", "video"), ("r.png", "image")]
    _, found = poll(settings(fake, include_video=False), None)
    assert [c.media_url.rsplit("/", 1)[-1] for c in found] == ["r.png"]


def test_reblogs_take_the_original_post(fake):
    fake.statuses.clear()
    fake.add(5)
    fake.statuses[6] = {**status(6, fake.base, media=[]), "reblog": status(5, fake.base)}
    _, found = poll(settings(fake), None)
    assert {c.key for c in found} == {"mastodon:127.0.0.1:media:m5"}


def test_account_timeline_looks_up_the_id_once(fake):
    s = settings(fake, path="/@someone")
    pages, found = poll(s, None)
    assert found and pages[-1].cursor["account_id"] == "77"
    assert fake.server.hits("/api/v1/accounts/lookup")[0].query["acct"] == "someone"
    poll(s, pages[-1].cursor)
    assert len(fake.server.hits("/api/v1/accounts/lookup")) == 1


def test_sign_in_only_timeline_needs_a_token(fake):
    fake.token = "tok-123"
    with pytest.raises(AuthRequired) as info:
        poll(settings(fake, path="/public/local"), None)
    assert info.value.code == "auth-needed" and "ncii source credentials" in str(info.value)
    assert not info.value.retryable
    pages, found = poll(settings(fake, path="/public/local", access_token="tok-123"), None)
    assert found and fake.server.requests[-1].query.get("local") == "true"
    assert "tok-123" not in repr(settings(fake, access_token="tok-123"))
    assert settings(fake, access_token="tok-123").to_dict(redact=True)["access_token"] == "***"


def test_429_retry_after_short_is_waited_long_reschedules(fake):
    clock = FakeClock()
    fake.script = [Reply(429, {"error": "Too many requests"}, headers={"Retry-After": "5"})]
    _, found = poll(settings(fake), None, client(clock))
    assert found and 5.0 in clock.sleeps
    fake.script = [Reply(429, {"error": "slow down"}, headers={"Retry-After": "3600"})]
    with pytest.raises(RateLimited) as info:
        poll(settings(fake), None, client(clock))
    assert info.value.retry_at > datetime.fromtimestamp(clock.time(), timezone.utc) + timedelta(minutes=59)


def test_slows_down_before_the_rate_limit(fake):
    clock = FakeClock()
    fake.remaining = 2  # below the margin of 5: wait for the reset (20 s) before the next request
    poll(settings(fake, first_pages=3), None, client(clock))
    assert any(15 <= s <= 20 for s in clock.sleeps)
    fake.remaining = 1
    with pytest.raises(RateLimited, match="budget nearly spent"):
        poll(settings(fake, first_pages=3, max_rate_wait=1), None, client(FakeClock()))


def test_malformed_json_and_wrong_shapes_are_clear_errors(fake):
    fake.script = [Reply(body=b"[{\"id\": ", content_type="application/json")]
    with pytest.raises(SourceFormatError, match="invalid JSON"):
        poll(settings(fake), None)
    fake.script = [Reply(data={"error": "not a list"})]
    with pytest.raises(SourceFormatError, match="expected a JSON list"):
        poll(settings(fake), None)
    fake.script = [Reply(data=[{"id": "9", "media_attachments": "nope"}, "junk", {"no": "id"}])]
    pages, found = poll(settings(fake), None)
    assert found == [] and pages[-1].cursor == {"min_id": "9"}


def test_finds_a_planted_altered_copy_through_the_pipeline(engine, fake):
    def plant(copy, decoy):
        for n in fake.statuses:
            fake.server.files[f"/media/{n}.jpg"] = decoy(100 + n)
        fake.add(11)
        fake.server.files["/media/11.jpg"] = copy
    ref, first, second = end_to_end(engine, "https://mastodon.example/tags/cats", "mastodon", plant,
                                    api_base=fake.base, limit=4, first_pages=5)
    assert first.ok and first.failed == 0, first.error or first.errors
    assert [m["url"] for m in first.match_list] == [f"{fake.base}/media/11.jpg"]
    assert first.match_list[0]["case"] == ref and first.alerts == 1
    assert second.ok and second.listed == 0 and second.new == 0
