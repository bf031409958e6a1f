from __future__ import annotations

import io
from pathlib import Path

import pytest
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from connectors.registry import connector_for_url, get_connector

from .conftest import make_image

W = get_connector("warc")


def write_records(path: Path, records: list[tuple], gz: bool, append: bool = False) -> None:
    with open(path, "ab" if append else "wb") as fh:
        writer = WARCWriter(fh, gzip=gz)
        for kind, uri, status, ctype, body, extra in records:
            if kind == "request":
                http = StatusAndHeaders(f"GET {uri} HTTP/1.1", extra, is_http_request=True)
                rec = writer.create_warc_record(uri, "request", payload=io.BytesIO(b""),
                                                http_headers=http)
            elif kind == "response":
                http = StatusAndHeaders(f"{status} X", [("Content-Type", ctype)],
                                        protocol="HTTP/1.1")
                rec = writer.create_warc_record(uri, "response", payload=io.BytesIO(body),
                                                http_headers=http)
            elif kind == "metadata":
                rec = writer.create_warc_record(uri, "metadata", payload=io.BytesIO(body),
                                                warc_content_type="text/anvl")
            else:
                rec = writer.create_warc_record(uri, "resource", payload=io.BytesIO(body),
                                                warc_content_type=ctype)
            writer.write_record(rec)


@pytest.fixture(params=[True, False], ids=["gz", "plain"])
def archive(request, tmp_path):
    gz = request.param
    path = tmp_path / ("crawl.warc.gz" if gz else "crawl.warc")
    write_records(path, [
        ("response", "https://board.test/t/1", "200", "text/html", b"<html>page</html>", None),
        ("request", "https://cdn.test/1.jpg", None, None, None,
         [("Referer", "https://board.test/t/1")]),
        ("response", "https://cdn.test/1.jpg", "200", "image/jpeg", make_image("JPEG", seed=1),
         None),
        ("response", "https://cdn.test/404.png", "404", "image/png", make_image("PNG"), None),
        ("response", "https://cdn.test/fake.jpg", "200", "image/jpeg", b"<html>x</html>", None),
        ("response", "https://cdn.test/2.png", "200", "text/plain", make_image("PNG", seed=2),
         None),
        ("metadata", "https://cdn.test/2.png", None, None, b"via: https://board.test/t/2\n",
         None),
        ("resource", "https://shot.test/3.gif", None, "image/gif", make_image("GIF"), None),
    ], gz)
    return path, gz


def media(pages):
    return [c.media_url for p in pages for c in p.candidates]


def test_images_from_a_warc(archive, client):
    path, _gz = archive
    settings = W.settings_from_url(str(path))
    pages = list(W.poll(settings, None, client))
    assert media(pages) == ["https://cdn.test/1.jpg", "https://cdn.test/2.png",
                            "https://shot.test/3.gif"]
    cands = [c for p in pages for c in p.candidates]
    assert cands[0].page_url == "https://board.test/t/1"  # from the request's Referer
    assert cands[1].page_url == "https://board.test/t/2"  # from Heritrix-style metadata
    assert cands[0].extra["warc"] == path.name and cands[0].extra["captured_at"]
    assert W.fetch_media(cands[1], settings, client).content == make_image("PNG", seed=2)
    assert W.fetch_media(cands[0], settings, client).mime == "image/jpeg"

    cursor = pages[-1].cursor
    assert cursor["files"][path.name] == path.stat().st_size
    assert media(W.poll(settings, cursor, client)) == []


def test_growing_warc_and_paging(archive, client):
    path, gz = archive
    settings = W.settings_from_url(str(path), page_size=1)
    pages = list(W.poll(settings, None, client))
    assert [len(p.candidates) for p in pages][:3] == [1, 1, 1]
    again = list(W.poll(settings, pages[0].cursor, client))  # crash after the first page
    assert media(pages[:1]) + media(again) == media(pages)

    write_records(path, [("response", "https://cdn.test/4.bmp", "200", "image/bmp",
                          make_image("BMP", (8, 8)), None)], gz, append=True)
    assert media(W.poll(settings, pages[-1].cursor, client)) == ["https://cdn.test/4.bmp"]


def test_folder_of_warcs_and_corruption(tmp_path, client):
    write_records(tmp_path / "a.warc.gz", [
        ("response", "https://cdn.test/a.png", "200", "image/png", make_image("PNG"), None)], True)
    (tmp_path / "b.warc.gz").write_bytes(b"\x1f\x8b\x08\x00 corrupt gzip")
    settings = W.settings_from_url(tmp_path.as_uri())
    pages = list(W.poll(settings, None, client))
    assert media(pages) == ["https://cdn.test/a.png"]
    notes = [n for p in pages for n in p.notes]
    assert any(n.startswith("b.warc.gz: unreadable record at offset 0") for n in notes)
    assert "b.warc.gz" not in pages[-1].cursor["files"]


def test_fetch_media_checks_the_record(archive, client):
    path, _ = archive
    settings = W.settings_from_url(str(path))
    cand = [c for p in W.poll(settings, None, client) for c in p.candidates][0]
    forged = type(cand)(**{**cand.to_dict(), "extra": {**cand.extra, "offset": 0},
                           "posted_at": None, "media_type": "image"})
    with pytest.raises(Exception, match="another URL"):
        W.fetch_media(forged, settings, client)


def test_url_detection(tmp_path):
    assert connector_for_url("/data/crawl.warc.gz").kind == "warc"
    assert connector_for_url("file:///data/x.warc").kind == "warc"


from hypothesis import HealthCheck, given, settings as hsettings, strategies as st  # noqa: E402


@hsettings(max_examples=60, deadline=None,
           suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=400))
def test_fuzz_garbage_files_never_crash(tmp_path, client, data):
    path = tmp_path / "fuzz.warc"
    path.write_bytes(b"WARC/1.0\r\n" + data)
    pages = list(W.poll(W.settings_from_url(str(path)), None, client))
    assert pages
