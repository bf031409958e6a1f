from __future__ import annotations

import os
from pathlib import Path

import pytest

from connectors.errors import Blocked, NotAnImage, SourceSettingsError, TooLarge
from connectors.registry import connector_for_url, get_connector

from .conftest import make_image

F = get_connector("folder")


def touch(path: Path, data: bytes, stamp: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    os.utime(path, ns=(stamp, stamp))


def names(pages):
    return [c.extra["path"] for p in pages for c in p.candidates]


@pytest.fixture
def drop(tmp_path):
    root = tmp_path / "drop"
    touch(root / "b.png", make_image("PNG", (8, 8), 1), 1_000_000_000)
    touch(root / "a.jpg", make_image("JPEG", (8, 8), 2), 2_000_000_000)
    touch(root / "sub" / "c.webp", make_image("WEBP", (8, 8), 3), 3_000_000_000)
    touch(root / "notes.txt", b"text", 1)
    touch(root / ".hidden" / "d.png", make_image("PNG", (8, 8), 4), 1)
    return root


def test_poll_recursive_and_resume(drop, client):
    settings = F.settings_from_url(drop.as_uri(), page_size=2)
    pages = list(F.poll(settings, None, client))
    # ctime (the files were just written) dominates the old mtimes: all share "now"-ish
    # stamps, so the order is by (stamp, path); every image is there exactly once
    assert sorted(names(pages)) == ["a.jpg", "b.png", "sub/c.webp"]
    cand = pages[0].candidates[0]
    assert cand.media_url.startswith("file://") and cand.source_kind == "folder"
    assert cand.posted_at is not None and cand.posted_at.tzinfo is not None
    cursor = pages[-1].cursor
    assert list(F.poll(settings, cursor, client))[0].candidates == ()

    touch(drop / "sub" / "new.gif", make_image("GIF", (8, 8), 5), 500)  # old mtime, new ctime
    assert names(F.poll(settings, cursor, client)) == ["sub/new.gif"]


def test_not_recursive_and_extensions(drop, client):
    settings = F.settings_from_url(str(drop), recursive="false", extensions="png")
    assert names(F.poll(settings, None, client)) == ["b.png"]


def test_fetch_media_reads_safely(drop, client, tmp_path):
    settings = F.settings_from_url(str(drop), max_file_bytes=100_000)
    cands = {c.extra["path"]: c for p in F.poll(settings, None, client) for c in p.candidates}
    media = F.fetch_media(cands["a.jpg"], settings, client)
    assert media.mime == "image/jpeg" and media.content == (drop / "a.jpg").read_bytes()

    (drop / "b.png").write_bytes(b"<html>not a picture</html>")
    with pytest.raises(NotAnImage, match="got HTML"):
        F.fetch_media(cands["b.png"], settings, client)

    small = F.settings_from_url(str(drop), max_file_bytes=10)
    with pytest.raises(TooLarge):
        F.fetch_media(cands["a.jpg"], small, client)

    secret = tmp_path / "secret.png"
    secret.write_bytes(make_image("PNG", (8, 8)))
    link = drop / "link.png"
    link.symlink_to(secret)
    assert "link.png" not in names(F.poll(settings, None, client))  # links are skipped
    forged = type(cands["a.jpg"])(**{**cands["a.jpg"].to_dict(),
                                     "media_url": link.as_uri(), "media_type": "image",
                                     "posted_at": None})
    with pytest.raises(Blocked):
        F.fetch_media(forged, settings, client)
    outside = type(forged)(**{**forged.to_dict(), "media_url": secret.as_uri(),
                              "media_type": "image", "posted_at": None})
    with pytest.raises(Blocked, match="outside the source folder"):
        F.fetch_media(outside, settings, client)


def test_settings(tmp_path):
    with pytest.raises(SourceSettingsError, match="is not a folder"):
        F.settings_from_url(str(tmp_path / "missing"))
    with pytest.raises(SourceSettingsError, match="must be local"):
        F.settings_from_url("file://server/share")
    assert connector_for_url(tmp_path.as_uri()).kind == "folder"
