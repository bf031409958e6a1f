"""Staff accounts (admins) and each user's own API tokens."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import RedirectResponse, Response

from monitor import accounts, audit
from monitor.models import User
from monitor.web.deps import (MAX_ID, STAFF_COOKIE, BadInput, Forbidden, NotFound, RowId, admin_post, current_user,
                              reading, require_admin, staff_post, writing)
from monitor.web.render import render
from monitor.web.security import set_cookie

router = APIRouter(include_in_schema=False)


# --- shared with the API ---------------------------------------------------------------------------

def add_user(request: Request, admin: User, username: str, role: str, password: str | None) -> tuple[dict, str | None]:
    """Create an account; with no password one is generated and returned (shown once)."""
    generated = None
    if not password:
        password = generated = accounts.new_password()
    try:
        with writing(request) as s:
            user = accounts.create_user(s, username, role, password, actor=accounts.actor_of(admin))
            return accounts.user_dict(user), generated
    except (accounts.InvalidAccountData, accounts.UserExists) as e:
        raise BadInput(str(e), 422) from None


def set_disabled(request: Request, admin: User, username: str, disabled: bool) -> dict[str, Any]:
    """Disable or re-enable an account (never your own); disabling says what it revoked."""
    if username.strip().lower() == admin.username and disabled:
        raise BadInput("you cannot disable your own account", 422)
    try:
        with writing(request) as s:
            user, revoked = accounts.set_disabled(s, username, disabled, actor=accounts.actor_of(admin))
            out = accounts.user_dict(user)
    except (accounts.UserNotFound, accounts.InvalidAccountData):
        raise NotFound("no such user") from None
    if revoked is not None:
        out["revoked"] = revoked.to_dict()
    return out


def new_token(request: Request, user: User, name: str) -> tuple[str, dict[str, Any]]:
    """A new API token for the user (returned once); never for a request authenticated by a token."""
    # A leaked token must not be able to outlive its own revocation by minting successors.
    if getattr(request.state, "auth", None) != "session":
        raise Forbidden("API tokens cannot create API tokens: create one from a signed-in browser session "
                        "(the Account page) or with `ncii user token NAME`")
    try:
        with writing(request) as s:
            token, row = accounts.create_api_token(s, s.get(User, user.id), name, actor=accounts.actor_of(user))
            return token, token_dict(row)
    except accounts.InvalidAccountData as e:
        raise BadInput(str(e), 422) from None


def revoke_token(request: Request, user: User, token_id: int) -> dict[str, Any]:
    """Revoke one of the user's own tokens."""
    try:
        with writing(request) as s:
            return token_dict(accounts.revoke_api_token(s, s.get(User, user.id), token_id,
                                                        actor=accounts.actor_of(user)))
    except accounts.TokenNotFound:
        raise NotFound("no such token") from None


def token_dict(row) -> dict[str, Any]:  # noqa: ANN001
    """JSON-ready form of a token (never its value)."""
    iso = lambda v: v.isoformat(timespec="seconds") if v else None  # noqa: E731
    return {"id": row.id, "name": row.name, "created_at": iso(row.created_at), "last_used_at": iso(row.last_used_at),
            "revoked_at": iso(row.revoked_at)}


def tokens_of(request: Request, user: User) -> list[dict[str, Any]]:
    """The user's tokens."""
    with reading(request) as s:
        return [token_dict(t) for t in accounts.list_api_tokens(s, user)]


# --- pages -----------------------------------------------------------------------------------------

@router.get("/users")
def users_page(request: Request, disabled: str | None = None, sessions: int = Query(0, ge=0, le=MAX_ID),
               tokens: int = Query(0, ge=0, le=MAX_ID), _admin: User = Depends(require_admin)) -> Response:
    """Every staff account (after a disable: what it revoked)."""
    with reading(request) as s:
        users = [accounts.user_dict(u) for u in accounts.list_users(s)]
    notice = None
    # Only for an account that is disabled: a crafted link cannot make the page claim otherwise.
    if disabled and any(u["username"] == disabled and u["disabled"] for u in users):
        notice = f"{disabled} disabled: {accounts.Revocation(sessions, tokens).message()}."
    return render(request, "users.html", {"users": users, "notice": notice})


@router.post("/users")
def users_add(request: Request, username: str = Form(""), role: str = Form("advocate"), password: str = Form(""),
              admin: User = Depends(admin_post)) -> Response:
    """Create an account (a generated password is shown once)."""
    try:
        created, generated = add_user(request, admin, username, role, password or None)
    except BadInput as e:
        with reading(request) as s:
            users = [accounts.user_dict(u) for u in accounts.list_users(s)]
        return render(request, "users.html", {"users": users, "error": str(e)}, status_code=e.status)
    with reading(request) as s:
        users = [accounts.user_dict(u) for u in accounts.list_users(s)]
    return render(request, "users.html", {"users": users, "created": created, "generated": generated})


@router.post("/users/{username}/disable")
def users_disable(request: Request, username: str, admin: User = Depends(admin_post)) -> Response:
    """Disable an account: its sessions end and its API tokens are revoked (the page says how many)."""
    out = set_disabled(request, admin, username, True)
    revoked = out["revoked"]
    return RedirectResponse(f"/users?disabled={quote(out['username'])}&sessions={revoked['sessions']}"
                            f"&tokens={revoked['tokens']}", status_code=303)


@router.post("/users/{username}/enable")
def users_enable(request: Request, username: str, admin: User = Depends(admin_post)) -> Response:
    """Re-enable an account."""
    set_disabled(request, admin, username, False)
    return RedirectResponse("/users", status_code=303)


@router.get("/account")
def account_page(request: Request, user: User = Depends(current_user)) -> Response:
    """The user's API tokens."""
    return render(request, "account.html", {"tokens": tokens_of(request, user)})


@router.post("/account/tokens")
def account_token(request: Request, name: str = Form(""), user: User = Depends(staff_post)) -> Response:
    """Create a token and show it once."""
    token, _row = new_token(request, user, name)
    return render(request, "account.html", {"tokens": tokens_of(request, user), "new_token": token})


@router.post("/account/tokens/{token_id}/revoke")
def account_revoke(request: Request, token_id: RowId, user: User = Depends(staff_post)) -> Response:
    """Revoke a token."""
    revoke_token(request, user, token_id)
    return RedirectResponse("/account", status_code=303)


@router.post("/account/password")
def account_password(request: Request, current: str = Form(""), new: str = Form(""),
                     user: User = Depends(staff_post)) -> Response:
    """Change your own password (the current one is checked); your other sessions end, every API
    token is revoked, and this session continues under a new id."""
    from monitor.crypto import verify_secret

    kept = request.state.web_session  # staff_post: pages take the session cookie only
    try:
        with writing(request) as s:
            me = s.get(User, user.id)
            # Guesses at the current password count like failed sign-ins (a borrowed session or
            # token must not become a way to find the password): the same per-account lock.
            wait = accounts.throttled_for(s, "account", me.username)
            right = not wait and verify_secret(me.password_hash, current)
            if right:
                _user, revoked = accounts.set_password(s, me.username, new, actor=accounts.actor_of(user),
                                                       keep_session_id=kept.id)
                # A new session id as at sign-in: a copy of the old cookie is worth nothing now.
                rotated = accounts.rotate_session(s, kept.id)
            elif not wait:
                accounts.record_failure(s, "account", me.username, accounts.ACCOUNT_RULE)
                audit.append(s, "user.password_change_failed", accounts.actor_of(user), None, {"user_id": me.id})
    except accounts.InvalidAccountData as e:
        raise BadInput(str(e), 422) from None
    if wait:
        raise BadInput("too many wrong passwords: try again in a few minutes", 429)
    if not right:
        raise BadInput("the current password is not right", 422)
    if rotated is None:  # the session was ended meanwhile (signed out elsewhere): sign in again
        return RedirectResponse("/login", status_code=303)
    cookie, request.state.web_session = rotated  # the page's forms carry the new session's CSRF token
    response = render(request, "account.html", {
        "tokens": tokens_of(request, user),
        "changed": f"Password changed: {revoked.message(other=True)}. You stay signed in here."})
    set_cookie(response, request, STAFF_COOKIE, cookie, int(accounts.STAFF_SESSION_TTL.total_seconds()))
    return response
