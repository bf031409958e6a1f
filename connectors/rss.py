"""RSS 2.0, RSS 1.0 (RDF) and Atom feeds.

Media of an entry, in order of preference:

1. ``media:content`` (also inside ``media:group``) and enclosures (``<enclosure>``, Atom
   ``<link rel="enclosure">``) that are images (or videos, with ``include_video``);
2. ``media:thumbnail``, only when step 1 found nothing (content is preferred);
3. images inside the entry's HTML (``content:encoded``, ``description``, Atom ``content`` /
   ``summary``): ``<img src>``, the largest ``srcset`` candidate, ``<picture>``, links to image
   files (``include_entry_images``).

Relative URLs are resolved against ``xml:base``, else the entry's link, else the feed's link,
else the feed URL. The cursor remembers the ids of the entries in the last feed document (and
the newest entry date) plus the feed's ETag / Last-Modified, so an unchanged feed costs one
304 and a changed one yields only entries not seen before.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar, Iterator
from urllib.parse import urlsplit
from xml.etree import ElementTree as ET
from copy import deepcopy as copy_element
from xml.etree.ElementTree import Element

from .base import Candidate, Connector, Cursor, MediaType, Page, SourceSettings
from .errors import SourceFormatError
from .htmlimages import feed_links_in_html, images_in_html
from .http import HttpClient, ValidatorCache
from .util import (iso, join_url, media_type_from_url, parse_datetime, resolve_url, short_hash,
                   url_key, utc_stamp)
from .xmlsafe import child, children, local_name, namespace, parse_xml, text

ATOM_NS = "http://www.w3.org/2005/Atom"
CONTENT_NS = "http://purl.org/rss/1.0/modules/content/"
XML_BASE = "{http://www.w3.org/XML/1998/namespace}base"
SEEN_CAP = 5000


def _is_media_ns(el: Element) -> bool:
    return "search.yahoo.com/mrss" in namespace(el.tag)


@dataclass(frozen=True)
class FeedMedia:
    url: str
    media_type: str  # image | video | unknown
    text: str | None = None
    origin: str = "content"  # content | enclosure | thumbnail | html


@dataclass
class FeedEntry:
    id: str
    link: str | None
    title: str | None
    published: datetime | None
    author: str | None
    media: list[FeedMedia] = field(default_factory=list)


@dataclass
class Feed:
    url: str
    title: str | None
    link: str | None
    entries: list[FeedEntry]
    notes: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------------------------
# Parsing (pure: bytes in, Feed out; SourceFormatError for anything unusable)


def _classify(url: str, mime: str | None, medium: str | None) -> str:
    medium = (medium or "").lower()
    mime = (mime or "").split(";")[0].strip().lower()
    if medium in ("image", "video"):
        return medium
    if medium in ("audio", "document", "executable"):
        return "other"
    if mime == "image/svg+xml":
        return "other"
    if mime.startswith("image/"):
        return "image"
    if mime.startswith("video/"):
        return "video"
    if mime and not mime.startswith(("application/octet-stream", "binary/")):
        return "other"
    return media_type_from_url(url)


def _base_of(el: Element, fallback: str | None) -> str | None:
    base = el.get(XML_BASE)
    if base:
        return join_url(fallback, base.strip()) or fallback
    return fallback


def _without_namespaces(el: Element) -> Element:
    """A copy of an XHTML subtree with plain tag names (``<img>``, not ``<html:img>``)."""
    copy = copy_element(el)
    for node in copy.iter():
        if isinstance(node.tag, str):
            node.tag = local_name(node.tag)
        for key in [k for k in node.attrib if k.startswith("{")]:
            node.attrib[local_name(key)] = node.attrib.pop(key)
    return copy


def _html_of(el: Element) -> str | None:
    """The HTML an RSS description / Atom content carries."""
    kind = (el.get("type") or "").lower()
    if kind == "xhtml" or len(el):
        parts = [el.text or ""]
        for c in el:
            try:
                parts.append(ET.tostring(_without_namespaces(c), encoding="unicode"))
            except (ValueError, TypeError, RecursionError):
                continue
        return "".join(parts)
    if kind in ("text", "text/plain"):
        return None
    return el.text


def _media_elements(entry: Element) -> Iterator[Element]:
    for c in entry:
        if _is_media_ns(c) and local_name(c.tag) == "group":
            yield from c
        else:
            yield c


def _entry_media(entry: Element, base: str | None,
                 include_html: bool, include_thumbnails: bool) -> list[FeedMedia]:
    primary: list[FeedMedia] = []
    thumbs: list[FeedMedia] = []
    html_parts: list[str] = []
    is_atom_entry = namespace(entry.tag) == ATOM_NS
    for el in _media_elements(entry):
        name = local_name(el.tag)
        if _is_media_ns(el):
            el_text = text(child(el, "description")) or text(child(el, "title"))
            if name == "content":
                url = resolve_url(base, el.get("url"))
                if url:
                    kind = _classify(url, el.get("type"), el.get("medium"))
                    primary.append(FeedMedia(url, kind, el_text, "content"))
                for t in children(el, "thumbnail"):
                    turl = resolve_url(base, t.get("url"))
                    if turl:
                        thumbs.append(FeedMedia(turl, "image", el_text, "thumbnail"))
            elif name == "thumbnail":
                url = resolve_url(base, el.get("url"))
                if url:
                    thumbs.append(FeedMedia(url, "image", None, "thumbnail"))
            elif name == "description" and (el.get("type") or "").lower() == "html":
                if el.text:
                    html_parts.append(el.text)
            continue
        if name == "enclosure" and not is_atom_entry:
            url = resolve_url(base, el.get("url"))
            if url:
                primary.append(FeedMedia(url, _classify(url, el.get("type"), None), None,
                                         "enclosure"))
        elif name == "link" and (el.get("rel") or "").lower() == "enclosure":
            url = resolve_url(base, el.get("href"))
            if url:
                primary.append(FeedMedia(url, _classify(url, el.get("type"), None),
                                         el.get("title"), "enclosure"))
        elif name in ("description", "encoded", "content", "summary"):
            if name == "content" and namespace(el.tag) not in (ATOM_NS, ""):
                continue
            html = _html_of(el)
            if html:
                html_parts.append(html)
    media = [m for m in primary if m.media_type in ("image", "video", "unknown")]
    if not any(m.media_type in ("image", "video") for m in media) and include_thumbnails:
        media.extend(thumbs)
    if include_html:
        for html in html_parts:
            for found in images_in_html(html, base, include_meta=False):
                media.append(FeedMedia(found.url, found.media_type, found.alt, "html"))
    out: list[FeedMedia] = []
    keys: set[str] = set()
    for m in media:
        key = url_key(m.url)
        if key not in keys:
            keys.add(key)
            out.append(m)
    return out


def _link_of(el: Element, base: str | None) -> str | None:
    for c in el:
        if local_name(c.tag) != "link":
            continue
        href = c.get("href")
        if href is not None:  # Atom
            if (c.get("rel") or "alternate").lower() == "alternate":
                url = resolve_url(base, href)
                if url:
                    return url
        elif c.text and c.text.strip():
            url = resolve_url(base, c.text.strip())
            if url:
                return url
    return None


def _author_of(el: Element) -> str | None:
    for name in ("author", "creator"):
        for c in children(el, name):
            value = text(child(c, "name")) if len(c) else None
            value = value or text(c)
            if value:
                return value[:200]
    return None


def _date_of(el: Element) -> datetime | None:
    for name in ("published", "pubDate", "issued", "date", "updated", "modified"):
        for c in children(el, name):
            value = parse_datetime(text(c))
            if value:
                return value
    return None


def parse_feed(data: bytes | str, url: str, *, include_entry_images: bool = True,
               include_thumbnails: bool = True, max_entries: int = 1000) -> Feed:
    """Parse an RSS/Atom document. Raises :class:`SourceFormatError` when it is not one."""
    root = parse_xml(data, url)
    root_name = local_name(root.tag)
    feed_base = _base_of(root, url)
    if root_name == "rss":
        channel = child(root, "channel")
        if channel is None:
            raise SourceFormatError(url, "RSS document without a <channel>")
        container, items = channel, children(channel, "item")
    elif root_name == "RDF":
        channel = child(root, "channel")
        container, items = (channel if channel is not None else root), children(root, "item")
    elif root_name == "feed":
        container, items = root, children(root, "entry")
    elif root_name == "channel":
        container, items = root, children(root, "item")
    else:
        raise SourceFormatError(url, f"not an RSS or Atom feed (root element <{root_name}>)")
    feed_base = _base_of(container, feed_base)
    feed_link = _link_of(container, feed_base)
    feed = Feed(url, (text(child(container, "title")) or None), feed_link, [])
    if len(items) > max_entries:
        feed.notes.append(f"feed has {len(items)} entries; only the first {max_entries} read")
        items = items[:max_entries]
    for position, item in enumerate(items):
        entry_base = item.get(XML_BASE)
        link_base = (join_url(feed_base or url, entry_base.strip()) or feed_base) if entry_base \
            else feed_base
        link = _link_of(item, link_base)
        base = link_base if entry_base else (link or feed_link or feed_base or url)
        title = text(child(item, "title"))
        title = title[:1000] if title else None
        published = _date_of(item)
        guid = text(child(item, "guid")) or text(child(item, "id"))
        if not guid:
            about = item.get("{http://www.w3.org/1999/02/22-rdf-syntax-ns#}about")
            guid = about or link
        if not guid:
            guid = "hash:" + short_hash(f"{title}|{iso(published)}|{position}")
            feed.notes.append(f"entry {position + 1} has no id or link; identified by content")
        media = _entry_media(item, base, include_entry_images, include_thumbnails)
        feed.entries.append(
            FeedEntry(guid[:2000], link, title, published, _author_of(item), media)
        )
    return feed


# --------------------------------------------------------------------------------------------
# The connector


@dataclass(frozen=True)
class RssSettings(SourceSettings):
    """``url``: the feed (``feed:`` URLs accepted), or a page that advertises one when
    ``discover`` is on. ``include_entry_images``: also images inside entry HTML.
    ``include_thumbnails``: ``media:thumbnail`` when an entry has no full-size media.
    ``include_video``: video enclosures / media:content as video candidates.
    ``max_entries``: entries read per feed document."""

    include_entry_images: bool = True
    include_thumbnails: bool = True
    include_video: bool = True
    discover: bool = True
    max_entries: int = 1000

    kind: ClassVar[str] = "rss"

    def validate(self) -> None:
        self.require_http_url("url", "feed URL")
        if not 1 <= self.max_entries <= 100_000:
            raise self.problem("max_entries", "must be between 1 and 100000")


def _feed_url(url: str) -> str:
    url = url.strip()
    lowered = url.lower()
    if lowered.startswith("feed:"):
        rest = url[5:]
        if rest.lower().startswith(("http://", "https://")):
            return rest
        if rest.startswith("//"):
            return "https:" + rest
    return url


class RssConnector(Connector):
    kind = "rss"
    title = "RSS / Atom feed"
    settings_class = RssSettings

    def settings_from_url(self, url: str, **options: Any) -> RssSettings:
        return RssSettings.from_dict({"url": _feed_url(url), **options})

    def url_score(self, url: str) -> int:
        lowered = _feed_url(url).lower()
        if lowered.startswith("feed:") or url.lower().startswith("feed:"):
            return 100
        path = urlsplit(lowered).path
        if path.endswith((".rss", ".atom", "/rss", "/feed", "/atom", "/feed/", "/rss/")):
            return 80
        if "rss" in path or "atom" in path or "/feed" in path or "feed=" in lowered:
            return 60
        if path.endswith(".xml") and "sitemap" not in path:
            return 40
        return 0

    def poll(self, settings: SourceSettings, cursor: Cursor | None,
             http: HttpClient) -> Iterator[Page]:
        self.check_settings(settings)
        assert isinstance(settings, RssSettings)
        cursor = dict(cursor or {})
        old_seen = [s for s in cursor.get("seen", []) if isinstance(s, str)]
        seen = set(old_seen)
        cache = ValidatorCache.from_dict(cursor.get("validators"), max_entries=4)
        old_validators = cache.to_dict()
        feed_url = cursor.get("feed_url") if isinstance(cursor.get("feed_url"), str) else None
        feed_url = feed_url or settings.url
        newest = cursor.get("newest") if isinstance(cursor.get("newest"), dict) else None

        expect = ("xml", "html") if settings.discover else "xml"
        response = http.get(feed_url, expect=expect, cache=cache)
        if not response.not_modified and response.sniffed.kind == "html":
            links = feed_links_in_html(response.content, response.url)
            if not links:
                raise SourceFormatError(
                    feed_url, "is an HTML page that advertises no RSS/Atom feed"
                )
            feed_url = links[0]
            response = http.get(feed_url, expect="xml", cache=cache)
        base_cursor: Cursor = {"feed_url": feed_url} if feed_url != settings.url else {}

        if response.not_modified:
            yield Page((), {**base_cursor, "seen": old_seen, "newest": newest,
                            "validators": cache.to_dict()})
            return

        feed = parse_feed(
            response.content,
            response.url,
            include_entry_images=settings.include_entry_images,
            include_thumbnails=settings.include_thumbnails,
            max_entries=settings.max_entries,
        )
        notes = list(feed.notes)
        entries = feed.entries
        if entries and all(e.published for e in entries):
            ordered = sorted(entries, key=lambda e: e.published)  # type: ignore[arg-type,return-value]
        else:
            ordered = list(reversed(entries))  # feeds list newest first
        doc_ids = [short_hash(e.id) for e in entries]

        for entry in entries:
            stamp = utc_stamp(entry.published)
            if stamp and (newest is None or stamp > (newest.get("date") or "")):
                newest = {"id": entry.id[:500], "date": stamp}
        if newest is None and entries:
            newest = {"id": entries[0].id[:500], "date": None}

        batches: list[tuple[list[Candidate], list[str]]] = []
        current: list[Candidate] = []
        current_ids: list[str] = []
        for entry in ordered:
            entry_hash = short_hash(entry.id)
            if entry_hash in seen:
                continue
            seen.add(entry_hash)
            cands = []
            for m in entry.media:
                if m.media_type == "video" and not settings.include_video:
                    continue
                if m.media_type == "other":
                    continue
                cands.append(
                    Candidate(
                        media_url=m.url,
                        page_url=entry.link,
                        source_kind=self.kind,
                        posted_at=entry.published,
                        author=entry.author,
                        text=m.text or entry.title,
                        media_type=MediaType(m.media_type),
                        extra={"entry_id": entry.id[:500], "origin": m.origin},
                    )
                )
            if current and len(current) + len(cands) > settings.page_size:
                batches.append((current, current_ids))
                current, current_ids = [], []
            current.extend(cands)
            current_ids.append(entry_hash)
        if current or current_ids:
            batches.append((current, current_ids))

        final_seen = list(dict.fromkeys(doc_ids))[:SEEN_CAP]
        final_cursor = {**base_cursor, "seen": final_seen, "newest": newest,
                        "validators": cache.to_dict()}
        if not batches:
            yield Page((), final_cursor, tuple(notes))
            return
        running = list(old_seen)
        for index, (cands, ids) in enumerate(batches):
            running.extend(ids)
            last = index == len(batches) - 1
            if last:
                page_cursor = final_cursor
            else:
                page_cursor = {**base_cursor, "seen": running[-(SEEN_CAP * 2):],
                               "newest": cursor.get("newest"), "validators": old_validators}
            yield Page(tuple(cands), page_cursor, tuple(notes) if index == 0 else ())
