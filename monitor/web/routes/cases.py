"""Cases: list, detail (hash counts, matches, timeline), create, assign, notes, jurisdiction, minor flag."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Form, Request, UploadFile
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import select

from monitor import accounts, audit, casework, registry, review
from monitor.models import Case, Role, User
from monitor.web.deps import (BadInput, Forbidden, RowId, current_user, load_case, reading, staff_post, visible_cases,
                              writing)
from monitor.web.hashupload import read_uploaded_hash_file
from monitor.web.render import render

router = APIRouter(include_in_schema=False)

try:  # watch terms (issue 6): shown on the case page when the module is there
    from monitor import watchterms
except ImportError:  # pragma: no cover
    watchterms = None  # type: ignore[assignment]


# --- shared with the API ---------------------------------------------------------------------------

def case_list(request: Request, user: User, status: str | None = None) -> list[dict[str, Any]]:
    """The cases this user may see, with counts and assignee."""
    ids = visible_cases(request, user)
    with reading(request) as s:
        try:
            summaries = registry.list_cases(s, status=status or None)
        except ValueError:
            raise BadInput("status must be active, withdrawn or closed") from None
        refs = {c.reference: c for c in summaries}
        id_of = dict(s.execute(select(Case.reference, Case.id).where(Case.reference.in_(list(refs)))).all()) \
            if refs else {}
        names = casework.assignees(s, list(id_of.values()))
    out = []
    for c in summaries:
        cid = id_of.get(c.reference)
        if ids is not None and cid not in ids:
            continue
        d = c.to_dict()
        d["assigned_to"] = names.get(cid)
        out.append(d)
    return out


def case_detail(request: Request, user: User, reference: str) -> dict[str, Any]:
    """Everything the case page shows (notes decrypted; reading them is audited)."""
    with writing(request) as s:
        case = load_case(s, user, reference)
        summary = registry.show_case(s, case.reference).to_dict()
        who = casework.assignee(s, case.id)
        notes = [{"id": n.id, "author": n.author, "created_at": n.created_at.isoformat(timespec="seconds"),
                  "body": n.body} for n in casework.notes(s, case.id)]
        timeline = [{"id": e.id, "at": e.created_at.isoformat(timespec="seconds"), "actor": e.actor,
                     "action": e.action, "details": e.details} for e in casework.timeline(s, case.id)]
        matches = [m.to_dict() for m in review.list_matches(s, case_id=case.id, limit=200)]
        terms = None
        if watchterms is not None:
            terms = [t.to_dict() for t in watchterms.list_terms(s, case.reference, actor=accounts.actor_of(user))]
        if notes:
            audit.append(s, "case.notes_viewed", accounts.actor_of(user), case.id, {"notes": len(notes)})
    summary.update(assigned_to=who.username if who else None, notes=notes, timeline=timeline, matches=matches,
                   watch_terms=terms)
    return summary


def create_case(request: Request, user: User, jurisdiction: str | None, involves_minor: bool) -> registry.NewCase:
    """Open a case (an advocate's own case is assigned to them)."""
    try:
        with writing(request) as s:
            new = registry.create_case(s, jurisdiction=jurisdiction or None, involves_minor=involves_minor,
                                       actor=accounts.actor_of(user))
            if user.role != Role.ADMIN:
                case = s.scalar(select(Case).where(Case.reference == new.reference))
                casework.assign(s, case, user.username, actor=accounts.actor_of(user))
        return new
    except registry.InvalidCaseData as e:
        raise BadInput(str(e), 422) from None


def change_case(request: Request, user: User, reference: str, *, jurisdiction: str | None = None,
                involves_minor: bool | None = None, assign_to: str | None = None, assign: bool = False,
                note: str | None = None) -> None:
    """Apply the changes a user asked for to a case they may see (assignment: admins only)."""
    if assign and user.role != Role.ADMIN:
        raise Forbidden("only an admin assigns cases")
    try:
        with writing(request) as s:
            case = load_case(s, user, reference, lock=True)
            # Clearing the flag turns previews back on: a second person (an admin) decides that.
            if involves_minor is False and case.involves_minor and user.role != Role.ADMIN:
                raise Forbidden("only an admin clears the minor flag")
            actor = accounts.actor_of(user)
            if assign:
                casework.assign(s, case, assign_to or None, actor=actor)
            if jurisdiction is not None or involves_minor is not None:
                casework.update_case(s, case, jurisdiction=jurisdiction, involves_minor=involves_minor, actor=actor)
            if note is not None:
                casework.add_note(s, case, note, actor=actor)
    except registry.InvalidCaseData as e:
        raise BadInput(str(e), 422) from None


def register_upload(request: Request, user: User, reference: str, data: bytes) -> registry.RegistrationSummary:
    """Register an uploaded hash file to a case the user may see."""
    hash_file = read_uploaded_hash_file(data)
    try:
        with writing(request) as s:
            case = load_case(s, user, reference)
            return registry.register_hash_file(s, case.reference, hash_file, actor=accounts.actor_of(user))
    except registry.RegistryError as e:
        raise BadInput(str(e), 409) from None


def add_terms(request: Request, user: User, reference: str, terms: list[str], kind: str) -> list[dict[str, Any]]:
    """Add watch terms to a case the user may see; returns the new ones."""
    if watchterms is None:
        raise BadInput("watch terms are not available in this version", 404)
    try:
        with writing(request) as s:
            case = load_case(s, user, reference)
            added = watchterms.add_terms(s, case.reference, [t for t in terms if t.strip()], kind=kind,
                                         actor=accounts.actor_of(user))
            return [t.to_dict() for t in added]
    except (watchterms.WatchTermError, registry.RegistryError) as e:
        raise BadInput(str(e), 422) from None


def remove_term(request: Request, user: User, reference: str, term_id: int) -> None:
    """Remove one watch term of a case the user may see."""
    if watchterms is None:
        raise BadInput("watch terms are not available in this version", 404)
    try:
        with writing(request) as s:
            case = load_case(s, user, reference)
            watchterms.remove_term(s, case.reference, term_id, actor=accounts.actor_of(user))
    except (watchterms.WatchTermNotFound, watchterms.WatchTermError) as e:
        raise BadInput(str(e), 404) from None


# --- pages -----------------------------------------------------------------------------------------

@router.get("/cases")
def cases_page(request: Request, status: str = "", user: User = Depends(current_user)) -> Response:
    """The cases this user may see."""
    return render(request, "cases.html", {"cases": case_list(request, user, status or None), "status": status})


@router.get("/cases/new")
def new_case_page(request: Request, _user: User = Depends(current_user)) -> Response:
    """The form for a new case."""
    return render(request, "case_new.html", {})


@router.post("/cases")
def new_case(request: Request, jurisdiction: str = Form(""), involves_minor: str = Form(""),
             user: User = Depends(staff_post)) -> Response:
    """Open a case and show its reference and secret once."""
    new = create_case(request, user, jurisdiction, bool(involves_minor))
    return render(request, "case_created.html", {"reference": new.reference, "secret": new.secret})


@router.get("/cases/{reference}")
def case_page(request: Request, reference: str, user: User = Depends(current_user)) -> Response:
    """A case: counts, matches, assignment, notes, jurisdiction, minor flag, watch terms, timeline."""
    users = []
    if user.role == Role.ADMIN:
        with reading(request) as s:
            users = [u.username for u in accounts.list_users(s) if not u.disabled]
    return render(request, "case.html", {"c": case_detail(request, user, reference), "users": users,
                                         "has_watchterms": watchterms is not None})


@router.post("/cases/{reference}/assign")
def case_assign(request: Request, reference: str, username: str = Form(""),
                user: User = Depends(staff_post)) -> Response:
    """Assign the case to an advocate (admins)."""
    change_case(request, user, reference, assign=True, assign_to=username)
    return RedirectResponse(f"/cases/{reference}", status_code=303)


@router.post("/cases/{reference}/details")
def case_details(request: Request, reference: str, jurisdiction: str = Form(""), involves_minor: str = Form(""),
                 user: User = Depends(staff_post)) -> Response:
    """Change the jurisdiction and the minor flag."""
    change_case(request, user, reference, jurisdiction=jurisdiction, involves_minor=bool(involves_minor))
    return RedirectResponse(f"/cases/{reference}", status_code=303)


@router.post("/cases/{reference}/notes")
def case_note(request: Request, reference: str, body: str = Form(""), user: User = Depends(staff_post)) -> Response:
    """Add a note."""
    change_case(request, user, reference, note=body)
    return RedirectResponse(f"/cases/{reference}#notes", status_code=303)


@router.post("/cases/{reference}/hashes")
async def case_hashes(request: Request, reference: str, file: UploadFile,
                      user: User = Depends(staff_post)) -> Response:
    """Register a hash file made by `ncii hash`."""
    from starlette.concurrency import run_in_threadpool

    data = await file.read(read_limit())
    summary = await run_in_threadpool(register_upload, request, user, reference, data)
    return render(request, "registered.html", {"reference": reference, "s": summary.to_dict()})


def read_limit() -> int:
    """How many bytes of an uploaded hash file are read (one more than allowed, to detect too large)."""
    from monitor.web.hashupload import MAX_HASH_FILE_BYTES

    return MAX_HASH_FILE_BYTES + 1


@router.post("/cases/{reference}/terms")
def case_terms(request: Request, reference: str, terms: str = Form(""), kind: str = Form("name"),
               user: User = Depends(staff_post)) -> Response:
    """Add watch terms (one per line)."""
    add_terms(request, user, reference, terms.splitlines(), kind)
    return RedirectResponse(f"/cases/{reference}#terms", status_code=303)


@router.post("/cases/{reference}/terms/{term_id}/delete")
def case_term_delete(request: Request, reference: str, term_id: RowId, user: User = Depends(staff_post)) -> Response:
    """Remove one watch term."""
    remove_term(request, user, reference, term_id)
    return RedirectResponse(f"/cases/{reference}#terms", status_code=303)
