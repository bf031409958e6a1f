from __future__ import annotations

import pytest

from connectors.errors import SourceSettingsError
from connectors.registry import get_connector

from .conftest import Reply

G = get_connector("gallery")


def listing(items: list[int], next_page: str | None) -> bytes:
    cells = "".join(
        f'<li class="item"><a href="/view/{i}"><img class="thumb" data-src="/t/{i}.jpg" '
        f'src="/spacer.gif" alt="item {i}"></a></li><li class="ad"><img src="/ad.png"></li>'
        for i in items)
    nxt = f'<a class="next" href="{next_page}">older</a>' if next_page else ""
    return f"<html><body><ul>{cells}</ul>{nxt}</body></html>".encode()


@pytest.fixture
def board(site):
    state = {"items": list(range(10, 0, -1))}  # newest first, 3 per page

    def page(n):
        def handler(_req):
            items = state["items"][(n - 1) * 3 : n * 3]
            more = len(state["items"]) > n * 3
            return Reply(body=listing(items, f"/list?page={n + 1}" if more else None),
                         content_type="text/html")
        return handler

    site.add("/list", page(1))
    for n in range(1, 10):
        site.add(f"/list?page={n}", page(n))
    site.state = state
    return site


def settings_for(site, **options):
    return G.settings_from_url(site.url("/list"), image_selector="li.item img.thumb",
                               image_attributes="data-src,src", next_selector="a.next", **options)


def urls(pages):
    return [c.media_url.rsplit("/", 1)[-1] for p in pages for c in p.candidates]


def test_walks_pages_and_stops_when_caught_up(board, client):
    settings = settings_for(board, max_pages=10)
    pages = list(G.poll(settings, None, client))
    assert urls(pages) == [f"{i}.jpg" for i in range(10, 0, -1)]
    assert len(pages) == 4
    first = pages[0].candidates[0]
    assert first.page_url == board.url("/list") and first.text == "item 10"
    assert first.source_kind == "gallery"

    board.state["items"] = [12, 11] + board.state["items"]
    pages = list(G.poll(settings, pages[-1].cursor, client))
    assert urls(pages) == ["12.jpg", "11.jpg"]
    # page 1 (12, 11, 10) had new items, page 2 (9, 8, 7) had nothing new: caught up
    assert len(pages) == 2 and pages[-1].cursor["resume"] is None


def test_max_pages_resumes_next_poll(board, client):
    settings = settings_for(board, max_pages=2)
    pages = list(G.poll(settings, None, client))
    assert urls(pages) == ["10.jpg", "9.jpg", "8.jpg", "7.jpg", "6.jpg", "5.jpg"]
    assert pages[-1].cursor["resume"] == board.url("/list?page=3")
    pages = list(G.poll(settings, pages[-1].cursor, client))
    assert urls(pages) == ["4.jpg", "3.jpg", "2.jpg", "1.jpg"]


def test_crash_between_pages_loses_nothing(board, client):
    settings = settings_for(board, max_pages=10)
    pages = list(G.poll(settings, None, client))
    again = list(G.poll(settings, pages[0].cursor, client))  # only page 1 was committed
    assert urls(pages[:1]) + urls(again) == urls(pages)


def test_next_links_stay_on_the_site(site, client):
    site.add("/list", Reply(body=b'<img src="/a.jpg"><a rel="next" href="http://other.test/x">n</a>',
                            content_type="text/html"))
    pages = list(G.poll(G.settings_from_url(site.url("/list")), None, client))
    assert urls(pages) == ["a.jpg"] and pages[-1].cursor["resume"] is None


def test_selector_matching_nothing_is_noted(site, client):
    site.add("/list", Reply(body=b"<p>nothing</p>", content_type="text/html"))
    pages = list(G.poll(G.settings_from_url(site.url("/list"), image_selector="img.photo"),
                        None, client))
    assert "no image matched 'img.photo'" in pages[0].notes[0]


@pytest.mark.parametrize("options, setting", [
    ({"image_selector": "li[class="}, "image_selector"),
    ({"next_selector": "a:::next"}, "next_selector"),
    ({"max_pages": 0}, "max_pages"),
    ({"image_attributes": ""}, "image_attributes"),
])
def test_bad_settings(options, setting):
    with pytest.raises(SourceSettingsError) as info:
        G.settings_from_url("https://site.test/list", **options)
    assert info.value.setting == setting
    assert "gallery source: setting" in str(info.value)
