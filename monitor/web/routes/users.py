"""Staff accounts (admins) and each user's own API tokens."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response

from monitor import accounts, audit
from monitor.models import User
from monitor.web.deps import (BadInput, NotFound, RowId, admin_post, current_user, reading, require_admin, staff_post,
                              writing)
from monitor.web.render import render

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
    """Disable or re-enable an account (never your own)."""
    if username.strip().lower() == admin.username and disabled:
        raise BadInput("you cannot disable your own account", 422)
    try:
        with writing(request) as s:
            return accounts.user_dict(accounts.set_disabled(s, username, disabled, actor=accounts.actor_of(admin)))
    except (accounts.UserNotFound, accounts.InvalidAccountData):
        raise NotFound("no such user") from None


def new_token(request: Request, user: User, name: str) -> tuple[str, dict[str, Any]]:
    """A new API token for the user (returned once)."""
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
def users_page(request: Request, _admin: User = Depends(require_admin)) -> Response:
    """Every staff account."""
    with reading(request) as s:
        users = [accounts.user_dict(u) for u in accounts.list_users(s)]
    return render(request, "users.html", {"users": users})


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
    """Disable an account (its sessions end)."""
    set_disabled(request, admin, username, True)
    return RedirectResponse("/users", status_code=303)


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
    """Change your own password (the current one is checked); every session ends, sign in again."""
    from monitor.crypto import verify_secret

    try:
        with writing(request) as s:
            me = s.get(User, user.id)
            # Guesses at the current password count like failed sign-ins (a borrowed session or
            # token must not become a way to find the password): the same per-account lock.
            wait = accounts.throttled_for(s, "account", me.username)
            right = not wait and verify_secret(me.password_hash, current)
            if right:
                accounts.set_password(s, me.username, new, actor=accounts.actor_of(user))
            elif not wait:
                accounts.record_failure(s, "account", me.username, accounts.ACCOUNT_RULE)
                audit.append(s, "user.password_change_failed", accounts.actor_of(user), None, {"user_id": me.id})
    except accounts.InvalidAccountData as e:
        raise BadInput(str(e), 422) from None
    if wait:
        raise BadInput("too many wrong passwords: try again in a few minutes", 429)
    if not right:
        raise BadInput("the current password is not right", 422)
    return RedirectResponse("/login", status_code=303)
