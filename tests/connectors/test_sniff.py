from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st

from connectors.sniff import sniff

from .conftest import make_image


@pytest.mark.parametrize(
    "fmt, mime",
    [("JPEG", "image/jpeg"), ("PNG", "image/png"), ("GIF", "image/gif"),
     ("WEBP", "image/webp"), ("BMP", "image/bmp"), ("TIFF", "image/tiff")],
)
def test_pillow_images(fmt, mime):
    found = sniff(make_image(fmt, (16, 16)))
    assert (found.kind, found.mime) == ("image", mime)


def test_avif_from_pillow():
    try:
        data = make_image("AVIF", (16, 16))
    except (KeyError, OSError, ValueError):
        pytest.skip("this Pillow cannot write AVIF")
    assert sniff(data).mime == "image/avif"


@pytest.mark.parametrize(
    "head, kind, mime",
    [
        (b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic", "image", "image/heic"),
        (b"\x00\x00\x00\x18ftypmif1\x00\x00\x00\x00mif1heic", "image", "image/heic"),
        (b"\x00\x00\x00\x14ftypmif1\x00\x00\x00\x00mif1", "image", "image/heif"),
        (b"\x00\x00\x00\x1cftypavif\x00\x00\x00\x00avifmif1miaf", "image", "image/avif"),
        (b"\x00\x00\x00\x20ftypisom\x00\x00\x02\x00isomiso2avc1mp41", "video", "video/mp4"),
        (b"\x00\x00\x00\x14ftypqt  \x00\x00\x00\x00qt  ", "video", "video/quicktime"),
        (b"\x1a\x45\xdf\xa3\x01\x00", "video", "video/webm"),
        (b"II*\x00\x08\x00\x00\x00", "image", "image/tiff"),
        (b"MM\x00*\x00\x00\x00\x08", "image", "image/tiff"),
        (b"\x1f\x8b\x08\x00", "gzip", "application/gzip"),
        (b"%PDF-1.7", "pdf", "application/pdf"),
        (b"<!DOCTYPE html><html>", "html", "text/html"),
        (b"\n\n  <html lang=en>", "html", "text/html"),
        (b"<!-- x --><div>", "html", "text/html"),
        (b"\xef\xbb\xbf<?xml version='1.0'?><rss version='2.0'>", "xml", "application/xml"),
        (b"<?xml version='1.0'?><!DOCTYPE html><html>", "html", "text/html"),
        (b"<?xml version='1.0'?>\n<svg xmlns='http://www.w3.org/2000/svg'/>", "svg",
         "image/svg+xml"),
        (b"<feed xmlns='http://www.w3.org/2005/Atom'>", "xml", "application/xml"),
        (b"<urlset>", "xml", "application/xml"),
        (b'  {"a": 1}', "json", "application/json"),
        (b"User-agent: *\nDisallow: /", "text", "text/plain"),
        (b"", "empty", "application/octet-stream"),
        (b"\x00\x01\x02\x03garbage", "unknown", "application/octet-stream"),
        ("<?xml version='1.0' encoding='utf-16'?><rss>".encode("utf-16"), "xml",
         "application/xml"),
    ],
)
def test_magic_numbers_and_markup(head, kind, mime):
    found = sniff(head)
    assert (found.kind, found.mime) == (kind, mime)


def test_html_is_never_an_image():
    assert not sniff(b"<html><img src=x.jpg></html>").is_image
    assert sniff(b"<html>").describe() == "HTML"
    assert sniff(make_image("PNG", (4, 4))).describe() == "PNG image"


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2048))
def test_sniff_never_crashes(data):
    found = sniff(data)
    assert found.kind in {"image", "video", "svg", "html", "xml", "json", "gzip", "pdf", "text",
                          "unknown", "empty"}
