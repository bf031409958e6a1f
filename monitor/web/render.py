"""Rendering pages: the Jinja2 environment (autoescaped), the navigation, and `render()`.

Issue 8 (takedowns) adds its pages by appending to NAV and rendering with `render()`.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from fastapi import Request
from fastapi.templating import Jinja2Templates
from markupsafe import Markup, escape
from starlette.responses import HTMLResponse

from monitor.web.deps import FORM_CSRF_COOKIE, session_csrf
from monitor.web.security import set_cookie

TEMPLATES = Path(__file__).parent / "templates"


@dataclass(frozen=True)
class NavItem:
    """One link of the top navigation; admin_only hides it from advocates."""

    path: str
    label: str
    admin_only: bool = False


#: The staff navigation, in order; other features append their pages here.
NAV: list[NavItem] = [
    NavItem("/", "Dashboard"),
    NavItem("/review", "Review"),
    NavItem("/cases", "Cases"),
    NavItem("/sources", "Sources"),
    NavItem("/users", "Users", admin_only=True),
    NavItem("/account", "Account"),
]


def safe_link(url: str | None, text: str | None = None) -> Markup:
    """A URL shown as escaped text, linked only when it is http(s), never followed with a referrer."""
    if not url:
        return Markup("")
    label = escape(text if text is not None else url)
    try:
        scheme = urlsplit(url).scheme.lower()
    except ValueError:
        scheme = ""
    if scheme in ("http", "https"):
        return Markup('<a href="{}" rel="noopener noreferrer nofollow" target="_blank">{}</a>').format(url, label)
    return Markup('<span class="url">{}</span>').format(label)


def when(value: str | dt.datetime | None) -> str:
    """A timestamp as 'YYYY-MM-DD HH:MM UTC'."""
    if not value:
        return ""
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value)
        except ValueError:
            return value
    return value.astimezone(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


templates = Jinja2Templates(directory=str(TEMPLATES))  # .html templates are autoescaped
templates.env.filters["link"] = safe_link
templates.env.filters["when"] = when


def render(request: Request, name: str, context: dict[str, Any] | None = None, status_code: int = 200) -> HTMLResponse:
    """Render a page with the user, navigation and CSRF token in its context."""
    user = getattr(request.state, "user", None)
    ctx = {"user": user, "csrf_token": session_csrf(request), "path": request.url.path,
           "nav": [n for n in NAV if user is not None and (not n.admin_only or user.role == "admin")]}
    ctx.update(context or {})
    response = templates.TemplateResponse(request, name, ctx, status_code=status_code)
    form_token = getattr(request.state, "form_csrf", None)
    if form_token is not None and request.cookies.get(FORM_CSRF_COOKIE) != form_token:
        set_cookie(response, request, FORM_CSRF_COOKIE, form_token, 3600, samesite="strict")
    return response
