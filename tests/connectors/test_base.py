from __future__ import annotations

import ast
from datetime import datetime, timezone
from pathlib import Path

import pytest

import connectors
from connectors.base import Candidate, MediaType, Page
from connectors.errors import SourceSettingsError, UnknownConnector
from connectors.registry import CONNECTORS, connector_for_url, get_connector, settings_for_url
from connectors.util import normalise_url, parse_datetime


def test_candidate_defaults_and_round_trip():
    c = Candidate("HTTPS://CDN.Example.COM:443/a/./b/../im%67.JPG?utm_source=x&id=1#frag",
                  "https://example.com/post/1", "rss",
                  posted_at=datetime(2026, 1, 1, tzinfo=timezone.utc), media_type="image")
    assert c.key == "https://cdn.example.com/a/img.JPG?id=1"
    assert c.media_type is MediaType.IMAGE
    assert Candidate.from_dict(c.to_dict()) == c
    with pytest.raises(ValueError, match="timezone-aware"):
        Candidate("https://x.test/a.jpg", None, "rss", posted_at=datetime(2026, 1, 1))


def test_page_cursor_must_be_json():
    Page((), {"a": [1, "b", None]})
    with pytest.raises(TypeError, match="JSON-serialisable"):
        Page((), {"when": datetime.now()})


@pytest.mark.parametrize("url, expected", [
    ("http://Example.com", "http://example.com/"),
    ("http://example.com:80/a%7eb/%2F", "http://example.com/a~b/%2F"),
    ("https://example.com/a b", "https://example.com/a%20b"),
    ("https://bücher.example/x", "https://xn--bcher-kva.example/x"),
    ("https://example.com/p?b=2&a=1&fbclid=z", "https://example.com/p?b=2&a=1"),
])
def test_normalise_url(url, expected):
    assert normalise_url(url) == expected


@pytest.mark.parametrize("text, iso", [
    ("Sat, 03 Jan 2026 10:00:00 GMT", "2026-01-03T10:00:00+00:00"),
    ("Sat, 03 Jan 2026 10:00:00 +0200", "2026-01-03T10:00:00+02:00"),
    ("2026-01-03T10:00:00Z", "2026-01-03T10:00:00+00:00"),
    ("2026-01-03", "2026-01-03T00:00:00+00:00"),
    ("2026-01", "2026-01-01T00:00:00+00:00"),
    ("2026-01-03 10:00:00", "2026-01-03T10:00:00+00:00"),
])
def test_parse_datetime(text, iso):
    assert parse_datetime(text).isoformat() == iso


@pytest.mark.parametrize("text", ["", "soon", "2026-13-45", "9" * 100, None])
def test_parse_datetime_rejects(text):
    assert parse_datetime(text) is None


def test_registry():
    assert set(CONNECTORS) >= {"rss", "sitemap", "gallery", "folder", "warc"}
    assert get_connector("rss").kind == "rss"
    with pytest.raises(UnknownConnector, match="known kinds: bluesky, folder, gallery, lemmy, mastodon, reddit, rss"):
        get_connector("myspace")


@pytest.mark.parametrize("url, kind", [
    ("https://example.com/feed.xml", "rss"),
    ("https://example.com/blog/feed/", "rss"),
    ("feed://example.com/x", "rss"),
    ("https://example.com/sitemap_index.xml", "sitemap"),
    ("https://example.com/robots.txt", "sitemap"),
    ("https://example.com/gallery?page=1", "gallery"),
    ("file:///srv/drop", "folder"),
    ("/srv/crawls/a.warc.gz", "warc"),
])
def test_connector_for_url(url, kind):
    assert connector_for_url(url).kind == kind


def test_settings_for_url_and_errors():
    s = settings_for_url("https://example.com/feed.xml", page_size="3")
    assert s.kind == "rss" and s.page_size == 3
    with pytest.raises(SourceSettingsError, match="no connector recognises"):
        connector_for_url("mailto:x@example.com")
    with pytest.raises(SourceSettingsError) as info:
        settings_for_url("https://example.com/feed.xml", page_size="lots")
    assert info.value.setting == "page_size"
    assert str(info.value) == "rss source: setting 'page_size': expected a whole number, got 'lots'"


def test_connectors_never_import_monitor():
    root = Path(connectors.__file__).parent
    for path in root.rglob("*.py"):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            for name in names:
                assert name.split(".")[0] != "monitor", f"{path.name} imports {name}"


def test_the_network_guard_classifies_addresses():
    from .conftest import _loopback_address

    assert _loopback_address(("127.0.0.1", 80))
    assert _loopback_address(("127.0.0.2", 80))
    assert _loopback_address(("::1", 80, 0, 0))
    assert _loopback_address(("::ffff:127.0.0.1", 80, 0, 0))
    assert _loopback_address("/run/some.sock")
    for address in [("10.0.0.1", 80), ("169.254.169.254", 80), ("93.184.216.34", 443),
                    ("fd00::1", 80, 0, 0), ("example.com", 80), ("0.0.0.0", 80)]:
        assert not _loopback_address(address), address
