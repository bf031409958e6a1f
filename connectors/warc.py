"""WARC files (web archives: a crawl, Browsertrix / wget / Heritrix output), read with warcio.

Every ``response`` (and ``resource``) record with a 2xx status whose payload sniffs as an image
becomes a candidate: ``media_url`` = ``WARC-Target-URI``, ``page_url`` = the referring page where
the archive tells it (the ``Referer`` of the matching ``request`` record, or Heritrix's
``via:`` metadata), ``extra`` = the WARC file, the record's offset and its capture date.
``fetch_media`` reads the payload back from the archive, never from the live web.

``url`` names one WARC file or a folder of them (``*.warc``, ``*.warc.gz``, recursively). The
cursor maps each file to the offset after the last record handled, so a file still being
written is continued and new files are picked up. A corrupt record stops that file at the last
good offset (noted on the page; retried next poll) without holding back the other files.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Iterator

from warcio.archiveiterator import ArchiveIterator

from .base import Candidate, Connector, Cursor, Media, MediaType, Page, SourceSettings
from .errors import FetchError, NotAnImage, SourceFormatError, TooLarge
from .http import HttpClient
from .local import ensure_inside, file_url, path_from_url
from .sniff import SNIFF_BYTES, sniff
from .util import parse_datetime, resolve_url, url_key

WARC_SUFFIXES = (".warc", ".warc.gz")


@dataclass(frozen=True)
class WarcSettings(SourceSettings):
    """``url``: ``file:///path/x.warc.gz`` or a folder of WARC files (or a plain path).
    ``max_records``: records read per poll (the rest next poll).
    ``max_payload_bytes``: larger payloads are refused when fetched."""

    max_records: int = 200_000
    max_payload_bytes: int = 50 * 1024 * 1024

    kind: ClassVar[str] = "warc"

    def validate(self) -> None:
        path_from_url(self.url, self.kind)
        if not 1 <= self.max_records <= 10_000_000:
            raise self.problem("max_records", "must be between 1 and 10000000")
        if self.max_payload_bytes < 1:
            raise self.problem("max_payload_bytes", "must be at least 1")

    @property
    def path(self) -> Path:
        return path_from_url(self.url, self.kind)


def _header(headers: Any, name: str) -> str | None:
    if headers is None:
        return None
    value = headers.get_header(name)
    return value.strip() if value else None


class WarcConnector(Connector):
    kind = "warc"
    title = "WARC web archive files"
    settings_class = WarcSettings

    def settings_from_url(self, url: str, **options: Any) -> WarcSettings:
        path = path_from_url(url, self.kind)
        settings = WarcSettings.from_dict({"url": file_url(path), **options})
        if not path.exists():
            raise settings.problem("url", f"{path} does not exist")
        if path.is_file() and not path.name.lower().endswith(WARC_SUFFIXES):
            raise settings.problem("url", f"{path.name} is not a .warc or .warc.gz file")
        return settings

    def url_score(self, url: str) -> int:
        lowered = url.lower().rstrip("/")
        if lowered.endswith(WARC_SUFFIXES):
            return 100
        return 0

    def _files(self, settings: WarcSettings) -> tuple[Path, list[str]]:
        path = settings.path
        if path.is_file():
            return path.parent, [path.name]
        if not path.is_dir():
            raise SourceFormatError(str(path), "WARC file or folder does not exist")
        names = []
        for folder, dirs, files in os.walk(path):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            for name in files:
                if name.lower().endswith(WARC_SUFFIXES) and not name.startswith("."):
                    names.append(os.path.relpath(os.path.join(folder, name), path)
                                 .replace(os.sep, "/"))
        return path, sorted(names)

    def poll(self, settings: SourceSettings, cursor: Cursor | None,
             http: HttpClient) -> Iterator[Page]:
        self.check_settings(settings)
        assert isinstance(settings, WarcSettings)
        root, names = self._files(settings)
        offsets: dict[str, int] = {
            k: int(v) for k, v in ((cursor or {}).get("files") or {}).items()
            if isinstance(k, str) and isinstance(v, int) and v >= 0
        }
        budget = settings.max_records
        pending: list[Candidate] = []
        notes: list[str] = []
        referers: dict[str, str] = {}  # record id or target URI -> referring page

        def page() -> Page:
            resolved = []
            for cand in pending:
                if cand.page_url is None:
                    ref = referers.get(cand.extra.get("record_id", "")) or referers.get(
                        cand.media_url
                    )
                    if ref:
                        cand = dataclasses.replace(cand, page_url=ref)
                resolved.append(cand)
            result = Page(tuple(resolved), {"files": dict(offsets)}, tuple(notes))
            pending.clear()
            notes.clear()
            return result

        yielded = dirty = False
        for name in names:
            if budget <= 0:
                notes.append(f"stopped after {settings.max_records} records (max_records)")
                break
            full = root / name
            try:
                size = full.stat().st_size
            except OSError as exc:
                notes.append(f"{name}: cannot read ({exc.strerror or exc})")
                continue
            start = offsets.get(name, 0)
            if start >= size:
                continue
            try:
                fh = open(full, "rb")
            except OSError as exc:
                notes.append(f"{name}: cannot open ({exc.strerror or exc})")
                continue
            with fh:
                fh.seek(start)
                iterator = ArchiveIterator(fh, no_record_parse=False)
                try:
                    for record in iterator:
                        budget -= 1
                        cand = self._record(record, iterator, name, referers, full)
                        iterator.get_record_offset()  # reads to the end of the record
                        offsets[name] = int(iterator.offset)
                        dirty = True
                        if cand is not None:
                            pending.append(cand)
                        if len(pending) >= settings.page_size:
                            yield page()
                            yielded, dirty = True, False
                        if budget <= 0:
                            break
                except Exception as exc:  # warcio raises many kinds on corrupt input
                    problem = str(exc).strip().splitlines()[0] if str(exc).strip() else \
                        type(exc).__name__
                    notes.append(f"{name}: unreadable record at offset {offsets.get(name, start)}"
                                 f" ({problem[:200]}); the rest of this file is retried next poll")
        if pending or notes or dirty or not yielded:
            yield page()

    def _record(self, record: Any, iterator: ArchiveIterator, name: str,
                referers: dict[str, str], full: Path) -> Candidate | None:
        rec_type = record.rec_type
        headers = record.rec_headers
        target = _header(headers, "WARC-Target-URI")
        if target and target.startswith("<") and target.endswith(">"):
            target = target[1:-1]
        if rec_type == "request":
            referer = _header(record.http_headers, "Referer")
            if referer and target:
                for key in (_header(headers, "WARC-Concurrent-To"), target):
                    if key:
                        referers.setdefault(key, referer)
            return None
        if rec_type == "metadata":
            if target:
                body = record.content_stream().read(65536).decode("utf-8", "replace")
                for line in body.splitlines():
                    key, _, value = line.partition(":")
                    if key.strip().lower() == "via" and value.strip():
                        referers.setdefault(target, value.strip())
            return None
        if rec_type not in ("response", "resource") or not target:
            return None
        if rec_type == "response":
            status = record.http_headers.get_statuscode() if record.http_headers else None
            if not status or not str(status).startswith("2"):
                return None
        head = record.content_stream().read(SNIFF_BYTES)
        found = sniff(head)
        offset = iterator.get_record_offset()
        if found.kind != "image":
            return None
        media_url = resolve_url(None, target)
        if not media_url:
            return None
        record_id = _header(headers, "WARC-Record-ID") or ""
        digest = _header(headers, "WARC-Payload-Digest")
        captured = parse_datetime(_header(headers, "WARC-Date"))
        key = url_key(media_url) + (f"#{digest}" if digest else "")
        return Candidate(
            media_url=media_url,
            page_url=None,
            source_kind=self.kind,
            posted_at=None,
            media_type=MediaType.IMAGE,
            key=key,
            extra={
                "warc": name,
                "offset": int(offset),
                "record_id": record_id,
                "captured_at": captured.isoformat() if captured else None,
                "mime": found.mime,
            },
        )

    def fetch_media(self, candidate: Candidate, settings: SourceSettings,
                    http: HttpClient) -> Media:
        self.check_settings(settings)
        assert isinstance(settings, WarcSettings)
        root = settings.path if settings.path.is_dir() else settings.path.parent
        name = candidate.extra.get("warc")
        offset = candidate.extra.get("offset")
        url = candidate.media_url
        if not isinstance(name, str) or not isinstance(offset, int):
            raise FetchError(url, "candidate carries no WARC location")
        full = ensure_inside(root, root / name, url)
        try:
            fh = open(full, "rb")
        except OSError as exc:
            raise FetchError(url, f"cannot open {name} ({exc.strerror or exc})") from None
        with fh:
            fh.seek(offset)
            try:
                record = next(iter(ArchiveIterator(fh)))
            except Exception as exc:  # warcio raises many kinds on corrupt input
                raise FetchError(url, f"no readable record at {name}:{offset} ({exc})") from None
            target = _header(record.rec_headers, "WARC-Target-URI") or ""
            if target.strip("<>") != url:
                raise FetchError(url, f"record at {name}:{offset} is for another URL")
            limit = settings.max_payload_bytes
            data = record.content_stream().read(limit + 1)
            if len(data) > limit:
                raise TooLarge(url, f"payload exceeds the {limit}-byte limit")
        found = sniff(data)
        if found.kind != "image":
            raise NotAnImage(url, f"expected an image, got {found.describe()}", found.kind)
        return Media(url, data, found, url)
