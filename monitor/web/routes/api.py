"""The JSON API under /api/: everything the pages do, for advocates' tools and integrations.

Authenticate with `Authorization: Bearer <token>` (`ncii user token NAME`, or the Account page);
a signed-in browser session also works, with its CSRF token in an `X-CSRF-Token` header on
changes. Without either, every route answers 401.
"""

from __future__ import annotations

from typing import Any, Literal, Optional

from fastapi import APIRouter, Depends, Query, Request, UploadFile
from fastapi.responses import Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from monitor import accounts, review
from monitor.models import User
from monitor.web.deps import BadInput, RowId, admin_post, current_user, reading, require_admin, staff_post
from monitor.web.routes import cases as case_routes
from monitor.web.routes import review as review_routes
from monitor.web.routes import sources as source_routes
from monitor.web.routes import users as user_routes

router = APIRouter(prefix="/api", dependencies=[Depends(current_user)],
                   responses={401: {"description": "no valid session or API token"}})

Status = Literal["pending", "confirmed", "rejected"]


class Decision(BaseModel):
    """A review decision: confirmed, or rejected with a reason code (see /api/review/reasons)."""

    decision: Literal["confirmed", "rejected"]
    reason: Optional[str] = Field(None, max_length=32)
    note: Optional[str] = Field(None, max_length=2000)


class BulkDecision(Decision):
    """The same decision for several matches (all or nothing)."""

    match_ids: list[int] = Field(..., min_length=1, max_length=review.MAX_BULK)


class NewCase(BaseModel):
    jurisdiction: Optional[str] = Field(None, max_length=64, description="ISO 3166-1 alpha-2 code")
    involves_minor: bool = False


class CaseChange(BaseModel):
    jurisdiction: Optional[str] = Field(None, max_length=64, description="ISO 3166-1 alpha-2; empty clears it")
    involves_minor: Optional[bool] = None


class Assignment(BaseModel):
    username: Optional[str] = Field(None, max_length=64, description="null or empty: unassign")


class Note(BaseModel):
    body: str = Field(..., min_length=1, max_length=5000)


class NewSource(BaseModel):
    url: str = Field(..., min_length=1, max_length=4000)
    kind: str = Field("auto", max_length=32)
    name: Optional[str] = Field(None, max_length=64)
    interval: str = Field("15m", max_length=32, description="e.g. 30m, 2h, 1d")
    options: dict[str, str] = Field(default_factory=dict, description="connector settings as text")


class SourceChange(BaseModel):
    enabled: Optional[bool] = None
    interval: Optional[str] = Field(None, max_length=32)
    options: dict[str, str] = Field(default_factory=dict)


class NewUser(BaseModel):
    username: str = Field(..., max_length=64)
    role: Literal["admin", "advocate"] = "advocate"
    password: Optional[str] = Field(None, max_length=1024, description="omitted: one is generated and returned once")


class NewToken(BaseModel):
    name: str = Field(..., min_length=1, max_length=64)


# --- who am I, dashboard -----------------------------------------------------------------------------

@router.get("/me", summary="The signed-in user")
def me(user: User = Depends(current_user)) -> dict[str, Any]:
    return accounts.user_dict(user)


@router.get("/dashboard", summary="Pending matches per case and per source; source health")
def dashboard(request: Request, user: User = Depends(current_user)) -> dict[str, Any]:
    return review_routes.dashboard_data(request, user)


# --- matches -------------------------------------------------------------------------------------------

@router.get("/review/reasons", summary="Reason codes for rejections and confirmations")
def reasons() -> dict[str, Any]:
    return {"reject": review.REJECT_REASONS, "confirm": review.CONFIRM_REASONS}


@router.get("/matches", summary="Matches the user may see, pending first")
def list_matches(request: Request, status: Optional[Status] = None, case: Optional[str] = Query(None, max_length=32),
                 source: Optional[str] = Query(None, max_length=64), limit: int = Query(50, ge=1, le=500),
                 offset: int = Query(0, ge=0, le=10_000_000), user: User = Depends(current_user)) -> dict[str, Any]:
    rows = review_routes.queue(request, user, status=status, case=case, source=source, limit=limit, offset=offset)
    return {"matches": [m.to_dict() for m in rows]}


@router.get("/matches/{match_id}", summary="One match with every place it was seen (audited view)")
def get_match(request: Request, match_id: RowId, user: User = Depends(current_user)) -> dict[str, Any]:
    view = review_routes.match_detail(request, user, match_id)
    return {**view.to_dict(), "revealed": view.revealed}  # type: ignore[attr-defined]


@router.get("/matches/{match_id}/preview", summary="Preview JPEG: blurred, or unblurred with full=true after a reveal",
            response_class=Response, responses={200: {"content": {"image/jpeg": {}}}})
async def preview(request: Request, match_id: RowId, full: bool = False, user: User = Depends(current_user)) -> Response:
    return await review_routes.preview_response(request, user, match_id, full)


@router.post("/matches/{match_id}/reveal", summary="Reveal the unblurred preview for a few minutes (audited)")
def reveal(request: Request, match_id: RowId, user: User = Depends(staff_post)) -> dict[str, Any]:
    review_routes.do_reveal(request, user, match_id)
    return {"ok": True, "match_id": match_id}


@router.post("/matches/{match_id}/decision", summary="Confirm or reject one match")
def decision(request: Request, match_id: RowId, body: Decision, user: User = Depends(staff_post)) -> dict[str, Any]:
    changed = review_routes.decide(request, user, [match_id], body.decision, body.reason, body.note)
    return {"ok": True, "changed": changed}


@router.post("/matches/decisions", summary="Confirm or reject several matches at once")
def bulk(request: Request, body: BulkDecision, user: User = Depends(staff_post)) -> dict[str, Any]:
    changed = review_routes.decide(request, user, body.match_ids, body.decision, body.reason, body.note)
    return {"ok": True, "changed": changed}


# --- cases ---------------------------------------------------------------------------------------------

@router.get("/cases", summary="Cases the user may see")
def list_cases(request: Request, status: Optional[Literal["active", "withdrawn", "closed"]] = None,
               user: User = Depends(current_user)) -> dict[str, Any]:
    return {"cases": case_routes.case_list(request, user, status)}


@router.post("/cases", status_code=201, summary="Open a case; the secret is returned once")
def create_case(request: Request, body: NewCase, user: User = Depends(staff_post)) -> dict[str, Any]:
    new = case_routes.create_case(request, user, body.jurisdiction, body.involves_minor)
    return {"reference": new.reference, "secret": new.secret}


@router.get("/cases/{reference}", summary="A case: counts, matches, assignment, notes, timeline")
def get_case(request: Request, reference: str, user: User = Depends(current_user)) -> dict[str, Any]:
    return case_routes.case_detail(request, user, reference)


@router.patch("/cases/{reference}", summary="Change the jurisdiction and/or the minor flag")
def change_case(request: Request, reference: str, body: CaseChange, user: User = Depends(staff_post)) -> dict[str, Any]:
    case_routes.change_case(request, user, reference, jurisdiction=body.jurisdiction,
                            involves_minor=body.involves_minor)
    return {"ok": True}


@router.put("/cases/{reference}/assignment", summary="Assign the case to an advocate (admins)")
def assign(request: Request, reference: str, body: Assignment, user: User = Depends(admin_post)) -> dict[str, Any]:
    case_routes.change_case(request, user, reference, assign=True, assign_to=body.username)
    return {"ok": True}


@router.post("/cases/{reference}/notes", status_code=201, summary="Add a note (stored encrypted)")
def add_note(request: Request, reference: str, body: Note, user: User = Depends(staff_post)) -> dict[str, Any]:
    case_routes.change_case(request, user, reference, note=body.body)
    return {"ok": True}


@router.post("/cases/{reference}/hashes", summary="Register a hash file made by `ncii hash` (never an image)")
async def add_hashes(request: Request, reference: str, file: UploadFile,
                     user: User = Depends(staff_post)) -> dict[str, Any]:
    data = await file.read(case_routes.read_limit())
    summary = await run_in_threadpool(case_routes.register_upload, request, user, reference, data)
    return summary.to_dict()


class NewTerms(BaseModel):
    terms: list[str] = Field(..., min_length=1, max_length=100)
    kind: Literal["name", "username", "handle"] = "name"


@router.post("/cases/{reference}/terms", status_code=201, summary="Add watch terms (names, handles; stored encrypted)")
def add_terms(request: Request, reference: str, body: NewTerms, user: User = Depends(staff_post)) -> dict[str, Any]:
    return {"terms": case_routes.add_terms(request, user, reference, body.terms, body.kind)}


@router.delete("/cases/{reference}/terms/{term_id}", summary="Remove a watch term")
def remove_term(request: Request, reference: str, term_id: RowId, user: User = Depends(staff_post)) -> dict[str, Any]:
    case_routes.remove_term(request, user, reference, term_id)
    return {"ok": True}


# --- sources -------------------------------------------------------------------------------------------

@router.get("/sources", summary="Every source with its health")
def list_sources(request: Request) -> dict[str, Any]:
    from monitor import sources

    with reading(request) as s:
        return {"sources": [x.to_dict() for x in sources.list_sources(s)]}


@router.post("/sources", status_code=201, summary="Add a source (admins); 422 with the validation error")
def add_source(request: Request, body: NewSource, user: User = Depends(admin_post)) -> dict[str, Any]:
    return source_routes.add(request, user, body.url, body.kind, body.name, body.interval, body.options)


@router.patch("/sources/{name}", summary="Pause/resume, change the interval or settings (admins)")
def change_source(request: Request, name: str, body: SourceChange, user: User = Depends(admin_post)) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if body.interval or body.options:
        out = source_routes.edit(request, user, name, body.interval, body.options)
    if body.enabled is not None:
        out = source_routes.set_enabled(request, user, name, body.enabled)
    if not out:
        raise BadInput("nothing to change: give enabled, interval or options", 422)
    return out


@router.delete("/sources/{name}", summary="Remove a source (admins); what it found stays")
def delete_source(request: Request, name: str, user: User = Depends(admin_post)) -> dict[str, Any]:
    return source_routes.remove(request, user, name)


@router.post("/sources/{name}/test", summary="A dry poll: what would be fetched, or why it cannot be (admins)")
def test_source(request: Request, name: str, _user: User = Depends(admin_post)) -> dict[str, Any]:
    return source_routes.dry_poll(request, name)


# --- users and tokens ----------------------------------------------------------------------------------

@router.get("/users", summary="Staff accounts (admins)")
def list_users(request: Request, _admin: User = Depends(require_admin)) -> dict[str, Any]:
    with reading(request) as s:
        return {"users": [accounts.user_dict(u) for u in accounts.list_users(s)]}


@router.post("/users", status_code=201, summary="Create a staff account (admins)")
def add_user(request: Request, body: NewUser, admin: User = Depends(admin_post)) -> dict[str, Any]:
    created, generated = user_routes.add_user(request, admin, body.username, body.role, body.password)
    return {"user": created, "password": generated}


@router.post("/users/{username}/disable",
             summary="Disable a staff account (admins): its sessions end, its API tokens are revoked (`revoked`)")
def disable_user(request: Request, username: str, admin: User = Depends(admin_post)) -> dict[str, Any]:
    return user_routes.set_disabled(request, admin, username, True)


@router.post("/users/{username}/enable", summary="Re-enable a staff account (admins)")
def enable_user(request: Request, username: str, admin: User = Depends(admin_post)) -> dict[str, Any]:
    return user_routes.set_disabled(request, admin, username, False)


@router.get("/tokens", summary="Your API tokens (never their values)")
def list_tokens(request: Request, user: User = Depends(current_user)) -> dict[str, Any]:
    return {"tokens": user_routes.tokens_of(request, user)}


@router.post("/tokens", status_code=201,
             summary="Create an API token (from a browser session only: 403 with a token); its value is shown once",
             responses={403: {"description": "an API token cannot create tokens (or the CSRF token is missing)"}})
def create_token(request: Request, body: NewToken, user: User = Depends(staff_post)) -> dict[str, Any]:
    token, row = user_routes.new_token(request, user, body.name)
    return {"token": token, **row}


@router.delete("/tokens/{token_id}", summary="Revoke one of your API tokens")
def revoke_token(request: Request, token_id: RowId, user: User = Depends(staff_post)) -> dict[str, Any]:
    return user_routes.revoke_token(request, user, token_id)
