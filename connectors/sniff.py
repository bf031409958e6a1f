"""Content sniffing: what bytes really are, whatever a Content-Type header claims.

``sniff(data)`` looks at the first bytes only (``SNIFF_BYTES`` are enough) and returns a
:class:`Sniffed` with a coarse ``kind`` and a MIME type:

======== ===================================================================================
kind     recognised by
======== ===================================================================================
image    JPEG, PNG, GIF, WebP, BMP, TIFF (incl. BigTIFF), HEIF/HEIC, AVIF magic numbers
video    MP4/MOV/3GP (ISO BMFF ``ftyp`` brands), WebM/Matroska, AVI, FLV
svg      XML whose root element is ``svg`` (never treated as an image to hash)
html     an HTML doctype or a leading HTML tag (WHATWG-style), XHTML root ``html``
xml      an XML declaration or a leading non-HTML element (feeds, sitemaps)
json     a leading ``{`` or ``[``
gzip     gzip magic (compressed sitemaps)
pdf      ``%PDF-``
text     anything else that decodes as text
unknown  binary we do not recognise
======== ===================================================================================
"""

from __future__ import annotations

import re
from dataclasses import dataclass

SNIFF_BYTES = 1024

IMAGE_MIMES = frozenset(
    {
        "image/jpeg",
        "image/png",
        "image/gif",
        "image/webp",
        "image/bmp",
        "image/tiff",
        "image/heic",
        "image/heif",
        "image/avif",
    }
)

_HEIF_BRANDS = {
    b"heic": "image/heic",
    b"heix": "image/heic",
    b"heim": "image/heic",
    b"heis": "image/heic",
    b"hevc": "image/heic",
    b"hevx": "image/heic",
    b"mif1": "image/heif",
    b"msf1": "image/heif",
    b"mif2": "image/heif",
}
_AVIF_BRANDS = {b"avif", b"avis"}
_VIDEO_BRANDS = {
    b"isom": "video/mp4",
    b"iso2": "video/mp4",
    b"iso4": "video/mp4",
    b"iso5": "video/mp4",
    b"iso6": "video/mp4",
    b"mp41": "video/mp4",
    b"mp42": "video/mp4",
    b"avc1": "video/mp4",
    b"dash": "video/mp4",
    b"M4V ": "video/x-m4v",
    b"M4VH": "video/x-m4v",
    b"qt  ": "video/quicktime",
    b"3gp4": "video/3gpp",
    b"3gp5": "video/3gpp",
    b"3gp6": "video/3gpp",
    b"3g2a": "video/3gpp2",
}

_HTML_TAGS = {
    "html", "head", "body", "script", "iframe", "h1", "h2", "div", "font", "table", "a",
    "style", "title", "b", "br", "p", "meta", "link", "span", "img", "form", "center",
    "noscript", "header", "nav", "main", "section", "article", "ul", "pre", "input",
}
_LEADING_JUNK = re.compile(rb"\A(?:\s+|<!--.*?-->|<\?(?!xml\b).*?\?>)*", re.S)
_TAG = re.compile(rb"<\s*([A-Za-z][A-Za-z0-9_.:-]*)")
_DOCTYPE = re.compile(rb"<!doctype\s+([A-Za-z]+)", re.I)


@dataclass(frozen=True)
class Sniffed:
    kind: str  # image, video, svg, html, xml, json, gzip, pdf, text, unknown
    mime: str

    @property
    def is_image(self) -> bool:
        return self.kind == "image"

    def describe(self) -> str:
        if self.kind in ("image", "video"):
            return f"{self.mime.split('/')[1].upper()} {self.kind}"
        return {
            "svg": "an SVG document (vector images are not hashed)",
            "html": "HTML",
            "xml": "XML",
            "json": "JSON",
            "gzip": "gzip-compressed data",
            "pdf": "a PDF document",
            "text": "plain text",
            "empty": "an empty body",
        }.get(self.kind, "unrecognised binary data")


UNKNOWN = Sniffed("unknown", "application/octet-stream")


def _iso_bmff(data: bytes) -> Sniffed | None:
    if len(data) < 12 or data[4:8] != b"ftyp":
        return None
    size = int.from_bytes(data[0:4], "big")
    end = min(len(data), size if 16 <= size <= 4096 else 64)
    brands = [data[8:12]] + [data[i : i + 4] for i in range(16, end - 3, 4)]
    for brand in brands:
        if brand in _AVIF_BRANDS:
            return Sniffed("image", "image/avif")
    for wanted in ("image/heic", "image/heif"):  # a specific HEVC brand beats generic mif1
        for brand in brands:
            if _HEIF_BRANDS.get(brand) == wanted:
                return Sniffed("image", wanted)
    for brand in brands:
        if brand in _VIDEO_BRANDS:
            return Sniffed("video", _VIDEO_BRANDS[brand])
    if brands[0][:2] in (b"3g", b"mp", b"M4"):
        return Sniffed("video", "video/mp4")
    return None


def _binary(data: bytes) -> Sniffed | None:
    if data.startswith(b"\xff\xd8\xff"):
        return Sniffed("image", "image/jpeg")
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return Sniffed("image", "image/png")
    if data.startswith((b"GIF87a", b"GIF89a")):
        return Sniffed("image", "image/gif")
    if len(data) >= 12 and data.startswith(b"RIFF") and data[8:12] == b"WEBP":
        return Sniffed("image", "image/webp")
    if len(data) >= 12 and data.startswith(b"RIFF") and data[8:12] == b"AVI ":
        return Sniffed("video", "video/x-msvideo")
    if data.startswith(b"BM") and len(data) >= 18:
        dib = int.from_bytes(data[14:18], "little")
        if dib in (12, 16, 40, 52, 56, 64, 108, 124):
            return Sniffed("image", "image/bmp")
    if data.startswith((b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")):
        return Sniffed("image", "image/tiff")
    bmff = _iso_bmff(data)
    if bmff:
        return bmff
    if data.startswith(b"\x1a\x45\xdf\xa3"):
        return Sniffed("video", "video/webm")
    if data.startswith(b"FLV\x01"):
        return Sniffed("video", "video/x-flv")
    if data.startswith(b"\x1f\x8b"):
        return Sniffed("gzip", "application/gzip")
    if data.startswith(b"%PDF-"):
        return Sniffed("pdf", "application/pdf")
    return None


def _as_ascii_head(data: bytes) -> bytes | None:
    """The head of a text document as ASCII-compatible bytes (UTF-16 re-encoded)."""
    if data.startswith(b"\xef\xbb\xbf"):
        return data[3:]
    for bom, codec in ((b"\xff\xfe", "utf-16-le"), (b"\xfe\xff", "utf-16-be")):
        if data.startswith(bom):
            body = data[2:]
            body = body[: len(body) - (len(body) % 2)]
            return body.decode(codec, "replace").encode("utf-8", "replace")
    if b"\x00" in data[:SNIFF_BYTES]:
        return None
    return data


def sniff(data: bytes) -> Sniffed:
    """Classify ``data`` (only its first ``SNIFF_BYTES`` bytes are looked at)."""
    head = bytes(data[:SNIFF_BYTES])
    if not head:
        return Sniffed("empty", "application/octet-stream")
    found = _binary(head)
    if found:
        return found
    text = _as_ascii_head(head)
    if text is None:
        return UNKNOWN
    rest = text[_LEADING_JUNK.match(text).end() :]  # type: ignore[union-attr]
    lowered = rest[:64].lower()
    if rest[:1] in (b"{", b"["):
        return Sniffed("json", "application/json")
    is_xml_decl = lowered.startswith(b"<?xml")
    body = rest
    if is_xml_decl:
        end = rest.find(b"?>")
        body = rest[end + 2 :] if end >= 0 else b""
        body = body[_LEADING_JUNK.match(body).end() :]  # type: ignore[union-attr]
    doctype = _DOCTYPE.match(body)
    if doctype:
        if doctype.group(1).lower() == b"html":
            return Sniffed("html", "text/html")
        if doctype.group(1).lower() == b"svg":
            return Sniffed("svg", "image/svg+xml")
        end = body.find(b">")
        body = body[end + 1 :] if end >= 0 else b""
        body = body[_LEADING_JUNK.match(body).end() :]  # type: ignore[union-attr]
    tag = _TAG.match(body)
    if tag:
        name = tag.group(1).decode("ascii", "replace").lower()
        local = name.rsplit(":", 1)[-1]
        if local == "svg":
            return Sniffed("svg", "image/svg+xml")
        if local == "html":
            return Sniffed("html", "text/html")
        if not is_xml_decl and name in _HTML_TAGS:
            return Sniffed("html", "text/html")
        return Sniffed("xml", "application/xml")
    if is_xml_decl:
        return Sniffed("xml", "application/xml")
    if rest.startswith(b"<!--") or rest.startswith(b"<"):
        return Sniffed("html", "text/html")  # unterminated comment or odd markup
    try:
        head.decode("utf-8")
    except UnicodeDecodeError:
        # a multi-byte character cut at the sniff boundary is still text
        try:
            head[:-4].decode("utf-8")
        except UnicodeDecodeError:
            return UNKNOWN
    return Sniffed("text", "text/plain")


def media_type_of_mime(mime: str | None) -> str:
    """'image', 'video' or 'unknown' for a MIME type string."""
    if not mime:
        return "unknown"
    main = mime.split(";")[0].strip().lower()
    if main == "image/svg+xml":
        return "unknown"
    if main.startswith("image/"):
        return "image"
    if main.startswith("video/"):
        return "video"
    return "unknown"
