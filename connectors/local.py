"""Shared handling of local paths for the folder and WARC connectors: ``file://`` URLs,
containment checks and bounded reads. No network."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from urllib.parse import unquote, urlsplit

from .errors import Blocked, FetchError, SourceSettingsError, TooLarge


def path_from_url(url: str, kind: str) -> Path:
    """A local path from a ``file://`` URL or a plain (``~``-expanded) path."""
    text = url.strip()
    if text.lower().startswith("file:"):
        parts = urlsplit(text)
        if parts.netloc not in ("", "localhost"):
            raise SourceSettingsError("url", f"file URL must be local, got host {parts.netloc!r}",
                                      kind)
        path = Path(unquote(parts.path))
    elif "://" in text:
        raise SourceSettingsError("url", f"must be a local path or file:// URL, got {url!r}", kind)
    else:
        path = Path(os.path.expanduser(text))
    return Path(os.path.abspath(path))


def file_url(path: Path) -> str:
    return Path(os.path.abspath(path)).as_uri()


def ensure_inside(root: Path, path: Path, url: str) -> Path:
    """``path`` with symlinks resolved, refused unless it lies inside ``root``."""
    real_root = Path(os.path.realpath(root))
    real = Path(os.path.realpath(path))
    if real != real_root and real_root not in real.parents:
        raise Blocked(url, f"path is outside the source folder {root}")
    return real


def read_limited(path: Path, url: str, max_bytes: int, follow_symlinks: bool) -> bytes:
    """Read a regular file of at most ``max_bytes`` (checked before and while reading)."""
    flags = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0)
    if not follow_symlinks:
        flags |= getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise FetchError(url, "file no longer exists") from None
    except OSError as exc:
        raise FetchError(url, f"cannot open file ({exc.strerror or exc})") from None
    with os.fdopen(fd, "rb") as fh:
        info = os.fstat(fh.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise FetchError(url, "not a regular file")
        if info.st_size > max_bytes:
            raise TooLarge(url, f"file size {info.st_size} exceeds the {max_bytes}-byte limit")
        data = fh.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise TooLarge(url, f"file exceeds the {max_bytes}-byte limit")
    return data
