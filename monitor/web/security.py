"""Security headers on every response, cookie attributes, and the client address."""

from __future__ import annotations

import ipaddress

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

#: Strict by default: our own scripts, styles and images only; nothing inline, no framing.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
#: /docs only: Swagger UI's page loads its script and style from a CDN and has one inline script.
#: That page shows the API's shape and nothing personal; every other page keeps CSP above.
DOCS_CSP = ("default-src 'self'; script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
            "style-src 'self' https://cdn.jsdelivr.net; img-src 'self' data: https://fastapi.tiangolo.com; "
            "object-src 'none'; base-uri 'none'; frame-ancestors 'none'")
HEADERS = {
    b"x-content-type-options": b"nosniff",
    b"x-frame-options": b"DENY",
    b"referrer-policy": b"no-referrer",
    b"cross-origin-opener-policy": b"same-origin",
    b"permissions-policy": b"camera=(), microphone=(), geolocation=()",
}


class SecurityHeaders:
    """ASGI middleware adding CSP, nosniff, frame protection and no-referrer to every response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        csp = DOCS_CSP if scope.get("path", "").startswith("/docs") else CSP

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() not in HEADERS
                           and k.lower() != b"content-security-policy"]
                headers += list(HEADERS.items()) + [(b"content-security-policy", csp.encode())]
                if not any(k.lower() == b"cache-control" for k, _ in headers):
                    # Pages show case data: never keep them in shared or browser caches.
                    if not scope.get("path", "").startswith("/static/"):
                        headers.append((b"cache-control", b"no-store"))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


def client_address(request: Request) -> str:
    """The client's IP address (as seen by uvicorn, which applies trusted proxy headers)."""
    return request.client.host if request.client else "unknown"


def _is_loopback_host(host: str) -> bool:
    host = host.strip("[]").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def cookie_secure(request: Request) -> bool:
    """Secure cookies everywhere except plain http on a loopback address (local development)."""
    return not (request.url.scheme == "http" and _is_loopback_host(request.url.hostname or ""))


def set_cookie(response, request: Request, name: str, value: str, max_age: int, *, path: str = "/",  # noqa: ANN001
               samesite: str = "lax") -> None:
    """Set an HttpOnly, SameSite cookie (Secure unless local plain http)."""
    response.set_cookie(name, value, max_age=max_age, path=path, httponly=True, samesite=samesite,
                        secure=cookie_secure(request))


MAX_BODY_BYTES = 8 * 1024 * 1024  # the largest upload is a 5 MiB hash file


class BodyLimit:
    """ASGI middleware refusing request bodies over MAX_BODY_BYTES (413), declared or streamed."""

    def __init__(self, app: ASGIApp, limit: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.limit):
            await _too_large(send)
            return
        seen = 0

        async def counting_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise _BodyTooLarge()
            return message

        try:
            await self.app(scope, counting_receive, send)
        except _BodyTooLarge:
            await _too_large(send)


class _BodyTooLarge(Exception):
    pass


async def _too_large(send: Send) -> None:
    body = b'{"ok": false, "error": {"code": "too-large", "message": "the request is too large"}}'
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
