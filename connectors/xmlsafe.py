"""Safe XML parsing for feeds and sitemaps.

``parse_xml`` uses defusedxml's ElementTree: entity declarations (billion laughs, quadratic
blow-up) and external entities / DTD retrieval are refused; a plain ``<!DOCTYPE>`` without
entities (old RSS 0.91 feeds) is accepted. Any failure becomes a :class:`SourceFormatError`
naming the document. ``gunzip_limited`` decompresses with a hard output cap (gzip bombs).
"""

from __future__ import annotations

import zlib
from xml.etree.ElementTree import Element, ParseError

import defusedxml.ElementTree as DET
from defusedxml import DefusedXmlException

from .errors import SourceFormatError


def parse_xml(data: bytes | str, source: str) -> Element:
    if not data or not data.strip():
        raise SourceFormatError(source, "empty document")
    try:
        root = DET.fromstring(data, forbid_dtd=False, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as exc:
        raise SourceFormatError(source, f"unsafe XML refused ({type(exc).__name__})") from None
    except ParseError as exc:
        raise SourceFormatError(source, f"malformed XML ({exc})") from None
    except (ValueError, RecursionError, MemoryError, UnicodeError, LookupError) as exc:
        raise SourceFormatError(source, f"unreadable XML ({type(exc).__name__}: {exc})") from None
    return root


def local_name(tag: object) -> str:
    """The element name without its namespace (``{ns}item`` -> ``item``)."""
    if not isinstance(tag, str):
        return ""  # comments / processing instructions
    return tag.rsplit("}", 1)[-1]


def namespace(tag: object) -> str:
    if isinstance(tag, str) and tag.startswith("{"):
        return tag[1:].split("}", 1)[0]
    return ""


def child(el: Element, name: str, ns: str | None = None) -> Element | None:
    for c in el:
        if local_name(c.tag) == name and (ns is None or namespace(c.tag) == ns):
            return c
    return None


def children(el: Element, name: str, ns: str | None = None) -> list[Element]:
    return [c for c in el if local_name(c.tag) == name and (ns is None or namespace(c.tag) == ns)]


def text(el: Element | None) -> str | None:
    if el is None:
        return None
    value = "".join(el.itertext()).strip()
    return value or None


def gunzip_limited(data: bytes, limit: int, source: str) -> bytes:
    """Decompress gzip ``data`` (several members allowed) to at most ``limit`` bytes."""
    out = bytearray()
    remaining = data
    try:
        while remaining:
            d = zlib.decompressobj(16 + zlib.MAX_WBITS)
            chunk = d.decompress(remaining, limit + 1 - len(out))
            out += chunk
            while d.unconsumed_tail and len(out) <= limit:
                out += d.decompress(d.unconsumed_tail, limit + 1 - len(out))
            if len(out) > limit:
                raise SourceFormatError(source, f"decompresses to more than {limit} bytes")
            if not d.eof:
                raise SourceFormatError(source, "truncated gzip data")
            remaining = d.unused_data
            if remaining and not remaining.startswith(b"\x1f\x8b"):
                break  # trailing garbage after the last member: ignore, like gzip(1) warns
    except zlib.error as exc:
        raise SourceFormatError(source, f"corrupt gzip data ({exc})") from None
    return bytes(out)
