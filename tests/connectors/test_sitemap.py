from __future__ import annotations

import gzip

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from connectors.errors import SourceFormatError
from connectors.registry import get_connector
from connectors.sitemap import parse_sitemap

from .conftest import Reply

SM = get_connector("sitemap")
NS = ('xmlns="http://www.sitemaps.org/schemas/sitemap/0.9" '
      'xmlns:image="http://www.google.com/schemas/sitemap-image/1.1" '
      'xmlns:video="http://www.google.com/schemas/sitemap-video/1.1"')


def urlset(entries: list[tuple[str, str | None, list[str]]]) -> bytes:
    parts = []
    for loc, lastmod, images in entries:
        imgs = "".join(f"<image:image><image:loc>{i}</image:loc>"
                       f"<image:caption>caption of {i.rsplit('/', 1)[-1]}</image:caption>"
                       f"</image:image>" for i in images)
        mod = f"<lastmod>{lastmod}</lastmod>" if lastmod else ""
        parts.append(f"<url><loc>{loc}</loc>{mod}{imgs}</url>")
    return f'<?xml version="1.0" encoding="UTF-8"?><urlset {NS}>{"".join(parts)}</urlset>'.encode()


def index(children: list[tuple[str, str]]) -> bytes:
    body = "".join(f"<sitemap><loc>{loc}</loc><lastmod>{mod}</lastmod></sitemap>"
                   for loc, mod in children)
    return (f'<?xml version="1.0"?><sitemapindex xmlns="http://www.sitemaps.org/schemas/'
            f'sitemap/0.9">{body}</sitemapindex>').encode()


@pytest.fixture
def shop(site):
    u = site.url
    state = {
        "index": [(u("/sm-posts.xml"), "2026-01-02"), (u("/sm-pages.xml.gz"), "2026-01-01")],
        "posts": [
            (u("/post/2"), "2026-01-02T08:00:00Z", [u("/img/2a.jpg"), u("/img/2b.jpg")]),
            (u("/post/1"), "2026-01-01T08:00:00Z", [u("/img/1.jpg")]),
        ],
        "pages": [(u("/about"), "2025-12-01", []), (u("/img/direct.png"), None, [])],
    }
    site.add("/sitemap_index.xml", lambda r: Reply(body=index(state["index"]),
                                                   content_type="application/xml"))
    site.add("/sm-posts.xml", lambda r: Reply(body=urlset(state["posts"]),
                                              content_type="application/xml"))
    site.add("/sm-pages.xml.gz", lambda r: Reply(body=gzip.compress(urlset(state["pages"])),
                                                 content_type="application/x-gzip"))
    site.state = state
    return site


def poll(settings, cursor, client):
    pages = list(SM.poll(settings, cursor, client))
    return pages, [c for p in pages for c in p.candidates]


def test_index_gzip_images_and_lastmod_cursor(shop, client):
    u = shop.url
    settings = SM.settings_from_url(u("/sitemap_index.xml"))
    pages, cands = poll(settings, None, client)
    # undated first, then oldest lastmod first
    assert [c.media_url for c in cands] == [u("/img/direct.png"), u("/img/1.jpg"),
                                           u("/img/2a.jpg"), u("/img/2b.jpg")]
    one = cands[1]
    assert one.page_url == u("/post/1") and one.text == "caption of 1.jpg"
    assert one.posted_at.isoformat() == "2026-01-01T08:00:00+00:00"
    assert cands[0].page_url is None
    cursor = pages[-1].cursor
    assert cursor["watermark"][1] == u("/post/2")

    fetched_before = shop.hits("/sm-posts.xml")
    pages, cands = poll(settings, cursor, client)
    assert cands == []
    assert shop.hits("/sm-posts.xml") == fetched_before  # unchanged child: not fetched
    cursor = pages[-1].cursor

    shop.state["posts"].insert(0, (u("/post/3"), "2026-01-03T08:00:00Z", [u("/img/3.jpg")]))
    shop.state["index"][0] = (u("/sm-posts.xml"), "2026-01-03")
    pages, cands = poll(settings, cursor, client)
    assert [c.media_url for c in cands] == [u("/img/3.jpg")]


def test_paging_with_crash(shop, client):
    settings = SM.settings_from_url(shop.url("/sitemap_index.xml"), page_size=1)
    pages, cands = poll(settings, None, client)
    assert [len(p.candidates) for p in pages] == [1, 1, 2]  # an entry's images stay together
    _, rest = poll(settings, pages[0].cursor, client)
    assert [c.key for c in list(pages[0].candidates) + rest] == [c.key for c in cands]


def test_page_images_and_robots_discovery(site, client, png):
    u = site.url
    site.add("/robots.txt", Reply(body=f"User-agent: *\nAllow: /\nSitemap: {u('/sm.xml')}\n"
                                  .encode(), content_type="text/plain"))
    site.add("/sm.xml", Reply(body=urlset([(u("/gallery/1"), "2026-01-01", []),
                                           (u("/gallery/2"), "2026-01-02", [])]),
                              content_type="text/xml"))
    site.add("/gallery/1", Reply(body=b'<html><body><img src="/p/1.jpg" alt="one"></body></html>',
                                 content_type="text/html"))
    site.add("/gallery/2", Reply(404, body=b"gone", content_type="text/plain"))
    settings = SM.settings_from_url(u("/"), page_images=True)
    pages, cands = poll(settings, None, client)
    assert [(c.media_url, c.page_url, c.text) for c in cands] == [
        (u("/p/1.jpg"), u("/gallery/1"), "one")]
    assert any("page skipped" in n and "HTTP 404" in n for p in pages for n in p.notes)


def test_page_budget_resumes_next_poll(site, client):
    u = site.url
    site.add("/sm.xml", Reply(body=urlset([(u(f"/g/{i}"), f"2026-01-0{i}", []) for i in (1, 2, 3)]),
                              content_type="text/xml"))
    for i in (1, 2, 3):
        site.add(f"/g/{i}", Reply(body=f'<img src="/p/{i}.jpg">'.encode(),
                                  content_type="text/html"))
    settings = SM.settings_from_url(u("/sm.xml"), page_images=True, max_pages=2)
    pages, cands = poll(settings, None, client)
    assert [c.media_url for c in cands] == [u("/p/1.jpg"), u("/p/2.jpg")]
    pages, cands = poll(settings, pages[-1].cursor, client)
    assert [c.media_url for c in cands] == [u("/p/3.jpg")]


def test_text_sitemap_and_since(site, client):
    site.add("/sitemap.txt", Reply(body=f"{site.url('/a.jpg')}\n{site.url('/b')}\n".encode(),
                                   content_type="text/plain"))
    pages, cands = poll(SM.settings_from_url(site.url("/sitemap.txt")), None, client)
    assert [c.media_url for c in cands] == [site.url("/a.jpg")]
    _, again = poll(SM.settings_from_url(site.url("/sitemap.txt")), pages[-1].cursor, client)
    assert again == []


def test_gzip_bomb_and_malformed(site, client):
    site.add("/bomb.xml.gz", Reply(body=gzip.compress(b"<" + b" " * 60_000_000),
                                   content_type="application/gzip"))
    with pytest.raises(SourceFormatError, match="decompresses to more than"):
        list(SM.poll(SM.settings_from_url(site.url("/bomb.xml.gz")), None, client))
    site.add("/bad.xml", Reply(body=b"<?xml version='1.0'?><urlset><url>", content_type="text/xml"))
    with pytest.raises(SourceFormatError, match="malformed XML"):
        list(SM.poll(SM.settings_from_url(site.url("/bad.xml")), None, client))
    site.add("/rss.xml", Reply(body=b"<rss><channel/></rss>", content_type="text/xml"))
    with pytest.raises(SourceFormatError, match=r"not a sitemap \(root element <rss>\)"):
        list(SM.poll(SM.settings_from_url(site.url("/rss.xml")), None, client))


def test_broken_child_is_noted_and_retried(shop, client):
    shop.state["index"].append((shop.url("/missing.xml"), "2026-01-01"))
    settings = SM.settings_from_url(shop.url("/sitemap_index.xml"))
    pages, cands = poll(settings, None, client)
    assert len(cands) == 4
    assert any("missing.xml" in n for n in pages[0].notes)
    assert shop.url("/missing.xml") not in pages[-1].cursor["children"]


def test_video_extension():
    doc = (f'<urlset {NS}><url><loc>http://e.test/v</loc><video:video>'
           "<video:thumbnail_loc>http://e.test/t.jpg</video:thumbnail_loc>"
           "<video:title>clip</video:title>"
           "<video:content_loc>http://e.test/v.mp4</video:content_loc>"
           "<video:publication_date>2026-01-01T00:00:00+00:00</video:publication_date>"
           "</video:video></url></urlset>").encode()
    sm = parse_sitemap(doc, "http://e.test/sm.xml")
    media = sm.entries[0].media
    assert [(m.url, m.media_type, m.text) for m in media] == [
        ("http://e.test/v.mp4", "video", "clip"), ("http://e.test/t.jpg", "image", "clip")]
    assert sm.entries[0].published is not None


_SAMPLES = [urlset([("http://e.test/a", "2026-01-01", ["http://e.test/a.jpg"]),
                    ("http://e.test/b", None, [])]),
            index([("http://e.test/s1.xml", "2026-01-01")])]


@st.composite
def mutated(draw):
    doc = draw(st.sampled_from(_SAMPLES))
    for _ in range(draw(st.integers(1, 5))):
        if not doc:
            break
        i = draw(st.integers(0, len(doc) - 1))
        op = draw(st.sampled_from(["flip", "cut", "insert"]))
        if op == "flip":
            doc = doc[:i] + bytes([draw(st.integers(0, 255))]) + doc[i + 1:]
        elif op == "cut":
            doc = doc[:i] + doc[draw(st.integers(i, len(doc))):]
        else:
            doc = doc[:i] + draw(st.sampled_from(
                [b"<", b"&", b"<lastmod>2026-13-45</lastmod>", b"<loc>javascript:x</loc>",
                 b"<loc></loc>", b"<!DOCTYPE a [<!ENTITY x 'y'>]>", b"\xff\xfe", b"\n"])) + doc[i:]
    return doc


def _check(doc: bytes) -> None:
    try:
        sm = parse_sitemap(doc, "http://e.test/sm.xml")
    except SourceFormatError as exc:
        assert str(exc).startswith("http://e.test/sm.xml: ")
        return
    for e in sm.entries:
        assert e.loc.startswith(("http://", "https://"))
        assert e.lastmod is None or e.lastmod.tzinfo is not None


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_fuzz_mutated_sitemaps(doc):
    _check(doc)


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=600))
def test_fuzz_random_bytes(doc):
    _check(doc)


def test_untrusted_index_lastmod_revisits_children(shop, client):
    u = shop.url
    etag = {"ETag": '"idx"'}

    def index_handler(req):
        if req.headers.get("If-None-Match") == '"idx"':
            return Reply(304, content_type=None, headers=etag)
        return Reply(body=index(shop.state["index"]), content_type="application/xml",
                     headers=etag)

    shop.add("/sitemap_index.xml", index_handler)
    settings = SM.settings_from_url(u("/sitemap_index.xml"), trust_index_lastmod=False)
    pages, _ = poll(settings, None, client)
    shop.state["posts"].insert(0, (u("/post/9"), "2026-01-09T08:00:00Z", [u("/img/9.jpg")]))
    _, cands = poll(settings, pages[-1].cursor, client)  # index 304, child changed anyway
    assert [c.media_url for c in cands] == [u("/img/9.jpg")]
