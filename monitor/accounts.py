"""Staff accounts of the web app: users, passwords, sessions, API tokens and sign-in throttling.

Passwords are hashed with argon2id (the same hasher as case secrets, monitor.crypto). Session and
API tokens are random (256 bits) and stored only as their SHA-256: a copy of the database does
not let anyone sign in. Failed sign-ins are counted per account and per client address in the
database (so a restart does not reset them) and audited. Every function takes a Session and
leaves committing to the caller.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from monitor import audit
from monitor.crypto import hash_secret, verify_secret
from monitor.models import ApiToken, Role, SessionKind, SignInThrottle, User, WebSession, utcnow

MIN_PASSWORD_CHARS = 12
MAX_PASSWORD_CHARS = 1024
STAFF_SESSION_TTL = dt.timedelta(hours=8)
SELF_SERVICE_TTL = dt.timedelta(minutes=15)
TOKEN_PREFIX = "ncii_"
_USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]{1,63}$")
_TOKEN_NAME = re.compile(r"^[\w .:-]{1,64}$")


@dataclass(frozen=True)
class ThrottleRule:
    """At most `limit` failures per `window`; then refused until `lockout` has passed."""

    limit: int
    window: dt.timedelta
    lockout: dt.timedelta


#: Staff sign-in: per account and per client address.
ACCOUNT_RULE = ThrottleRule(5, dt.timedelta(minutes=15), dt.timedelta(minutes=15))
CLIENT_RULE = ThrottleRule(20, dt.timedelta(minutes=15), dt.timedelta(minutes=15))
#: Victim self-service: per case reference and per client address.
REFERENCE_RULE = ThrottleRule(5, dt.timedelta(hours=1), dt.timedelta(hours=1))
SELF_SERVICE_CLIENT_RULE = ThrottleRule(10, dt.timedelta(hours=1), dt.timedelta(hours=1))


class AccountError(Exception):
    """Base of the account errors; `code` is a stable machine-readable name."""

    code = "account-error"


class InvalidAccountData(AccountError, ValueError):
    """A user name, role, password or token name is not acceptable; the message says why."""

    code = "invalid-account-data"


class UserExists(AccountError):
    """A user with that name exists already."""

    code = "user-exists"


class UserNotFound(AccountError):
    """No user has that name."""

    code = "user-not-found"


class TokenNotFound(AccountError):
    """No such API token for that user."""

    code = "token-not-found"


def sha256_hex(text: str) -> str:
    """SHA-256 of a token (what is stored instead of the token)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def new_token() -> str:
    """A fresh random token (256 bits, URL-safe)."""
    return secrets.token_urlsafe(32)


def new_password() -> str:
    """A random password for a new account (printed once)."""
    return secrets.token_urlsafe(15)


def actor_of(user: User) -> str:
    """The audit actor for a user of the web app."""
    return f"user:{user.username}"


# --- users -----------------------------------------------------------------------------------------

def normalize_username(username: str) -> str:
    """Lower-case and check a user name (2-64 letters, digits, '.', '_', '-')."""
    name = (username or "").strip().lower()
    if not _USERNAME.match(name):
        raise InvalidAccountData("user name: use 2-64 lower-case letters, digits, '.', '_' or '-', starting with "
                                 "a letter or digit")
    return name


def _check_password(password: str) -> None:
    if not MIN_PASSWORD_CHARS <= len(password) <= MAX_PASSWORD_CHARS:
        raise InvalidAccountData(f"password: use {MIN_PASSWORD_CHARS} to {MAX_PASSWORD_CHARS} characters")


def create_user(session: Session, username: str, role: str, password: str, *, actor: str) -> User:
    """Add a staff account (role admin or advocate) with an argon2id-hashed password."""
    name = normalize_username(username)
    try:
        role = Role(role).value
    except ValueError:
        raise InvalidAccountData(f"role must be one of {', '.join(r.value for r in Role)}, got {role!r}") from None
    _check_password(password)
    if session.scalar(select(User.id).where(User.username == name)) is not None:
        raise UserExists(f"a user named {name!r} exists already")
    now = utcnow()
    user = User(username=name, role=role, password_hash=hash_secret(password), disabled=False,
                created_at=now, updated_at=now)
    session.add(user)
    session.flush()
    audit.append(session, "user.created", actor, None, {"user_id": user.id, "role": role})
    return user


def get_user(session: Session, username: str) -> User:
    """The user called `username` (UserNotFound otherwise)."""
    user = session.scalar(select(User).where(User.username == normalize_username(username)))
    if user is None:
        raise UserNotFound(f"no user named {username.strip().lower()!r}")
    return user


def list_users(session: Session) -> list[User]:
    """Every staff account, by name."""
    return list(session.scalars(select(User).order_by(User.username)))


def count_users(session: Session) -> int:
    """How many staff accounts exist."""
    return session.scalar(select(func.count()).select_from(User)) or 0


@dataclass(frozen=True)
class Revocation:
    """What revoke_access() ended: a user's (other) staff sessions and live API tokens."""

    sessions: int = 0
    tokens: int = 0

    def to_dict(self) -> dict[str, int]:
        """JSON-ready counts."""
        return {"sessions": self.sessions, "tokens": self.tokens}

    def message(self, *, other: bool = False) -> str:
        """What was revoked, in words (for the page, the CLI)."""
        kind = "other session" if other else "session"
        return (f"{self.sessions} {kind}{'' if self.sessions == 1 else 's'} signed out and "
                f"{self.tokens} API token{'' if self.tokens == 1 else 's'} revoked")


def revoke_access(session: Session, user: User, *, actor: str, reason: str,
                  keep_session_id: int | None = None) -> Revocation:
    """End a user's staff sessions (but keep_session_id) and revoke all their live API tokens.

    After a password change or when an account is disabled: whoever held a session or a token
    must not keep access. Audited as `user.access_revoked` with the reason code and counts only."""
    ended = delete(WebSession).where(WebSession.user_id == user.id)
    if keep_session_id is not None:
        ended = ended.where(WebSession.id != keep_session_id)
    sessions = session.execute(ended).rowcount or 0
    tokens = session.execute(update(ApiToken).where(ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None))
                             .values(revoked_at=utcnow())).rowcount or 0
    session.flush()
    audit.append(session, "user.access_revoked", actor, None,
                 {"user_id": user.id, "reason": reason, "sessions": sessions, "tokens": tokens})
    return Revocation(sessions, tokens)


def set_disabled(session: Session, username: str, disabled: bool, *, actor: str) -> tuple[User, Revocation | None]:
    """Disable (or re-enable) an account; disabling ends its sessions and revokes its API tokens.

    Returns the user and, when disabling, what was revoked (re-enabling brings no token back)."""
    user = get_user(session, username)
    if user.disabled != disabled:
        user.disabled = disabled
        user.updated_at = utcnow()
        session.flush()
        audit.append(session, "user.disabled" if disabled else "user.enabled", actor, None, {"user_id": user.id})
    # Disabling again still revokes: tokens of accounts disabled before revocation existed stop for good.
    revoked = revoke_access(session, user, actor=actor, reason="disabled") if disabled else None
    return user, revoked


def set_password(session: Session, username: str, password: str, *, actor: str,
                 keep_session_id: int | None = None) -> tuple[User, Revocation]:
    """Replace a user's password; end their sessions (but keep_session_id) and revoke their API tokens."""
    user = get_user(session, username)
    _check_password(password)
    user.password_hash = hash_secret(password)
    user.updated_at = utcnow()
    session.flush()
    audit.append(session, "user.password_changed", actor, None, {"user_id": user.id})
    revoked = revoke_access(session, user, actor=actor, reason="password_changed", keep_session_id=keep_session_id)
    return user, revoked


# --- sign-in throttling ----------------------------------------------------------------------------

def throttled_for(session: Session, scope: str, key: str, now: dt.datetime | None = None) -> int:
    """Seconds until `key` may try again in `scope` (0: it may try now)."""
    now = now or utcnow()
    row = session.scalar(select(SignInThrottle).where(SignInThrottle.scope == scope,
                                                      SignInThrottle.key_sha256 == sha256_hex(key)))
    if row is None or row.locked_until is None or row.locked_until <= now:
        return 0
    return max(1, int((row.locked_until - now).total_seconds()))


def record_failure(session: Session, scope: str, key: str, rule: ThrottleRule, now: dt.datetime | None = None) -> None:
    """Count one failed attempt; lock the key once the rule's limit is reached within its window."""
    now = now or utcnow()
    digest = sha256_hex(key)
    row = session.scalar(select(SignInThrottle).where(SignInThrottle.scope == scope,
                                                      SignInThrottle.key_sha256 == digest).with_for_update())
    if row is None:
        row = SignInThrottle(scope=scope, key_sha256=digest, failures=0, window_started_at=now)
        session.add(row)
    if now - row.window_started_at > rule.window:
        row.failures, row.window_started_at, row.locked_until = 0, now, None
    row.failures += 1
    if row.failures >= rule.limit:
        row.locked_until = now + rule.lockout
        row.failures, row.window_started_at = 0, now
    session.flush()


def clear_failures(session: Session, scope: str, key: str) -> None:
    """Forget the failures of `key` (after a successful sign-in)."""
    session.execute(delete(SignInThrottle).where(SignInThrottle.scope == scope,
                                                 SignInThrottle.key_sha256 == sha256_hex(key)))


@dataclass(frozen=True)
class SignInResult:
    """What authenticate() decided: a user, or the reason for refusing (and how long to wait)."""

    user: User | None
    reason: str | None = None  # bad-credentials | throttled | disabled
    retry_after: int = 0


def authenticate(session: Session, username: str, password: str, client: str) -> SignInResult:
    """Check a user name and password with throttling per account and client; audit failures."""
    try:
        name = normalize_username(username)
    except InvalidAccountData:
        name = (username or "").strip().lower()[:64]
    wait = max(throttled_for(session, "account", name), throttled_for(session, "client", client))
    user = session.scalar(select(User).where(User.username == name))
    if wait:
        audit.append(session, "user.sign_in_failed", "web", None,
                     {"user_id": user.id if user else None, "reason": "throttled"})
        return SignInResult(None, "throttled", wait)
    # verify_secret spends the same time when the user does not exist (no user enumeration by timing).
    ok = verify_secret(user.password_hash if user else None, password or "")
    if ok and user is not None and not user.disabled:
        clear_failures(session, "account", name)
        user.last_sign_in_at = utcnow()
        audit.append(session, "user.signed_in", actor_of(user), None, {"user_id": user.id})
        return SignInResult(user)
    record_failure(session, "account", name, ACCOUNT_RULE)
    record_failure(session, "client", client, CLIENT_RULE)
    reason = "disabled" if ok and user is not None else "bad-credentials"
    audit.append(session, "user.sign_in_failed", "web", None,
                 {"user_id": user.id if user else None, "reason": reason})
    return SignInResult(None, "bad-credentials")


# --- sessions --------------------------------------------------------------------------------------

def create_session(session: Session, kind: SessionKind, *, user_id: int | None = None, case_id: int | None = None,
                   ttl: dt.timedelta | None = None) -> tuple[str, WebSession]:
    """Start a session; returns the token for the cookie (only its hash is stored) and the row."""
    token = new_token()
    now = utcnow()
    if ttl is None:
        ttl = STAFF_SESSION_TTL if kind == SessionKind.STAFF else SELF_SERVICE_TTL
    row = WebSession(token_sha256=sha256_hex(token), kind=kind.value, user_id=user_id, case_id=case_id,
                     csrf_token=secrets.token_urlsafe(32), created_at=now, expires_at=now + ttl)
    session.add(row)
    session.flush()
    return token, row


def find_session(session: Session, token: str | None, kind: SessionKind) -> WebSession | None:
    """The live session of this kind for a cookie token, or None (unknown, expired, or wrong kind)."""
    if not token or len(token) > 200:
        return None
    row = session.scalar(select(WebSession).where(WebSession.token_sha256 == sha256_hex(token)))
    if row is None or row.kind != kind.value or row.expires_at <= utcnow():
        return None
    return row


def end_session(session: Session, token: str | None) -> None:
    """Delete the session of this cookie token (sign-out)."""
    if token:
        session.execute(delete(WebSession).where(WebSession.token_sha256 == sha256_hex(token)))


def rotate_session(session: Session, session_id: int) -> tuple[str, WebSession] | None:
    """Replace a session by a new one for the same user (new token, new CSRF token, fresh expiry);
    None if it has ended meanwhile."""
    old = session.get(WebSession, session_id)
    if old is None:
        return None
    kind, user_id, case_id = SessionKind(old.kind), old.user_id, old.case_id
    session.delete(old)
    session.flush()
    return create_session(session, kind, user_id=user_id, case_id=case_id)


#: A throttle row unlocked and older than the longest rule's window no longer counts anywhere.
_THROTTLE_KEEP = max(r.window for r in (ACCOUNT_RULE, CLIENT_RULE, REFERENCE_RULE, SELF_SERVICE_CLIENT_RULE))


def purge_expired(session: Session, now: dt.datetime | None = None) -> dict[str, int]:
    """Delete expired sessions, lapsed preview reveals and throttle rows that no longer count.

    Idempotent (a second run deletes nothing); run by `ncii serve` and `ncii monitor run` every
    30 minutes and by `ncii user purge-expired`. Returns how many rows of each kind went."""
    from monitor.models import PreviewReveal

    now = now or utcnow()
    reveals = session.execute(delete(PreviewReveal).where(PreviewReveal.expires_at <= now)).rowcount or 0
    sessions = session.execute(delete(WebSession).where(WebSession.expires_at <= now)).rowcount or 0
    # A row counts while its key is locked or its window is open; past both, record_failure would
    # start afresh anyway, so deleting it changes no decision.
    stale = (SignInThrottle.window_started_at <= now - _THROTTLE_KEEP) & (
        SignInThrottle.locked_until.is_(None) | (SignInThrottle.locked_until <= now))
    throttle = session.execute(delete(SignInThrottle).where(stale)).rowcount or 0
    return {"sessions": sessions, "reveals": reveals, "throttle": throttle}


def csrf_matches(expected: str | None, given: str | None) -> bool:
    """Constant-time comparison of CSRF tokens."""
    return bool(expected) and bool(given) and hmac.compare_digest(str(expected), str(given))


# --- API tokens ------------------------------------------------------------------------------------

def create_api_token(session: Session, user: User, name: str, *, actor: str) -> tuple[str, ApiToken]:
    """A new API token for `user`; the token text is returned once and stored only as its hash."""
    name = (name or "").strip()
    if not _TOKEN_NAME.match(name):
        raise InvalidAccountData("token name: 1-64 letters, digits, spaces, '.', ':', '_' or '-'")
    token = TOKEN_PREFIX + new_token()
    row = ApiToken(user_id=user.id, token_sha256=sha256_hex(token), name=name, created_at=utcnow())
    session.add(row)
    session.flush()
    audit.append(session, "token.created", actor, None, {"user_id": user.id, "token_id": row.id})
    return token, row


def list_api_tokens(session: Session, user: User) -> list[ApiToken]:
    """A user's tokens (revoked ones too), newest first."""
    return list(session.scalars(select(ApiToken).where(ApiToken.user_id == user.id).order_by(ApiToken.id.desc())))


def revoke_api_token(session: Session, user: User, token_id: int, *, actor: str) -> ApiToken:
    """Revoke one of `user`'s tokens (idempotent)."""
    row = session.scalar(select(ApiToken).where(ApiToken.id == token_id, ApiToken.user_id == user.id))
    if row is None:
        raise TokenNotFound(f"user {user.username!r} has no token {token_id}")
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        session.flush()
        audit.append(session, "token.revoked", actor, None, {"user_id": user.id, "token_id": row.id})
    return row


def user_for_token(session: Session, token: str | None, *, touch: bool = True) -> User | None:
    """The active user an API token belongs to, or None (unknown, revoked, or user disabled).

    touch=True records the use (at most every 5 minutes, so reads rarely write)."""
    if not token or not token.startswith(TOKEN_PREFIX) or len(token) > 200:
        return None
    row = session.scalar(select(ApiToken).where(ApiToken.token_sha256 == sha256_hex(token)))
    if row is None or row.revoked_at is not None:
        return None
    user = session.get(User, row.user_id)
    if user is None or user.disabled:
        return None
    if touch and token_use_due(row):
        row.last_used_at = utcnow()
    return user


def token_use_due(row: ApiToken) -> bool:
    """True when the token's last use is unrecorded or older than 5 minutes."""
    return row.last_used_at is None or utcnow() - row.last_used_at > dt.timedelta(minutes=5)


def token_row(session: Session, token: str) -> ApiToken | None:
    """The stored row of an API token, if any."""
    return session.scalar(select(ApiToken).where(ApiToken.token_sha256 == sha256_hex(token)))


def user_dict(user: User) -> dict[str, Any]:
    """JSON-ready form of a user (no password hash)."""
    return {"id": user.id, "username": user.username, "role": user.role, "disabled": user.disabled,
            "created_at": user.created_at.isoformat(timespec="seconds"),
            "last_sign_in_at": user.last_sign_in_at.isoformat(timespec="seconds") if user.last_sign_in_at else None}
