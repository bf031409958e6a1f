"""HTML listing / gallery pages of known sites, configured with CSS selectors.

Each poll walks the listing from its first page, following the next-page link, until it meets
a page with nothing new (caught up), runs out of pages, or has fetched ``max_pages``. When the
budget runs out mid-walk the cursor remembers where to resume, and the next poll first finishes
that walk, then starts again from the top. The cursor holds hashes of the most recent
``remember`` media keys already reported.

Selectors are matched by soupsieve (Beautiful Soup's CSS engine) on ``html.parser`` trees: a
maintained, pure-Python, complete CSS level 3/4 implementation, so site configurations can use
ordinary selectors (``.gallery > a img``, ``img[data-src]``, ``a[rel~=next]``,
``li:not(.ad) img``) and a typo is reported when the source is added, not at poll time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Iterator
from urllib.parse import urlsplit

import soupsieve
from bs4 import Tag

from .base import Candidate, Connector, Cursor, MediaType, Page, SourceSettings
from .htmlimages import document_base, image_url_from_tag, parse_html
from .http import HttpClient
from .util import media_type_from_url, resolve_url, short_hash, url_key

DEFAULT_NEXT = "a[rel~=next], link[rel~=next]"


def _compile(setting: str, selector: str, problem: Any) -> None:
    try:
        soupsieve.compile(selector)
    except (soupsieve.SelectorSyntaxError, TypeError, ValueError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise problem(setting, f"invalid CSS selector {selector!r}: {first}") from None


@dataclass(frozen=True)
class GallerySettings(SourceSettings):
    """``url``: the listing's first page. ``image_selector``: CSS selector of the elements
    carrying images. ``image_attributes``: attributes tried in order (``srcset``-like ones give
    their largest candidate; ``href`` for links to full-size images). ``next_selector`` /
    ``next_attribute``: the next-page link. ``max_pages``: pages fetched per poll.
    ``same_site``: follow next-page links only on the same host. ``remember``: how many media
    keys the cursor keeps."""

    image_selector: str = "img"
    image_attributes: tuple[str, ...] = ("srcset", "data-src", "src")
    next_selector: str | None = DEFAULT_NEXT
    next_attribute: str = "href"
    max_pages: int = 5
    same_site: bool = True
    remember: int = 5000

    kind: ClassVar[str] = "gallery"

    def validate(self) -> None:
        self.require_http_url("url", "page URL")
        _compile("image_selector", self.image_selector, self.problem)
        if self.next_selector:
            _compile("next_selector", self.next_selector, self.problem)
        if not self.image_attributes:
            raise self.problem("image_attributes", "must name at least one attribute")
        for name in self.image_attributes:
            if not name or any(c.isspace() or c in "\"'<>=" for c in name):
                raise self.problem("image_attributes", f"{name!r} is not an attribute name")
        if not 1 <= self.max_pages <= 1000:
            raise self.problem("max_pages", "must be between 1 and 1000")
        if not 10 <= self.remember <= 1_000_000:
            raise self.problem("remember", "must be between 10 and 1000000")


class GalleryConnector(Connector):
    kind = "gallery"
    title = "HTML gallery / listing pages (CSS selectors)"
    settings_class = GallerySettings

    def url_score(self, url: str) -> int:
        # Any web page could be a gallery: the fallback when nothing more specific matches.
        return 10 if url.lower().startswith(("http://", "https://")) else 0

    def _next_url(self, soup: Any, base: str | None, current: str,
                  settings: GallerySettings) -> str | None:
        if not settings.next_selector:
            return None
        tag = soup.select_one(settings.next_selector)
        if not isinstance(tag, Tag):
            return None
        value = tag.get(settings.next_attribute)
        if isinstance(value, list):
            value = " ".join(value)
        nxt = resolve_url(base, str(value) if value else None)
        if not nxt:
            return None
        nxt = nxt.split("#", 1)[0]
        if settings.same_site and (urlsplit(nxt).hostname or "").lower() != \
                (urlsplit(current).hostname or "").lower():
            return None
        return nxt

    def poll(self, settings: SourceSettings, cursor: Cursor | None,
             http: HttpClient) -> Iterator[Page]:
        self.check_settings(settings)
        assert isinstance(settings, GallerySettings)
        cursor = dict(cursor or {})
        seen_list = [s for s in cursor.get("seen", []) if isinstance(s, str)]
        seen = set(seen_list)
        resume = cursor.get("resume") if isinstance(cursor.get("resume"), str) else None
        budget = settings.max_pages
        walks = ([resume] if resume else []) + [settings.url]
        yielded = False

        for start in walks:
            url: str | None = start
            visited: set[str] = set()
            while url and budget > 0:
                if url in visited:
                    break
                visited.add(url)
                budget -= 1
                response = http.get(url, expect="html")
                soup = parse_html(response.content)
                base = document_base(soup, response.url)
                notes: list[str] = []
                candidates: list[Candidate] = []
                matched = 0
                page_keys: set[str] = set()
                for tag in soup.select(settings.image_selector):
                    if not isinstance(tag, Tag):
                        continue
                    media_url = image_url_from_tag(tag, settings.image_attributes, base)
                    if not media_url:
                        continue
                    matched += 1
                    key = url_key(media_url)
                    hashed = short_hash(key)
                    if hashed in seen or key in page_keys:
                        continue
                    page_keys.add(key)
                    seen.add(hashed)
                    seen_list.append(hashed)
                    alt = tag.get("alt") or tag.get("title")
                    kind = media_type_from_url(media_url)
                    candidates.append(
                        Candidate(
                            media_url=media_url,
                            page_url=response.url,
                            source_kind=self.kind,
                            text=str(alt).strip() or None if alt else None,
                            media_type=MediaType(kind if kind != "unknown" else "image"),
                            key=key,
                        )
                    )
                if matched == 0:
                    notes.append(f"{response.url}: no image matched {settings.image_selector!r}")
                nxt = self._next_url(soup, base, response.url, settings)
                caught_up = not candidates
                if caught_up or nxt is None:
                    resume_next = None
                else:
                    resume_next = nxt
                if len(seen_list) > settings.remember:
                    drop = seen_list[: len(seen_list) - settings.remember]
                    seen_list = seen_list[len(drop):]
                    seen.difference_update(drop)
                yield Page(tuple(candidates), {"seen": list(seen_list), "resume": resume_next},
                           tuple(notes))
                yielded = True
                if resume_next is None:
                    break
                url = resume_next
            if budget <= 0:
                break
        if not yielded:  # pragma: no cover - max_pages >= 1 always fetches a page
            yield Page((), {"seen": seen_list, "resume": resume})
