"""Sitemaps: ``<urlset>`` and ``<sitemapindex>`` (plain or gzip), text sitemaps, and the image
(``image:image/image:loc``) and video (``video:content_loc`` / ``thumbnail_loc``) extensions.

Candidates come from image and video entries (``page_url`` = the ``<loc>`` page), from
``<loc>`` URLs that are themselves image files, and, with ``page_images``, from the images on
each new or changed page (fetched, at most ``max_pages`` per poll).

The cursor is lastmod-based: a watermark ``(lastmod, loc)`` below which every dated entry was
handled, a bounded set of hashes of handled undated entries, the ``lastmod`` of each child
sitemap (unchanged children are not fetched again while ``trust_index_lastmod``) and the
sitemaps' ETag / Last-Modified. Entries are handled oldest first, so a page's cursor covers
exactly the entries before it. An entry re-dated to an older lastmod is not seen again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar, Iterator
from urllib.parse import urlsplit, urlunsplit

from .base import Candidate, Connector, Cursor, MediaType, Page, SourceSettings
from .errors import FetchError, SourceFormatError
from .htmlimages import images_in_html
from .http import HttpClient, ValidatorCache
from .util import media_type_from_url, parse_datetime, resolve_url, short_hash, utc_stamp
from .xmlsafe import child, children, gunzip_limited, local_name, namespace, parse_xml, text

MAX_SITEMAP_BYTES = 50 * 1024 * 1024  # the protocol's own limit, uncompressed
MAX_SITEMAP_DEPTH = 2  # index -> index -> urlset at most
UNDATED_CAP = 20_000


@dataclass(frozen=True)
class SitemapMedia:
    url: str
    media_type: str  # image | video
    text: str | None = None


@dataclass
class SitemapEntry:
    loc: str
    lastmod: datetime | None
    published: datetime | None = None
    media: list[SitemapMedia] = field(default_factory=list)


@dataclass
class Sitemap:
    url: str
    kind: str  # urlset | index | text
    entries: list[SitemapEntry] = field(default_factory=list)
    children: list[tuple[str, datetime | None]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _ns_has(el: Any, fragment: str) -> bool:
    return fragment in namespace(el.tag)


def parse_sitemap(data: bytes, url: str, *, max_entries: int = 50_000) -> Sitemap:
    """Parse a sitemap document (already decompressed). Raises :class:`SourceFormatError`."""
    stripped = data.lstrip()
    if stripped[:1] != b"<" and not stripped.startswith(b"\xef\xbb\xbf<") \
            and not stripped.startswith((b"\xff\xfe", b"\xfe\xff")):
        return _parse_text_sitemap(data, url, max_entries)
    root = parse_xml(data, url)
    name = local_name(root.tag)
    if name == "sitemapindex":
        out = Sitemap(url, "index")
        for sm in children(root, "sitemap"):
            loc = resolve_url(url, text(child(sm, "loc")))
            if not loc:
                out.notes.append("sitemap index entry without a usable <loc>")
                continue
            out.children.append((loc, parse_datetime(text(child(sm, "lastmod")))))
        return out
    if name != "urlset":
        raise SourceFormatError(url, f"not a sitemap (root element <{name}>)")
    out = Sitemap(url, "urlset")
    items = children(root, "url")
    if len(items) > max_entries:
        out.notes.append(f"sitemap has {len(items)} entries; only the first {max_entries} read")
        items = items[:max_entries]
    for item in items:
        loc = resolve_url(url, text(child(item, "loc")))
        if not loc:
            out.notes.append("sitemap entry without a usable <loc>")
            continue
        entry = SitemapEntry(loc, parse_datetime(text(child(item, "lastmod"))))
        for el in item:
            lname = local_name(el.tag)
            if lname == "image" and _ns_has(el, "sitemap-image"):
                img = resolve_url(loc, text(child(el, "loc")))
                caption = text(child(el, "caption")) or text(child(el, "title"))
                if img:
                    entry.media.append(SitemapMedia(img, "image", caption))
            elif lname == "video" and _ns_has(el, "sitemap-video"):
                title = text(child(el, "title")) or text(child(el, "description"))
                content = resolve_url(loc, text(child(el, "content_loc")))
                thumb = resolve_url(loc, text(child(el, "thumbnail_loc")))
                if content:
                    entry.media.append(SitemapMedia(content, "video", title))
                if thumb:
                    entry.media.append(SitemapMedia(thumb, "image", title))
                published = parse_datetime(text(child(el, "publication_date")))
                entry.published = entry.published or published
            elif lname == "news" and _ns_has(el, "sitemap-news"):
                entry.published = entry.published or parse_datetime(
                    text(child(el, "publication_date"))
                )
        if not entry.media and media_type_from_url(loc) in ("image", "video"):
            entry.media.append(SitemapMedia(loc, media_type_from_url(loc)))
        out.entries.append(entry)
    return out


def _parse_text_sitemap(data: bytes, url: str, max_entries: int) -> Sitemap:
    try:
        body = data.decode("utf-8")
    except UnicodeDecodeError:
        raise SourceFormatError(url, "not a sitemap (neither XML nor UTF-8 text)") from None
    out = Sitemap(url, "text")
    for line in body.splitlines():
        line = line.strip().lstrip("\ufeff")
        if not line:
            continue
        loc = resolve_url(None, line) if line.lower().startswith(("http://", "https://")) else None
        if not loc:
            raise SourceFormatError(url, "not a sitemap (a text sitemap holds one URL per line)")
        entry = SitemapEntry(loc, None)
        if media_type_from_url(loc) in ("image", "video"):
            entry.media.append(SitemapMedia(loc, media_type_from_url(loc)))
        out.entries.append(entry)
        if len(out.entries) >= max_entries:
            out.notes.append(f"text sitemap cut at {max_entries} entries")
            break
    return out


_stamp = utc_stamp


# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SitemapSettings(SourceSettings):
    """``url``: a sitemap or sitemap index (``.xml``, ``.xml.gz``, text), a ``robots.txt``
    (its ``Sitemap:`` lines), or a site's home page (robots.txt, then ``/sitemap.xml``).
    ``page_images``: also fetch each new/changed page and take the images on it.
    ``max_pages``: pages fetched per poll with ``page_images``.
    ``max_sitemaps``: sitemap documents fetched per poll. ``max_entries``: entries handled per
    poll. ``since``: ignore entries whose lastmod is older (ISO date).
    ``trust_index_lastmod``: skip child sitemaps whose lastmod in the index is unchanged."""

    page_images: bool = False
    max_pages: int = 50
    max_sitemaps: int = 50
    max_entries: int = 50_000
    since: str | None = None
    trust_index_lastmod: bool = True

    kind: ClassVar[str] = "sitemap"

    def validate(self) -> None:
        self.require_http_url("url", "URL")
        if not 1 <= self.max_pages <= 10_000:
            raise self.problem("max_pages", "must be between 1 and 10000")
        if not 1 <= self.max_sitemaps <= 10_000:
            raise self.problem("max_sitemaps", "must be between 1 and 10000")
        if not 1 <= self.max_entries <= 1_000_000:
            raise self.problem("max_entries", "must be between 1 and 1000000")
        if self.since is not None and parse_datetime(self.since) is None:
            raise self.problem("since", f"must be an ISO date, got {self.since!r}")


class SitemapConnector(Connector):
    kind = "sitemap"
    title = "Sitemap (incl. image sitemaps)"
    settings_class = SitemapSettings

    def url_score(self, url: str) -> int:
        try:
            path = urlsplit(url).path.lower()
        except ValueError:
            return 0
        if "sitemap" in path or path.endswith("/robots.txt"):
            return 90
        if path.endswith((".xml.gz", ".txt.gz")):
            return 70
        return 0

    # -- fetching documents ------------------------------------------------------------------

    def _roots(self, settings: SitemapSettings, http: HttpClient) -> list[str]:
        parts = urlsplit(settings.url)
        path = parts.path or "/"
        if path.lower().endswith("/robots.txt") or path == "/":
            robots = urlunsplit((parts.scheme, parts.netloc, "/robots.txt", "", ""))
            found: list[str] = []
            try:
                body = http.get(robots, check_robots=False, max_bytes=500 * 1024,
                                truncate=True).text
            except FetchError as exc:
                if path != "/":
                    raise
                body = ""
                if exc.retryable:
                    raise
            for line in body.splitlines():
                key, _, value = line.partition(":")
                if key.strip().lower() == "sitemap":
                    loc = resolve_url(robots, value.strip())
                    if loc and loc not in found:
                        found.append(loc)
            if not found and path == "/":
                found = [urlunsplit((parts.scheme, parts.netloc, "/sitemap.xml", "", ""))]
            if not found:
                raise SourceFormatError(robots, "lists no Sitemap: lines")
            return found
        return [settings.url]

    def _fetch(self, url: str, http: HttpClient, cache: ValidatorCache) -> Sitemap | None:
        response = http.get(url, expect=("xml", "gzip", "text"), cache=cache)
        if response.not_modified:
            return None
        data = response.content
        if response.sniffed.kind == "gzip":
            data = gunzip_limited(data, MAX_SITEMAP_BYTES, url)
        return parse_sitemap(data, response.url)

    # -- polling -------------------------------------------------------------------------------

    def poll(self, settings: SourceSettings, cursor: Cursor | None,
             http: HttpClient) -> Iterator[Page]:
        self.check_settings(settings)
        assert isinstance(settings, SitemapSettings)
        cursor = dict(cursor or {})
        raw_mark = cursor.get("watermark")
        watermark: tuple[str, str] | None = (
            (str(raw_mark[0]), str(raw_mark[1]))
            if isinstance(raw_mark, list) and len(raw_mark) == 2 else None
        )
        undated_list = [u for u in cursor.get("undated", []) if isinstance(u, str)]
        undated = set(undated_list)
        old_children = {k: v for k, v in (cursor.get("children") or {}).items()
                        if isinstance(k, str) and isinstance(v, str)}
        old_cache = ValidatorCache.from_dict(cursor.get("validators"), max_entries=10_000)
        cache = old_cache.copy()
        since = _stamp(parse_datetime(settings.since)) if settings.since else None
        notes: list[str] = []
        complete = True

        # 1. fetch the sitemap tree (breadth first)
        queue: list[tuple[str, int]] = [(u, 0) for u in self._roots(settings, http)]
        new_children: dict[str, str] = dict(old_children)
        entries: list[SitemapEntry] = []
        fetched = 0
        visited: set[str] = set()
        while queue:
            url, depth = queue.pop(0)
            if url in visited:
                continue
            visited.add(url)
            if fetched >= settings.max_sitemaps:
                notes.append(f"stopped after {settings.max_sitemaps} sitemaps (max_sitemaps)")
                complete = False
                break
            fetched += 1
            try:
                doc = self._fetch(url, http, cache)
            except (FetchError, SourceFormatError) as exc:
                if depth == 0:
                    raise
                notes.append(f"child sitemap skipped: {exc}")
                complete = False
                new_children.pop(url, None)
                continue
            if doc is None:  # 304: unchanged since it was last handled completely
                if depth == 0 and not settings.trust_index_lastmod:
                    queue.extend((child_url, 1) for child_url in old_children)
                continue
            notes.extend(doc.notes)
            if doc.kind == "index":
                for loc, lastmod in doc.children:
                    stamp = _stamp(lastmod) or ""
                    if (settings.trust_index_lastmod and stamp
                            and old_children.get(loc) == stamp):
                        continue
                    if depth + 1 > MAX_SITEMAP_DEPTH:
                        notes.append(f"sitemap index nested too deep at {loc}")
                        continue
                    new_children[loc] = stamp
                    queue.append((loc, depth + 1))
            else:
                entries.extend(doc.entries)

        # 2. select what is new, oldest first
        undated_new: list[SitemapEntry] = []
        dated_new: list[tuple[tuple[str, str], SitemapEntry]] = []
        seen_locs: set[str] = set()
        for entry in entries:
            if entry.loc in seen_locs:
                continue
            seen_locs.add(entry.loc)
            stamp = _stamp(entry.lastmod)
            if stamp is None:
                if short_hash(entry.loc) not in undated:
                    undated_new.append(entry)
            elif (watermark is None or (stamp, entry.loc) > watermark) and (
                since is None or stamp >= since
            ):
                dated_new.append(((stamp, entry.loc), entry))
        dated_new.sort(key=lambda t: t[0])
        ordered: list[tuple[tuple[str, str] | None, SitemapEntry]] = [
            (None, e) for e in undated_new
        ] + [(k, e) for k, e in dated_new]
        if len(ordered) > settings.max_entries:
            notes.append(f"{len(ordered)} new entries; handling the oldest "
                         f"{settings.max_entries} now (max_entries)")
            ordered = ordered[: settings.max_entries]
            complete = False

        # 3. candidates, in pages
        def cursor_for(mark: tuple[str, str] | None, done: list[str], final: bool) -> Cursor:
            keep = done[-UNDATED_CAP:]
            if final and complete:
                return {"watermark": list(mark) if mark else None, "undated": keep,
                        "children": new_children, "validators": cache.to_dict()}
            return {"watermark": list(mark) if mark else None, "undated": keep,
                    "children": old_children, "validators": old_cache.to_dict()}

        mark = watermark
        done = list(undated_list)
        batch: list[Candidate] = []
        pages_fetched = 0
        first = True
        stop_error: FetchError | None = None
        for key, entry in ordered:
            cands = self._candidates(entry)
            if settings.page_images and not entry.media \
                    and media_type_from_url(entry.loc) == "unknown":
                if pages_fetched >= settings.max_pages:
                    notes.append(f"stopped after {settings.max_pages} pages (max_pages)")
                    complete = False
                    break
                pages_fetched += 1
                try:
                    response = http.get(entry.loc, expect="html")
                    for found in images_in_html(response.content, response.url):
                        cands.append(self._candidate(found.url, entry, found.media_type,
                                                     found.alt))
                except FetchError as exc:
                    if exc.retryable:
                        stop_error = exc
                        complete = False
                        break
                    notes.append(f"page skipped: {exc}")
            if batch and len(batch) + len(cands) > settings.page_size:
                yield Page(tuple(batch), cursor_for(mark, done, False),
                           tuple(notes) if first else ())
                first = False
                batch = []
            batch.extend(cands)
            if key is None:
                done.append(short_hash(entry.loc))
            else:
                mark = key
        yield Page(tuple(batch), cursor_for(mark, done, True), tuple(notes) if first else ())
        if stop_error is not None:
            raise stop_error

    def _candidate(self, url: str, entry: SitemapEntry, media_type: str,
                   caption: str | None) -> Candidate:
        page = None if url == entry.loc else entry.loc
        return Candidate(
            media_url=url,
            page_url=page,
            source_kind=self.kind,
            posted_at=entry.published or entry.lastmod,
            text=caption,
            media_type=MediaType(media_type if media_type in ("image", "video") else "unknown"),
            extra={"lastmod": _stamp(entry.lastmod)} if entry.lastmod else {},
        )

    def _candidates(self, entry: SitemapEntry) -> list[Candidate]:
        out = []
        keys = set()
        for m in entry.media:
            if m.url in keys:
                continue
            keys.add(m.url)
            out.append(self._candidate(m.url, entry, m.media_type, m.text))
        return out
