"""Sources: list with health, add, edit, pause/resume, test (a dry poll), remove; changes are for admins."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response

from connectors.errors import FetchError, SourceSettingsError
from connectors.registry import CONNECTORS
from monitor import accounts, audit, drypoll, sources
from monitor.models import User, utcnow
from monitor.web.deps import BadInput, NotFound, admin_post, current_user, reading, require_admin, writing
from monitor.web.render import render

router = APIRouter(include_in_schema=False)


# --- shared with the API ---------------------------------------------------------------------------

def parse_options(text: str) -> dict[str, str]:
    """'key=value' lines (blank lines ignored) as a dict; BadInput naming a bad line."""
    out: dict[str, str] = {}
    for number, line in enumerate((text or "").splitlines(), 1):
        if not line.strip():
            continue
        key, sep, value = line.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key:
            raise BadInput(f"settings line {number}: write key=value", 422)
        out[key] = value.strip()
    return out


def add(request: Request, user: User, url: str, kind: str, name: str | None, interval: str,
        options: dict[str, Any]) -> dict[str, Any]:
    """Validate and add a source; BadInput with the connector's validation error."""
    try:
        seconds = sources.parse_duration(interval or "15m", what="interval")
        with writing(request) as s:
            summary = sources.add_source(s, url, kind=kind or "auto", name=name or None, interval=seconds,
                                         options=options, actor=accounts.actor_of(user))
        return summary.to_dict()
    except (sources.InvalidSource, sources.SourceExists) as e:
        raise BadInput(str(e), 422) from None


def edit(request: Request, user: User, name: str, interval: str | None, options: dict[str, Any]) -> dict[str, Any]:
    """Change a source's interval and (non-secret) settings, validated by its connector."""
    try:
        with writing(request) as s:
            source = _get(s, name, lock=True)
            try:
                connector, current = sources.connector_settings(s, source)
            except SourceSettingsError as e:
                raise sources.InvalidSource(f"the stored settings are not valid: {e}") from None
            secret = connector.settings_class.secret_fields
            bad = sorted(set(options) & set(secret))
            if bad:
                raise BadInput(f"{bad[0]!r} is a credential: set it with `ncii source credentials`", 422)
            data = current.to_dict()
            for key, value in options.items():
                if key == "url":
                    raise BadInput("the URL cannot be changed: add a new source instead", 422)
                typed = sources.build_settings(connector, source.url, {key: value})  # converts the text
                data[key] = getattr(typed, key)
            try:
                validated = connector.settings_from_dict(data).to_dict()
            except SourceSettingsError as e:
                raise sources.InvalidSource(str(e)) from None
            changed = sorted(k for k in options if (source.settings or {}).get(k) != validated.get(k))
            source.settings = {k: v for k, v in validated.items() if k not in secret}
            if interval:
                seconds = sources.parse_duration(interval, what="interval")
                if seconds != source.interval_seconds:
                    source.interval_seconds = seconds
                    source.jitter_seconds = min(source.jitter_seconds, seconds)
                    changed.append("interval_seconds")
            source.updated_at = utcnow()
            source.next_due_at = None
            s.flush()
            if changed:
                audit.append(s, "source.edited", accounts.actor_of(user), None,
                             {"source_id": source.id, "fields": changed})
            return sources.show_source(s, name).to_dict()
    except sources.InvalidSource as e:
        raise BadInput(str(e), 422) from None


def _get(s, name: str, lock: bool = False):  # noqa: ANN001, ANN202
    try:
        return sources.get_source(s, name, lock=lock)
    except sources.SourceNotFound:
        raise NotFound("no such source") from None


def set_enabled(request: Request, user: User, name: str, enabled: bool) -> dict[str, Any]:
    """Pause or resume a source."""
    with writing(request) as s:
        _get(s, name)
        return sources.set_enabled(s, name, enabled, actor=accounts.actor_of(user)).to_dict()


def remove(request: Request, user: User, name: str) -> dict[str, Any]:
    """Delete a source (what it found stays)."""
    with writing(request) as s:
        _get(s, name)
        return sources.remove_source(s, name, actor=accounts.actor_of(user))


def dry_poll(request: Request, name: str, limit: int = 20) -> dict[str, Any]:
    """Poll once without recording anything: what would be fetched, or why it cannot be."""
    with reading(request) as s:
        _get(s, name)  # 404 for an unknown source
    try:
        result = drypoll.dry_poll(request.app.state.engine, name, request.app.state.settings.monitor,
                                  max_items=10_000, max_pages=20)
    except SourceSettingsError as e:
        raise BadInput(f"the stored settings are not valid: {e}", 422) from None
    e, error = result.error, None
    if e is not None:
        error = {"code": e.code, "message": f"cannot be {'polled' if isinstance(e, FetchError) else 'understood'}: {e}"}
    new, pages, listed, notes = result.new, result.pages, result.listed, result.notes
    items = [{"media_url": c.media_url, "page_url": c.page_url, "media_type": c.media_type.value} for c in new[:limit]]
    return {"source": name, "ok": error is None, "error": error, "pages": pages, "listed": listed, "new": len(new),
            "items": items, "notes": [str(n) for n in notes[:20]]}


# --- pages -----------------------------------------------------------------------------------------

def _form(request: Request, context: dict[str, Any], status_code: int = 200) -> Response:
    return render(request, "source_form.html", {"kinds": sorted(CONNECTORS), **context}, status_code=status_code)


@router.get("/sources")
def sources_page(request: Request, _user: User = Depends(current_user)) -> Response:
    """Every source with its health."""
    with reading(request) as s:
        rows = [x.to_dict() for x in sources.list_sources(s)]
    return render(request, "sources.html", {"sources": rows})


@router.get("/sources/new")
def new_source_page(request: Request, _user: User = Depends(require_admin)) -> Response:
    """The form for a new source."""
    return _form(request, {"mode": "add", "values": {"kind": "auto", "interval": "15m"}})


@router.post("/sources")
def new_source(request: Request, url: str = Form(""), kind: str = Form("auto"), name: str = Form(""),
               interval: str = Form("15m"), options: str = Form(""), user: User = Depends(admin_post)) -> Response:
    """Add a source, or show the form again with the validation error."""
    values = {"url": url, "kind": kind, "name": name, "interval": interval, "options": options}
    try:
        summary = add(request, user, url, kind, name, interval, parse_options(options))
    except BadInput as e:
        return _form(request, {"mode": "add", "values": values, "error": str(e)}, status_code=422)
    return RedirectResponse(f"/sources#{summary['name']}", status_code=303)


@router.get("/sources/{name}/edit")
def edit_source_page(request: Request, name: str, _user: User = Depends(require_admin)) -> Response:
    """The form to change a source."""
    with reading(request) as s:
        summary = sources.summarize(_get(s, name))
    return _form(request, {"mode": "edit", "source": summary.to_dict(),
                           "values": {"interval": sources.format_duration(summary.interval_seconds), "options": ""}})


@router.post("/sources/{name}/edit")
def edit_source(request: Request, name: str, interval: str = Form(""), options: str = Form(""),
                user: User = Depends(admin_post)) -> Response:
    """Apply the changes, or show the form again with the validation error."""
    try:
        edit(request, user, name, interval, parse_options(options))
    except BadInput as e:
        with reading(request) as s:
            summary = sources.summarize(_get(s, name))
        return _form(request, {"mode": "edit", "source": summary.to_dict(), "error": str(e),
                               "values": {"interval": interval, "options": options}}, status_code=422)
    return RedirectResponse("/sources", status_code=303)


@router.post("/sources/{name}/pause")
def pause_source(request: Request, name: str, user: User = Depends(admin_post)) -> Response:
    """Pause polling."""
    set_enabled(request, user, name, False)
    return RedirectResponse("/sources", status_code=303)


@router.post("/sources/{name}/resume")
def resume_source(request: Request, name: str, user: User = Depends(admin_post)) -> Response:
    """Resume polling (due at once)."""
    set_enabled(request, user, name, True)
    return RedirectResponse("/sources", status_code=303)


@router.post("/sources/{name}/delete")
def delete_source(request: Request, name: str, user: User = Depends(admin_post)) -> Response:
    """Remove the source."""
    remove(request, user, name)
    return RedirectResponse("/sources", status_code=303)


@router.post("/sources/{name}/test")
def test_source(request: Request, name: str, _user: User = Depends(admin_post)) -> Response:
    """A dry poll, shown on a page."""
    return render(request, "source_test.html", {"r": dry_poll(request, name)})

