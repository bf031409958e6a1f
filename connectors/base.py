"""The connector framework: what a source yields and how a connector is written.

A *connector* knows one kind of source (an RSS feed, a sitemap, a gallery site, a folder, a
WARC file; later Mastodon, Bluesky, Reddit). A *source* is one configured instance of a kind:
its :class:`SourceSettings`. Polling a source yields :class:`Page` objects; each is a batch of
:class:`Candidate` media plus the cursor to save after that batch::

    connector = get_connector("rss")
    settings = connector.settings_from_url("https://example.com/feed.xml")
    for page in connector.poll(settings, cursor, http):
        with db.transaction():                 # one transaction per page:
            store(page.candidates)             #   its candidates ...
            save_cursor(source, page.cursor)   #   ... and the cursor that covers them
    # later, for each stored candidate:
    media = connector.fetch_media(candidate, settings, http)

A crash between pages loses nothing (the saved cursor covers exactly what was stored) and
duplicates nothing (the next poll resumes after it). Every poll yields at least one page, so the
cursor (e.g. a feed's ETag) is saved even when nothing is new.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import types
import typing
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar, Iterator, Mapping, TypeVar
from urllib.parse import urlsplit

from .errors import SourceSettingsError
from .http import HttpClient
from .sniff import Sniffed
from .util import url_key

Cursor = dict[str, Any]
"""A JSON-serialisable dict; its layout belongs to the connector that made it."""


class MediaType(str, enum.Enum):
    IMAGE = "image"
    VIDEO = "video"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class Candidate:
    """One piece of media found in a source, not yet fetched.

    ``key`` is a stable deduplication key (default: the normalised media URL); platform
    connectors may use their own (e.g. ``"mastodon:media:<id>"``). ``extra`` holds small,
    JSON-serialisable, connector-specific data that ``fetch_media`` or the pipeline may need
    (e.g. the WARC offset, a post id); it takes no part in equality.
    """

    media_url: str
    page_url: str | None
    source_kind: str
    posted_at: datetime | None = None
    author: str | None = None
    text: str | None = None
    media_type: MediaType = MediaType.UNKNOWN
    key: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self) -> None:
        if not self.media_url:
            raise ValueError("Candidate.media_url is required")
        if self.posted_at is not None and self.posted_at.tzinfo is None:
            raise ValueError("Candidate.posted_at must be timezone-aware (or None)")
        if not isinstance(self.media_type, MediaType):
            object.__setattr__(self, "media_type", MediaType(self.media_type))
        if not self.key:
            object.__setattr__(self, "key", url_key(self.media_url))
        if self.text is not None and len(self.text) > 5000:
            object.__setattr__(self, "text", self.text[:5000])

    def to_dict(self) -> dict[str, Any]:
        return {
            "media_url": self.media_url,
            "page_url": self.page_url,
            "source_kind": self.source_kind,
            "posted_at": self.posted_at.isoformat() if self.posted_at else None,
            "author": self.author,
            "text": self.text,
            "media_type": self.media_type.value,
            "key": self.key,
            "extra": dict(self.extra),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Candidate":
        posted = data.get("posted_at")
        return cls(
            media_url=data["media_url"],
            page_url=data.get("page_url"),
            source_kind=data["source_kind"],
            posted_at=datetime.fromisoformat(posted) if posted else None,
            author=data.get("author"),
            text=data.get("text"),
            media_type=MediaType(data.get("media_type", "unknown")),
            key=data.get("key", ""),
            extra=dict(data.get("extra") or {}),
        )


@dataclass(frozen=True)
class Page:
    """A batch of candidates and the cursor that covers them (save both together).

    ``notes`` are short human-readable remarks about items that were skipped (an entry without
    a usable link, an image URL that was not http(s)...); they never contain fetched content
    beyond URLs.
    """

    candidates: tuple[Candidate, ...]
    cursor: Cursor
    notes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "candidates", tuple(self.candidates))
        object.__setattr__(self, "notes", tuple(self.notes))
        try:
            json.dumps(self.cursor, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"Page.cursor must be JSON-serialisable: {exc}") from None


@dataclass(frozen=True)
class Media:
    """Fetched media bytes. ``mime`` is sniffed from the bytes, never taken from a header."""

    url: str
    content: bytes
    sniffed: Sniffed
    final_url: str | None = None

    @property
    def mime(self) -> str:
        return self.sniffed.mime

    @property
    def media_type(self) -> MediaType:
        if self.sniffed.kind in ("image", "video"):
            return MediaType(self.sniffed.kind)
        return MediaType.UNKNOWN


@dataclass(frozen=True)
class SearchTerm:
    """A watch term handed to a search-capable connector at poll time by the monitor (never
    stored in settings or cursors). ``case_id``/``term_id`` are what a candidate may carry;
    ``term`` is personal data: ``repr`` never shows it."""

    case_id: int
    term_id: int
    term: str = field(repr=False)

    def __repr__(self) -> str:
        return f"<SearchTerm case={self.case_id} id={self.term_id}>"


TRANSIENT = {"transient": True}
"""Field metadata of settings given at poll time only (never stored, never from a dict)."""


# --------------------------------------------------------------------------------------------
# Settings


S = TypeVar("S", bound="SourceSettings")


def _coerce(kind: str, name: str, annotation: Any, value: Any) -> Any:
    """Turn ``value`` (possibly a string from a CLI or a list from JSON) into ``annotation``."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        errors = []
        for option in inner:
            try:
                return _coerce(kind, name, option, value)
            except SourceSettingsError as exc:
                errors.append(exc.problem)
        raise SourceSettingsError(name, "; ".join(errors) or "invalid value", kind)
    if annotation is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in ("1", "true", "yes", "on"):
            return True
        if isinstance(value, str) and value.strip().lower() in ("0", "false", "no", "off"):
            return False
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        raise SourceSettingsError(name, f"expected true or false, got {value!r}", kind)
    if annotation is int:
        if isinstance(value, bool):
            raise SourceSettingsError(name, f"expected a whole number, got {value!r}", kind)
        if isinstance(value, int):
            return value
        if isinstance(value, str) and value.strip().lstrip("-").isdigit():
            return int(value.strip())
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise SourceSettingsError(name, f"expected a whole number, got {value!r}", kind)
    if annotation is float:
        if isinstance(value, bool):
            raise SourceSettingsError(name, f"expected a number, got {value!r}", kind)
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        raise SourceSettingsError(name, f"expected a number, got {value!r}", kind)
    if annotation is str:
        if isinstance(value, str):
            return value
        raise SourceSettingsError(name, f"expected text, got {value!r}", kind)
    if origin is tuple:
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            raise SourceSettingsError(name, f"expected a list, got {value!r}", kind)
        item_type = args[0] if args else str
        return tuple(_coerce(kind, name, item_type, v) for v in value)
    return value


@dataclass(frozen=True)
class SourceSettings:
    """Settings common to every source. Subclasses add fields (all with defaults) and override
    :meth:`validate`, raising :meth:`problem` for a bad value.

    ``url``: what the person gave (feed URL, start page, ``file://`` path ...).
    ``page_size``: at most this many candidates per :class:`Page`.
    """

    url: str
    page_size: int = 100

    kind: ClassVar[str] = "source"
    secret_fields: ClassVar[frozenset[str]] = frozenset()  # redacted by to_dict(redact=True)

    def __post_init__(self) -> None:
        hints = typing.get_type_hints(type(self))
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            coerced = _coerce(self.kind, f.name, hints.get(f.name, Any), value)
            if coerced is not value:
                object.__setattr__(self, f.name, coerced)
        if not isinstance(self.url, str) or not self.url.strip():
            raise self.problem("url", "is required")
        if not 1 <= self.page_size <= 10_000:
            raise self.problem("page_size", "must be between 1 and 10000")
        self.validate()

    def validate(self) -> None:
        """Check the settings; raise ``self.problem(name, why)`` for the first bad one."""

    def problem(self, setting: str | None, why: str) -> SourceSettingsError:
        return SourceSettingsError(setting, why, self.kind)

    def require_http_url(self, setting: str = "url", what: str = "URL") -> None:
        """Raise unless the setting holds an absolute http(s) URL with a host."""
        value = getattr(self, setting)
        try:
            parts = urlsplit(value)
            parts.port  # noqa: B018 - raises ValueError for a bad port
        except ValueError:
            raise self.problem(setting, f"must be an http(s) {what}, got {value!r}") from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise self.problem(setting, f"must be an http(s) {what}, got {value!r}")

    @classmethod
    def field_names(cls) -> list[str]:
        """The stored settings (transient poll-time fields excluded)."""
        return [f.name for f in dataclasses.fields(cls) if not f.metadata.get("transient")]

    @classmethod
    def from_dict(cls: type[S], data: Mapping[str, Any]) -> S:
        names = cls.field_names()
        unknown = sorted(set(data) - set(names))
        if unknown:
            raise SourceSettingsError(
                unknown[0], f"unknown setting; known settings: {', '.join(names)}", cls.kind
            )
        if "url" not in data:
            raise SourceSettingsError("url", "is required", cls.kind)
        return cls(**dict(data))

    def to_dict(self, redact: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            if f.metadata.get("transient"):
                continue
            value = getattr(self, f.name)
            if isinstance(value, tuple):
                value = list(value)
            if redact and f.name in self.secret_fields and value:
                value = "***"
            out[f.name] = value
        return out


# --------------------------------------------------------------------------------------------
# Connectors


class Connector(ABC):
    """One kind of source. Subclasses set ``kind``, ``title`` and ``settings_class`` and
    implement :meth:`poll`; most also override :meth:`settings_from_url` and
    :meth:`url_score`. Connectors are stateless (state lives in the cursor and the
    :class:`HttpClient`), so one instance serves every source and thread.
    """

    kind: ClassVar[str]
    title: ClassVar[str] = ""
    settings_class: ClassVar[type[SourceSettings]] = SourceSettings

    # -- settings -------------------------------------------------------------------------------

    def settings_from_url(self, url: str, **options: Any) -> SourceSettings:
        """Settings for the source a person names by ``url`` (as copied from a browser), plus
        ``options`` (strings are accepted and converted). Raises :class:`SourceSettingsError`.
        Never touches the network."""
        return self.settings_from_dict({"url": url.strip(), **options})

    def settings_from_dict(self, data: Mapping[str, Any]) -> SourceSettings:
        """Settings from their stored form (``SourceSettings.to_dict()``)."""
        return self.settings_class.from_dict(data)

    def url_score(self, url: str) -> int:
        """How sure this connector is that it handles ``url``: 0 (no) to 100 (certainly).
        Used by :func:`connectors.registry.connector_for_url`. Never touches the network."""
        return 0

    def check_settings(self, settings: SourceSettings) -> None:
        if not isinstance(settings, self.settings_class):
            raise TypeError(
                f"{self.kind} connector needs {self.settings_class.__name__}, "
                f"got {type(settings).__name__}"
            )

    # -- polling --------------------------------------------------------------------------------

    @abstractmethod
    def poll(
        self, settings: SourceSettings, cursor: Cursor | None, http: HttpClient
    ) -> Iterator[Page]:
        """Yield pages of new candidates since ``cursor`` (None: first poll). Each page's
        cursor covers that page and all before it. Yields at least one page. Raises
        :class:`FetchError` / :class:`SourceFormatError` for failures of the source as a whole;
        problems with single items become ``Page.notes``."""

    def fetch_media(self, candidate: Candidate, settings: SourceSettings,
                    http: HttpClient) -> Media:
        """Fetch the bytes of ``candidate`` (default: a safe HTTP GET whose bytes must sniff as
        an image, or as a video when the candidate is one). Folder and WARC connectors read
        their own storage instead."""
        expect = ("image", "video") if candidate.media_type is MediaType.VIDEO else "image"
        response = http.get(candidate.media_url, expect=expect, referer=candidate.page_url)
        return Media(candidate.media_url, response.content, response.sniffed, response.url)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} kind={self.kind!r}>"


def chunked(items: list[Candidate], size: int) -> Iterator[list[Candidate]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
