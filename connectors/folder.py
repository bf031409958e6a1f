"""A local folder of images (an upload drop, a mounted share, an evidence export).

Files with an image extension are reported as ``file://`` URLs, oldest first by
``(max(mtime, ctime), relative path)``; the cursor is the last such pair handled, so files
added later are picked up even when they keep an old modification time (copying or moving a
file into the folder sets its ctime). A file changed in place is reported again (its key
includes its modification time and size).

``fetch_media`` reads the file itself (never through HTTP): symlinks are not followed unless
``follow_symlinks``, the resolved path must stay inside the folder, the size is capped and the
bytes must sniff as an image.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, ClassVar, Iterator

from .base import Candidate, Connector, Cursor, Media, MediaType, Page, SourceSettings
from .errors import Blocked, NotAnImage, SourceFormatError
from .http import HttpClient
from .local import ensure_inside, file_url, path_from_url, read_limited
from .sniff import sniff
from .util import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS

DEFAULT_EXTENSIONS = tuple(sorted(e.lstrip(".") for e in IMAGE_EXTENSIONS))


@dataclass(frozen=True)
class FolderSettings(SourceSettings):
    """``url``: ``file:///path/to/folder`` or a plain path. ``recursive``: include sub-folders.
    ``extensions``: file extensions taken (without dots, case-insensitive).
    ``include_hidden``: also dot-files and dot-folders. ``follow_symlinks``: follow symbolic
    links (off: they are skipped). ``max_file_bytes``: larger files are refused when fetched."""

    recursive: bool = True
    extensions: tuple[str, ...] = DEFAULT_EXTENSIONS
    include_hidden: bool = False
    follow_symlinks: bool = False
    max_file_bytes: int = 50 * 1024 * 1024

    kind: ClassVar[str] = "folder"

    def validate(self) -> None:
        path_from_url(self.url, self.kind)
        if not self.extensions:
            raise self.problem("extensions", "must list at least one extension")
        for ext in self.extensions:
            if not ext.strip(".") or "/" in ext or os.sep in ext:
                raise self.problem("extensions", f"{ext!r} is not a file extension")
        if self.max_file_bytes < 1:
            raise self.problem("max_file_bytes", "must be at least 1")

    @property
    def path(self) -> Path:
        return path_from_url(self.url, self.kind)

    @property
    def suffixes(self) -> frozenset[str]:
        return frozenset("." + e.lower().lstrip(".") for e in self.extensions)


class FolderConnector(Connector):
    kind = "folder"
    title = "Local folder of images"
    settings_class = FolderSettings

    def settings_from_url(self, url: str, **options: Any) -> FolderSettings:
        path = path_from_url(url, self.kind)
        settings = FolderSettings.from_dict({"url": file_url(path), **options})
        if not path.is_dir():
            raise settings.problem("url", f"{path} is not a folder")
        return settings

    def url_score(self, url: str) -> int:
        lowered = url.lower()
        if lowered.endswith((".warc", ".warc.gz")):
            return 0
        if lowered.startswith("file:"):
            return 90
        if "://" not in url and (url.startswith(("/", "~", ".")) or os.path.isdir(url)):
            return 80
        return 0

    def _scan(self, settings: FolderSettings) -> list[tuple[int, str, os.stat_result]]:
        root = settings.path
        suffixes = settings.suffixes
        out: list[tuple[int, str, os.stat_result]] = []
        stack = [root]
        visited: set[tuple[int, int]] = set()
        while stack:
            folder = stack.pop()
            try:
                info = folder.stat()
                ident = (info.st_dev, info.st_ino)
                if ident in visited:
                    continue  # a symlink loop
                visited.add(ident)
                entries = list(os.scandir(folder))
            except OSError:
                continue
            for entry in entries:
                if not settings.include_hidden and entry.name.startswith("."):
                    continue
                try:
                    if entry.is_symlink() and not settings.follow_symlinks:
                        continue
                    if entry.is_dir(follow_symlinks=settings.follow_symlinks):
                        if settings.recursive:
                            stack.append(Path(entry.path))
                        continue
                    if os.path.splitext(entry.name)[1].lower() not in suffixes:
                        continue
                    st = entry.stat(follow_symlinks=settings.follow_symlinks)
                except OSError:
                    continue
                if not stat.S_ISREG(st.st_mode):
                    continue
                rel = os.path.relpath(entry.path, root).replace(os.sep, "/")
                out.append((max(st.st_mtime_ns, st.st_ctime_ns), rel, st))
        out.sort(key=lambda t: (t[0], t[1]))
        return out

    def poll(self, settings: SourceSettings, cursor: Cursor | None,
             http: HttpClient) -> Iterator[Page]:
        self.check_settings(settings)
        assert isinstance(settings, FolderSettings)
        root = settings.path
        if not root.is_dir():
            raise SourceFormatError(str(root), "folder does not exist or is not a folder")
        after = (cursor or {}).get("after")
        mark: tuple[int, str] | None = None
        if isinstance(after, list) and len(after) == 2:
            mark = (int(after[0]), str(after[1]))
        files = [f for f in self._scan(settings) if mark is None or (f[0], f[1]) > mark]
        if not files:
            yield Page((), {"after": list(mark) if mark else None})
            return
        for start in range(0, len(files), settings.page_size):
            batch = files[start : start + settings.page_size]
            candidates = []
            for _stamp, rel, st in batch:
                path = root / rel
                url = file_url(path)
                ext = os.path.splitext(rel)[1].lower()
                kind = "video" if ext in VIDEO_EXTENSIONS else "image"
                candidates.append(
                    Candidate(
                        media_url=url,
                        page_url=None,
                        source_kind=self.kind,
                        posted_at=datetime.fromtimestamp(st.st_mtime_ns / 1e9, tz=timezone.utc),
                        text=None,
                        media_type=MediaType(kind),
                        key=f"{url}@{st.st_mtime_ns}:{st.st_size}",
                        extra={"path": rel, "size": st.st_size},
                    )
                )
            last = batch[-1]
            yield Page(tuple(candidates), {"after": [last[0], last[1]]})

    def fetch_media(self, candidate: Candidate, settings: SourceSettings,
                    http: HttpClient) -> Media:
        self.check_settings(settings)
        assert isinstance(settings, FolderSettings)
        root = settings.path
        path = path_from_url(candidate.media_url, self.kind)
        if not settings.follow_symlinks:
            # every component below the root must be a real folder/file, not a link
            ensure_inside(root, path, candidate.media_url)
            rel = os.path.relpath(path, root)
            current = root
            for part in Path(rel).parts:
                current = current / part
                if current.is_symlink():
                    raise Blocked(candidate.media_url, "path goes through a symbolic link")
        real = ensure_inside(root, path, candidate.media_url)
        data = read_limited(real, candidate.media_url, settings.max_file_bytes,
                            settings.follow_symlinks)
        found = sniff(data)
        if found.kind not in ("image", "video"):
            raise NotAnImage(candidate.media_url, f"expected an image, got {found.describe()}",
                             found.kind)
        return Media(candidate.media_url, data, found, candidate.media_url)
