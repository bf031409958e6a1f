from __future__ import annotations

from datetime import datetime, timezone

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from connectors.base import MediaType
from connectors.errors import SourceFormatError, SourceSettingsError
from connectors.registry import get_connector
from connectors.rss import RssSettings, parse_feed

from . import feeds
from .conftest import Reply

RSS = get_connector("rss")
B = "http://example.test"


def poll_all(settings, cursor, client):
    pages = list(RSS.poll(settings, cursor, client))
    return pages, [c for p in pages for c in p.candidates]


# -- parsing ------------------------------------------------------------------------------------


def test_rss_media_preferences_and_html_images():
    feed = parse_feed(feeds.RSS.format(base=B).encode(), f"{B}/feed.xml")
    assert feed.title == "Example board" and feed.link == f"{B}/board/"
    by_id = {e.id: e for e in feed.entries}
    urls = {i: [m.url for m in e.media] for i, e in by_id.items()}
    assert urls["post-3"] == [f"{B}/board/img/3a.png", f"{B}/board/img/3b-large.png"]
    assert urls["post-2"] == [f"{B}/media/2-full.jpg"]  # content preferred to thumbnail
    assert urls["post-1"] == [f"{B}/media/1.png"]  # audio enclosure dropped
    assert urls["post-0"] == [f"{B}/media/0-thumb.png"]  # thumbnail when nothing else
    assert by_id["post-3"].author == "poster3"
    assert by_id["post-1"].author == "one@example.invalid (poster1)"
    assert by_id["post-3"].published == datetime(2026, 1, 3, 10, tzinfo=timezone.utc)
    assert by_id["post-2"].media[0].text == "full size two"
    assert by_id["post-3"].media[0].text == "three a"


def test_atom_enclosures_relative_urls_and_xhtml():
    feed = parse_feed(feeds.ATOM.format(base=B).encode(), f"{B}/atom.xml")
    by_id = {e.id: e for e in feed.entries}
    b, a, x = by_id["urn:example:b"], by_id["urn:example:a"], by_id["urn:example:x"]
    assert b.link == f"{B}/blog/posts/b.html"
    assert [m.url for m in b.media] == [f"{B}/files/b.jpg"]
    assert b.author == "alice"
    assert [m.url for m in a.media] == [f"{B}/blog/posts/pics/a.png"]  # against the entry link
    assert a.published == datetime(2026, 1, 4, 10, tzinfo=timezone.utc)
    assert [m.url for m in x.media] == [f"{B}/blog/posts/pics/x.gif"]


@pytest.mark.parametrize(
    "doc, problem",
    [
        (b"<rss><channel><item></channel></rss>", "malformed XML"),
        (b"", "empty document"),
        (b"<html><body>hi</body></html>", "not an RSS or Atom feed (root element <html>)"),
        (b"<rss version='2.0'></rss>", "without a <channel>"),
        (feeds.BOMB.encode(), "unsafe XML refused"),
        (feeds.EXTERNAL.encode(), "unsafe XML refused"),
    ],
)
def test_bad_feeds_raise_clear_errors(doc, problem):
    with pytest.raises(SourceFormatError) as info:
        parse_feed(doc, f"{B}/feed.xml")
    assert problem in str(info.value)
    assert str(info.value).startswith(f"{B}/feed.xml: ")


def test_external_dtd_is_not_fetched():
    feed = parse_feed(feeds.EXTERNAL_DTD.encode(), f"{B}/feed.xml")  # guard: no connection
    assert feed.title == "t"


# -- polling ------------------------------------------------------------------------------------


@pytest.fixture
def board(site):
    """A feed served with an ETag that changes with its content."""
    state = {"items": [1, 2, 3], "version": 1}

    def handler(req):
        etag = f'"v{state["version"]}"'
        if req.headers.get("If-None-Match") == etag:
            return Reply(304, content_type=None, headers={"ETag": etag})
        body = feeds.rss_with(state["items"], site.url("").rstrip("/"))
        return Reply(body=body.encode(), content_type="application/rss+xml",
                     headers={"ETag": etag})

    site.add("/feed.xml", handler)
    site.state = state
    return site


def test_poll_then_nothing_new_then_only_new(board, client):
    settings = RSS.settings_from_url(board.url("/feed.xml"))
    pages, cands = poll_all(settings, None, client)
    assert [c.media_url for c in cands] == [board.url(f"/i/{n}.png") for n in (1, 2, 3)]
    first = cands[0]
    assert first.page_url == board.url("/p/1") and first.source_kind == "rss"
    assert first.media_type is MediaType.IMAGE and first.text == "Post 1"
    assert first.posted_at == datetime(2026, 1, 1, 10, tzinfo=timezone.utc)
    cursor = pages[-1].cursor
    assert cursor["validators"][settings.url]["etag"] == '"v1"'
    assert cursor["newest"]["id"] == "g3"

    pages, cands = poll_all(settings, cursor, client)  # 304
    assert cands == [] and len(pages) == 1
    assert board.log[-1].headers["If-None-Match"] == '"v1"'
    cursor = pages[-1].cursor

    board.state.update(items=[2, 3, 4, 5], version=2)
    pages, cands = poll_all(settings, cursor, client)
    assert [c.media_url for c in cands] == [board.url("/i/4.png"), board.url("/i/5.png")]
    cursor = pages[-1].cursor

    board.state.update(version=3)  # same entries, new ETag: parsed, nothing new
    pages, cands = poll_all(settings, cursor, client)
    assert cands == []


def test_pages_and_their_cursors_survive_a_crash(board, client):
    board.state.update(items=[1, 2, 3, 4, 5])
    settings = RSS.settings_from_url(board.url("/feed.xml"), page_size="2")
    pages, cands = poll_all(settings, None, client)
    assert [len(p.candidates) for p in pages] == [2, 2, 1]
    # crash after committing only the first page: the next poll yields the rest, exactly once
    _, rest = poll_all(settings, pages[0].cursor, client)
    assert [c.key for c in pages[0].candidates] + [c.key for c in rest] == [c.key for c in cands]
    # the validators are only committed with the last page
    assert pages[0].cursor["validators"] == {}
    assert pages[-1].cursor["validators"]


def test_feed_discovery_from_an_html_page(site, client, png):
    base = site.url("").rstrip("/")
    site.add("/blog/", Reply(body=b'<html><head><link rel="alternate" type="application/atom+xml"'
                                  b' href="/atom.xml"></head><body></body></html>',
                             content_type="text/html"))
    site.add("/atom.xml", Reply(body=feeds.ATOM.format(base=base).encode(),
                                content_type="application/atom+xml"))
    settings = RSS.settings_from_url(site.url("/blog/"))
    pages, cands = poll_all(settings, None, client)
    assert {c.media_url for c in cands} == {
        f"{base}/files/b.jpg", f"{base}/blog/posts/pics/a.png", f"{base}/blog/posts/pics/x.gif"}
    assert pages[-1].cursor["feed_url"] == site.url("/atom.xml")


def test_malformed_feed_from_the_server(site, client):
    site.add("/feed.xml", Reply(body=b"<?xml version='1.0'?><rss><channel><item>",
                                content_type="application/rss+xml"))
    settings = RSS.settings_from_url(site.url("/feed.xml"))
    with pytest.raises(SourceFormatError, match="malformed XML"):
        list(RSS.poll(settings, None, client))


def test_html_page_without_a_feed(site, client):
    site.add("/x", Reply(body=b"<html><body>no feed</body></html>", content_type="text/html"))
    with pytest.raises(SourceFormatError, match="advertises no RSS/Atom feed"):
        list(RSS.poll(RSS.settings_from_url(site.url("/x")), None, client))


def test_fetch_media_sniffs_the_bytes(board, client, png):
    board.add("/i/1.png", Reply(body=png, content_type="image/png"))
    settings = RSS.settings_from_url(board.url("/feed.xml"))
    _, cands = poll_all(settings, None, client)
    media = RSS.fetch_media(cands[0], settings, client)
    assert media.content == png and media.mime == "image/png"
    assert board.log[-1].headers["Referer"] == board.url("/p/1")


# -- settings -----------------------------------------------------------------------------------


def test_settings_from_url_forms():
    assert RSS.settings_from_url("feed://example.com/rss").url == "https://example.com/rss"
    assert RSS.settings_from_url("feed:https://example.com/a.xml").url == "https://example.com/a.xml"
    s = RSS.settings_from_url("https://example.com/feed", include_video="no", page_size="5")
    assert s.include_video is False and s.page_size == 5
    assert RssSettings.from_dict(s.to_dict()) == s


@pytest.mark.parametrize(
    "url, options, setting",
    [
        ("ftp://example.com/feed", {}, "url"),
        ("https://example.com/feed", {"page_size": 0}, "page_size"),
        ("https://example.com/feed", {"max_entries": "many"}, "max_entries"),
        ("https://example.com/feed", {"colour": "red"}, "colour"),
    ],
)
def test_bad_settings_name_the_setting(url, options, setting):
    with pytest.raises(SourceSettingsError) as info:
        RSS.settings_from_url(url, **options)
    assert info.value.setting == setting
    assert f"setting {setting!r}" in str(info.value) or setting == "url"


# -- fuzzing -------------------------------------------------------------------------------------

_SAMPLES = [feeds.RSS.format(base=B), feeds.ATOM.format(base=B), feeds.rss_with([1, 2], B)]


@st.composite
def mutated_feeds(draw):
    doc = draw(st.sampled_from(_SAMPLES)).encode()
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(["flip", "cut", "insert", "dup"]))
        if not doc:
            break
        i = draw(st.integers(0, len(doc) - 1))
        if op == "flip":
            doc = doc[:i] + bytes([draw(st.integers(0, 255))]) + doc[i + 1:]
        elif op == "cut":
            j = draw(st.integers(i, min(len(doc), i + 200)))
            doc = doc[:i] + doc[j:]
        elif op == "insert":
            doc = doc[:i] + draw(st.sampled_from(
                [b"<", b">", b"&", b"]]>", b"<img src='", b"<!DOCTYPE x [<!ENTITY a 'b'>]>",
                 b"\x00", b"<media:content url='javascript:x'/>", b"&#0;", b"<item>",
                 b"<enclosure url='//x'/>", b"<pubDate>99 Foo 99999 99:99</pubDate>",
                 b"xml:base='::::'"])) + doc[i:]
        else:
            j = draw(st.integers(i, min(len(doc), i + 300)))
            doc = doc[:j] + doc[i:j] + doc[j:]
    return doc


def _check(doc: bytes) -> None:
    try:
        feed = parse_feed(doc, f"{B}/feed.xml")
    except SourceFormatError as exc:
        assert str(exc).startswith(f"{B}/feed.xml: ")
        return
    for entry in feed.entries:
        assert entry.id
        assert entry.published is None or entry.published.tzinfo is not None
        for m in entry.media:
            assert m.url.startswith(("http://", "https://"))


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_feeds())
def test_fuzz_mutated_feeds(doc):
    _check(doc)


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=800))
def test_fuzz_random_bytes(doc):
    _check(doc)


@settings(max_examples=150, deadline=None)
@given(st.text(alphabet="<>/=\"' &;!?[]abcrsitemlnkdgupo:#x0123456789\n", max_size=400))
def test_fuzz_random_markup(doc):
    _check(("<rss><channel>" + doc).encode())
