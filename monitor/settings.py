"""Settings from the environment, with defaults that need no configuration (embedded SQLite).

| variable | meaning | default |
|---|---|---|
| NCII_DATA_DIR | folder for the SQLite database and the key file | platformdirs user data dir of "ncii-monitor" |
| NCII_DATABASE_URL | SQLAlchemy URL (sqlite:///..., postgresql://...) | sqlite:///<data dir>/ncii.db |
| NCII_SECRET_KEY | data key(s): base64 of 32 bytes, or "2:KEY,1:KEY" when rotating | read from the key file |
| NCII_KEY_FILE | where the key file is (created 0600 on first use) | ncii.key beside the SQLite file, else in the data dir |
| NCII_PDQ_MIN_QUALITY | PDQ hashes below this quality are not registered for matching | 50 |

The monitor (docs/monitoring.md explains each):

| variable | meaning | default |
|---|---|---|
| NCII_PUBLIC_URL | base of the review links in alerts | http://127.0.0.1:8000 |
| NCII_CONTACT_URL | put in the User-Agent of every request, so site owners can reach us | not set |
| NCII_HTTP_MIN_INTERVAL | seconds between two requests to one host (politeness) | 1.0 |
| NCII_HTTP_RETRIES | further attempts of a request after a timeout, 429 or 5xx (with back-off) | 3 |
| NCII_HTTP_ALLOW_HOSTS | comma-separated names, addresses or CIDR networks allowed although not public | none |
| NCII_HTTP_ALLOW_LOOPBACK | 1: allow 127.0.0.0/8, ::1 and localhost (tests, the demo) | 0 |
| NCII_FETCH_WORKERS | downloads in flight at once | 8 |
| NCII_HASH_WORKERS | hashing processes | one per core |
| NCII_MONITOR_CONCURRENCY | sources polled at once by `ncii monitor run` | 4 |
| NCII_SOURCE_MAX_BACKOFF | longest wait (seconds) before retrying a failing source | 21600 (6 h) |
| NCII_ITEM_RETRY_BASE | first wait (seconds) before refetching an item that failed temporarily | 300 |
| NCII_ITEM_MAX_ATTEMPTS | attempts per item before it is recorded as failed for good | 5 |
| NCII_SMTP_HOST | SMTP server for email alerts (unset: no email) | not set |
| NCII_SMTP_PORT | its port | 587 (starttls), 465 (tls), 25 (none) |
| NCII_SMTP_SECURITY | starttls, tls (implicit TLS) or none | starttls |
| NCII_SMTP_USERNAME, NCII_SMTP_PASSWORD | login (optional) | not set |
| NCII_SMTP_FROM | sender address | ncii-monitor@localhost |
| NCII_SMTP_TO | comma-separated recipients (required with NCII_SMTP_HOST) | not set |
| NCII_SMTP_TIMEOUT | seconds | 30 |
| NCII_WEBHOOK_URL | http(s) URL that receives each alert as a signed JSON POST (unset: no webhook) | not set |
| NCII_WEBHOOK_SECRET | HMAC-SHA256 key, at least 16 characters (required with NCII_WEBHOOK_URL) | not set |
| NCII_WEBHOOK_TIMEOUT | seconds | 15 |
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Mapping

import platformdirs
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

if TYPE_CHECKING:
    from monitor.crypto import KeyRing

APP_NAME = "ncii-monitor"
DB_FILE_NAME = "ncii.db"
KEY_FILE_NAME = "ncii.key"
#: Meta's PDQ documentation and HMA treat quality below 50 as too featureless to match on.
DEFAULT_PDQ_MIN_QUALITY = 50
DEFAULT_PUBLIC_URL = "http://127.0.0.1:8000"


class SettingsError(Exception):
    """The configuration is unusable; the message says which setting and how to fix it."""


@dataclass(frozen=True)
class Settings:
    """Everything configurable, resolved once at start-up."""

    data_dir: Path
    database_url: str = field(repr=False)  # may hold a password; use display_url
    key_file: Path
    secret_key: str | None = field(default=None, repr=False)
    pdq_min_quality: int = DEFAULT_PDQ_MIN_QUALITY
    public_url: str = DEFAULT_PUBLIC_URL
    monitor: "MonitorSettings" = field(default_factory=lambda: MonitorSettings())
    smtp: "SmtpSettings | None" = None
    webhook: "WebhookSettings | None" = None

    @classmethod
    def load(cls, environ: Mapping[str, str] | None = None) -> "Settings":
        """Read settings from `environ` (default os.environ); creates nothing on disk."""
        env = os.environ if environ is None else environ
        data_dir = Path(env.get("NCII_DATA_DIR") or platformdirs.user_data_dir(APP_NAME)).expanduser()
        url = normalize_database_url(env.get("NCII_DATABASE_URL") or f"sqlite:///{data_dir / DB_FILE_NAME}")
        sqlite_file = sqlite_path(url)
        default_key_dir = sqlite_file.parent if sqlite_file is not None else data_dir
        key_file = Path(env.get("NCII_KEY_FILE") or default_key_dir / KEY_FILE_NAME).expanduser()
        return cls(
            data_dir=data_dir,
            database_url=url,
            key_file=key_file,
            secret_key=env.get("NCII_SECRET_KEY") or None,
            pdq_min_quality=_quality(env.get("NCII_PDQ_MIN_QUALITY")),
            public_url=_public_url(env.get("NCII_PUBLIC_URL")),
            monitor=MonitorSettings.load(env),
            smtp=SmtpSettings.load(env),
            webhook=WebhookSettings.load(env),
        )

    @property
    def display_url(self) -> str:
        """The database URL with any password masked, for messages and logs."""
        return make_url(self.database_url).render_as_string(hide_password=True)

    def keyring(self) -> "KeyRing":
        """The data keys: from NCII_SECRET_KEY, else the key file (created on first use)."""
        from monitor import keyfile  # late: keyfile imports SettingsError from here

        if self.secret_key is not None:
            return keyfile.keyring_from_text(self.secret_key, "NCII_SECRET_KEY")
        return keyfile.load_or_create(self.key_file)


def normalize_database_url(url: str) -> str:
    """Check the URL parses and pick psycopg 3 for PostgreSQL (SQLAlchemy would pick psycopg2)."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise SettingsError("NCII_DATABASE_URL is not a database URL (e.g. sqlite:///path/ncii.db, "
                            "postgresql://user@host/dbname)") from None
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() not in ("sqlite", "postgresql"):
        raise SettingsError(f"NCII_DATABASE_URL: unsupported database {parsed.get_backend_name()!r} "
                            "(use SQLite or PostgreSQL)")
    return parsed.render_as_string(hide_password=False)


def sqlite_path(url: str) -> Path | None:
    """The file of a SQLite URL, or None for in-memory SQLite and other databases."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database).expanduser()


def _quality(text: str | None) -> int:
    if text is None or text.strip() == "":
        return DEFAULT_PDQ_MIN_QUALITY
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= 100:
        raise SettingsError(f"NCII_PDQ_MIN_QUALITY must be a whole number from 0 to 100, got {text!r}")
    return value


# --- the monitor: fetching, scheduling, alerts ----------------------------------------------------

@dataclass(frozen=True)
class MonitorSettings:
    """How the monitor fetches and schedules (docs/monitoring.md)."""

    contact_url: str | None = None
    http_min_interval: float = 1.0
    http_retries: int = 3
    allow_hosts: frozenset[str] = frozenset()
    allow_loopback: bool = False
    fetch_workers: int = 8
    hash_workers: int | None = None  # None: one per core
    hash_timeout: float | None = 60.0  # seconds per image in a hashing process; None: no limit
    concurrency: int = 4
    source_max_backoff: int = 6 * 3600
    item_retry_base: int = 300
    item_max_attempts: int = 5

    @classmethod
    def load(cls, env: Mapping[str, str]) -> "MonitorSettings":
        contact = (env.get("NCII_CONTACT_URL") or "").strip() or None
        if contact is not None and not contact.startswith(("http://", "https://", "mailto:")):
            raise SettingsError("NCII_CONTACT_URL must be an http(s): or mailto: URL")
        hosts = frozenset(h.strip() for h in (env.get("NCII_HTTP_ALLOW_HOSTS") or "").split(",") if h.strip())
        hash_workers = env.get("NCII_HASH_WORKERS")
        return cls(
            contact_url=contact,
            http_min_interval=_number(env, "NCII_HTTP_MIN_INTERVAL", 1.0, 0.0, 3600.0),
            http_retries=int(_number(env, "NCII_HTTP_RETRIES", 3, 0, 10, whole=True)),
            allow_hosts=hosts,
            allow_loopback=_flag(env, "NCII_HTTP_ALLOW_LOOPBACK"),
            fetch_workers=int(_number(env, "NCII_FETCH_WORKERS", 8, 1, 256, whole=True)),
            hash_workers=(int(_number(env, "NCII_HASH_WORKERS", 1, 0, 512, whole=True))
                          if hash_workers and hash_workers.strip() else None),
            hash_timeout=_number(env, "NCII_HASH_TIMEOUT", 60.0, 0.0, 86400.0) or None,
            concurrency=int(_number(env, "NCII_MONITOR_CONCURRENCY", 4, 1, 64, whole=True)),
            source_max_backoff=int(_number(env, "NCII_SOURCE_MAX_BACKOFF", 6 * 3600, 1, 30 * 86400, whole=True)),
            item_retry_base=int(_number(env, "NCII_ITEM_RETRY_BASE", 300, 0, 86400, whole=True)),
            item_max_attempts=int(_number(env, "NCII_ITEM_MAX_ATTEMPTS", 5, 1, 100, whole=True)),
        )


@dataclass(frozen=True)
class SmtpSettings:
    """Email alerts over SMTP."""

    host: str
    recipients: tuple[str, ...]
    port: int = 587
    security: str = "starttls"  # starttls | tls | none
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    sender: str = "ncii-monitor@localhost"
    timeout: float = 30.0

    @classmethod
    def load(cls, env: Mapping[str, str]) -> "SmtpSettings | None":
        host = (env.get("NCII_SMTP_HOST") or "").strip()
        if not host:
            return None
        security = (env.get("NCII_SMTP_SECURITY") or "starttls").strip().lower()
        if security not in ("starttls", "tls", "none"):
            raise SettingsError(f"NCII_SMTP_SECURITY must be starttls, tls or none, got {security!r}")
        default_port = {"starttls": 587, "tls": 465, "none": 25}[security]
        recipients = tuple(r.strip() for r in (env.get("NCII_SMTP_TO") or "").split(",") if r.strip())
        if not recipients:
            raise SettingsError("NCII_SMTP_TO is required with NCII_SMTP_HOST: the comma-separated addresses to alert")
        for address in recipients + ((env.get("NCII_SMTP_FROM") or "x@y").strip(),):
            if "@" not in address or any(c.isspace() or c in "<>,;" for c in address):
                raise SettingsError(f"not an email address in NCII_SMTP_TO/NCII_SMTP_FROM: {address!r}")
        username = (env.get("NCII_SMTP_USERNAME") or "").strip() or None
        password = env.get("NCII_SMTP_PASSWORD") or None
        if (username is None) != (password is None):
            raise SettingsError("set both NCII_SMTP_USERNAME and NCII_SMTP_PASSWORD, or neither")
        return cls(
            host=host, recipients=recipients,
            port=int(_number(env, "NCII_SMTP_PORT", default_port, 1, 65535, whole=True)),
            security=security, username=username, password=password,
            sender=(env.get("NCII_SMTP_FROM") or "ncii-monitor@localhost").strip(),
            timeout=_number(env, "NCII_SMTP_TIMEOUT", 30.0, 1.0, 600.0),
        )


@dataclass(frozen=True)
class WebhookSettings:
    """Alerts as signed JSON POSTs."""

    url: str
    secret: str = field(repr=False)
    timeout: float = 15.0

    @classmethod
    def load(cls, env: Mapping[str, str]) -> "WebhookSettings | None":
        url = (env.get("NCII_WEBHOOK_URL") or "").strip()
        if not url:
            return None
        if not url.startswith(("http://", "https://")):
            raise SettingsError("NCII_WEBHOOK_URL must be an http(s) URL")
        secret = env.get("NCII_WEBHOOK_SECRET") or ""
        if len(secret) < 16:
            raise SettingsError("NCII_WEBHOOK_SECRET is required with NCII_WEBHOOK_URL and must have at least "
                                "16 characters (the receiver verifies the HMAC-SHA256 signature with it)")
        return cls(url=url, secret=secret, timeout=_number(env, "NCII_WEBHOOK_TIMEOUT", 15.0, 1.0, 600.0))


def _public_url(text: str | None) -> str:
    url = (text or "").strip() or DEFAULT_PUBLIC_URL
    if not url.startswith(("http://", "https://")):
        raise SettingsError(f"NCII_PUBLIC_URL must be an http(s) URL, got {url!r}")
    return url.rstrip("/")


def _flag(env: Mapping[str, str], name: str) -> bool:
    value = (env.get(name) or "").strip().lower()
    if value in ("", "0", "false", "no", "off"):
        return False
    if value in ("1", "true", "yes", "on"):
        return True
    raise SettingsError(f"{name} must be 1 or 0, got {value!r}")


def _number(env: Mapping[str, str], name: str, default: float, low: float, high: float,
            whole: bool = False) -> float:
    text = (env.get(name) or "").strip()
    if not text:
        return default
    try:
        value = int(text) if whole else float(text)
    except ValueError:
        value = None
    if value is None or not low <= value <= high:
        kind = "a whole number" if whole else "a number"
        raise SettingsError(f"{name} must be {kind} from {low:g} to {high:g}, got {text!r}")
    return value
