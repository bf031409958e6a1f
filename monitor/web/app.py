"""The app factory: security headers, error pages, static files and one line per router."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from sqlalchemy.engine import Engine

from monitor import __version__
from monitor.settings import Settings
from monitor.web.deps import BadInput, CsrfFailed, Forbidden, NotFound, SignInRequired
from monitor.web.security import BodyLimit, SecurityHeaders

STATIC = Path(__file__).parent / "static"


def _wants_json(request: Request) -> bool:
    return request.url.path.startswith("/api/")


def _error(request: Request, status: int, code: str, message: str) -> Response:
    if _wants_json(request):
        return JSONResponse({"ok": False, "error": {"code": code, "message": message}}, status_code=status)
    from monitor.web.render import render

    return render(request, "error.html", {"status": status, "message": message}, status_code=status)


def create_app(engine: Engine, settings: Settings, *, http_client=None) -> FastAPI:  # noqa: ANN001
    """Build the web app on an open (upgraded, keyed) engine; http_client fetches previews."""
    app = FastAPI(title="NCII monitor", version=__version__,
                  description="Review matches, manage cases and sources. Authenticate with a bearer API token "
                              "(`ncii user token NAME`) or a signed-in session. docs/web.md describes every route.",
                  openapi_url="/openapi.json", docs_url="/docs", redoc_url=None)
    app.state.engine = engine
    app.state.settings = settings
    app.state.http_client = http_client
    app.add_middleware(BodyLimit)
    app.add_middleware(SecurityHeaders)  # outermost: the headers go on every response, 413s included
    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")

    @app.exception_handler(SignInRequired)
    async def _sign_in(request: Request, _exc: SignInRequired) -> Response:
        if _wants_json(request):
            return JSONResponse({"ok": False, "error": {"code": "unauthorized",
                                                        "message": "sign in or send a valid API token"}},
                                status_code=401, headers={"WWW-Authenticate": "Bearer"})
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)

    @app.exception_handler(Forbidden)
    async def _forbidden(request: Request, exc: Forbidden) -> Response:
        return _error(request, 403, "forbidden", str(exc) or "not allowed")

    @app.exception_handler(NotFound)
    async def _not_found(request: Request, exc: NotFound) -> Response:
        return _error(request, 404, "not-found", str(exc) or "not found")

    @app.exception_handler(CsrfFailed)
    async def _csrf(request: Request, _exc: CsrfFailed) -> Response:
        return _error(request, 403, "csrf", "the form expired or did not come from this site: reload the page "
                                            "and try again")

    @app.exception_handler(BadInput)
    async def _bad(request: Request, exc: BadInput) -> Response:
        return _error(request, exc.status, "bad-input", str(exc))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        problems = "; ".join(f"{'.'.join(str(p) for p in e.get('loc', ())[1:]) or 'request'}: {e.get('msg')}"
                             for e in exc.errors()[:5])
        return _error(request, 422, "invalid-request", problems or "invalid request")

    from monitor.web.routes import api, auth, cases, review, selfservice, sources, users  # noqa: E402

    app.include_router(auth.router)
    app.include_router(review.router)
    app.include_router(cases.router)
    app.include_router(sources.router)
    app.include_router(users.router)
    app.include_router(selfservice.router)
    app.include_router(api.router)
    from monitor.web.routes import takedowns  # noqa: E402  issue 8: notices tab, overdue list
    app.include_router(takedowns.router)
    return app
