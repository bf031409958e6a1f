"""The dashboard, the review queue, a match's page, its preview and review decisions."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from monitor import accounts, audit, review, sources
from monitor.models import ReviewStatus, User
from monitor.web import previews
from monitor.web.deps import (BadInput, NotFound, RowId, current_user, load_case, load_match, reading, staff_post,
                              visible_cases, writing)
from monitor.web.render import render

router = APIRouter(include_in_schema=False)


# --- shared with the API ---------------------------------------------------------------------------

def dashboard_data(request: Request, user: User) -> dict[str, Any]:
    """Pending matches per case and per source, and every source's health."""
    ids = visible_cases(request, user)
    with reading(request) as s:
        pending = review.pending_counts(s, case_ids=ids)
        health = [x.to_dict() for x in sources.list_sources(s)]
    return {"pending": pending, "pending_total": sum(pending["cases"].values()), "sources": health}


def match_detail(request: Request, user: User, match_id: int) -> review.MatchView:
    """A match the user may see, with its places and reviews; the view is audited."""
    with writing(request) as s:
        match = load_match(s, user, match_id)
        view = review.get_match(s, match.id)
        review.record_view(s, match.id, match.case_id, actor=accounts.actor_of(user))
        view_revealed = previews.is_revealed(s, user, match.id)
    view.revealed = view_revealed  # type: ignore[attr-defined]
    return view


def do_reveal(request: Request, user: User, match_id: int) -> None:
    """Record a deliberate reveal (audited); refused for a case involving a minor."""
    with writing(request) as s:
        match = load_match(s, user, match_id)
        view = review.get_match(s, match.id)
        if view.involves_minor or view.minor_elsewhere:
            raise BadInput(previews.MINOR_NOTICE, 403)
        previews.reveal(s, user, match.id, match.case_id, accounts.actor_of(user))


async def preview_response(request: Request, user: User, match_id: int, full: bool) -> Response:
    """The preview JPEG: blurred, or unblurred while the user's reveal lasts; never cached."""
    def prepare() -> tuple[list[str], bool]:
        with reading(request) as s:
            match = load_match(s, user, match_id)
            view = review.get_match(s, match.id)
            if view.involves_minor or view.minor_elsewhere:  # the same picture matched a minor's case
                raise previews.PreviewUnavailable(previews.MINOR_NOTICE, 403)
            revealed = full and previews.is_revealed(s, user, match.id)
            if full and not revealed:
                raise previews.PreviewUnavailable("reveal the preview first (the reveal lasts a few minutes)", 403)
            return previews.media_urls(s, view.media_id), revealed

    def build(urls: list[str], revealed: bool) -> bytes:
        # The shared client keeps per-host politeness intervals across all preview requests.
        data = previews.fetch_bytes(urls, user, request.app.state.http_client)
        return previews.render_preview(data, revealed=revealed)

    try:
        urls, revealed = await run_in_threadpool(prepare)
        jpeg = await run_in_threadpool(build, urls, revealed)
    except previews.PreviewUnavailable as e:
        raise BadInput(str(e), e.status) from None
    return Response(jpeg, media_type="image/jpeg", headers={"Cache-Control": "no-store, private",
                                                            "Content-Disposition": "inline"})


def queue(request: Request, user: User, *, status: str | None, case: str | None, source: str | None, limit: int,
          offset: int) -> list[review.MatchView]:
    """The matches this user may see, filtered; showing them is audited (which ids were shown)."""
    ids = visible_cases(request, user)
    with writing(request) as s:
        case_id = load_case(s, user, case).id if case else None
        matches = review.list_matches(s, case_ids=ids, status=status, case_id=case_id, source=source or None,
                                      limit=limit, offset=offset)
        if matches:
            audit.append(s, "matches.listed", accounts.actor_of(user), case_id, {"match_ids": [m.id for m in matches]})
    return matches


def decide(request: Request, user: User, match_ids: list[int], decision: str, reason: str | None,
           note: str | None) -> list[int]:
    """Apply a decision to matches the user may see (all or nothing)."""
    ids = visible_cases(request, user)
    try:
        with writing(request) as s:
            return review.decide(s, match_ids, decision, actor=accounts.actor_of(user), reason=reason, note=note,
                                 case_ids=ids)
    except review.MatchNotFound:
        raise NotFound("no such match") from None
    except review.InvalidDecision as e:
        raise BadInput(str(e), 422) from None


# --- pages -----------------------------------------------------------------------------------------

@router.get("/")
def dashboard(request: Request, user: User = Depends(current_user)) -> Response:
    """New matches awaiting review, per case and per source; source health."""
    return render(request, "dashboard.html", dashboard_data(request, user))


@router.get("/review")
def review_queue(request: Request, status: str = "pending", case: str | None = None, source: str | None = None,
                 page: int = 1, user: User = Depends(current_user)) -> Response:
    """The review queue: pending first, with blurred previews and bulk decisions."""
    if status not in ("all", *[s.value for s in ReviewStatus]):
        raise BadInput("status must be pending, confirmed, rejected or all")
    page = max(1, min(page, 10_000))
    matches = queue(request, user, status=None if status == "all" else status, case=case, source=source, limit=50,
                    offset=(page - 1) * 50)
    return render(request, "review.html", {"matches": matches, "status": status, "case": case, "source": source,
                                           "page": page, "reasons": review.REJECT_REASONS,
                                           "minor_notice": previews.MINOR_NOTICE})


@router.get("/matches/{match_id}")
def match_page(request: Request, match_id: RowId, user: User = Depends(current_user)) -> Response:
    """One match: where it was found, the distance, every place, the review history (viewing is audited)."""
    view = match_detail(request, user, match_id)
    return render(request, "match.html", {"m": view, "reasons": review.REJECT_REASONS,
                                          "minor_notice": previews.MINOR_NOTICE,
                                          "reveal_minutes": int(previews.REVEAL_FOR.total_seconds() // 60)})


@router.get("/review/matches/{match_id}")
def alert_link(match_id: RowId, _user: User = Depends(current_user)) -> Response:
    """Where the review links in alerts point (monitor/alerts.py)."""
    return RedirectResponse(f"/matches/{match_id}", status_code=303)


@router.get("/matches/{match_id}/preview")
async def match_preview(request: Request, match_id: RowId, full: bool = False,
                        user: User = Depends(current_user)) -> Response:
    """The match's preview image (blurred unless revealed)."""
    return await preview_response(request, user, match_id, full)


@router.post("/matches/{match_id}/reveal")
def match_reveal(request: Request, match_id: RowId, user: User = Depends(staff_post)) -> Response:
    """Reveal the unblurred preview for a few minutes (audited)."""
    do_reveal(request, user, match_id)
    return RedirectResponse(f"/matches/{match_id}#preview", status_code=303)


@router.post("/matches/{match_id}/decision")
def match_decision(request: Request, match_id: RowId, decision: str = Form(...), reason: str = Form(""),
                   note: str = Form(""), back: str = Form(""), user: User = Depends(staff_post)) -> Response:
    """Confirm or reject one match."""
    decide(request, user, [match_id], decision, reason or None, note or None)
    target = back if back.startswith("/") and not back.startswith("//") else f"/matches/{match_id}"
    return RedirectResponse(target, status_code=303)


@router.post("/review/decide")
async def bulk_decision(request: Request, user: User = Depends(staff_post)) -> Response:
    """Confirm or reject the ticked matches at once."""
    form = await request.form()
    try:
        match_ids = [int(v) for v in form.getlist("match_id")]
    except ValueError:
        raise BadInput("match ids must be numbers") from None
    if not match_ids:
        raise BadInput("tick at least one match")
    decision = str(form.get("decision") or "")
    await run_in_threadpool(decide, request, user, match_ids, decision, str(form.get("reason") or "") or None,
                            str(form.get("note") or "") or None)
    return RedirectResponse("/review", status_code=303)
