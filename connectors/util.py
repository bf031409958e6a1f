"""Small helpers shared by connectors: URL normalisation, dates, media types."""

from __future__ import annotations

import hashlib
import posixpath
import re
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from urllib.parse import quote, urljoin, urlsplit, urlunsplit

import idna

_UNRESERVED = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_ESCAPE = re.compile(r"%([0-9A-Fa-f]{2})")
_TRACKING_PARAMS = re.compile(r"^(utm_[a-z]+|fbclid|gclid|dclid|msclkid|mc_eid|igshid)$", re.I)

IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".gif", ".webp", ".bmp", ".tif", ".tiff",
     ".heic", ".heif", ".avif"}
)
VIDEO_EXTENSIONS = frozenset({".mp4", ".m4v", ".mov", ".webm", ".mkv", ".avi", ".3gp", ".flv"})


def _normalise_escapes(text: str, safe: str) -> str:
    def fix(m: re.Match[str]) -> str:
        char = chr(int(m.group(1), 16))
        return char if char in _UNRESERVED else "%" + m.group(1).upper()

    return quote(_ESCAPE.sub(fix, text), safe=safe + "%")


def _remove_dot_segments(path: str) -> str:
    if not path:
        return "/"
    trailing = path.endswith(("/", "/.", "/.."))
    normal = posixpath.normpath(path)
    if normal.startswith("//"):
        normal = "/" + normal.lstrip("/")
    if trailing and not normal.endswith("/"):
        normal += "/"
    return normal


def normalise_url(url: str) -> str:
    """A canonical form of ``url`` for deduplication: scheme and host lower-case (IDNA), default
    port, credentials and fragment dropped, dot segments removed, percent-escapes normalised,
    tracking parameters (utm_*, fbclid, gclid ...) dropped; query order is kept."""
    url = url.strip()
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return url
    scheme = parts.scheme.lower()
    if scheme == "file":
        return urlunsplit(("file", "", _normalise_escapes(parts.path, "/:@!$&'()*+,;="), "", ""))
    host = (parts.hostname or "").lower().rstrip(".")
    if host and not host.isascii():
        try:
            host = idna.encode(host, uts46=True).decode("ascii")
        except (idna.IDNAError, UnicodeError, ValueError):
            pass
    if ":" in host:
        host = f"[{host}]"
    default = {"http": 80, "https": 443}.get(scheme)
    netloc = host if port is None or port == default else f"{host}:{port}"
    path = _remove_dot_segments(_normalise_escapes(parts.path, "/:@!$&'()*+,;="))
    query_items = [q for q in parts.query.split("&") if q]
    query_items = [q for q in query_items if not _TRACKING_PARAMS.match(q.split("=", 1)[0])]
    query = "&".join(_normalise_escapes(q, "=:@!$'()*+,;/?") for q in query_items)
    return urlunsplit((scheme, netloc, path, query, ""))


def url_key(url: str) -> str:
    """The default dedup key of a media URL: its normalised form."""
    return normalise_url(url)


def short_hash(text: str) -> str:
    """16 hex characters of SHA-256: compact ids for cursors (seen sets)."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def resolve_url(base: str | None, ref: str | None) -> str | None:
    """``ref`` made absolute against ``base``; None for empty, data:, javascript: and the
    like, or anything that is not http(s) afterwards."""
    if not ref:
        return None
    ref = ref.strip().replace("\n", "").replace("\r", "").replace("\t", "")
    if not ref or ref.startswith("#"):
        return None
    lowered = ref[:12].lower()
    if lowered.startswith(("data:", "javascript:", "blob:", "about:", "mailto:")):
        return None
    try:
        absolute = urljoin(base or "", ref)
        scheme = urlsplit(absolute).scheme.lower()
    except ValueError:
        return None
    if scheme not in ("http", "https"):
        return None
    return absolute


def join_url(base: str | None, ref: str) -> str | None:
    """``urljoin`` that returns None instead of raising on malformed input."""
    try:
        return urljoin(base or "", ref)
    except ValueError:
        return None


def parse_datetime(text: str | None) -> datetime | None:
    """An aware datetime from RFC 822/1123 (RSS, HTTP), ISO 8601 / RFC 3339 (Atom, sitemaps,
    APIs) or W3C date forms (YYYY, YYYY-MM, YYYY-MM-DD). Naive values are taken as UTC. None
    when absent or unparseable."""
    if not text:
        return None
    text = text.strip()
    if not text or len(text) > 64:
        return None
    value: datetime | None = None
    if text[:4].isdigit():
        candidate = text.replace(" ", "T", 1) if len(text) > 10 and text[10] == " " else text
        if candidate.endswith(("z", "Z")):
            candidate = candidate[:-1] + "+00:00"
        try:
            value = datetime.fromisoformat(candidate)
        except ValueError:
            for fmt_len, pad in ((4, "-01-01"), (7, "-01")):
                if len(text) == fmt_len:
                    try:
                        value = datetime.fromisoformat(text + pad)
                    except ValueError:
                        value = None
    if value is None:
        try:
            value = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError, OverflowError):
            value = None
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    try:
        value.astimezone(timezone.utc)
    except (OverflowError, ValueError):
        return None
    return value


def iso(value: datetime | None) -> str | None:
    """ISO 8601 in UTC, for cursors."""
    if value is None:
        return None
    return value.astimezone(timezone.utc).isoformat()


def utc_stamp(value: datetime | None) -> str | None:
    """Fixed-width UTC timestamp (``2026-01-03T10:00:00.000000Z``): compares correctly as a
    string, for cursors."""
    if value is None:
        return None
    return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def media_type_from_url(url: str) -> str:
    """'image' or 'video' from the URL's file extension, else 'unknown'."""
    try:
        path = urlsplit(url).path.lower()
    except ValueError:
        return "unknown"
    ext = posixpath.splitext(path)[1]
    if ext in IMAGE_EXTENSIONS:
        return "image"
    if ext in VIDEO_EXTENSIONS:
        return "video"
    return "unknown"
