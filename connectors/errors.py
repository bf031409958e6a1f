"""Errors raised by connectors and the shared HTTP layer.

Every message names the thing that failed (a URL, a setting, a file) and the problem, and never
includes fetched content. The hierarchy::

    ConnectorError
    ├── SourceSettingsError          a source's settings are invalid (names the setting)
    ├── UnknownConnector             no connector of that kind is registered
    ├── SourceFormatError            a feed / sitemap / page / WARC could not be parsed
    └── FetchError                   fetching one URL failed (names the URL)
        ├── Blocked                  refused by the SSRF guard; nothing was sent
        ├── TooLarge                 response larger than the size cap
        ├── Timeout                  connect/read timeout or total deadline exceeded
        ├── HttpStatus               final 4xx/5xx status (``.status``)
        ├── AuthRequired             the API wants (new) credentials (401/403): not retried
        ├── RateLimited              the server asked us to wait too long (``.retry_at``)
        ├── UnexpectedContent        the bytes are not what was asked for
        │   └── NotAnImage           an image was promised, something else arrived
        ├── RobotsDisallowed         robots.txt forbids it (or is temporarily unreachable)
        ├── TooManyRedirects         more redirects than allowed
        └── ConnectionFailed         DNS failure, refused or reset connection, TLS failure
"""

from __future__ import annotations

from datetime import datetime


class ConnectorError(Exception):
    """Base class of every error raised by the ``connectors`` package."""

    code = "connector-error"


class SourceSettingsError(ConnectorError, ValueError):
    """A source's settings are invalid. ``setting`` names the bad setting (or None for the URL
    form as a whole), ``problem`` says what is wrong."""

    code = "bad-setting"

    def __init__(self, setting: str | None, problem: str, kind: str | None = None,
                 where: str | None = None) -> None:
        self.setting = setting
        self.problem = problem
        self.kind = kind
        where = where or (f"{kind} source" if kind else "source")
        if setting:
            message = f"{where}: setting {setting!r}: {problem}"
        else:
            message = f"{where}: {problem}"
        super().__init__(message)


class UnknownConnector(ConnectorError, LookupError):
    code = "unknown-connector"


class SourceFormatError(ConnectorError):
    """A document (feed, sitemap, HTML page, WARC file) could not be understood."""

    code = "bad-format"

    def __init__(self, source: str, problem: str) -> None:
        self.source = source
        self.problem = problem
        super().__init__(f"{source}: {problem}")


class FetchError(ConnectorError):
    """Fetching ``url`` failed; ``problem`` says why. ``retryable`` tells a scheduler whether the
    same fetch may succeed later without anything changing on our side."""

    code = "fetch-error"
    retryable = False

    def __init__(self, url: str, problem: str) -> None:
        self.url = url
        self.problem = problem
        super().__init__(f"{url}: {problem}")


class Blocked(FetchError):
    """The SSRF guard refused the URL (scheme, credentials, or a non-public address).
    Raised before any connection is made."""

    code = "blocked"


class TooLarge(FetchError):
    code = "too-large"


class Timeout(FetchError):
    code = "timeout"
    retryable = True


class HttpStatus(FetchError):
    code = "http-status"

    def __init__(self, url: str, status: int, problem: str | None = None) -> None:
        self.status = status
        super().__init__(url, problem or f"HTTP {status}")

    @property
    def retryable(self) -> bool:  # type: ignore[override]
        return self.status in (408, 425, 429) or self.status >= 500

    @property
    def gone(self) -> bool:
        """True for 404/410: the item is (probably) gone, e.g. after a takedown."""
        return self.status in (404, 410)


class AuthRequired(FetchError):
    """The platform API refused us (401/403, or an app password / client secret that does not
    work): the source needs credentials added or renewed. Never retried on its own: the monitor
    waits until the credentials change."""

    code = "auth-needed"
    retryable = False


class RateLimited(FetchError):
    """The server asked us to wait until ``retry_at`` (an aware datetime) before trying again."""

    code = "rate-limited"
    retryable = True

    def __init__(self, url: str, retry_at: datetime, problem: str | None = None) -> None:
        self.retry_at = retry_at
        super().__init__(
            url, problem or f"rate limited until {retry_at.isoformat(timespec='seconds')}"
        )


class UnexpectedContent(FetchError):
    """The response's bytes are not of the kind that was asked for (sniffed, never trusting the
    Content-Type header alone). ``found`` is what the bytes look like."""

    code = "unexpected-content"

    def __init__(self, url: str, problem: str, found: str | None = None) -> None:
        self.found = found
        super().__init__(url, problem)


class NotAnImage(UnexpectedContent):
    code = "not-an-image"


class RobotsDisallowed(FetchError):
    """robots.txt forbids fetching the URL. ``temporary`` is True when robots.txt itself was
    unreachable (5xx, network error) and crawling is paused until ``retry_at``."""

    code = "robots-disallowed"

    def __init__(
        self, url: str, problem: str, temporary: bool = False, retry_at: datetime | None = None
    ) -> None:
        self.temporary = temporary
        self.retry_at = retry_at
        super().__init__(url, problem)

    @property
    def retryable(self) -> bool:  # type: ignore[override]
        return self.temporary


class TooManyRedirects(FetchError):
    code = "too-many-redirects"


class ConnectionFailed(FetchError):
    code = "connection-failed"
    retryable = True
