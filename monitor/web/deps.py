"""What routes depend on: database sessions, the signed-in user, access to a case or match (the
ONE place roles are enforced), and CSRF checks. Takedown routes (issue 8) import these too.
"""

from __future__ import annotations

import secrets
from contextlib import contextmanager
from typing import Annotated, Iterator

from fastapi import Depends, Path, Request
from sqlalchemy import select
from sqlalchemy.orm import Session

from monitor import accounts, casework, db
from monitor.models import Case, Match, Role, SessionKind, User, WebSession

STAFF_COOKIE = "ncii_session"
SELF_COOKIE = "ncii_self"
FORM_CSRF_COOKIE = "ncii_csrf"  # double-submit token for forms shown before a session exists


class SignInRequired(Exception):
    """No valid session or token: pages redirect to /login, the API answers 401."""


class Forbidden(Exception):
    """Signed in, but this needs another role (403)."""


class NotFound(Exception):
    """Not there, or not visible to this user (404: never reveals which)."""


class CsrfFailed(Exception):
    """A form came without the right CSRF token (403)."""


class BadInput(Exception):
    """The request is understood but a value is wrong; the message says which (400/422)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@contextmanager
def reading(request: Request) -> Iterator[Session]:
    """A session for reading; closing it ends its transaction without expiring what was loaded."""
    s = db.session(request.app.state.engine)
    try:
        yield s
    finally:
        s.close()


@contextmanager
def writing(request: Request) -> Iterator[Session]:
    """A write transaction: committed if the block succeeds, rolled back if it raises."""
    with db.transaction(request.app.state.engine) as s:
        yield s


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


def optional_user(request: Request) -> User | None:
    """The user of this request (API token or staff session cookie), or None."""
    if hasattr(request.state, "user"):
        return request.state.user
    user: User | None = None
    request.state.web_session = None
    request.state.auth = None
    # API tokens work on the API only: pages and their forms take the session cookie (and its CSRF
    # token), so a token leaked from a script cannot change a password or mint tokens through a form.
    token = _bearer(request) if request.url.path.startswith("/api/") else None
    if token is not None:
        with reading(request) as s:  # most requests only read; the use is recorded every few minutes
            user = accounts.user_for_token(s, token, touch=False)
            due = user is not None and accounts.token_use_due(accounts.token_row(s, token))
        if due:
            with writing(request) as s:
                accounts.user_for_token(s, token)
        request.state.auth = "token" if user else None
    else:
        cookie = request.cookies.get(STAFF_COOKIE)
        if cookie:
            with reading(request) as s:
                ws = accounts.find_session(s, cookie, SessionKind.STAFF)
                if ws is not None and ws.user_id is not None:
                    user = s.get(User, ws.user_id)
                    if user is not None and not user.disabled:
                        request.state.web_session = ws
                        request.state.auth = "session"
                    else:
                        user = None
    request.state.user = user
    return user


def current_user(request: Request) -> User:
    """The signed-in user; SignInRequired otherwise."""
    user = optional_user(request)
    if user is None:
        raise SignInRequired()
    return user


def require_admin(user: User = Depends(current_user)) -> User:
    """The signed-in user, who must be an admin."""
    if user.role != Role.ADMIN:
        raise Forbidden("this needs an admin account")
    return user


def visible_cases(request: Request, user: User) -> set[int] | None:
    """Ids of the cases this user may see (None: all)."""
    with reading(request) as s:
        return casework.visible_case_ids(s, user)


def load_case(s: Session, user: User, reference: str, *, lock: bool = False) -> Case:
    """The case with this reference if `user` may see it; NotFound otherwise (same answer either way)."""
    from monitor.identifiers import InvalidReference, normalize_reference

    try:
        ref = normalize_reference(reference)
    except InvalidReference:
        raise NotFound("no such case") from None
    q = select(Case).where(Case.reference == ref)
    if lock:
        q = q.with_for_update()
    case = s.scalar(q)
    if case is None or not casework.can_see(s, user, case.id):
        raise NotFound("no such case")
    return case


def load_match(s: Session, user: User, match_id: int) -> Match:
    """The match with this id if `user` may see its case; NotFound otherwise."""
    match = s.get(Match, match_id)
    if match is None or not casework.can_see(s, user, match.case_id):
        raise NotFound("no such match")
    return match


# --- CSRF ------------------------------------------------------------------------------------------

def session_csrf(request: Request) -> str:
    """The CSRF token of this request's session (staff or self-service), or of the form cookie."""
    ws: WebSession | None = getattr(request.state, "web_session", None)
    if ws is not None:
        return ws.csrf_token
    ss: WebSession | None = getattr(request.state, "self_session", None)
    if ss is not None:
        return ss.csrf_token
    token = getattr(request.state, "form_csrf", None)
    if token is None:
        token = request.cookies.get(FORM_CSRF_COOKIE) or secrets.token_urlsafe(32)
        request.state.form_csrf = token
    return token


async def csrf_protect(request: Request) -> None:
    """Refuse a form POST whose csrf_token field does not match the session's (API tokens are exempt)."""
    if request.method in ("GET", "HEAD", "OPTIONS"):
        return
    if getattr(request.state, "auth", None) == "token":
        return
    if request.headers.get("content-type", "").startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
        form = await request.form()
        given = form.get("csrf_token")
    else:
        given = request.headers.get("x-csrf-token")
    ws = getattr(request.state, "web_session", None) or getattr(request.state, "self_session", None)
    expected = ws.csrf_token if ws is not None else request.cookies.get(FORM_CSRF_COOKIE)
    if not accounts.csrf_matches(expected, given if isinstance(given, str) else None):
        raise CsrfFailed()


async def staff_post(request: Request, user: User = Depends(current_user)) -> User:
    """The signed-in user of a state-changing request, after its CSRF check."""
    await csrf_protect(request)
    return user


async def admin_post(request: Request, user: User = Depends(require_admin)) -> User:
    """The signed-in admin of a state-changing request, after its CSRF check."""
    await csrf_protect(request)
    return user


#: A row id in a path: positive and within 64-bit range (larger numbers are a 422, not a crash).
MAX_ID = 2**62
RowId = Annotated[int, Path(ge=1, le=MAX_ID)]
