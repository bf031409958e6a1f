"""The Reddit connector against a fake Data API on loopback: the client_credentials token
exchange (HTTP Basic), /r/NAME/new and /r/NAME/search listings with ``after`` paging,
X-Ratelimit-* headers, expired tokens, HTML-escaped URLs, galleries with media_metadata,
crossposts, videos, removed posts and malformed JSON."""

from __future__ import annotations

import base64
import json

import pytest

from connectors.base import SearchTerm
from connectors.clock import FakeClock
from connectors.errors import AuthRequired, SourceFormatError, SourceSettingsError
from connectors.reddit import _TOKENS, post_media
from connectors.registry import connector_for_url, get_connector

from .platforms import ApiServer, Reply, end_to_end
from .test_mastodon import client

R = get_connector("reddit")
T0 = 1_767_225_600  # 2026-01-01


def link(n: int, base: str, **over) -> dict:
    d = {"name": f"t3_{n:05x}", "id": f"{n:05x}", "created_utc": float(T0 + 60 * n), "title": "never kept",
         "author": "someone", "permalink": f"/r/pics/comments/{n:05x}/x/", "over_18": n % 3 == 0,
         "url": f"{base}/i/{n}.jpg", "post_hint": "image",
         "preview": {"images": [{"source": {"url": f"{base}/p/{n}.jpg?width=640&amp;s=abc"}}]}}
    d.update(over)
    return d


class FakeReddit:
    def __init__(self, n: int = 9) -> None:
        self.posts: dict[int, dict] = {}
        self.search_hits: dict[str, list[int]] = {}
        self.valid = {"tok-1"}
        self.issued = 0
        self.script: list[Reply] = []
        self.used = 0
        self.server = ApiServer(self.handle)
        self.base = self.server.base
        for i in range(1, n + 1):
            self.posts[i] = link(i, self.base)

    def handle(self, req):
        if self.script:
            return self.script.pop(0)
        if req.path == "/api/v1/access_token":
            basic = base64.b64encode(b"cid:csecret").decode()
            if req.method != "POST" or req.headers.get("authorization") != f"Basic {basic}":
                return Reply(401, {"message": "Unauthorized", "error": 401})
            assert req.form == {"grant_type": "client_credentials"}
            self.issued += 1
            token = f"tok-{self.issued}"
            self.valid = {token}
            return Reply(data={"access_token": token, "token_type": "bearer", "expires_in": 86400, "scope": "*"})
        if req.headers.get("authorization") not in {f"bearer {t}" for t in self.valid}:
            return Reply(401, {"message": "Unauthorized", "error": 401})
        assert req.query.get("raw_json") == "1"
        if req.path == "/r/pics/new":
            ids = sorted(self.posts, reverse=True)
        elif req.path == "/r/pics/search":
            assert req.query["restrict_sr"] == "1" and req.query["sort"] == "new"
            ids = sorted(self.search_hits.get(req.query["q"], []), reverse=True)
        else:
            return Reply(404, {"message": "Not Found", "error": 404})
        limit = int(req.query.get("limit", 25))
        names = [self.posts[i]["name"] for i in ids]
        start = names.index(req.query["after"]) + 1 if req.query.get("after") else 0
        chunk = ids[start:start + limit]
        after = self.posts[chunk[-1]]["name"] if chunk and start + limit < len(ids) else None
        self.used += 1
        headers = {"X-Ratelimit-Used": str(self.used), "X-Ratelimit-Remaining": str(100.0 - self.used),
                   "X-Ratelimit-Reset": "420"}
        return Reply(data={"kind": "Listing", "data": {"after": after, "before": None, "dist": len(chunk),
                                                       "children": [{"kind": "t3", "data": self.posts[i]}
                                                                    for i in chunk]}}, headers=headers)

    def close(self):
        self.server.close()


@pytest.fixture
def fake():
    _TOKENS._tokens.clear()
    f = FakeReddit()
    yield f
    f.close()
    _TOKENS._tokens.clear()


def sub(fake, **extra):
    base = dict(api_base=fake.base, token_url=fake.server.url("/api/v1/access_token"), limit=3, client_id="cid", client_secret="csecret",
                username="ncii_bot")
    base.update(extra)
    return R.settings_from_url("https://www.reddit.com/r/pics/", **base)


def poll(s, cursor, http=None):
    pages = list(R.poll(s, cursor, http or client()))
    return pages, [c for p in pages for c in p.candidates]


def test_urls_and_settings():
    s = R.settings_from_url("https://old.reddit.com/r/Pics/new/")
    assert s.subreddit == "Pics" and connector_for_url("https://www.reddit.com/r/x_y").kind == "reddit"
    with pytest.raises(SourceSettingsError, match="use https://www.reddit.com/r/NAME"):
        R.settings_from_url("https://www.reddit.com/user/x")
    s = R.settings_from_url("https://www.reddit.com/r/pics", client_id="a", client_secret="b", query="jane")
    red = s.to_dict(redact=True)
    assert red["client_secret"] == red["client_id"] == red["query"] == "***"
    assert "jane" not in repr(s) and "'b'" not in repr(s)
    assert s.agent is None
    assert R.settings_from_url("https://www.reddit.com/r/pics", username="me_1").agent.endswith("(by /u/me_1)")


def test_token_exchange_user_agent_and_listing(fake):
    pages, found = poll(sub(fake, first_pages=2), None)
    token_req = fake.server.hits("/api/v1/access_token")[0]
    assert token_req.method == "POST"
    listing = fake.server.hits("/r/pics/new")[0]
    assert listing.headers["user-agent"].startswith("python:ncii-monitor:") and "(by /u/ncii_bot)" in \
        listing.headers["user-agent"]
    # newest two pages (6 posts), handed out oldest first; url and preview source (unescaped)
    posts = [c.extra["post"] for c in found]
    assert posts == [p for p in [f"t3_{n:05x}" for n in range(4, 10)] for _ in (0, 1)]
    first = found[0]
    assert first.media_url == f"{fake.base}/i/4.jpg" and found[1].media_url == f"{fake.base}/p/4.jpg?width=640&s=abc"
    assert first.page_url == "https://www.reddit.com/r/pics/comments/00004/x/"
    assert found[4].extra["over_18"] is True and first.author is None and first.text is None
    # second poll: nothing new, the token is reused
    again, none = poll(sub(fake), json.loads(json.dumps(pages[-1].cursor)))
    assert none == [] and fake.issued == 1
    fake.posts[10] = link(10, fake.base)
    fake.posts[11] = link(11, fake.base)
    _, found = poll(sub(fake), again[-1].cursor, client())  # a restart resumes from the cursor
    assert sorted({c.extra["post"] for c in found}) == ["t3_0000a", "t3_0000b"]


def test_a_deleted_newest_post_does_not_break_the_cursor(fake):
    pages, _ = poll(sub(fake), None)
    del fake.posts[9]  # the post the mark names is gone: 'before=' would return nothing
    fake.posts[12] = link(12, fake.base)
    _, found = poll(sub(fake), pages[-1].cursor)
    assert {c.extra["post"] for c in found} == {"t3_0000c"}


def test_expired_token_is_renewed_once_and_bad_credentials_need_new_ones(fake):
    pages, _ = poll(sub(fake), None)
    fake.valid = set()  # the token expired early
    fake.posts[10] = link(10, fake.base)
    _, found = poll(sub(fake), pages[-1].cursor)
    assert found and fake.issued == 2
    _TOKENS._tokens.clear()
    with pytest.raises(AuthRequired, match="needs credentials"):
        poll(sub(fake, client_secret="wrong"), None)
    with pytest.raises(AuthRequired, match="needs an OAuth app"):
        poll(sub(fake, client_id="", client_secret=""), None)


def test_galleries_crossposts_videos_removed_and_self_posts(fake):
    b = fake.base
    fake.posts.clear()
    fake.posts[1] = link(1, b, is_gallery=True, url="https://www.reddit.com/gallery/1", post_hint=None,
                         preview=None,
                         gallery_data={"items": [{"media_id": "zz", "id": 1}, {"media_id": "aa", "id": 2},
                                                 {"media_id": "missing", "id": 3}, "junk"]},
                         media_metadata={"aa": {"status": "valid", "e": "Image", "m": "image/png",
                                                "s": {"u": f"{b}/g/aa.png?x=1&amp;y=2", "x": 10, "y": 10}},
                                         "zz": {"status": "valid", "e": "AnimatedImage",
                                                "s": {"gif": f"{b}/g/zz.gif", "mp4": f"{b}/g/zz.mp4"}},
                                         "bad": {"status": "failed"}})
    fake.posts[2] = link(2, b, url=f"{b}/r/pics/comments/1", post_hint="link", preview=None,
                         crosspost_parent_list=[link(77, b)])
    fake.posts[3] = link(3, b, is_video=True, url="https://v.redd.it/abc", post_hint="hosted:video", preview=None,
                         secure_media={"reddit_video": {"fallback_url": f"{b}/v/DASH_720.mp4"}})
    fake.posts[4] = link(4, b, removed_by_category="moderator")
    fake.posts[5] = link(5, b, url="https://www.reddit.com/r/pics/comments/5/", post_hint=None, preview=None,
                         is_self=True)
    _, found = poll(sub(fake, limit=10), None)
    got = [(c.extra["post"][-1], c.media_url.replace(b, ""), c.media_type.value) for c in found]
    assert got == [("1", "/g/zz.gif", "image"), ("1", "/g/aa.png?x=1&y=2", "image"),
                   ("2", "/i/77.jpg", "image"), ("2", "/p/77.jpg?width=640&s=abc", "image"),
                   ("3", "/v/DASH_720.mp4", "video")]
    assert found[2].extra["crosspost_of"] == "t3_0004d"


def test_search_within_the_subreddit_by_query_and_watch_terms(fake):
    fake.search_hits = {"jane doe": [2, 4], "jd_handle": [4, 6]}
    s = sub(fake, include_new=False, query="jane doe", use_watch_terms=True).with_terms(
        [SearchTerm(case_id=3, term_id=9, term="jd_handle")])
    pages, found = poll(s, None)
    assert [(c.extra["post"][-1], c.extra.get("case_id")) for c in found if c.key.endswith(":url")] == [
        ("2", None), ("4", None), ("4", 3), ("6", 3)]
    assert set(pages[-1].cursor) == {"q", "t9"} and not fake.server.hits("/r/pics/new")
    assert "jane" not in json.dumps(pages[-1].cursor)


def test_rate_limit_headers_slow_the_poll(fake):
    clock = FakeClock()
    fake.used = 97  # 3 left, below the margin of 5: wait for the reset (420 s) or end the poll
    with pytest.raises(Exception) as info:
        poll(sub(fake, first_pages=3), None, client(clock))
    assert info.value.code == "rate-limited" and "budget nearly spent" in str(info.value)
    fake.used = 97
    poll(sub(fake, first_pages=3, max_rate_wait=600), None, client(clock))
    assert any(400 <= s <= 420 for s in clock.sleeps)


def test_malformed_json_and_shapes(fake):
    poll(sub(fake), None)
    fake.script = [Reply(body=b"<html>oops</html>", content_type="text/html")]
    with pytest.raises(Exception, match="expected JSON"):
        poll(sub(fake), None)
    fake.script = [Reply(data={"kind": "Listing", "data": {"children": "nope"}})]
    with pytest.raises(SourceFormatError, match="children"):
        poll(sub(fake), None)
    fake.script = [Reply(data=[1, 2])]
    with pytest.raises(SourceFormatError, match="Listing"):
        poll(sub(fake), None)


def test_post_media_never_crashes_on_odd_shapes():
    for odd in [None, [], "x", {"is_gallery": True, "gallery_data": "x", "media_metadata": []},
                {"is_gallery": True, "gallery_data": {"items": [{"media_id": ["x"]}]}},
                {"is_video": True, "media": {"reddit_video": {"fallback_url": 5}}},
                {"preview": {"images": [{"source": None}]}, "url": "javascript:alert(1)"}]:
        assert post_media(odd) == [] or all(u.startswith("http") for u, _, _ in post_media(odd))


def test_finds_a_planted_altered_copy_through_the_pipeline(engine, fake):
    def plant(copy, decoy):
        fake.posts.clear()
        for n in (1, 2, 3):
            fake.posts[n] = link(n, fake.base, preview=None)
            fake.server.files[f"/i/{n}.jpg"] = decoy(100 + n)
        fake.posts[4] = link(4, fake.base, is_gallery=True, url="https://www.reddit.com/gallery/4", post_hint=None,
                             preview=None, gallery_data={"items": [{"media_id": "m1"}, {"media_id": "m2"}]},
                             media_metadata={"m1": {"status": "valid", "e": "Image",
                                                    "s": {"u": f"{fake.base}/g/m1.jpg"}},
                                             "m2": {"status": "valid", "e": "Image",
                                                    "s": {"u": f"{fake.base}/g/m2.jpg"}}})
        fake.server.files["/g/m1.jpg"] = decoy(7)
        fake.server.files["/g/m2.jpg"] = copy
    ref, first, second = end_to_end(engine, "https://www.reddit.com/r/pics", "reddit", plant,
                                    api_base=fake.base, token_url=fake.server.url("/api/v1/access_token"),
                                    client_id="cid", client_secret="csecret", username="ncii_bot")
    assert first.ok and first.failed == 0, first.error or first.errors
    assert [m["url"] for m in first.match_list] == [f"{fake.base}/g/m2.jpg"]
    assert first.match_list[0]["case"] == ref
    assert second.ok and second.new == 0


def test_searches_only_without_terms_still_yields_a_page(fake):
    pages, found = poll(sub(fake, include_new=False, use_watch_terms=True), {"t3": [1.0, "x"]})
    assert found == [] and len(pages) == 1 and "no watch terms" in pages[0].notes[0]
    assert not fake.server.requests


def test_429_with_retry_after(fake):
    from connectors.errors import RateLimited
    poll(sub(fake), None)  # a token is cached
    clock = FakeClock()
    fake.script = [Reply(429, {"message": "Too Many Requests"}, headers={"Retry-After": "4"})]
    _, found = poll(sub(fake), None, client(clock))
    assert found and 4.0 in clock.sleeps
    fake.script = [Reply(429, {"message": "Too Many Requests"}, headers={"Retry-After": "3600"})]
    with pytest.raises(RateLimited):
        poll(sub(fake), None, client(FakeClock()))
