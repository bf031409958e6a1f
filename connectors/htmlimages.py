"""Finding images in HTML (feed entries, gallery pages, pages listed in sitemaps).

HTML is parsed with Beautiful Soup on the standard library's ``html.parser`` (pure Python, no
network, no entity expansion beyond HTML's named references); CSS selectors are matched by
soupsieve, Beautiful Soup's selector engine.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from typing import Iterable

from bs4 import BeautifulSoup, MarkupResemblesLocatorWarning, Tag
from bs4.exceptions import ParserRejectedMarkup

from .util import media_type_from_url, resolve_url, url_key

MAX_HTML_CHARS = 5_000_000  # beyond this a page is cut before parsing


@dataclass(frozen=True)
class FoundImage:
    url: str  # absolute http(s) URL
    alt: str | None = None
    media_type: str = "image"  # image | video | unknown (from the markup)


def parse_html(markup: str | bytes, *, from_encoding: str | None = None) -> BeautifulSoup:
    if isinstance(markup, bytes):
        markup = markup[: MAX_HTML_CHARS]
    else:
        markup = markup[:MAX_HTML_CHARS]
    try:
        return _soup(markup, from_encoding)
    except (ParserRejectedMarkup, AssertionError, ValueError):
        pass
    # html.parser gives up on some malformed declarations ("<![0", "<!x"); neutralise every
    # "<!" that is not a comment or doctype and parse again, so junk cannot hide a page's images.
    if isinstance(markup, bytes):
        markup = _BAD_DECL_BYTES.sub(b"&lt;!", markup)
    else:
        markup = _BAD_DECL.sub("&lt;!", markup)
    try:
        return _soup(markup, from_encoding)
    except (ParserRejectedMarkup, AssertionError, ValueError):
        return _soup("", None)


_BAD_DECL = re.compile(r"<!(?!--|doctype)", re.I)
_BAD_DECL_BYTES = re.compile(rb"<!(?!--|doctype)", re.I)


def _soup(markup: str | bytes, from_encoding: str | None) -> BeautifulSoup:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MarkupResemblesLocatorWarning)
        warnings.simplefilter("ignore", UserWarning)
        if isinstance(markup, bytes):
            return BeautifulSoup(markup, "html.parser", from_encoding=from_encoding)
        return BeautifulSoup(markup, "html.parser")


_WS = " \t\n\r\f"


def parse_srcset(srcset: str) -> list[tuple[str, float | None, float | None]]:
    """Parse a ``srcset`` attribute into (url, width, density) following the HTML spec's
    algorithm closely enough for real pages (URLs may contain commas)."""
    out: list[tuple[str, float | None, float | None]] = []
    pos, n = 0, len(srcset)
    while pos < n:
        while pos < n and (srcset[pos] in _WS or srcset[pos] == ","):
            pos += 1
        if pos >= n:
            break
        start = pos
        while pos < n and srcset[pos] not in _WS:
            pos += 1
        url = srcset[start:pos]
        descriptors = ""
        if url.endswith(","):
            url = url.rstrip(",")
        else:
            start = pos
            depth = 0
            while pos < n:
                c = srcset[pos]
                if c == "(":
                    depth += 1
                elif c == ")":
                    depth = max(0, depth - 1)
                elif c == "," and depth == 0:
                    break
                pos += 1
            descriptors = srcset[start:pos]
            pos += 1
        width = density = None
        for token in descriptors.split():
            try:
                if token.endswith("w"):
                    width = float(token[:-1])
                elif token.endswith("x"):
                    density = float(token[:-1])
            except ValueError:
                continue
        if url:
            out.append((url, width, density))
    return out


def best_from_srcset(srcset: str | None) -> str | None:
    """The largest candidate of a ``srcset`` (by width, else density, else the last one)."""
    if not srcset:
        return None
    items = parse_srcset(srcset)
    if not items:
        return None
    with_width = [i for i in items if i[1] is not None]
    if with_width:
        return max(with_width, key=lambda i: i[1])[0]  # type: ignore[arg-type,return-value]
    return max(enumerate(items), key=lambda e: ((e[1][2] or 1.0), e[0]))[1][0]


def document_base(soup: BeautifulSoup, url: str | None) -> str | None:
    base = soup.find("base", href=True)
    if isinstance(base, Tag):
        resolved = resolve_url(url, str(base.get("href")))
        if resolved:
            return resolved
    return url


def _attr(tag: Tag, name: str) -> str | None:
    value = tag.get(name)
    if isinstance(value, list):
        value = " ".join(value)
    return str(value).strip() if value else None


def image_url_from_tag(tag: Tag, attributes: Iterable[str], base: str | None) -> str | None:
    """The image URL a tag carries: the first of ``attributes`` that yields a usable URL
    (``srcset``-like attributes give their largest candidate)."""
    for name in attributes:
        raw = _attr(tag, name)
        if not raw:
            continue
        ref = best_from_srcset(raw) if "srcset" in name else raw
        resolved = resolve_url(base, ref)
        if resolved:
            return resolved
    return None


_IMG_ATTRS = ("srcset", "data-srcset", "data-src", "data-original", "data-lazy-src", "src")
_SPACE = re.compile(r"\s+")


def _clean(text: str | None) -> str | None:
    if not text:
        return None
    text = _SPACE.sub(" ", text).strip()
    return text or None


def images_in_html(
    markup: str | bytes | BeautifulSoup,
    base_url: str | None,
    *,
    include_meta: bool = True,
    include_links: bool = True,
) -> list[FoundImage]:
    """Every image a page or HTML fragment shows: ``<img>`` (largest ``srcset`` candidate,
    then lazy-loading attributes, then ``src``), ``<picture><source srcset>``, ``<video
    poster>``/``<video src>``, links straight to image files, and ``og:image`` /
    ``twitter:image`` meta tags. Relative URLs resolved against ``<base>`` or ``base_url``;
    data: and non-http(s) URLs skipped; duplicates (by normalised URL) removed, first kept."""
    soup = markup if isinstance(markup, BeautifulSoup) else parse_html(markup)
    base = document_base(soup, base_url)
    found: list[FoundImage] = []
    seen: set[str] = set()

    def add(url: str | None, alt: str | None = None, media_type: str = "image") -> None:
        if not url:
            return
        key = url_key(url)
        if key in seen:
            return
        seen.add(key)
        found.append(FoundImage(url, _clean(alt), media_type))

    for tag in soup.find_all(["img", "source", "video", "a", "meta", "link"]):
        name = tag.name
        if name == "img":
            add(image_url_from_tag(tag, _IMG_ATTRS, base), _attr(tag, "alt") or _attr(tag, "title"))
        elif name == "source":
            parent = tag.parent.name if isinstance(tag.parent, Tag) else None
            if parent == "picture":
                add(image_url_from_tag(tag, ("srcset", "data-srcset"), base))
            elif parent == "video":
                add(image_url_from_tag(tag, ("src",), base), None, "video")
        elif name == "video":
            add(image_url_from_tag(tag, ("src",), base), _attr(tag, "title"), "video")
            add(image_url_from_tag(tag, ("poster",), base))
        elif name == "a" and include_links:
            href = resolve_url(base, _attr(tag, "href"))
            if href and media_type_from_url(href) == "image":
                img = tag.find("img")
                alt = _attr(img, "alt") if isinstance(img, Tag) else None
                add(href, alt or _clean(tag.get_text(" ")))
        elif name == "meta" and include_meta:
            prop = (_attr(tag, "property") or _attr(tag, "name") or "").lower()
            if prop in ("og:image", "og:image:url", "og:image:secure_url", "twitter:image",
                        "twitter:image:src"):
                add(resolve_url(base, _attr(tag, "content")))
            elif prop in ("og:video", "og:video:url", "og:video:secure_url"):
                add(resolve_url(base, _attr(tag, "content")), None, "video")
        elif name == "link" and include_meta:
            rels = {r.lower() for r in (tag.get("rel") or [])}
            if "image_src" in rels:
                add(resolve_url(base, _attr(tag, "href")))
    return found


def feed_links_in_html(markup: str | bytes | BeautifulSoup, base_url: str | None) -> list[str]:
    """Feed URLs advertised by ``<link rel="alternate" type="application/rss+xml|atom+xml">``."""
    soup = markup if isinstance(markup, BeautifulSoup) else parse_html(markup)
    base = document_base(soup, base_url)
    out = []
    for tag in soup.find_all("link", href=True):
        rels = {r.lower() for r in (tag.get("rel") or [])}
        kind = (_attr(tag, "type") or "").lower()
        if "alternate" in rels and kind in ("application/rss+xml", "application/atom+xml",
                                           "application/rdf+xml", "application/feed+xml"):
            url = resolve_url(base, _attr(tag, "href"))
            if url and url not in out:
                out.append(url)
    return out
