"""Database tables (SQLAlchemy 2 typed models). docs/data-model.md explains each table and column.

The schema is created and changed only by the Alembic migrations in monitor/migrations/ (they
also add what models cannot express, such as the triggers that make audit_log append-only);
tests check that the models and the migrations agree.
"""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
    Unicode,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import DateTime, TypeDecorator

from monitor.crypto import EncryptedText

#: Explicit constraint names, so later migrations (and SQLite batch mode) can refer to them.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s",
    "pk": "pk_%(table_name)s",
}

#: 64-bit ids where rows can number in the millions; SQLite needs INTEGER for its rowid alias.
BigId = BigInteger().with_variant(Integer(), "sqlite")
JsonDoc = JSON().with_variant(JSONB(), "postgresql")


class UTCDateTime(TypeDecorator):
    """Timezone-aware UTC datetimes on every database (SQLite has no time zones: stored as UTC)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given: use timezone-aware UTC (monitor.models.utcnow())")
        value = value.astimezone(dt.timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=dt.timezone.utc) if value.tzinfo is None else value.astimezone(dt.timezone.utc)


def utcnow() -> dt.datetime:
    """The current time, timezone-aware UTC."""
    return dt.datetime.now(dt.timezone.utc)


def _in(column: str, values: type[StrEnum]) -> str:
    return f"{column} IN ({', '.join(repr(v.value) for v in values)})"


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class CaseStatus(StrEnum):
    ACTIVE = "active"        # hashes are matched
    WITHDRAWN = "withdrawn"  # the victim withdrew: nothing is matched, hashes withdrawn or purged
    CLOSED = "closed"        # the advocate closed it (resolved): nothing is matched


class ReviewStatus(StrEnum):
    PENDING = "pending"
    CONFIRMED = "confirmed"
    REJECTED = "rejected"


class MediaStatus(StrEnum):
    HASHED = "hashed"  # decoded and hashed; `hashes` holds the result
    FAILED = "failed"  # could not be hashed; `error` holds the HashingError code


class RegistryState(Base):
    """One row (id 1): counters that serialise audit appends and tell other processes of changes."""

    __tablename__ = "registry_state"
    __table_args__ = (CheckConstraint("id = 1", name="single_row"),)

    id: Mapped[int] = mapped_column(SmallInteger, primary_key=True, autoincrement=False)
    #: Incremented in every transaction that adds, withdraws or deletes registered hashes; a
    #: process holding an index compares it with the value it loaded at to know it is stale.
    hash_generation: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    #: Incremented by every audit append; updating this row first is the lock that keeps the
    #: hash chain linear when several processes write at once (on SQLite and PostgreSQL alike).
    audit_seq: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")


class Case(Base):
    """One victim's case: who they are is encrypted; the secret is known only to them."""

    __tablename__ = "cases"
    __table_args__ = (
        CheckConstraint(_in("status", CaseStatus), name="status"),
        CheckConstraint("jurisdiction IS NULL OR length(jurisdiction) = 2", name="jurisdiction"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    reference: Mapped[str] = mapped_column(String(16), unique=True)
    secret_hash: Mapped[str] = mapped_column(String(255))  # argon2id PHC string, never the secret
    status: Mapped[str] = mapped_column(String(16), default=CaseStatus.ACTIVE.value)
    jurisdiction: Mapped[str | None] = mapped_column(String(2))  # ISO 3166-1 alpha-2
    involves_minor: Mapped[bool] = mapped_column(Boolean, default=False)
    # Personal data: encrypted at rest, and deferred so it is only decrypted when asked for.
    label: Mapped[str | None] = mapped_column("label_enc", EncryptedText("cases.label"), deferred=True)
    contact: Mapped[str | None] = mapped_column("contact_enc", EncryptedText("cases.contact"), deferred=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    purged_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)  # hashes and personal data erased


class Submission(Base):
    """One hash file registered to a case (a batch): groups its hashes and records its counts."""

    __tablename__ = "submissions"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="RESTRICT"), index=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    actor: Mapped[str] = mapped_column(String(128))
    source_format: Mapped[str] = mapped_column(String(16))  # "jsonl", "hma", ...
    images: Mapped[int] = mapped_column(Integer, default=0)
    added: Mapped[int] = mapped_column(Integer, default=0)
    duplicates: Mapped[int] = mapped_column(Integer, default=0)
    rejected: Mapped[int] = mapped_column(Integer, default=0)
    flagged: Mapped[int] = mapped_column(Integer, default=0)  # kept but excluded from matching


class RegisteredHash(Base):
    """One hash of one of a victim's images (or of a region of it), registered under a case."""

    __tablename__ = "registered_hashes"
    __table_args__ = (
        # Re-registering the same file adds nothing.
        UniqueConstraint("case_id", "algorithm", "value", "region"),
        # Exact-value lookups (md5/sha256 matching, "is this value registered anywhere").
        Index(None, "algorithm", "value"),
        CheckConstraint("quality IS NULL OR quality BETWEEN 0 AND 100", name="quality"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="RESTRICT"))
    submission_id: Mapped[int] = mapped_column(ForeignKey("submissions.id", ondelete="RESTRICT"), index=True)
    image_number: Mapped[int] = mapped_column(Integer)  # groups the hashes of one original
    algorithm: Mapped[str] = mapped_column(String(16))
    value: Mapped[str] = mapped_column(String(64))  # lower-case hex, as in the hash file
    #: The value as big-endian bytes, ceil(bits/8) long: what the match index loads in bulk.
    value_bytes: Mapped[bytes] = mapped_column(LargeBinary(32))
    quality: Mapped[int | None] = mapped_column(SmallInteger)  # PDQ quality 0-100
    region: Mapped[str] = mapped_column(String(64), default="full")
    #: Kept on request but too featureless to match on (PDQ quality below the threshold).
    low_quality: Mapped[bool] = mapped_column(Boolean, default=False)
    added_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    withdrawn_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class Media(Base):
    """An image the monitor has hashed, once per distinct content (SHA-256 of the bytes)."""

    __tablename__ = "media"
    __table_args__ = (CheckConstraint(_in("status", MediaStatus), name="status"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), unique=True)  # the same bytes are hashed once
    md5: Mapped[str] = mapped_column(String(32), index=True)
    # Where it was first found; every place it was found is in media_sightings.
    url: Mapped[str | None] = mapped_column(Text)  # file://... for local scans
    page_url: Mapped[str | None] = mapped_column(Text)
    source: Mapped[str | None] = mapped_column(String(64))  # connector/platform name
    first_seen_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    width: Mapped[int | None] = mapped_column(Integer)
    height: Mapped[int | None] = mapped_column(Integer)
    format: Mapped[str | None] = mapped_column(String(16))
    #: [{"alg": "pdq", "hash": "...", "quality": 87, "region": "full"}, ...] (hash-file vocabulary)
    hashes: Mapped[list[dict[str, Any]]] = mapped_column(JsonDoc, default=list)
    status: Mapped[str] = mapped_column(String(16), default=MediaStatus.HASHED.value)
    error: Mapped[str | None] = mapped_column(String(32))  # HashingError.code when status is failed


class MediaSighting(Base):
    """One place (URL) where a media item was found; takedowns need every one of them."""

    __tablename__ = "media_sightings"
    __table_args__ = (UniqueConstraint("url_sha256", "media_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    media_id: Mapped[int] = mapped_column(ForeignKey("media.id", ondelete="RESTRICT"), index=True)
    url: Mapped[str] = mapped_column(Text)
    url_sha256: Mapped[str] = mapped_column(String(64))  # URLs can outgrow index limits; this cannot
    page_url: Mapped[str | None] = mapped_column(Text)
    source: Mapped[str | None] = mapped_column(String(64))
    first_seen_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    gone_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)  # no longer served there


class Match(Base):
    """A media item within the match policy's distance of a registered hash: a person reviews it."""

    __tablename__ = "matches"
    __table_args__ = (
        # A rescan never duplicates a match.
        UniqueConstraint("media_id", "registered_hash_id", "query_region"),
        CheckConstraint(_in("review_status", ReviewStatus), name="review_status"),
        Index(None, "review_status", "created_at"),
        Index(None, "case_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    media_id: Mapped[int] = mapped_column(ForeignKey("media.id", ondelete="RESTRICT"))
    #: SET NULL when a case is purged: the review and takedown record stays, the hash goes.
    registered_hash_id: Mapped[int | None] = mapped_column(
        ForeignKey("registered_hashes.id", ondelete="SET NULL"), index=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="RESTRICT"))
    algorithm: Mapped[str] = mapped_column(String(16))
    distance: Mapped[int] = mapped_column(SmallInteger)
    query_region: Mapped[str] = mapped_column(String(64), default="full")  # region of the media
    review_status: Mapped[str] = mapped_column(String(16), default=ReviewStatus.PENDING.value)
    reviewer: Mapped[str | None] = mapped_column(String(128))  # becomes a users.id FK with issue 6
    reviewed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class AuditEntry(Base):
    """An append-only record of one change; details never hold personal data or hash values."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id", ondelete="RESTRICT"), index=True)
    actor: Mapped[str] = mapped_column(String(128))
    action: Mapped[str] = mapped_column(String(64))
    details: Mapped[dict[str, Any]] = mapped_column(JsonDoc, default=dict)
    #: SHA-256 chain: entry_hash = sha256(prev_hash + canonical entry); see monitor/audit.py.
    prev_hash: Mapped[str] = mapped_column(String(64))
    entry_hash: Mapped[str] = mapped_column(String(64), unique=True)


# --- issue 5: sources, what they listed, the alert outbox ------------------------------------------

class CandidateStatus(StrEnum):
    DONE = "done"        # fetched and recorded (media_id set), or its bytes were already known
    RETRY = "retry"      # a temporary failure; tried again at next_attempt_at (a bounded number of times)
    FAILED = "failed"    # given up: a permanent failure, a poison image, or too many attempts
    SKIPPED = "skipped"  # not fetched on purpose (e.g. a video: not hashed yet); kept so nothing is lost


class AlertStatus(StrEnum):
    PENDING = "pending"      # not yet delivered on every configured channel
    SENT = "sent"            # delivered on every configured channel
    CANCELLED = "cancelled"  # its case was withdrawn or closed before delivery: never sent


class Source(Base):
    """A place the monitor polls: a connector kind and its settings, its cursor and its health."""

    __tablename__ = "sources"
    __table_args__ = (
        CheckConstraint("interval_seconds >= 1", name="interval"),
        CheckConstraint("jitter_seconds >= 0", name="jitter"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[str] = mapped_column(String(32))
    url: Mapped[str] = mapped_column(Text)  # as the person gave it
    #: The connector's settings (SourceSettings.to_dict()) without its secret fields.
    settings: Mapped[dict[str, Any]] = mapped_column(JsonDoc, default=dict)
    #: JSON of the connector's secret fields (API tokens), encrypted; NULL when it has none.
    secrets: Mapped[str | None] = mapped_column("secrets_enc", EncryptedText("sources.secrets"), deferred=True)
    interval_seconds: Mapped[int] = mapped_column(Integer)
    jitter_seconds: Mapped[int] = mapped_column(Integer, default=0)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)  # False: paused
    #: The connector's cursor after the last committed page (its ETag/Last-Modified validators
    #: live inside it, so they are committed with the candidates they cover).
    cursor: Mapped[dict[str, Any] | None] = mapped_column(JsonDoc)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    # Health.
    last_poll_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    last_success_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    next_due_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)  # NULL: due now
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0)
    backoff_seconds: Mapped[int] = mapped_column(Integer, default=0)  # current back-off after failures
    last_error_code: Mapped[str | None] = mapped_column(String(32))
    last_error: Mapped[str | None] = mapped_column(String(300))  # URL and problem, never fetched content
    # Which process is polling it now (host:pid), so two processes never poll one source at once.
    lease_owner: Mapped[str | None] = mapped_column(String(128))
    lease_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class SourceCandidate(Base):
    """One item a source listed (per source and candidate key): fetched once, retried a bounded
    number of times, never forgotten."""

    __tablename__ = "source_candidates"
    __table_args__ = (
        UniqueConstraint("source_id", "key_sha256"),
        CheckConstraint(_in("status", CandidateStatus), name="status"),
        Index(None, "status", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    source_id: Mapped[int] = mapped_column(ForeignKey("sources.id", ondelete="CASCADE"))
    key_sha256: Mapped[str] = mapped_column(String(64))  # sha256 of Candidate.key
    media_url: Mapped[str] = mapped_column(Text)
    page_url: Mapped[str | None] = mapped_column(Text)
    #: What fetch_media needs to try again (URLs, media type, connector extras); never post text or author.
    candidate: Mapped[dict[str, Any]] = mapped_column(JsonDoc, default=dict)
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(SmallInteger, default=0)
    next_attempt_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    error: Mapped[str | None] = mapped_column(String(300))  # "code: problem" of the last failure
    media_id: Mapped[int | None] = mapped_column(ForeignKey("media.id", ondelete="SET NULL"), index=True)
    first_seen_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_attempt_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class Alert(Base):
    """The transactional outbox: one alert per new match, written in the match's transaction and
    delivered (and marked) afterwards. The payload holds no image, no hash value, no personal data."""

    __tablename__ = "alerts_outbox"
    __table_args__ = (
        UniqueConstraint("match_id", "kind"),
        CheckConstraint(_in("status", AlertStatus), name="status"),
        Index(None, "status", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    kind: Mapped[str] = mapped_column(String(32), default="match")
    match_id: Mapped[int] = mapped_column(ForeignKey("matches.id", ondelete="RESTRICT"))
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="RESTRICT"), index=True)
    source_id: Mapped[int | None] = mapped_column(ForeignKey("sources.id", ondelete="SET NULL"))
    payload: Mapped[dict[str, Any]] = mapped_column(JsonDoc, default=dict)
    status: Mapped[str] = mapped_column(String(16), default=AlertStatus.PENDING.value)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    claimed_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)  # a sender is delivering it
    #: Channel name -> ISO time it was delivered there ({"email": "...", "webhook": "..."}).
    delivered: Mapped[dict[str, Any]] = mapped_column(JsonDoc, default=dict)
    sent_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(String(300))  # channel and problem, no content


#: APScheduler 3's job store table (SQLAlchemyJobStore's own layout), created by the migrations
#: like every other table so the schema has one owner; the job store finds it and creates nothing.
apscheduler_jobs = Table(
    "apscheduler_jobs",
    Base.metadata,
    Column("id", Unicode(191), primary_key=True),
    Column("next_run_time", Float(25), index=True),
    Column("job_state", LargeBinary, nullable=False),
)


# --- issue 6: platform connectors (watch terms, credentials); migration 0003 --------------------

class WatchTerm(Base):
    """A name, user name or handle an advocate watches for in one case (search-capable sources
    use the terms of active cases). Personal data: encrypted, never logged, never in alerts or
    audit details (those name the term's id). Removing a term deletes the row."""

    __tablename__ = "watch_terms"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="RESTRICT"), index=True)
    term: Mapped[str] = mapped_column("term_enc", EncryptedText("watch_terms.term"))
    kind: Mapped[str] = mapped_column(String(16), default="name")  # name | username | handle
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by: Mapped[str] = mapped_column(String(128))


# --- issue 7: the web app (accounts, sessions, API tokens, assignment, notes); migration 0004 ----

class Role(StrEnum):
    ADMIN = "admin"        # everything: all cases, users, sources
    ADVOCATE = "advocate"  # only the cases assigned to them, and their matches


class SessionKind(StrEnum):
    STAFF = "staff"                # a signed-in user of the web app
    SELF_SERVICE = "self-service"  # a victim who gave their case reference and secret


class ReviewDecision(StrEnum):
    CONFIRMED = "confirmed"
    REJECTED = "rejected"


class User(Base):
    """A staff account of the web app (admin or advocate); the password is stored as argon2id."""

    __tablename__ = "users"
    __table_args__ = (CheckConstraint(_in("role", Role), name="role"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    password_hash: Mapped[str] = mapped_column(String(255))  # argon2id PHC string
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    last_sign_in_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class WebSession(Base):
    """A browser session: only the SHA-256 of its random token is stored, with its CSRF token."""

    __tablename__ = "web_sessions"
    __table_args__ = (CheckConstraint(_in("kind", SessionKind), name="kind"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True)


class ApiToken(Base):
    """A per-user API token: shown once, stored as its SHA-256, revocable."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class SignInThrottle(Base):
    """Failed sign-ins per account, per client address or per case reference (keys stored hashed)."""

    __tablename__ = "sign_in_throttle"
    __table_args__ = (UniqueConstraint("scope", "key_sha256"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    scope: Mapped[str] = mapped_column(String(16))  # account | client | reference | ss-client
    key_sha256: Mapped[str] = mapped_column(String(64))
    failures: Mapped[int] = mapped_column(Integer, default=0)
    window_started_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    locked_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class CaseAssignment(Base):
    """The advocate a case is assigned to (at most one); advocates see only their cases."""

    __tablename__ = "case_assignments"

    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), primary_key=True,
                                         autoincrement=False)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    assigned_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class CaseNote(Base):
    """An advocate's note on a case, encrypted at rest."""

    __tablename__ = "case_notes"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    author: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    body: Mapped[str] = mapped_column("body_enc", EncryptedText("case_notes.body"))


class MatchReview(Base):
    """One review decision on a match, with its reason (the match row holds the current status)."""

    __tablename__ = "match_reviews"
    __table_args__ = (CheckConstraint(_in("decision", ReviewDecision), name="decision"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    match_id: Mapped[int] = mapped_column(ForeignKey("matches.id", ondelete="CASCADE"), index=True)
    reviewer: Mapped[str] = mapped_column(String(128))
    decision: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(String(32))  # a code from monitor.review.REJECT_REASONS or CONFIRM_REASONS
    note: Mapped[str | None] = mapped_column("note_enc", EncryptedText("match_reviews.note"))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class PreviewReveal(Base):
    """A deliberate reveal of a match's unblurred preview by one user, valid for a short time."""

    __tablename__ = "preview_reveals"
    __table_args__ = (Index(None, "user_id", "match_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    match_id: Mapped[int] = mapped_column(ForeignKey("matches.id", ondelete="CASCADE"), index=True)
    revealed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)



# --- issue 8: takedown notices; migration 0005 ---------------------------------------------------

class NoticeState(StrEnum):
    DRAFT = "draft"                    # written, editable; nothing is sent before a person approves it
    APPROVED = "approved"              # a person approved the final text; waiting to be sent or submitted
    SENT = "sent"                      # delivered by email, or submitted by hand through a web form
    ACKNOWLEDGED = "acknowledged"      # the recipient confirmed receipt (e.g. DSA Art. 16(4))
    REMOVED = "removed"                # every reported URL is gone
    PARTLY_REMOVED = "partly_removed"  # some reported URLs are gone, others are still served
    REFUSED = "refused"                # the recipient declined to remove
    EXPIRED = "expired"                # the deadline passed with content still online (escalation drafted)


class NoticeKind(StrEnum):
    NOTICE = "notice"          # the first request to the platform
    REMINDER = "reminder"      # escalation step 1: the same recipient, after the deadline
    HOST_ABUSE = "host_abuse"  # escalation step 2: the hosting network's or registrar's abuse contact
    REGULATOR = "regulator"    # escalation step 3: the regulator named by the jurisdiction profile
    REUPLOAD = "reupload"      # a follow-up for content re-uploaded after an earlier removal


class NoticeConsent(Base):
    """Whether the victim agreed to their own name and contact in notices (else the organisation
    acts as authorised agent); the name and contact for notices are encrypted."""

    __tablename__ = "takedown_consents"

    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="RESTRICT"), primary_key=True,
                                         autoincrement=False)
    name_in_notices: Mapped[bool] = mapped_column(Boolean, default=False)
    consented_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    recorded_by: Mapped[str] = mapped_column(String(128))
    victim_name: Mapped[str | None] = mapped_column("victim_name_enc", EncryptedText("takedown_consents.victim_name"),
                                                    deferred=True)
    victim_contact: Mapped[str | None] = mapped_column(
        "victim_contact_enc", EncryptedText("takedown_consents.victim_contact"), deferred=True)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class TakedownNotice(Base):
    """One removal request (or escalation step) to one recipient about one platform's copies."""

    __tablename__ = "takedown_notices"
    __table_args__ = (
        CheckConstraint(_in("state", NoticeState), name="state"),
        CheckConstraint(_in("kind", NoticeKind), name="kind"),
        CheckConstraint("delivery IN ('email', 'web_form')", name="delivery"),
        Index(None, "state", "deadline_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="RESTRICT"), index=True)
    #: The notice this one escalates or follows up (reminder, abuse contact, regulator, re-upload).
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("takedown_notices.id", ondelete="SET NULL"), index=True)
    kind: Mapped[str] = mapped_column(String(16), default=NoticeKind.NOTICE.value)
    step: Mapped[int] = mapped_column(SmallInteger, default=0)  # 0 the notice, 1.. escalation steps
    notice_type: Mapped[str] = mapped_column(String(32))  # take_it_down, dmca, dsa_art16, ...
    profile: Mapped[str] = mapped_column(String(8))  # jurisdiction profile: US, EU, UK, AU, CA, INTL
    language: Mapped[str] = mapped_column(String(8), default="en")
    platform: Mapped[str] = mapped_column(String(64))  # registry name, or "host:<name>" for unknown hosts
    host: Mapped[str] = mapped_column(String(255))
    state: Mapped[str] = mapped_column(String(16), default=NoticeState.DRAFT.value)
    delivery: Mapped[str] = mapped_column(String(16), default="email")
    #: {"name", "email", "form_url", "found_by", "detail"}: the platform's or network's, never the victim's.
    recipient: Mapped[dict[str, Any]] = mapped_column(JsonDoc, default=dict)
    subject: Mapped[str] = mapped_column(String(300))
    #: The text as sent (it may name the victim when they consented): encrypted at rest.
    body: Mapped[str] = mapped_column("body_enc", EncryptedText("takedown_notices.body"), deferred=True)
    edited: Mapped[bool] = mapped_column(Boolean, default=False)
    uses_victim_identity: Mapped[bool] = mapped_column(Boolean, default=False)
    #: The last element check: {"ok": bool, "missing": [element ids], "checked": [element ids]}.
    elements: Mapped[dict[str, Any]] = mapped_column(JsonDoc, default=dict)
    deadline_hours: Mapped[int] = mapped_column(Integer)
    #: Fixed when the notice is approved, before any send: the email's Message-ID.
    message_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by: Mapped[str] = mapped_column(String(128))
    approved_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    approved_by: Mapped[str | None] = mapped_column(String(128))
    #: Set (and committed) just before the SMTP transaction: a notice with it set and no sent_at
    #: is never sent again automatically (delivery uncertain: a person checks).
    send_started_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    sent_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    deadline_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    acknowledged_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    removed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    closed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)  # refused or expired
    ticket: Mapped[str | None] = mapped_column(String(128))  # the platform's reference
    last_error: Mapped[str | None] = mapped_column(String(300))  # delivery problem, never content
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class TakedownNoticeUrl(Base):
    """One reported copy (image URL) of a notice, re-checked until it is gone."""

    __tablename__ = "takedown_notice_urls"
    __table_args__ = (UniqueConstraint("notice_id", "url_sha256"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    notice_id: Mapped[int] = mapped_column(ForeignKey("takedown_notices.id", ondelete="CASCADE"))
    match_id: Mapped[int | None] = mapped_column(ForeignKey("matches.id", ondelete="SET NULL"), index=True)
    media_id: Mapped[int | None] = mapped_column(ForeignKey("media.id", ondelete="SET NULL"), index=True)
    url: Mapped[str] = mapped_column(Text)
    url_sha256: Mapped[str] = mapped_column(String(64))
    page_url: Mapped[str | None] = mapped_column(Text)
    last_checked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    last_result: Mapped[str | None] = mapped_column(String(32))  # present, gone-404, changed, error:...
    gone_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    gone_reason: Mapped[str | None] = mapped_column(String(32))
