"""Sign-in and sign-out of staff accounts."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response

from monitor import accounts
from monitor.models import SessionKind
from monitor.web.deps import STAFF_COOKIE, csrf_protect, optional_user, staff_post, writing
from monitor.web.render import render
from monitor.web.security import client_address, set_cookie

router = APIRouter(include_in_schema=False)


def _safe_next(target: str | None) -> str:
    # Only local paths: never redirect to another site after signing in.
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/"


@router.get("/login")
def login_page(request: Request, next: str | None = None) -> Response:
    """The sign-in form."""
    if optional_user(request) is not None:
        return RedirectResponse(_safe_next(next), status_code=303)
    return render(request, "login.html", {"next": _safe_next(next)})


@router.post("/login", dependencies=[Depends(csrf_protect)])
def login(request: Request, username: str = Form(""), password: str = Form(""), next: str = Form("/")) -> Response:
    """Check the credentials (throttled, audited) and start a session."""
    with writing(request) as s:
        result = accounts.authenticate(s, username, password, client_address(request))
        token = None
        if result.user is not None:
            # A new session id at every sign-in; a session this browser already had ends here.
            accounts.end_session(s, request.cookies.get(STAFF_COOKIE))
            token, _ws = accounts.create_session(s, SessionKind.STAFF, user_id=result.user.id)
    if token is None:
        message = ("Too many failed sign-ins: try again in a few minutes." if result.reason == "throttled"
                   else "The user name or password is not right.")
        response = render(request, "login.html", {"next": _safe_next(next), "error": message,
                                                  "username": username[:64]}, status_code=401)
        if result.retry_after:
            response.headers["Retry-After"] = str(result.retry_after)
        return response
    response = RedirectResponse(_safe_next(next), status_code=303)
    set_cookie(response, request, STAFF_COOKIE, token, int(accounts.STAFF_SESSION_TTL.total_seconds()))
    return response


@router.post("/logout")
def logout(request: Request, _user=Depends(staff_post)) -> Response:  # noqa: ANN001
    """End the session."""
    with writing(request) as s:
        accounts.end_session(s, request.cookies.get(STAFF_COOKIE))
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(STAFF_COOKIE, path="/")
    return response
