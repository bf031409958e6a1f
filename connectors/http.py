"""The one HTTP client every connector uses: safe, polite and bounded.

:class:`HttpClient` wraps a ``requests`` session and adds, for every request:

* an SSRF guard (:mod:`connectors.netsafety`) before every connection, including each redirect
  hop (redirects are followed here, by hand, never by ``requests``), and a connection pinned to
  the address that was checked (no DNS rebinding between check and connect);
* an identifying User-Agent, per-host rate limits, robots.txt (``respect_robots``);
* retries with exponential back-off and jitter on connection errors, timeouts and 429/5xx,
  honouring ``Retry-After`` (seconds or HTTP-date) up to ``max_retry_after``;
* connect and read timeouts plus a total deadline per response, enforced by a watchdog that shuts
  the socket down (a server trickling bytes, even in its headers, is cut off);
* a response size cap (Content-Length checked first, then bytes counted while streaming, after
  decompression);
* content sniffing of the bytes (``expect="image"`` etc.; the Content-Type header is never
  trusted alone);
* conditional requests through a :class:`ValidatorCache` (ETag / Last-Modified, 304 handled).

See docs/connectors.md for the defaults and the exact rules.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import random
import socket
import ssl
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from http.cookiejar import DefaultCookiePolicy
from typing import Any, Iterable, Mapping
from urllib.parse import urlencode, urljoin, urlsplit, urlunsplit

import requests
import urllib3
from requests.adapters import HTTPAdapter
from requests.structures import CaseInsensitiveDict
from requests.utils import parse_header_links
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import MaxRetryError, NewConnectionError, NameResolutionError

from .clock import SYSTEM_CLOCK, Clock
from .errors import (
    Blocked,
    ConnectionFailed,
    FetchError,
    HttpStatus,
    NotAnImage,
    RateLimited,
    SourceFormatError,
    SourceSettingsError,
    Timeout,
    TooLarge,
    TooManyRedirects,
    UnexpectedContent,
)
from .netsafety import NetPolicy, Resolver, VettedURL
from .ratelimit import HostRateLimiter
from .robots import RobotsCache
from .sniff import SNIFF_BYTES, Sniffed, sniff

PROJECT = "ncii-monitor"


class _NoQueryStrings(logging.Filter):
    """urllib3 logs each request line at DEBUG; query strings can carry search terms (watch
    terms are personal data), so they are cut from its records before any handler sees them."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(a.split("?", 1)[0] + "?<query hidden>" if isinstance(a, str) and "?" in a
                                else a for a in record.args)
        return True


logging.getLogger("urllib3.connectionpool").addFilter(_NoQueryStrings())
CONTACT_URL_DEFAULT: str | None = None


def _version() -> str:
    try:
        from importlib.metadata import version

        return version(PROJECT)
    except Exception:  # not installed (running from a checkout)
        return "0"


REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})

_ACCEPT = {
    "image": "image/avif,image/webp,image/png,image/jpeg,image/*;q=0.8,*/*;q=0.2",
    "video": "video/*,*/*;q=0.2",
    "xml": "application/rss+xml,application/atom+xml,application/xml;q=0.9,text/xml;q=0.9,"
    "*/*;q=0.2",
    "html": "text/html,application/xhtml+xml;q=0.9,*/*;q=0.2",
    "json": "application/json,*/*;q=0.2",
}
_EXPECT_WORDS = {
    "image": "an image",
    "video": "a video",
    "xml": "XML",
    "html": "HTML",
    "json": "JSON",
    "gzip": "gzip data",
    "text": "text",
}
EXPECT_KINDS = frozenset(_EXPECT_WORDS)


# --------------------------------------------------------------------------------------------
# Settings


@dataclass(frozen=True)
class HttpSettings:
    """Everything the HTTP layer can be told. All times in seconds, sizes in bytes."""

    contact_url: str | None = CONTACT_URL_DEFAULT
    user_agent: str | None = None  # full override of the generated User-Agent
    robots_agent: str = PROJECT  # the product token matched against robots.txt groups
    connect_timeout: float = 10.0
    read_timeout: float = 30.0
    total_timeout: float = 120.0  # per response: headers and body, whatever the server does
    max_bytes: int = 50 * 1024 * 1024
    max_redirects: int = 5
    retries: int = 3  # further attempts after the first
    backoff_base: float = 1.0
    backoff_max: float = 60.0
    max_retry_after: float = 600.0  # a longer Retry-After raises RateLimited instead of waiting
    min_interval: float = 1.0  # per host, between requests
    burst: int = 1
    host_intervals: Mapping[str, float] = field(default_factory=dict)
    respect_robots: bool = True
    robots_ttl: float = 24 * 3600.0
    robots_error_ttl: float = 600.0
    robots_max_bytes: int = 500 * 1024
    max_crawl_delay: float = 60.0
    allow_hosts: frozenset[str] = frozenset()
    allow_loopback: bool = False
    verify: bool | str = True  # TLS verification: True, or a CA bundle path

    def __post_init__(self) -> None:
        def bad(name: str, problem: str) -> SourceSettingsError:
            return SourceSettingsError(name, problem, where="HTTP settings")

        for name in ("connect_timeout", "read_timeout", "total_timeout"):
            if not float(getattr(self, name)) > 0:
                raise bad(name, "must be a positive number of seconds")
        for name in ("backoff_base", "backoff_max", "max_retry_after", "min_interval",
                     "robots_ttl", "robots_error_ttl", "max_crawl_delay"):
            if float(getattr(self, name)) < 0:
                raise bad(name, "must not be negative")
        for name in ("max_bytes", "robots_max_bytes"):
            if int(getattr(self, name)) < 1:
                raise bad(name, "must be at least 1 byte")
        if not 0 <= int(self.max_redirects) <= 30:
            raise bad("max_redirects", "must be between 0 and 30")
        if not 0 <= int(self.retries) <= 10:
            raise bad("retries", "must be between 0 and 10")
        if int(self.burst) < 1:
            raise bad("burst", "must be at least 1")
        if self.contact_url is not None and not str(self.contact_url).startswith(
            ("http://", "https://", "mailto:")
        ):
            raise bad("contact_url", "must be an http(s): or mailto: URL")
        if not self.robots_agent or any(c.isspace() for c in self.robots_agent):
            raise bad("robots_agent", "must be one product token without spaces")
        for host, interval in dict(self.host_intervals).items():
            if float(interval) < 0:
                raise bad("host_intervals", f"interval for {host!r} must not be negative")
        object.__setattr__(self, "allow_hosts", frozenset(self.allow_hosts))
        object.__setattr__(self, "host_intervals", dict(self.host_intervals))

    @property
    def effective_user_agent(self) -> str:
        if self.user_agent:
            return self.user_agent
        contact = f"+{self.contact_url}" if self.contact_url else "contact not configured"
        return f"{PROJECT}/{_version()} ({contact}; monitor for non-consensual image abuse)"


# --------------------------------------------------------------------------------------------
# Conditional requests


@dataclass(frozen=True)
class Validators:
    """A response's cache validators, sent back as If-None-Match / If-Modified-Since."""

    etag: str | None = None
    last_modified: str | None = None

    def __bool__(self) -> bool:
        return bool(self.etag or self.last_modified)

    def request_headers(self) -> dict[str, str]:
        headers = {}
        if self.etag:
            headers["If-None-Match"] = self.etag
        if self.last_modified:
            headers["If-Modified-Since"] = self.last_modified
        return headers

    def to_dict(self) -> dict[str, str]:
        out = {}
        if self.etag:
            out["etag"] = self.etag
        if self.last_modified:
            out["last_modified"] = self.last_modified
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> "Validators":
        data = data or {}
        etag = data.get("etag")
        last = data.get("last_modified")
        return cls(
            etag if isinstance(etag, str) and etag else None,
            last if isinstance(last, str) and last else None,
        )

    @classmethod
    def from_headers(cls, headers: Mapping[str, str]) -> "Validators":
        etag = headers.get("ETag") or None
        last = headers.get("Last-Modified") or None
        if etag and (len(etag) > 512 or "\n" in etag or "\r" in etag):
            etag = None
        if last and (len(last) > 64 or "\n" in last or "\r" in last):
            last = None
        return cls(etag, last)


class ValidatorCache:
    """Validators per URL, JSON-serialisable (``to_dict``/``from_dict``) so a caller can persist
    it, typically inside a source's cursor. Keeps at most ``max_entries`` URLs (oldest dropped).
    """

    def __init__(self, entries: Mapping[str, Validators] | None = None, max_entries: int = 1000):
        self.max_entries = max_entries
        self._entries: dict[str, Validators] = dict(entries or {})

    def get(self, url: str) -> Validators:
        return self._entries.get(url, Validators())

    def put(self, url: str, validators: Validators) -> None:
        self._entries.pop(url, None)
        if validators:
            self._entries[url] = validators
            while len(self._entries) > self.max_entries:
                self._entries.pop(next(iter(self._entries)))

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, url: object) -> bool:
        return url in self._entries

    def to_dict(self) -> dict[str, dict[str, str]]:
        return {url: v.to_dict() for url, v in self._entries.items()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None, max_entries: int = 1000) -> "ValidatorCache":
        entries = {}
        for url, value in (data or {}).items():
            if isinstance(url, str) and isinstance(value, Mapping):
                v = Validators.from_dict(value)
                if v:
                    entries[url] = v
        return cls(entries, max_entries=max_entries)

    def copy(self) -> "ValidatorCache":
        return ValidatorCache(self._entries, self.max_entries)


# --------------------------------------------------------------------------------------------
# Responses


@dataclass(frozen=True)
class Response:
    """A fetched response. ``content`` is the decoded body (empty for 304)."""

    url: str  # final URL, after redirects
    requested_url: str
    status: int
    headers: CaseInsensitiveDict
    content: bytes
    sniffed: Sniffed
    redirects: tuple[str, ...] = ()
    truncated: bool = False

    @property
    def not_modified(self) -> bool:
        return self.status == 304

    @property
    def content_type(self) -> str:
        """The declared media type (header), lower-case, without parameters."""
        return (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()

    @property
    def mime(self) -> str:
        """The sniffed media type (what the bytes are)."""
        return self.sniffed.mime

    @property
    def validators(self) -> Validators:
        return Validators.from_headers(self.headers)

    @property
    def charset(self) -> str | None:
        for param in (self.headers.get("Content-Type") or "").split(";")[1:]:
            key, _, value = param.partition("=")
            if key.strip().lower() == "charset" and value.strip():
                return value.strip().strip("\"'")
        return None

    @property
    def text(self) -> str:
        data = self.content
        if data.startswith(b"\xef\xbb\xbf"):
            return data[3:].decode("utf-8", "replace")
        if data.startswith((b"\xff\xfe", b"\xfe\xff")):
            return data.decode("utf-16", "replace")
        charset = self.charset or "utf-8"
        try:
            return data.decode(charset, "replace")
        except LookupError:
            return data.decode("utf-8", "replace")

    def json(self) -> Any:
        try:
            return json.loads(self.text)
        except ValueError as exc:
            raise SourceFormatError(self.url, f"invalid JSON ({exc})") from None

    @property
    def links(self) -> dict[str, str]:
        """RFC 8288 ``Link`` header as {rel: absolute URL} (API pagination, e.g. Mastodon)."""
        out: dict[str, str] = {}
        header = self.headers.get("Link")
        if not header:
            return out
        try:
            parsed = parse_header_links(header)
        except Exception:
            return out
        for link in parsed:
            url = link.get("url")
            for rel in (link.get("rel") or "").split():
                if url and rel not in out:
                    try:
                        out[rel] = urljoin(self.url, url)
                    except ValueError:
                        continue
        return out


# --------------------------------------------------------------------------------------------
# Transport: connections pinned to vetted addresses, watched by a deadline


_local = threading.local()


class _Watchdog:
    """Shuts down every socket used by one attempt once ``seconds`` have passed."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.fired = False
        self._socks: list[socket.socket] = []
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None

    def __enter__(self) -> "_Watchdog":
        self._previous = getattr(_local, "watchdog", None)
        _local.watchdog = self
        self._timer = threading.Timer(self.seconds, self._fire)
        self._timer.daemon = True
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._timer is not None:
            self._timer.cancel()
        _local.watchdog = self._previous

    def register(self, sock: socket.socket) -> None:
        with self._lock:
            self._socks.append(sock)
            fired = self.fired
        if fired:
            _shutdown(sock)

    def _fire(self) -> None:
        with self._lock:
            self.fired = True
            socks = list(self._socks)
        for sock in socks:
            _shutdown(sock)


def _shutdown(sock: socket.socket) -> None:
    try:
        # The plain socket method, also for SSL sockets: wakes a blocked recv without touching
        # the TLS object another thread is using.
        socket.socket.shutdown(sock, socket.SHUT_RDWR)
    except (OSError, ValueError):
        pass


def _watch(sock: socket.socket | None) -> None:
    watchdog = getattr(_local, "watchdog", None)
    if watchdog is not None and sock is not None:
        watchdog.register(sock)


class _Watched:
    """Registers each connection's socket with the response deadline's watchdog (HTTP and HTTPS)."""

    def _new_conn(self) -> socket.socket:
        sock = super()._new_conn()  # type: ignore[misc]
        _watch(sock)
        return sock

    def request(self, *args: Any, **kwargs: Any) -> None:
        _watch(self.sock)  # type: ignore[attr-defined]
        super().request(*args, **kwargs)  # type: ignore[misc]


class _WatchedHTTPConnection(_Watched, HTTPConnection):
    pass


class _WatchedHTTPSConnection(_Watched, HTTPSConnection):
    pass


class _HTTPPool(HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _HTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


class _PinnedAdapter(HTTPAdapter):
    """Requests are sent to ``scheme://<vetted IP>:port/...`` with the real ``Host`` header; for
    HTTPS the TLS server name (SNI) and certificate check use the real host name."""

    def __init__(self, ssl_context: ssl.SSLContext | None) -> None:
        self._ssl_context = ssl_context
        super().__init__(max_retries=0, pool_connections=16, pool_maxsize=4)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _HTTPPool, "https": _HTTPSPool}

    def build_connection_pool_key_attributes(self, request, verify, cert=None):  # type: ignore[override]
        host_params, pool_kwargs = super().build_connection_pool_key_attributes(
            request, verify, cert
        )
        if host_params.get("scheme") == "https":
            server_name = request.headers.get("Host", "")
            if server_name.startswith("["):
                server_name = server_name[1 : server_name.index("]")]
            else:
                server_name = server_name.rsplit(":", 1)[0] if ":" in server_name else server_name
            if server_name:
                pool_kwargs["server_hostname"] = server_name
            if self._ssl_context is not None:
                for key in ("ca_certs", "ca_cert_dir", "cert_reqs"):
                    pool_kwargs.pop(key, None)
                pool_kwargs["ssl_context"] = self._ssl_context
        return host_params, pool_kwargs


def _make_ssl_context(verify: bool | str) -> ssl.SSLContext | None:
    if verify is False:
        return None  # requests/urllib3 then use CERT_NONE
    from urllib3.util.ssl_ import create_urllib3_context

    context = create_urllib3_context()
    context.verify_mode = ssl.CERT_REQUIRED
    context.check_hostname = True
    if isinstance(verify, str):
        context.load_verify_locations(cafile=verify)
    else:
        import certifi

        context.load_verify_locations(cafile=certifi.where())
    return context


def _pinned_url(vetted: VettedURL, ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    parts = urlsplit(vetted.url)
    host = f"[{ip.compressed}]" if ip.version == 6 else str(ip)
    return urlunsplit((vetted.scheme, f"{host}:{vetted.port}", parts.path or "/", parts.query, ""))


def _cause_chain(exc: BaseException) -> Iterable[BaseException]:
    seen = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        if isinstance(current, MaxRetryError) and current.reason is not None:
            current = current.reason
            continue
        first = current.args[0] if current.args else None
        nested = first if isinstance(first, BaseException) else None
        current = nested or current.__cause__ or current.__context__


def _is_connect_failure(exc: BaseException) -> bool:
    return any(
        isinstance(e, (NewConnectionError, NameResolutionError, ConnectionRefusedError))
        for e in _cause_chain(exc)
    )


def _brief(exc: BaseException) -> str:
    """A short description of a transport error (innermost cause, without addresses noise)."""
    last = exc
    for e in _cause_chain(exc):
        last = e
    text = str(last) or type(last).__name__
    return text.split(": ", 1)[-1] if text.startswith("<") else text


class _Retry(Exception):
    """Internal: this attempt failed in a way that may succeed when tried again."""

    def __init__(self, error: FetchError, retry_after: float | None = None,
                 unsent: bool = False) -> None:
        self.error = error
        self.retry_after = retry_after
        self.unsent = unsent  # no connection was made: the request never reached the server


@dataclass(frozen=True)
class _Body:
    """Internal: a POST request's encoded body (never logged, never in an error message)."""

    method: str
    data: bytes
    content_type: str

    def __repr__(self) -> str:
        return f"<_Body {self.method} {len(self.data)} bytes>"


@dataclass
class _Hop:
    status: int
    headers: CaseInsensitiveDict
    content: bytes = b""
    sniffed: Sniffed = field(default_factory=lambda: Sniffed("empty", "application/octet-stream"))
    truncated: bool = False


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP-date); None if absent
    or unparseable. Dates in the past give 0."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(int(value))
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, when.timestamp() - now)


def _normalise_expect(expect: str | Iterable[str] | None) -> frozenset[str]:
    if expect is None:
        return frozenset()
    kinds = frozenset([expect]) if isinstance(expect, str) else frozenset(expect)
    unknown = kinds - EXPECT_KINDS
    if unknown:
        raise ValueError(f"unknown expected content kind(s): {sorted(unknown)}")
    return kinds


# --------------------------------------------------------------------------------------------
# The client


class HttpClient:
    """The safe HTTP client. One per process (or per worker); it is thread-safe.

    ``resolver`` (host -> addresses) and ``clock`` are injectable for tests; ``rng`` drives the
    back-off jitter.
    """

    def __init__(
        self,
        settings: HttpSettings | None = None,
        *,
        resolver: Resolver | None = None,
        clock: Clock = SYSTEM_CLOCK,
        rng: random.Random | None = None,
    ) -> None:
        self.settings = settings or HttpSettings()
        self.clock = clock
        self.policy = NetPolicy(
            allow_hosts=self.settings.allow_hosts,
            allow_loopback=self.settings.allow_loopback,
            resolver=resolver,
        )
        self._rng = rng or random.Random()
        self.limiter = HostRateLimiter(
            self.settings.min_interval,
            self.settings.burst,
            self.settings.host_intervals,
            clock=clock,
        )
        self.robots = RobotsCache(
            self._fetch_robots,
            self.settings.robots_agent,
            ttl=self.settings.robots_ttl,
            error_ttl=self.settings.robots_error_ttl,
            max_crawl_delay=self.settings.max_crawl_delay,
            on_crawl_delay=self.limiter.set_interval,
            clock=clock,
        )
        self._session = requests.Session()
        self._session.trust_env = False  # no proxies/netrc from the environment: the guard
        self._session.proxies = {}  # must see the real destination
        self._session.cookies.set_policy(DefaultCookiePolicy(allowed_domains=[]))
        self._session.headers.clear()
        adapter = _PinnedAdapter(_make_ssl_context(self.settings.verify))
        self._session.mount("http://", adapter)
        self._session.mount("https://", adapter)
        self.requests_sent = 0  # attempts that reached the network (for tests and metrics)

    # -- public API -----------------------------------------------------------------------------

    @property
    def user_agent(self) -> str:
        return self.settings.effective_user_agent

    def get(
        self,
        url: str,
        *,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        expect: str | Iterable[str] | None = None,
        max_bytes: int | None = None,
        cache: ValidatorCache | None = None,
        check_robots: bool | None = None,
        referer: str | None = None,
        truncate: bool = False,
        body: "_Body | None" = None,
        max_retry_after: float | None = None,
        user_agent: str | None = None,
    ) -> Response:
        """GET ``url`` safely and return the whole (bounded) response.

        ``expect``: content kind(s) the bytes must sniff as ("image", "video", "html", "xml",
        "json", "gzip", "text"), else :class:`UnexpectedContent` / :class:`NotAnImage`.
        ``cache``: send its validators for ``url`` and update it from the response; a 304 comes
        back as ``Response(status=304, content=b"")``.
        ``check_robots``: defaults to ``settings.respect_robots``; API connectors calling an
        endpoint meant for programs pass False.
        ``truncate``: keep the first ``max_bytes`` instead of raising :class:`TooLarge`.
        ``user_agent``: replaces the client's User-Agent for this call (APIs that prescribe a
        format, e.g. Reddit's ``<platform>:<app id>:<version> (by /u/<user>)``).
        ``max_retry_after``: per call override of the setting (API connectors pass a short one so
        a long ``Retry-After`` reschedules the source instead of holding a worker).
        Raises a :class:`FetchError` subclass naming the URL and the problem.
        """
        if params:
            try:
                parts = urlsplit(url)
            except ValueError:
                raise Blocked(url, "malformed URL") from None
            query = urlencode([(k, v) for k, v in params.items() if v is not None], doseq=True)
            joined = f"{parts.query}&{query}" if parts.query else query
            url = urlunsplit(parts._replace(query=joined))
        kinds = _normalise_expect(expect)
        limit = int(max_bytes or self.settings.max_bytes)
        robots = self.settings.respect_robots if check_robots is None else check_robots
        base_headers = {
            "User-Agent": user_agent or self.user_agent,
            "Accept-Encoding": "gzip, deflate",
            "Accept": next((_ACCEPT[k] for k in ("image", "xml", "html", "json", "video")
                            if k in kinds), "*/*"),
        }
        extra = dict(headers or {})
        for name in list(extra):
            if name.lower() in ("host", "user-agent"):
                del extra[name]
        if referer and not (referer.startswith("https:") and url.startswith("http:")):
            extra.setdefault("Referer", referer)
        conditional = cache.get(url).request_headers() if cache is not None else {}
        hop = self._follow(url, {**base_headers, **extra, **conditional}, kinds, limit, robots,
                           truncate, body, max_retry_after)
        final_url, redirects, result = hop
        response = Response(
            url=final_url,
            requested_url=url,
            status=result.status,
            headers=result.headers,
            content=result.content,
            sniffed=result.sniffed,
            redirects=tuple(redirects),
            truncated=result.truncated,
        )
        if cache is not None and response.status == 200:
            cache.put(url, response.validators)
        return response

    def get_image(self, url: str, *, referer: str | None = None,
                  max_bytes: int | None = None, check_robots: bool | None = None) -> Response:
        """GET a picture: the bytes must sniff as an image (else :class:`NotAnImage`)."""
        return self.get(url, expect="image", referer=referer, max_bytes=max_bytes,
                        check_robots=check_robots)

    def get_json(self, url: str, *, params: Mapping[str, Any] | None = None,
                 headers: Mapping[str, str] | None = None, check_robots: bool | None = False,
                 max_bytes: int | None = None,
                 max_retry_after: float | None = None) -> tuple[Any, Response]:
        """GET a JSON API endpoint; returns (parsed JSON, response) so callers can read the
        ``Link`` header or rate-limit headers. robots.txt is not consulted by default (API
        endpoints are meant for programs); pass ``check_robots=True`` to consult it."""
        response = self.get(url, params=params, headers=headers, expect="json",
                            check_robots=check_robots, max_bytes=max_bytes,
                            max_retry_after=max_retry_after)
        return response.json(), response

    def post(self, url: str, *, form: Mapping[str, Any] | None = None, json_body: Any = None,
             headers: Mapping[str, str] | None = None, expect: str | Iterable[str] | None = "json",
             max_bytes: int | None = None, check_robots: bool | None = False,
             max_retry_after: float | None = None, user_agent: str | None = None) -> Response:
        """POST a form (``form``) or a JSON document (``json_body``) safely: the same SSRF guard,
        pinning, size cap and deadline as :meth:`get`. Redirects are not followed; the request is
        retried only when it cannot have reached the server (no connection) or on 429. Bodies are
        never logged nor put in error messages (they carry credentials)."""
        if (form is None) == (json_body is None):
            raise ValueError("post() needs exactly one of form= or json_body=")
        if form is not None:
            data = urlencode([(k, v) for k, v in form.items() if v is not None]).encode("utf-8")
            body = _Body("POST", data, "application/x-www-form-urlencoded")
        else:
            data = json.dumps(json_body, separators=(",", ":")).encode("utf-8")
            body = _Body("POST", data, "application/json")
        return self.get(url, headers=headers, expect=expect, max_bytes=max_bytes,
                        check_robots=check_robots, body=body, max_retry_after=max_retry_after,
                        user_agent=user_agent)

    def post_json(self, url: str, *, form: Mapping[str, Any] | None = None, json_body: Any = None,
                  headers: Mapping[str, str] | None = None, max_bytes: int | None = None,
                  max_retry_after: float | None = None) -> tuple[Any, Response]:
        """POST (see :meth:`post`) to a JSON API; returns (parsed JSON, response)."""
        response = self.post(url, form=form, json_body=json_body, headers=headers,
                             max_bytes=max_bytes, max_retry_after=max_retry_after)
        return response.json(), response

    def robots_allows(self, url: str) -> bool:
        """Whether robots.txt lets us fetch ``url`` (fetches and caches robots.txt)."""
        self.policy.vet(url)
        return self.robots.allowed(url)

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> "HttpClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- internals ------------------------------------------------------------------------------

    def _fetch_robots(self, robots_url: str) -> bytes:
        response = self.get(
            robots_url,
            check_robots=False,
            max_bytes=self.settings.robots_max_bytes,
            truncate=True,
        )
        if response.sniffed.kind == "html":
            raise UnexpectedContent(robots_url, "robots.txt is an HTML page", "html")
        return response.content

    def _follow(
        self,
        url: str,
        headers: dict[str, str],
        kinds: frozenset[str],
        limit: int,
        robots: bool,
        truncate: bool,
        body: "_Body | None" = None,
        max_retry_after: float | None = None,
    ) -> tuple[str, list[str], _Hop]:
        current = url
        redirects: list[str] = []
        for _ in range(self.settings.max_redirects + 1):
            try:
                vetted = self.policy.vet(current)
            except Blocked as exc:
                if redirects:
                    raise Blocked(url, f"redirect to {current} refused: {exc.problem}") from None
                raise
            if robots:
                self.robots.check(current)
            hop = self._with_retries(vetted, headers, kinds, limit, truncate, body,
                                     max_retry_after)
            location = hop.headers.get("Location")
            if hop.status in REDIRECT_STATUSES and body is not None:
                # A POST carries credentials or a session request: never re-sent elsewhere.
                raise HttpStatus(current, hop.status, f"HTTP {hop.status}: redirects are not "
                                                      f"followed for POST requests")
            if hop.status in REDIRECT_STATUSES and location:
                try:
                    nxt = urljoin(current, location.strip()).split("#", 1)[0]
                    old, new = urlsplit(current), urlsplit(nxt)
                    new.port  # noqa: B018 - raises ValueError for a bad port
                except ValueError:
                    raise HttpStatus(current, hop.status,
                                     f"HTTP {hop.status} with an invalid Location") from None
                if (old.hostname, old.port, old.scheme) != (new.hostname, new.port, new.scheme):
                    for name in list(headers):
                        if name.lower() in ("authorization", "cookie", "proxy-authorization"):
                            del headers[name]
                    if old.scheme == "https" and new.scheme == "http":
                        headers.pop("Referer", None)
                redirects.append(nxt)
                current = nxt
                continue
            if hop.status in REDIRECT_STATUSES:
                raise HttpStatus(current, hop.status, f"HTTP {hop.status} without a Location")
            return current, redirects, hop
        raise TooManyRedirects(url, f"more than {self.settings.max_redirects} redirects "
                                    f"(last: {current})")

    def _backoff(self, attempt: int) -> float:
        s = self.settings
        delay = min(s.backoff_max, s.backoff_base * (2 ** attempt))
        return delay * (0.5 + 0.5 * self._rng.random())  # "equal jitter"

    def _with_retries(
        self,
        vetted: VettedURL,
        headers: dict[str, str],
        kinds: frozenset[str],
        limit: int,
        truncate: bool,
        body: "_Body | None" = None,
        max_retry_after: float | None = None,
    ) -> _Hop:
        wait_limit = self.settings.max_retry_after if max_retry_after is None else max_retry_after
        attempt = 0
        while True:
            try:
                return self._attempt(vetted, headers, kinds, limit, truncate, body)
            except _Retry as retry:
                wait = retry.retry_after
                if body is not None and not retry.unsent and not (
                    isinstance(retry.error, HttpStatus) and retry.error.status == 429
                ):
                    # A POST is not idempotent: try again only when the server cannot have acted
                    # on it (no connection was made, or it answered 429).
                    if wait is not None and wait > wait_limit:
                        raise RateLimited(vetted.url, self._at(wait)) from None
                    raise retry.error from None
                if wait is not None and wait > wait_limit:
                    raise RateLimited(vetted.url, self._at(wait)) from None
                if attempt >= self.settings.retries:
                    error = retry.error
                    if isinstance(error, HttpStatus) and (
                        error.status == 429 or (error.status == 503 and wait is not None)
                    ):
                        retry_at = self._at(wait if wait is not None else self._backoff(attempt))
                        raise RateLimited(
                            vetted.url,
                            retry_at,
                            f"HTTP {error.status} after {attempt + 1} attempts; rate limited "
                            f"until {retry_at.isoformat(timespec='seconds')}",
                        ) from None
                    raise error from None
                delay = wait if wait is not None else self._backoff(attempt)
                self.clock.sleep(delay)
                attempt += 1

    def _at(self, seconds: float) -> datetime:
        return datetime.fromtimestamp(self.clock.time() + seconds, tz=timezone.utc)

    def _attempt(
        self,
        vetted: VettedURL,
        headers: dict[str, str],
        kinds: frozenset[str],
        limit: int,
        truncate: bool,
        body: "_Body | None" = None,
    ) -> _Hop:
        s = self.settings
        url = vetted.url
        last_error: FetchError | None = None
        for ip in vetted.addresses:
            self.limiter.acquire(vetted.host)
            pinned = _pinned_url(vetted, ip)
            send_headers = {**headers, "Host": vetted.host_header}
            if body is not None:
                send_headers["Content-Type"] = body.content_type
            with _Watchdog(s.total_timeout) as watchdog:
                try:
                    self.requests_sent += 1
                    raw = self._session.request(
                        body.method if body is not None else "GET",
                        pinned,
                        data=body.data if body is not None else None,
                        headers=send_headers,
                        stream=True,
                        allow_redirects=False,
                        timeout=(s.connect_timeout, s.read_timeout),
                        verify=s.verify,
                    )
                except requests.exceptions.ConnectTimeout:
                    last_error = Timeout(url, f"connect timeout after {s.connect_timeout:g}s "
                                              f"({ip})")
                    continue
                except requests.exceptions.SSLError as exc:
                    if watchdog.fired:
                        raise self._deadline_error(url) from None
                    error = ConnectionFailed(url, f"TLS error: {_brief(exc)}")
                    error.retryable = False  # type: ignore[misc]
                    raise error from None
                except requests.exceptions.ReadTimeout:
                    raise _Retry(Timeout(url, f"no response within the read timeout of "
                                              f"{s.read_timeout:g}s")) from None
                except requests.exceptions.ConnectionError as exc:
                    if watchdog.fired:
                        raise self._deadline_error(url) from None
                    if _is_connect_failure(exc):
                        last_error = ConnectionFailed(url, f"cannot connect to {ip}: "
                                                           f"{_brief(exc)}")
                        continue
                    raise _Retry(ConnectionFailed(url, f"connection failed: {_brief(exc)}")) \
                        from None
                except requests.exceptions.RequestException as exc:
                    if watchdog.fired:
                        raise self._deadline_error(url) from None
                    raise ConnectionFailed(url, f"request failed: {_brief(exc)}") from None
                try:
                    return self._consume(raw, url, kinds, limit, truncate, watchdog)
                finally:
                    raw.close()
        assert last_error is not None
        raise _Retry(last_error, unsent=True)

    def _deadline_error(self, url: str) -> Timeout:
        return Timeout(url, f"response not complete within the total deadline of "
                            f"{self.settings.total_timeout:g}s")

    def _consume(
        self,
        raw: requests.Response,
        url: str,
        kinds: frozenset[str],
        limit: int,
        truncate: bool,
        watchdog: _Watchdog,
    ) -> _Hop:
        status = raw.status_code
        headers = CaseInsensitiveDict(raw.headers)
        if status in RETRY_STATUSES:
            wait = parse_retry_after(headers.get("Retry-After"), self.clock.time())
            raise _Retry(HttpStatus(url, status), wait)
        if status >= 400:
            raise HttpStatus(url, status)
        if status in REDIRECT_STATUSES or status == 304 or status == 204 or status < 200:
            return _Hop(status, headers)
        if status != 200 and status not in (203, 206):
            # 201/202/205 etc. carry no resource for a GET we can use
            raise HttpStatus(url, status, f"unexpected HTTP {status}")

        length = headers.get("Content-Length")
        if length and length.strip().isdigit() and int(length) > limit and not truncate:
            raise TooLarge(url, f"Content-Length {int(length)} exceeds the {limit}-byte limit")

        body = bytearray()
        checked = False
        truncated = False
        try:
            for chunk in raw.iter_content(chunk_size=64 * 1024):
                if watchdog.fired:
                    raise self._deadline_error(url)
                body += chunk
                if len(body) > limit:
                    if truncate:
                        del body[limit:]
                        truncated = True
                        break
                    raise TooLarge(url, f"response exceeds the {limit}-byte limit "
                                        f"(more than {limit} bytes received)")
                if not checked and kinds and len(body) >= SNIFF_BYTES:
                    self._check_kind(url, bytes(body), kinds, headers)
                    checked = True
        except FetchError:
            raise
        except requests.exceptions.ContentDecodingError as exc:
            raise UnexpectedContent(url, f"cannot decode the compressed body ({_brief(exc)})") \
                from None
        except (requests.exceptions.ConnectionError, requests.exceptions.ChunkedEncodingError,
                urllib3.exceptions.HTTPError, OSError) as exc:
            if watchdog.fired:
                raise self._deadline_error(url) from None
            if any(isinstance(e, (urllib3.exceptions.ReadTimeoutError, socket.timeout))
                   for e in _cause_chain(exc)):
                raise _Retry(Timeout(url, f"read timeout of {self.settings.read_timeout:g}s "
                                          f"while receiving the body")) from None
            raise _Retry(ConnectionFailed(url, f"connection broken while receiving the body: "
                                               f"{_brief(exc)}")) from None
        if watchdog.fired:
            raise self._deadline_error(url)
        data = bytes(body)
        if not checked and kinds:
            self._check_kind(url, data, kinds, headers)
        return _Hop(status, headers, data, sniff(data), truncated)

    @staticmethod
    def _check_kind(url: str, data: bytes, kinds: frozenset[str],
                    headers: Mapping[str, str]) -> None:
        found = sniff(data)
        if found.kind in kinds:
            return
        declared = (headers.get("Content-Type") or "no Content-Type").split(";")[0].strip()
        wanted = " or ".join(_EXPECT_WORDS[k] for k in sorted(kinds))
        problem = f"expected {wanted}, got {found.describe()} (declared {declared})"
        if "image" in kinds:
            raise NotAnImage(url, problem, found.kind)
        raise UnexpectedContent(url, problem, found.kind)
