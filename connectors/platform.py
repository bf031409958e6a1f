"""What the platform API connectors (Mastodon, Bluesky, Reddit, Lemmy) share.

* :class:`PlatformSettings`: ``api_base`` (point a connector at another compatible server),
  bounds per poll, ``use_watch_terms`` and the poll-time ``watch_terms``;
* :class:`Api`: one poll's view of an API: JSON GET/POST through the safe client with the
  source's credentials, rate-limit headers read after every response (:class:`RateBudget`),
  401/403 turned into :class:`AuthRequired`, and search terms kept out of every error message;
* :func:`walk_back`: for newest-first APIs without a forward cursor, read back to the last
  seen post (a high-water mark) and hand out the run oldest first, in pages that each carry the
  mark of their newest post, so a crash part way never skips or repeats a post;
* small parsing helpers (timestamps, ids, URLs) that never trust the JSON's shape.

Tokens live in memory only (:class:`TokenCache`); they are never put in cursors, notes or errors.
"""

from __future__ import annotations

import dataclasses
import math
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from requests.structures import CaseInsensitiveDict

from .base import (TRANSIENT, Candidate, Connector, Cursor, Media, MediaType, Page, SearchTerm,
                   SourceSettings)
from .errors import (AuthRequired, ConnectorError, FetchError, HttpStatus, RateLimited,
                     SourceFormatError)
from .http import HttpClient, Response

#: Query parameters whose values may be a watch term or a search query: never shown.
SENSITIVE_PARAMS = frozenset({"q", "query", "term", "search", "actor"})


def redact_url(url: str) -> str:
    """``url`` with the values of search parameters replaced by ``***`` (for messages)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<malformed URL>"
    if not parts.query:
        return url
    pairs = [(k, "***" if k.lower() in SENSITIVE_PARAMS else v)
             for k, v in parse_qsl(parts.query, keep_blank_values=True)]
    return urlunsplit(parts._replace(query=urlencode(pairs, safe="*:,")))


def _redacted(exc: ConnectorError, raw: str, safe: str) -> ConnectorError:
    """The same error with ``raw`` (a URL with a search term) replaced by ``safe`` everywhere."""
    if raw == safe:
        return exc
    for attr in ("url", "problem", "source"):
        value = getattr(exc, attr, None)
        if isinstance(value, str):
            setattr(exc, attr, value.replace(raw, safe))
    exc.args = tuple(a.replace(raw, safe) if isinstance(a, str) else a for a in exc.args)
    return exc


# --------------------------------------------------------------------------------------------
# Settings


@dataclass(frozen=True)
class PlatformSettings(SourceSettings):
    """Settings every platform connector takes (see each connector for its own)."""

    api_base: str = ""
    first_pages: int = 3
    max_pages: int = 20
    use_watch_terms: bool = False
    rate_limit_margin: int = 5
    max_rate_wait: float = 30.0
    media_robots: bool = True
    watch_terms: tuple[SearchTerm, ...] = field(default=(), metadata=TRANSIENT, repr=False)

    #: one line per setting, shown by `ncii source add --help` and `ncii source kinds`
    HELP = {
        "api_base": "API server to call instead of the platform's own (a compatible server, a "
                    "mirror, the tests' loopback server); default: from the URL",
        "first_pages": "pages read back on the very first poll (the newest posts only)",
        "max_pages": "pages read per poll at most; the rest comes next poll",
        "use_watch_terms": "also search for the watch terms of every active case",
        "rate_limit_margin": "requests kept in reserve: below it the connector waits for the "
                             "rate-limit window to reset (or ends the poll and resumes then)",
        "max_rate_wait": "seconds it may wait for a rate-limit reset within a poll; longer waits "
                         "end the poll and reschedule the source at the reset time",
        "media_robots": "consult robots.txt of the media host before fetching a picture",
        "page_size": "candidates per committed page",
    }

    def validate(self) -> None:
        if self.api_base:
            self.require_http_url("api_base", "API base URL")
        if not 1 <= self.first_pages <= 100:
            raise self.problem("first_pages", "must be between 1 and 100")
        if not 1 <= self.max_pages <= 1000:
            raise self.problem("max_pages", "must be between 1 and 1000")
        if not 0 <= self.rate_limit_margin <= 1000:
            raise self.problem("rate_limit_margin", "must be between 0 and 1000")
        if not 0 <= self.max_rate_wait <= 600:
            raise self.problem("max_rate_wait", "must be between 0 and 600 seconds")

    def with_terms(self, terms: Iterable[SearchTerm]) -> "PlatformSettings":
        """A copy carrying ``terms`` for one poll (only used when ``use_watch_terms`` is on)."""
        return dataclasses.replace(self, watch_terms=tuple(terms))

    def searches(self, query: str | None) -> list[tuple[str, str, int | None]]:
        """(cursor key, term, case id) for each search this poll runs: the source's own query
        (key ``q``) and, with ``use_watch_terms``, each watch term (key ``t<term id>``)."""
        out: list[tuple[str, str, int | None]] = []
        if query:
            out.append(("q", query, None))
        if self.use_watch_terms:
            for t in self.watch_terms:
                if t.term.strip():
                    out.append((f"t{t.term_id}", t.term.strip(), t.case_id))
        return out


class PlatformConnector(Connector):
    """Base of the platform connectors: media fetched with the source's ``media_robots``."""

    def fetch_media(self, candidate: Candidate, settings: SourceSettings,
                    http: HttpClient) -> Media:
        """GET the picture (or video) the API pointed at, through the safe client."""
        expect = ("image", "video") if candidate.media_type is MediaType.VIDEO else "image"
        robots = bool(getattr(settings, "media_robots", True))
        response = http.get(candidate.media_url, expect=expect, referer=candidate.page_url,
                            check_robots=robots)
        return Media(candidate.media_url, response.content, response.sniffed, response.url)


# --------------------------------------------------------------------------------------------
# Rate limits


def _number(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        n = float(value.strip())
    except (ValueError, AttributeError):
        return None
    return n if math.isfinite(n) else None


def parse_reset(value: str | None, now: float) -> float | None:
    """Seconds until a rate-limit window resets, from any of the forms platforms send: an ISO
    timestamp (Mastodon), epoch seconds (Bluesky's ``ratelimit-reset``), or seconds from now
    (Reddit, the IETF RateLimit draft). None when absent or unreadable."""
    if not value:
        return None
    text = value.strip()
    n = _number(text)
    if n is not None:
        if n > 1_000_000_000:  # an epoch time
            return max(0.0, n - now)
        return max(0.0, n)
    when = parse_time(text)
    if when is None:
        return None
    return max(0.0, when.timestamp() - now)


@dataclass
class RateBudget:
    """The budget the server last announced: requests ``remaining`` and seconds to ``reset``."""

    remaining: float | None = None
    limit: float | None = None
    reset_in: float | None = None
    read_at: float = 0.0

    @classmethod
    def from_headers(cls, headers: Mapping[str, str], now: float) -> "RateBudget":
        """Reads X-RateLimit-* (Mastodon, Lemmy), X-Ratelimit-Used/Remaining/Reset (Reddit) and
        RateLimit-* (Bluesky, the IETF draft); header names in any case."""
        headers = CaseInsensitiveDict(headers)

        def first(*names: str) -> str | None:
            for n in names:
                v = headers.get(n)
                if v:
                    return v
            return None

        remaining = _number(first("X-RateLimit-Remaining", "RateLimit-Remaining"))
        limit = _number(first("X-RateLimit-Limit", "RateLimit-Limit"))
        used = _number(first("X-Ratelimit-Used"))
        if limit is None and used is not None and remaining is not None:
            limit = used + remaining
        reset = parse_reset(first("X-RateLimit-Reset", "RateLimit-Reset"), now)
        return cls(remaining, limit, reset, now)


# --------------------------------------------------------------------------------------------
# One poll's API access


class Api:
    """JSON requests for one poll of one source, with its credentials and rate budget."""

    def __init__(self, http: HttpClient, settings: PlatformSettings, *, what: str,
                 headers: Mapping[str, str] | None = None, user_agent: str | None = None,
                 auth_hint: str = "") -> None:
        self.http = http
        self.settings = settings
        self.what = what
        self.headers = dict(headers or {})
        self.user_agent = user_agent
        self.auth_hint = auth_hint
        self.budget = RateBudget()
        self.requests = 0
        self.waited = 0.0

    def get(self, url: str, params: Mapping[str, Any] | None = None,
            headers: Mapping[str, str] | None = None) -> tuple[Any, Response]:
        """GET a JSON endpoint; (data, response). Raises AuthRequired, RateLimited, FetchError,
        SourceFormatError, each naming the URL with search terms hidden."""
        return self._call("GET", url, params=params, headers=headers)

    def post(self, url: str, *, form: Mapping[str, Any] | None = None, json_body: Any = None,
             headers: Mapping[str, str] | None = None) -> tuple[Any, Response]:
        """POST (form or JSON) to a JSON endpoint, e.g. a token or session endpoint."""
        return self._call("POST", url, form=form, json_body=json_body, headers=headers)

    def _call(self, method: str, url: str, *, params: Mapping[str, Any] | None = None,
              form: Mapping[str, Any] | None = None, json_body: Any = None,
              headers: Mapping[str, str] | None = None) -> tuple[Any, Response]:
        self._pace(url)
        full = url
        if params:
            query = urlencode([(k, v) for k, v in params.items() if v is not None], doseq=True)
            full = f"{url}{'&' if '?' in url else '?'}{query}"
        safe = redact_url(full)
        send = {**self.headers, **dict(headers or {})}
        limit = self.settings.max_rate_wait
        try:
            self.requests += 1
            if method == "GET":
                response = self.http.get(full, headers=send, expect="json", check_robots=False,
                                         max_retry_after=limit, user_agent=self.user_agent)
            else:
                response = self.http.post(full, form=form, json_body=json_body, headers=send,
                                          max_retry_after=limit, user_agent=self.user_agent)
            self.budget = RateBudget.from_headers(response.headers, self.http.clock.time())
            return response.json(), response
        except HttpStatus as exc:
            if exc.status in (401, 403):
                raise AuthRequired(safe, f"HTTP {exc.status}: {self.what} refused the request; "
                                         f"it needs credentials{self.auth_hint}") from None
            raise _redacted(exc, full, safe) from None
        except ConnectorError as exc:
            raise _redacted(exc, full, safe) from None

    def _pace(self, url: str) -> None:
        """Wait (bounded) or end the poll when the announced budget is nearly spent."""
        b = self.budget
        if b.remaining is None or b.remaining > self.settings.rate_limit_margin:
            if b.remaining is not None and b.reset_in and b.remaining > 0:
                # Spread what is left over the window so a long poll never hits the wall.
                spread = b.reset_in / b.remaining
                if spread > self.http.limiter.interval_for(_host(url)):
                    self.http.limiter.set_interval(_host(url), min(spread, 10.0))
            return
        elapsed = self.http.clock.time() - b.read_at
        wait = max(0.0, (b.reset_in if b.reset_in is not None else 60.0) - elapsed)
        if wait <= self.settings.max_rate_wait:
            if wait > 0:
                self.http.clock.sleep(wait)
                self.waited += wait
            self.budget = RateBudget()
            return
        retry_at = datetime.fromtimestamp(self.http.clock.time() + wait, tz=timezone.utc)
        raise RateLimited(redact_url(url), retry_at,
                          f"rate-limit budget nearly spent ({int(b.remaining)} left); the poll "
                          f"resumes from its cursor after {retry_at.isoformat(timespec='seconds')}")


def _host(url: str) -> str:
    try:
        return (urlsplit(url).hostname or "").lower()
    except ValueError:
        return ""


class TokenCache:
    """Access tokens per (endpoint, identity) in process memory, with their expiry. Never
    persisted: a restart signs in again."""

    def __init__(self) -> None:
        self._tokens: dict[tuple[str, str], tuple[dict[str, Any], float]] = {}
        self._lock = threading.Lock()

    def get(self, key: tuple[str, str], now: float | None = None) -> dict[str, Any] | None:
        now = time.time() if now is None else now
        with self._lock:
            item = self._tokens.get(key)
        if item is None or item[1] <= now:
            return None
        return item[0]

    def put(self, key: tuple[str, str], token: dict[str, Any], expires_at: float) -> None:
        with self._lock:
            self._tokens[key] = (token, expires_at)

    def drop(self, key: tuple[str, str]) -> None:
        with self._lock:
            self._tokens.pop(key, None)


# --------------------------------------------------------------------------------------------
# Newest-first listings


Mark = tuple[float, str]
"""A high-water mark: (posted/indexed time as epoch seconds, post id)."""


def mark_from(value: Any) -> Mark | None:
    """A mark read back from a cursor (None when absent or malformed)."""
    if (isinstance(value, (list, tuple)) and len(value) == 2
            and isinstance(value[0], (int, float)) and isinstance(value[1], str)):
        return float(value[0]), value[1]
    return None


@dataclass
class Run:
    """What :func:`walk_back` read: items newest first, and whether it reached the mark."""

    items: list[tuple[Mark, Any]]
    reached: bool
    pages: int


def walk_back(fetch: Callable[[str | None], tuple[Sequence[tuple[Mark, Any]], str | None]],
              mark: Mark | None, max_pages: int) -> Run:
    """Read a newest-first listing back to ``mark`` (exclusive) or for ``max_pages`` pages.
    ``fetch(token)`` returns (items as (mark, item), next token or None)."""
    out: list[tuple[Mark, Any]] = []
    token: str | None = None
    seen: set[Mark] = set()
    for n in range(1, max_pages + 1):
        items, token = fetch(token)
        for m, item in items:
            if mark is not None and m <= mark:
                return Run(out, True, n)
            if m not in seen:
                seen.add(m)
                out.append((m, item))
        if not token or not items:
            return Run(out, True, n)
    return Run(out, mark is None, max_pages)


def run_pages(run: Run, to_candidates: Callable[[Any], list[Candidate]], page_size: int,
              cursor: Cursor, key: str, notes: list[str]) -> Iterator[Page]:
    """Pages of a run, oldest first; each page's cursor sets ``cursor[key]`` to the mark of its
    newest post, so a crash part way resumes exactly after the last committed page."""
    state = dict(cursor)
    batch: list[Candidate] = []
    last: Mark | None = None
    for m, item in reversed(run.items):
        batch.extend(to_candidates(item))
        last = m
        if len(batch) >= page_size:
            state[key] = list(last)
            yield Page(tuple(batch), dict(state), tuple(notes))
            notes.clear()
            batch = []
    if last is not None:
        state[key] = list(last)
    yield Page(tuple(batch), dict(state), tuple(notes))
    notes.clear()


# --------------------------------------------------------------------------------------------
# Parsing helpers: the JSON is the platform's (or an attacker's); trust nothing about it


def parse_time(value: Any) -> datetime | None:
    """An aware datetime from ISO 8601 text (with or without zone, fractions of any length) or
    epoch seconds; None if unreadable."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)) and math.isfinite(value):
        try:
            return datetime.fromtimestamp(float(value), tz=timezone.utc)
        except (OverflowError, OSError, ValueError):
            return None
    if not isinstance(value, str) or not value.strip() or len(value) > 64:
        return None
    text = value.strip().replace("Z", "+00:00").replace("z", "+00:00")
    if "." in text:  # fromisoformat wants 3 or 6 fraction digits before 3.11's fixes
        head, _, tail = text.partition(".")
        digits = "".join(c for c in tail if c.isdigit())
        zone = tail[len(digits):]
        text = f"{head}.{(digits + '000000')[:6]}{zone}" if digits else f"{head}{zone}"
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


def epoch(value: Any) -> float | None:
    when = parse_time(value)
    return when.timestamp() if when else None


def text_of(value: Any, limit: int = 2000) -> str | None:
    """A non-empty string field, else None."""
    if isinstance(value, str) and value.strip() and len(value) <= limit:
        return value.strip()
    return None


def id_of(value: Any) -> str | None:
    """An id as text (ints and strings accepted), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str) and value and len(value) <= 200 and value.isprintable():
        return value
    return None


def http_url(value: Any) -> str | None:
    """An absolute http(s) URL from the JSON, else None."""
    text = text_of(value, 8000)
    if not text:
        return None
    try:
        parts = urlsplit(text)
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    return text


def mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def items(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list) else []


def require_list(data: Any, key: str | None, where: str) -> list[Any]:
    """``data[key]`` (or ``data``) as a list, else a SourceFormatError naming the problem."""
    value = data.get(key) if key is not None and isinstance(data, Mapping) else data
    if key is not None and not isinstance(data, Mapping):
        raise SourceFormatError(redact_url(where), f"expected a JSON object with {key!r}, "
                                                   f"got {type(data).__name__}")
    if not isinstance(value, list):
        what = f"{key!r} " if key else ""
        raise SourceFormatError(redact_url(where), f"expected a JSON list {what}"
                                                   f"(got {type(value).__name__})")
    return value


def same_origin(url: str, base: str) -> bool:
    """True when ``url`` is on the scheme, host and port of ``base`` (a Link header we follow
    with credentials must never point elsewhere)."""
    try:
        a, b = urlsplit(url), urlsplit(base)
        return (a.scheme, a.hostname, a.port) == (b.scheme, b.hostname, b.port)
    except ValueError:
        return False


__all__ = [
    "PlatformSettings", "RateBudget", "Api", "TokenCache", "Mark", "Run", "walk_back",
    "run_pages", "parse_time", "parse_reset", "redact_url", "mark_from", "FetchError",
]
