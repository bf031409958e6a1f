"""Sources: the places the monitor polls, with their connector settings, cursor and health.

A source is added by the URL a person would copy from a browser; the connector (named, or
guessed by ``connectors.registry.connector_for_url``) validates the settings before anything is
stored. Secret settings of a connector (API tokens: ``SourceSettings.secret_fields``) are kept
out of the plain settings JSON and stored encrypted.

Health: every poll records ``last_poll_at``; a successful one ``last_success_at`` and the next due
time (interval plus random jitter); a failed one increments ``consecutive_failures`` and backs
off exponentially (``backoff_delay``), capped by ``NCII_SOURCE_MAX_BACKOFF``. ``last_error`` holds
the connector's message (a URL and the problem, never fetched content).

Like the registry, functions take a Session and leave committing to the caller.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import re
import socket
from dataclasses import asdict, dataclass, field
from typing import Any, Iterable, Mapping
from urllib.parse import urlsplit

from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from connectors.base import Connector, SourceSettings
from connectors.errors import ConnectorError, SourceSettingsError, UnknownConnector
from connectors.registry import CONNECTORS, connector_for_url, get_connector
from monitor import audit, db
from monitor.models import CandidateStatus, Source, SourceCandidate, utcnow

MIN_INTERVAL_SECONDS = 1
#: The CLI refuses shorter intervals: polling a site more often than this is not polite.
CLI_MIN_INTERVAL_SECONDS = 60
DEFAULT_INTERVAL_SECONDS = 15 * 60
#: A lease is renewed with every committed page; a crashed holder's lease is taken over at once
#: on the same host (its process is gone) and after this long elsewhere.
LEASE_SECONDS = 15 * 60
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*(d|h|m|s)?", re.I)
_UNITS = {"d": 86400, "h": 3600, "m": 60, "s": 1, None: 1}


class SourceError(Exception):
    """Base of the source errors; `code` is a stable machine-readable name."""

    code = "source-error"


class SourceNotFound(SourceError):
    code = "source-not-found"


class SourceExists(SourceError):
    code = "source-exists"


class InvalidSource(SourceError, ValueError):
    """Bad settings, an unknown kind, a URL no connector recognises, a bad name or interval."""

    code = "invalid-source"


# --- durations -------------------------------------------------------------------------------------

def parse_duration(text: str, *, what: str = "duration") -> int:
    """'15m', '1h30m', '2d', '90s' or '90' (seconds) -> seconds."""
    s = (text or "").strip().lower().replace(" ", "")
    pos, total = 0, 0.0
    if not s:
        raise InvalidSource(f"{what}: empty (use e.g. 30s, 15m, 1h, 1d)")
    for m in _DURATION.finditer(s):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    if pos != len(s):
        raise InvalidSource(f"{what}: {text!r} is not a duration (use e.g. 30s, 15m, 1h30m, 1d)")
    return int(round(total))


def format_duration(seconds: float | None) -> str:
    """Seconds -> '1h30m' (the form parse_duration reads)."""
    if seconds is None:
        return "-"
    seconds = int(round(seconds))
    if seconds <= 0:
        return "0s"
    out = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size:
            out.append(f"{seconds // size}{unit}")
            seconds %= size
    return "".join(out)


# --- summaries -------------------------------------------------------------------------------------

@dataclass
class SourceSummary:
    """A source as shown by `ncii source list/show` (secret settings redacted)."""

    name: str
    kind: str
    url: str
    enabled: bool
    interval_seconds: int
    jitter_seconds: int
    state: str  # paused | new | ok | failing
    settings: dict[str, Any]
    created_at: str
    last_poll_at: str | None
    last_success_at: str | None
    next_due_at: str | None
    consecutive_failures: int
    backoff_seconds: int
    last_error_code: str | None
    last_error: str | None
    conditional: bool = False  # the cursor holds ETag/Last-Modified validators
    candidates: dict[str, int] = field(default_factory=dict)  # per status

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat(timespec="seconds") if value else None


AUTH_NEEDED = "auth-needed"


def state_of(source: Source) -> str:
    """paused, new (never polled), needs-credentials, failing (the last poll failed) or ok."""
    if not source.enabled:
        return "paused"
    if source.consecutive_failures and source.last_error_code == AUTH_NEEDED:
        return "needs-credentials"
    if source.consecutive_failures:
        return "failing"
    if source.last_poll_at is None:
        return "new"
    return "ok"


def summarize(source: Source, counts: Mapping[str, int] | None = None) -> SourceSummary:
    """The summary of one source row."""
    redacted = dict(source.settings or {})
    connector = CONNECTORS.get(source.kind)
    if connector is not None and connector.settings_class.secret_fields:
        stored = _stored_secret_names(source)
        for name in connector.settings_class.secret_fields:
            redacted[name] = "***" if name in stored else ""  # set or not; the value never
    return SourceSummary(
        name=source.name, kind=source.kind, url=source.url, enabled=source.enabled,
        interval_seconds=source.interval_seconds, jitter_seconds=source.jitter_seconds,
        state=state_of(source), settings=redacted, created_at=_iso(source.created_at) or "",
        last_poll_at=_iso(source.last_poll_at), last_success_at=_iso(source.last_success_at),
        next_due_at=_iso(source.next_due_at), consecutive_failures=source.consecutive_failures,
        backoff_seconds=source.backoff_seconds, last_error_code=source.last_error_code,
        last_error=source.last_error, conditional=_has_validators(source.cursor),
        candidates=dict(counts or {}))


def _stored_secret_names(source: Source) -> set[str]:
    """Which secret settings hold a value (decrypted only to look; the values are dropped)."""
    try:
        data = json.loads(source.secrets) if source.secrets else {}
    except (ValueError, TypeError):
        return set()
    return {k for k, v in data.items() if v} if isinstance(data, dict) else set()


def _has_validators(cursor: Any) -> bool:
    if isinstance(cursor, dict):
        v = cursor.get("validators")
        if isinstance(v, dict) and v:
            return True
        return any(_has_validators(x) for x in cursor.values() if isinstance(x, dict))
    return False


def candidate_counts(session: Session, source_ids: Iterable[int]) -> dict[int, dict[str, int]]:
    """{source id: {status: count}} of what each source listed."""
    ids = list(source_ids)
    out: dict[int, dict[str, int]] = {i: {} for i in ids}
    if not ids:
        return out
    sc = SourceCandidate
    for sid, status, n in session.execute(select(sc.source_id, sc.status, func.count())
                                          .where(sc.source_id.in_(ids)).group_by(sc.source_id, sc.status)):
        out[sid][status] = n
    return out


# --- adding, finding, changing ---------------------------------------------------------------------

def resolve_connector(url: str, kind: str | None) -> Connector:
    """The connector for `kind`, or the one that recognises `url` best when kind is None/'auto'."""
    try:
        if kind and kind != "auto":
            return get_connector(kind)
        return connector_for_url(url)
    except (UnknownConnector, SourceSettingsError) as e:
        raise InvalidSource(str(e)) from None


def build_settings(connector: Connector, url: str, options: Mapping[str, Any] | None = None) -> SourceSettings:
    """Validated connector settings for `url` plus `options` (strings are converted). No network."""
    try:
        return connector.settings_from_url(url, **dict(options or {}))
    except SourceSettingsError as e:
        raise InvalidSource(str(e)) from None
    except TypeError as e:  # an option the settings class does not take
        raise InvalidSource(f"{connector.kind} source: {e}") from None


def _default_name(session: Session, url: str, kind: str) -> str:
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        if parts.port:
            host = f"{host}-{parts.port}"
        if not host and parts.path:
            host = parts.path.rstrip("/").rsplit("/", 1)[-1]
    except ValueError:
        host = ""
    base = re.sub(r"[^A-Za-z0-9._-]+", "-", f"{host}-{kind}" if host else kind).strip("-._")[:56] or kind
    if not base[0].isalnum():
        base = f"s{base}"
    taken = set(session.scalars(select(Source.name).where(Source.name.like(f"{base}%"))))
    if base not in taken:
        return base
    n = 2
    while f"{base}-{n}" in taken:
        n += 1
    return f"{base}-{n}"


def add_source(session: Session, url: str, *, kind: str | None = "auto", name: str | None = None,
               interval: int = DEFAULT_INTERVAL_SECONDS, jitter: int | None = None,
               options: Mapping[str, Any] | None = None, enabled: bool = True, actor: str) -> SourceSummary:
    """Validate and store a new source; it is due at once. Returns its summary."""
    connector = resolve_connector(url, kind)
    settings = build_settings(connector, url, options)
    if interval < MIN_INTERVAL_SECONDS:
        raise InvalidSource(f"interval must be at least {MIN_INTERVAL_SECONDS} second")
    if jitter is None:
        jitter = min(interval // 10, 300)
    if jitter < 0 or jitter > interval:
        raise InvalidSource("jitter must be between 0 and the interval")
    if name is None:
        name = _default_name(session, settings.url, connector.kind)
    elif not _NAME.match(name):
        raise InvalidSource(f"source name {name!r}: use 1-64 letters, digits, '.', '_' or '-', starting with a "
                            "letter or digit")
    if session.scalar(select(Source.id).where(Source.name == name)) is not None:
        raise SourceExists(f"a source named {name!r} already exists (choose another --name)")
    plain = settings.to_dict()
    secret = {k: plain.pop(k) for k in list(plain) if k in connector.settings_class.secret_fields}
    now = utcnow()
    source = Source(name=name, kind=connector.kind, url=url.strip(), settings=plain,
                    secrets=json.dumps(secret) if any(v for v in secret.values()) else None,
                    interval_seconds=int(interval), jitter_seconds=int(jitter), enabled=enabled,
                    cursor=None, created_at=now, updated_at=now, next_due_at=None,
                    consecutive_failures=0, backoff_seconds=0)
    session.add(source)
    session.flush()
    audit.append(session, "source.added", actor, None, {"source_id": source.id, "kind": connector.kind,
                                                        "interval_seconds": int(interval)})
    return summarize(source)


def get_source(session: Session, name: str, *, lock: bool = False) -> Source:
    """The source called `name` (SourceNotFound otherwise)."""
    q = select(Source).where(Source.name == name)
    if lock:
        q = q.with_for_update()
    source = session.scalar(q)
    if source is None:
        known = ", ".join(session.scalars(select(Source.name).order_by(Source.name).limit(20))) or "none"
        raise SourceNotFound(f"no source named {name!r} (sources: {known})")
    return source


def list_sources(session: Session) -> list[SourceSummary]:
    """Every source, by name, with its health and candidate counts."""
    sources = list(session.scalars(select(Source).order_by(Source.name)))
    counts = candidate_counts(session, [s.id for s in sources])
    return [summarize(s, counts[s.id]) for s in sources]


def show_source(session: Session, name: str) -> SourceSummary:
    """One source's summary."""
    source = get_source(session, name)
    return summarize(source, candidate_counts(session, [source.id])[source.id])


def remove_source(session: Session, name: str, *, actor: str) -> dict[str, Any]:
    """Delete a source and its list of seen candidates; media, sightings, matches and alerts stay."""
    source = get_source(session, name, lock=True)
    counts = candidate_counts(session, [source.id])[source.id]
    sid, kind = source.id, source.kind
    session.delete(source)
    session.flush()
    audit.append(session, "source.removed", actor, None, {"source_id": sid, "kind": kind,
                                                          "candidates": sum(counts.values())})
    return {"name": name, "kind": kind, "candidates_forgotten": sum(counts.values())}


def set_enabled(session: Session, name: str, enabled: bool, *, actor: str) -> SourceSummary:
    """Pause (enabled=False) or resume a source; resuming makes it due at once."""
    source = get_source(session, name, lock=True)
    if source.enabled != enabled:
        source.enabled = enabled
        if enabled:
            source.next_due_at = None
        session.flush()
        audit.append(session, "source.resumed" if enabled else "source.paused", actor, None,
                     {"source_id": source.id})
    return summarize(source, candidate_counts(session, [source.id])[source.id])


def connector_settings(session: Session, source: Source) -> tuple[Connector, SourceSettings]:
    """The connector and validated settings of a stored source (secrets decrypted)."""
    connector = get_connector(source.kind)
    data = dict(source.settings or {})
    if connector.settings_class.secret_fields:
        session.refresh(source, ["secrets"])
        if source.secrets:
            data.update(json.loads(source.secrets))
    settings = connector.settings_from_dict(data)
    if getattr(settings, "use_watch_terms", False) and hasattr(settings, "with_terms"):
        # Passed in at poll time only: connectors never see the database, terms are never stored
        # in settings or cursors. A withdrawn case's terms are not among them.
        from monitor.watchterms import active_terms_for_search

        settings = settings.with_terms(active_terms_for_search(session))
    return connector, settings


def secret_fields(kind: str) -> frozenset[str]:
    """The settings of a connector kind that are credentials (stored encrypted, never shown)."""
    try:
        return get_connector(kind).settings_class.secret_fields
    except UnknownConnector as e:
        raise InvalidSource(str(e)) from None


def set_credentials(session: Session, name: str, values: Mapping[str, str], *, actor: str,
                    clear: Iterable[str] = ()) -> SourceSummary:
    """Add, rotate or clear a source's secret settings; the source is checked, its failure count
    reset and it is due at once. The audit record names the fields, never the values."""
    source = get_source(session, name, lock=True)
    connector = get_connector(source.kind)
    allowed = connector.settings_class.secret_fields
    unknown = sorted((set(values) | set(clear)) - allowed)
    if unknown:
        raise InvalidSource(f"{source.kind} source: {unknown[0]!r} is not a credential; "
                            f"credentials: {', '.join(sorted(allowed)) or 'none'}")
    session.refresh(source, ["secrets"])
    current = json.loads(source.secrets) if source.secrets else {}
    current.update({k: v for k, v in values.items()})
    for k in clear:
        current.pop(k, None)
    try:
        connector.settings_from_dict({**(source.settings or {}), **current})
    except SourceSettingsError as e:
        raise InvalidSource(str(e)) from None
    source.secrets = json.dumps(current) if any(current.values()) else None
    source.consecutive_failures = 0
    source.backoff_seconds = 0
    source.last_error_code = None
    source.last_error = None
    source.next_due_at = None
    session.flush()
    audit.append(session, "source.credentials_changed", actor, None,
                 {"source_id": source.id, "fields": sorted(set(values) | set(clear))})
    return summarize(source, candidate_counts(session, [source.id])[source.id])


# --- due times, health, back-off -------------------------------------------------------------------

def due_source_ids(session: Session, now: dt.datetime | None = None, *, every: bool = False) -> list[int]:
    """Enabled sources whose next due time has come (all enabled ones with every=True), oldest due first."""
    now = now or utcnow()
    q = select(Source.id).where(Source.enabled.is_(True))
    if not every:
        q = q.where((Source.next_due_at.is_(None)) | (Source.next_due_at <= now))
    return list(session.scalars(q.order_by(Source.next_due_at.is_not(None), Source.next_due_at, Source.id)))


def next_due(source: Source, now: dt.datetime, rng: random.Random | None = None) -> dt.datetime:
    """When a healthy source is due again: its interval plus up to its jitter."""
    jitter = (rng or random).uniform(0, source.jitter_seconds) if source.jitter_seconds else 0.0
    return now + dt.timedelta(seconds=source.interval_seconds + jitter)


def backoff_delay(failures: int, interval: int, max_backoff: int) -> int:
    """Seconds to wait after `failures` consecutive failures: min(interval, 5 min) doubling, capped."""
    base = max(1, min(interval, 300))
    return int(min(max_backoff, base * 2 ** max(0, min(failures - 1, 30))))


def record_success(source: Source, now: dt.datetime, rng: random.Random | None = None) -> None:
    """The poll went through: healthy again, due after its interval."""
    source.last_poll_at = now
    source.last_success_at = now
    source.consecutive_failures = 0
    source.backoff_seconds = 0
    source.last_error_code = None
    source.last_error = None
    source.next_due_at = next_due(source, now, rng)


def record_failure(source: Source, error: BaseException, now: dt.datetime, *, max_backoff: int) -> None:
    """The poll failed: count it, back off exponentially (longer if the server asked), keep the reason."""
    source.last_poll_at = now
    source.consecutive_failures = (source.consecutive_failures or 0) + 1
    delay = backoff_delay(source.consecutive_failures, source.interval_seconds, max_backoff)
    retry_at = getattr(error, "retry_at", None)
    if isinstance(retry_at, dt.datetime) and retry_at.tzinfo is not None:
        delay = max(delay, int((retry_at - now).total_seconds()))
    code = error_code(error)
    text = error_text(error)
    if code == AUTH_NEEDED:
        # Asking again changes nothing until someone adds credentials (which makes it due at
        # once): wait the longest back-off instead of hammering the API.
        delay = max(delay, max_backoff)
        text = (f"needs credentials: add or renew them with `ncii source credentials "
                f"{source.name}` ({text})")
    source.backoff_seconds = delay
    source.next_due_at = now + dt.timedelta(seconds=delay)
    source.last_error_code = code[:32]
    source.last_error = text[:300]


def error_code(error: BaseException) -> str:
    """A stable name for an error (connector/hashing codes, else the class name)."""
    return str(getattr(error, "code", None) or type(error).__name__)


def error_text(error: BaseException) -> str:
    """One line naming what failed; connector and hashing messages carry URLs and problems only."""
    if isinstance(error, (ConnectorError, SourceError)):
        text = str(error)
    else:  # our own bug or the database: the type and its first line, nothing fetched
        first = (str(error).strip().splitlines() or [""])[0]
        text = f"{type(error).__name__}: {first}" if first else type(error).__name__
    return " ".join(text.split())


# --- leases: one poller per source at a time ------------------------------------------------------

def lease_owner() -> str:
    """This process as a lease holder: host:pid (the host name is local, no lookup)."""
    return f"{socket.gethostname()[:100]}:{os.getpid()}"


def _holder_alive(owner: str) -> bool:
    host, _, pid = owner.rpartition(":")
    if host != socket.gethostname()[:100] or not pid.isdigit():
        return True  # another machine: trust its lease until it expires
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def claim(engine: Engine, source_id: int, owner: str, *, seconds: int = LEASE_SECONDS) -> bool:
    """Take the source's lease for `owner`; False if another live process holds it."""
    now = utcnow()
    with db.transaction(engine) as s:
        source = s.scalar(select(Source).where(Source.id == source_id).with_for_update())
        if source is None:
            return False
        held = (source.lease_owner and source.lease_owner != owner and source.lease_until is not None
                and source.lease_until > now)
        if held and _holder_alive(source.lease_owner):
            return False
        source.lease_owner = owner
        source.lease_until = now + dt.timedelta(seconds=seconds)
    return True


def release(engine: Engine, source_id: int, owner: str) -> None:
    """Give the lease back (if this owner still holds it)."""
    with db.transaction(engine) as s:
        source = s.scalar(select(Source).where(Source.id == source_id).with_for_update())
        if source is not None and source.lease_owner == owner:
            source.lease_owner = None
            source.lease_until = None


def renew(source: Source, owner: str, now: dt.datetime, seconds: int = LEASE_SECONDS) -> None:
    """Extend the lease (called inside each page's transaction)."""
    source.lease_owner = owner
    source.lease_until = now + dt.timedelta(seconds=seconds)


def source_ids_by_name(session: Session, names: Iterable[str]) -> list[int]:
    """Ids of the named sources (SourceNotFound for the first unknown one)."""
    return [get_source(session, n).id for n in names]


__all__ = [
    "SourceError", "SourceNotFound", "SourceExists", "InvalidSource", "SourceSummary", "CandidateStatus",
    "parse_duration", "format_duration", "add_source", "get_source", "list_sources", "show_source",
    "remove_source", "set_enabled", "connector_settings", "due_source_ids", "record_success", "record_failure",
    "backoff_delay", "claim", "release", "renew", "lease_owner", "set_credentials", "secret_fields",
]
