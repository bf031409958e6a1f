"""robots.txt, per RFC 9309 and Google's documented behaviour, parsed with Protego.

One robots.txt per origin (scheme, host, port), fetched through the same safe HTTP client as
everything else (SSRF guard, rate limit, size cap, redirects followed) and cached:

===================================  =============================================  ===========
robots.txt fetch result              meaning                                        cached for
===================================  =============================================  ===========
2xx                                  parse it (first ``max_bytes`` only)            ``ttl``
4xx except 429 (404, 401, 403, 410)  unavailable: everything allowed                ``ttl``
too many redirects                   unavailable: everything allowed                ``ttl``
429, 5xx, timeout, network error,    unreachable: everything disallowed for now     ``error_ttl``
refused redirect (SSRF guard)        (``RobotsDisallowed(temporary=True)``)
===================================  =============================================  ===========

``Crawl-delay`` for our agent (capped at ``max_crawl_delay``) is passed to a callback so the
rate limiter can slow down for that host.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable
from urllib.parse import urlsplit

from protego import Protego

from .clock import SYSTEM_CLOCK, Clock
from .errors import (
    Blocked,
    FetchError,
    HttpStatus,
    RobotsDisallowed,
    TooManyRedirects,
    UnexpectedContent,
)

RobotsFetcher = Callable[[str], bytes]
"""Fetches a robots.txt URL and returns its body, or raises a FetchError."""


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    port = parts.port or (443 if scheme == "https" else 80)
    return f"{scheme}://{host}:{port}"


def robots_url_for(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme.lower()}://{parts.netloc.rsplit('@', 1)[-1]}/robots.txt"


@dataclass
class _Entry:
    parser: Protego | None  # None with allow_all / disallow
    allow_all: bool
    expires: float  # clock.time()
    problem: str | None = None  # why disallowed temporarily


class RobotsCache:
    def __init__(
        self,
        fetch: RobotsFetcher,
        agent: str,
        *,
        ttl: float = 24 * 3600,
        error_ttl: float = 600,
        max_crawl_delay: float = 60.0,
        on_crawl_delay: Callable[[str, float], None] | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self._fetch = fetch
        self.agent = agent
        self.ttl = ttl
        self.error_ttl = error_ttl
        self.max_crawl_delay = max_crawl_delay
        self._on_crawl_delay = on_crawl_delay
        self._clock = clock
        self._entries: dict[str, _Entry] = {}
        self._lock = threading.Lock()
        self._origin_locks: dict[str, threading.Lock] = {}

    def _load(self, origin: str, url: str) -> _Entry:
        robots_url = robots_url_for(url)
        now = self._clock.time()
        try:
            body = self._fetch(robots_url)
        except HttpStatus as exc:
            if 400 <= exc.status < 500 and exc.status != 429:
                return _Entry(None, True, now + self.ttl)
            return _Entry(None, False, now + self.error_ttl, f"HTTP {exc.status}")
        except TooManyRedirects:
            return _Entry(None, True, now + self.ttl)
        except Blocked as exc:
            return _Entry(None, False, now + self.error_ttl, f"refused ({exc.problem})")
        except UnexpectedContent:
            return _Entry(None, True, now + self.ttl)
        except FetchError as exc:
            return _Entry(None, False, now + self.error_ttl, exc.problem)
        parser = Protego.parse(body.decode("utf-8", "replace"))
        delay = None
        try:
            delay = parser.crawl_delay(self.agent)
        except Exception:  # pragma: no cover - defensive: malformed directive values
            delay = None
        if delay and self._on_crawl_delay:
            host = urlsplit(url).hostname or ""
            self._on_crawl_delay(host, min(float(delay), self.max_crawl_delay))
        return _Entry(parser, False, now + self.ttl)

    def _entry(self, url: str) -> _Entry:
        origin = origin_of(url)
        with self._lock:
            entry = self._entries.get(origin)
            if entry is not None and entry.expires > self._clock.time():
                return entry
            lock = self._origin_locks.setdefault(origin, threading.Lock())
        with lock:
            with self._lock:
                entry = self._entries.get(origin)
                if entry is not None and entry.expires > self._clock.time():
                    return entry
            entry = self._load(origin, url)
            with self._lock:
                self._entries[origin] = entry
            return entry

    def allowed(self, url: str) -> bool:
        entry = self._entry(url)
        if entry.allow_all:
            return True
        if entry.parser is None:
            return False
        return bool(entry.parser.can_fetch(url, self.agent))

    def check(self, url: str) -> None:
        """Raise :class:`RobotsDisallowed` unless robots.txt lets our agent fetch ``url``."""
        entry = self._entry(url)
        if entry.allow_all:
            return
        if entry.parser is None:
            retry_at = datetime.fromtimestamp(entry.expires, tz=timezone.utc)
            raise RobotsDisallowed(
                url,
                f"robots.txt is unreachable ({entry.problem}); crawling this site is paused "
                f"until {retry_at.isoformat(timespec='seconds')}",
                temporary=True,
                retry_at=retry_at,
            )
        if not entry.parser.can_fetch(url, self.agent):
            raise RobotsDisallowed(url, f"robots.txt disallows it for {self.agent}")

    def sitemaps(self, url: str) -> list[str]:
        """Sitemap URLs listed in the robots.txt of ``url``'s site."""
        entry = self._entry(url)
        return list(entry.parser.sitemaps) if entry.parser is not None else []

    def forget(self, url: str | None = None) -> None:
        with self._lock:
            if url is None:
                self._entries.clear()
            else:
                self._entries.pop(origin_of(url), None)
