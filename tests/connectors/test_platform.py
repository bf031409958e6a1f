"""The shared platform layer: HttpClient.post (form/JSON, guard, no redirects, retries only when
safe), rate-limit header forms, search terms hidden in messages, the walk-back cursor, and
fuzzed platform JSON (a clear result or a clear error, never a crash)."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from connectors.base import Candidate
from connectors.bluesky import embed_media
from connectors.clock import FakeClock
from connectors.errors import Blocked, ConnectorError, HttpStatus, RateLimited
from connectors.http import HttpClient, HttpSettings
from connectors.mastodon import MastodonConnector, MastodonSettings
from connectors.platform import (RateBudget, Run, parse_reset, parse_time, redact_url, run_pages,
                                 walk_back)
from connectors.reddit import post_media

from .conftest import FakeResolver
from .platforms import ApiServer, Reply

NOW = 1_767_225_600.0


@pytest.fixture
def server():
    calls = []

    def handle(req):
        calls.append(req)
        if req.path == "/echo":
            return Reply(data={"ct": req.headers.get("content-type"), "body": req.body.decode(),
                               "method": req.method})
        if req.path == "/moved":
            return Reply(302, {}, headers={"Location": "/echo"})
        if req.path == "/busy":
            busy = [c for c in calls if c.path == "/busy"]
            return Reply(429, {}, headers={"Retry-After": "2"}) if len(busy) % 2 else Reply(data={"ok": 1})
        if req.path == "/broken":
            return Reply(500, {})
        return Reply(404, {})

    s = ApiServer(handle)
    s.calls = calls
    yield s
    s.close()


def client(clock=None, **kw):
    return HttpClient(HttpSettings(allow_loopback=True, min_interval=0.0, **kw), clock=clock or FakeClock(),
                      resolver=FakeResolver())


def test_post_form_and_json(server):
    data, _ = client().post_json(server.url("/echo"), form={"grant_type": "client_credentials", "x": None})
    assert data == {"ct": "application/x-www-form-urlencoded", "body": "grant_type=client_credentials",
                    "method": "POST"}
    data, _ = client().post_json(server.url("/echo"), json_body={"identifier": "a", "password": "p"})
    assert data["ct"] == "application/json" and data["body"] == '{"identifier":"a","password":"p"}'
    with pytest.raises(ValueError):
        client().post(server.url("/echo"))


def test_post_never_follows_redirects_and_retries_only_when_safe(server):
    with pytest.raises(HttpStatus, match="redirects are not followed for POST"):
        client().post(server.url("/moved"), form={"a": "1"})
    clock = FakeClock()
    data, _ = client(clock).post_json(server.url("/busy"), form={"a": "1"})  # 429: the server did nothing
    assert data == {"ok": 1} and 2.0 in clock.sleeps
    before = len(server.calls)
    with pytest.raises(HttpStatus, match="HTTP 500"):
        client(retries=3).post(server.url("/broken"), form={"a": "1"})  # may have acted: once only
    assert len(server.calls) == before + 1


def test_post_is_guarded_like_get(server):
    with pytest.raises(Blocked):
        client().post("http://evil.test/token", form={"secret": "s"})
    with pytest.raises(Blocked):
        client().post("http://metadata.test/latest", json_body={})


def test_short_retry_after_override_reschedules(server):
    with pytest.raises(RateLimited):
        client(FakeClock()).get(server.url("/busy"), max_retry_after=1)


@pytest.mark.parametrize("value, seconds", [
    ("2026-01-01T00:05:00.000Z", 300.0),  # Mastodon: an ISO timestamp
    (str(int(NOW) + 120), 120.0),  # Bluesky: epoch seconds
    ("42", 42.0), ("42.5", 42.5),  # Reddit / IETF draft: seconds from now
    ("2025-12-31T00:00:00Z", 0.0), ("soon", None), ("", None), (None, None), ("nan", None),
])
def test_rate_limit_reset_forms(value, seconds):
    assert parse_reset(value, NOW) == seconds


def test_rate_budget_from_each_platform():
    reddit = RateBudget.from_headers({"X-Ratelimit-Used": "97", "X-Ratelimit-Remaining": "3.0",
                                      "X-Ratelimit-Reset": "420"}, NOW)
    assert (reddit.remaining, reddit.limit, reddit.reset_in) == (3.0, 100.0, 420.0)
    bsky = RateBudget.from_headers({"RateLimit-Limit": "3000", "RateLimit-Remaining": "10",
                                    "RateLimit-Reset": str(int(NOW) + 60)}, NOW)
    assert (bsky.remaining, bsky.limit, bsky.reset_in) == (10.0, 3000.0, 60.0)
    assert RateBudget.from_headers({}, NOW).remaining is None


def test_search_terms_are_hidden_in_urls():
    assert redact_url("https://x.test/search?q=Jane+Doe&limit=5&after=t3_x") == \
        "https://x.test/search?q=***&limit=5&after=t3_x"
    assert redact_url("https://x.test/a") == "https://x.test/a"


@pytest.mark.parametrize("value", ["2026-01-01T00:00:00Z", "2026-01-01T00:00:00.1Z", "2026-01-01T00:00:00.123456789Z",
                                   "2026-01-01T00:00:00+00:00", "2026-01-01T00:00:00", NOW])
def test_parse_time_forms(value):
    assert parse_time(value).replace(microsecond=0) == datetime(2026, 1, 1, tzinfo=timezone.utc)


def test_walk_back_stops_at_the_mark_and_pages_carry_their_newest_mark():
    listing = [((float(i), f"p{i:02d}"), i) for i in range(20, 0, -1)]  # newest first

    def fetch(token):
        start = int(token or 0)
        return listing[start:start + 4], (str(start + 4) if start + 4 < len(listing) else None)

    run = walk_back(fetch, (12.0, "p12"), 10)
    assert [i for _, i in run.items] == list(range(20, 12, -1)) and run.reached
    pages = list(run_pages(run, lambda i: [Candidate(f"https://x.test/{i}.jpg", None, "t")], 3, {"other": 1},
                           "new", []))
    assert [[c.media_url[-6:] for c in p.candidates] for p in pages] == [
        ["13.jpg", "14.jpg", "15.jpg"], ["16.jpg", "17.jpg", "18.jpg"], ["19.jpg", "20.jpg"]]
    assert [p.cursor["new"] for p in pages] == [[15.0, "p15"], [18.0, "p18"], [20.0, "p20"]]
    assert all(p.cursor["other"] == 1 for p in pages)
    bounded = walk_back(fetch, (1.0, "p01"), 2)
    assert len(bounded.items) == 8 and not bounded.reached
    empty = list(run_pages(Run([], True, 1), lambda i: [], 3, {"new": [5.0, "x"]}, "new", []))
    assert len(empty) == 1 and empty[0].cursor == {"new": [5.0, "x"]}


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=30)
    | st.sampled_from(["https://x.test/a.jpg", "image", "gifv", "video", "Image", "AnimatedImage", "valid",
                       "app.bsky.embed.images#view", "app.bsky.embed.recordWithMedia#view", "javascript:x"]),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(
        st.sampled_from(["id", "url", "type", "media_attachments", "reblog", "remote_url", "preview_url", "$type",
                         "images", "fullsize", "media", "is_gallery", "gallery_data", "items", "media_id",
                         "media_metadata", "s", "u", "e", "status", "preview", "source", "created_at",
                         "is_video", "secure_media", "reddit_video", "fallback_url", "playlist"]),
        children, max_size=6),
    max_leaves=25)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(json_values)
def test_platform_parsers_never_crash_on_odd_json(value):
    for url, _ in embed_media(value):
        assert url.startswith(("http://", "https://"))
    for url, _, _ in post_media(value):
        assert url.startswith(("http://", "https://"))
    s = MastodonSettings(url="https://m.test/tags/x", timeline="tag", target="x")
    candidates, notes = MastodonConnector()._candidates(s, "m.test", [("1", value)])
    assert all(c.media_url.startswith(("http://", "https://")) for c in candidates)
    try:
        MastodonConnector._statuses(value, "https://m.test/api")
    except ConnectorError:
        pass
