"""The Lemmy connector against a fake Lemmy API v3 on loopback: post/list with page numbers and
page_cursor, image URLs and thumbnails, videos, deleted/removed posts, posts without media,
X-RateLimit headers, 401 for private instances, malformed JSON."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from connectors.base import MediaType
from connectors.errors import AuthRequired, SourceFormatError, SourceSettingsError
from connectors.registry import connector_for_url, get_connector

from .platforms import ApiServer, Reply, end_to_end
from .test_mastodon import client

L = get_connector("lemmy")
T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def view(n: int, base: str, **over) -> dict:
    post = {"id": n, "name": "never kept", "url": f"{base}/pictrs/image/{n}.jpeg",
            "url_content_type": "image/jpeg", "thumbnail_url": f"{base}/pictrs/image/{n}-t.webp",
            "published": (T0 + timedelta(minutes=n)).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "ap_id": f"{base}/post/{n}", "deleted": False, "removed": False, "nsfw": n == 2}
    post.update(over)
    return {"post": post, "creator": {"name": "someone"}, "community": {"name": "pics"}}


class FakeLemmy:
    def __init__(self, n: int = 7, cursor_paging: bool = False) -> None:
        self.posts: dict[int, dict] = {}
        self.token: str | None = None
        self.cursor_paging = cursor_paging
        self.script: list[Reply] = []
        self.server = ApiServer(self.handle)
        self.base = self.server.base
        for i in range(1, n + 1):
            self.posts[i] = view(i, self.base)

    def handle(self, req):
        if self.script:
            return self.script.pop(0)
        if self.token and req.headers.get("authorization") != f"Bearer {self.token}":
            return Reply(401, {"error": "not_logged_in"})
        if req.path != "/api/v3/post/list":
            return Reply(404, {"error": "couldnt_find_object"})
        assert req.query["community_name"] == "pics" and req.query["sort"] == "New"
        limit = int(req.query["limit"])
        ids = sorted(self.posts, reverse=True)
        if "page_cursor" in req.query:
            start = int(req.query["page_cursor"][2:])
        else:
            start = (int(req.query.get("page", 1)) - 1) * limit
        chunk = ids[start:start + limit]
        data = {"posts": [self.posts[i] for i in chunk]}
        if self.cursor_paging and start + limit < len(ids):
            data["next_page"] = f"Pa{start + limit}"
        return Reply(data=data, headers={"X-RateLimit-Remaining": "100", "X-RateLimit-Reset": "60"})

    def close(self):
        self.server.close()


@pytest.fixture(params=[False, True], ids=["pages", "page_cursor"])
def fake(request):
    f = FakeLemmy(cursor_paging=request.param)
    yield f
    f.close()


def community(fake, **extra):
    return L.settings_from_url("https://lemmy.example/c/pics", **{"api_base": f"{fake.base}/api/v3", "limit": 3,
                                                                  **extra})


def poll(s, cursor, http=None):
    pages = list(L.poll(s, cursor, http or client()))
    return pages, [c for p in pages for c in p.candidates]


def test_urls():
    s = L.settings_from_url("https://lemmy.example/c/pics@other.example")
    assert s.community == "pics@other.example" and s.base == "https://lemmy.example/api/v3"
    assert connector_for_url("https://lemmy.example/c/pics").kind == "lemmy"
    with pytest.raises(SourceSettingsError, match="use https://HOST/c/NAME"):
        L.settings_from_url("https://lemmy.example/u/someone")


def test_first_poll_bounded_then_only_new_and_restart(fake):
    s = community(fake, first_pages=2)
    pages, found = poll(s, None)
    ids = [c.extra["post_id"] for c in found]
    assert ids == [str(n) for n in range(2, 8) for _ in (0, 1)]  # picture and thumbnail each
    c, t = found[0], found[1]
    assert c.media_url == f"{fake.base}/pictrs/image/2.jpeg" and t.media_url.endswith("2-t.webp")
    assert c.page_url == f"{fake.base}/post/2" and c.extra["nsfw"] is True
    assert c.posted_at == T0 + timedelta(minutes=2) and c.key == "lemmy:127.0.0.1:post:2:url"
    cursor = json.loads(json.dumps(pages[-1].cursor))
    again, none = poll(s, cursor)
    assert none == [] and again[-1].cursor == cursor
    for n in (8, 9, 10, 11):
        fake.posts[n] = view(n, fake.base)
    _, found = poll(s, cursor, client())
    assert sorted({int(c.extra["post_id"]) for c in found}) == [8, 9, 10, 11]


def test_media_kinds_deleted_and_text_posts(fake):
    b = fake.base
    fake.posts.clear()
    fake.posts[1] = view(1, b, url=None, thumbnail_url=None)  # a text post
    fake.posts[2] = view(2, b, url=f"{b}/clip.mp4", url_content_type="video/mp4", thumbnail_url=None)
    fake.posts[3] = view(3, b, deleted=True)
    fake.posts[4] = view(4, b, removed=True)
    fake.posts[5] = view(5, b, url="https://news.example/story", url_content_type="text/html")
    fake.posts[6] = {"post": "junk"}
    _, found = poll(community(fake, limit=10), None)
    assert [(c.media_url.replace(b, ""), c.media_type.value) for c in found] == [
        ("/clip.mp4", "video"), ("/pictrs/image/5-t.webp", "image")]
    assert found[0].media_type is MediaType.VIDEO


def test_private_instance_needs_a_token(fake):
    fake.token = "jwt-1"
    with pytest.raises(AuthRequired, match="needs credentials"):
        poll(community(fake), None)
    _, found = poll(community(fake, access_token="jwt-1"), None)
    assert found


def test_malformed_json(fake):
    fake.script = [Reply(body=b'{"posts": [')]
    with pytest.raises(SourceFormatError, match="invalid JSON"):
        poll(community(fake), None)


def test_finds_a_planted_altered_copy_through_the_pipeline(engine, fake):
    def plant(copy, decoy):
        for n in fake.posts:
            fake.server.files[f"/pictrs/image/{n}.jpeg"] = decoy(100 + n)
            fake.server.files[f"/pictrs/image/{n}-t.webp"] = decoy(200 + n)
        fake.posts[8] = view(8, fake.base)
        fake.server.files["/pictrs/image/8.jpeg"] = copy
        fake.server.files["/pictrs/image/8-t.webp"] = decoy(300)
    ref, first, second = end_to_end(engine, "https://lemmy.example/c/pics", "lemmy", plant,
                                    api_base=f"{fake.base}/api/v3", limit=3, first_pages=5)
    assert first.ok and first.failed == 0, first.error or first.errors
    assert [m["url"] for m in first.match_list] == [f"{fake.base}/pictrs/image/8.jpeg"]
    assert first.match_list[0]["case"] == ref
    assert second.ok and second.new == 0


def test_429_and_rate_limit_headers(fake):
    from connectors.clock import FakeClock
    from connectors.errors import RateLimited
    clock = FakeClock()
    fake.script = [Reply(429, {"error": "rate_limit_error"}, headers={"Retry-After": "3"})]
    _, found = poll(community(fake), None, client(clock))
    assert found and 3.0 in clock.sleeps
    fake.script = [Reply(429, {"error": "rate_limit_error"}, headers={"Retry-After": "1000"})]
    with pytest.raises(RateLimited):
        poll(community(fake), None, client(FakeClock()))
    clock = FakeClock()
    fake.script = [Reply(data={"posts": [fake.posts[7]], "next_page": "Pa1"},
                         headers={"X-RateLimit-Remaining": "1", "X-RateLimit-Reset": "12"})]
    poll(community(fake, first_pages=2), None, client(clock))
    assert 12.0 in clock.sleeps
