"""Takedown notices in the web app (issue 8): a notices tab per case (list, draft, edit, approve,
send, mark, export) and the overdue list shown on the dashboard and on /notices.

Access goes through monitor.web.deps (a notice is visible exactly when its case is); every form
POST passes the CSRF check (staff_post). The notice logic is monitor.takedowns: these routes only
translate requests to it.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from monitor import accounts, casework
from monitor.models import TakedownNotice, User
from monitor.settings import SettingsError
from monitor.takedowns import delivery, reports
from monitor.takedowns import notices as N
from monitor.takedowns.config import PRIMARY_TYPES, TakedownSettings, notice_types
from monitor.web.deps import (BadInput, NotFound, RowId, current_user, load_case, reading, staff_post, visible_cases,
                              writing)
from monitor.web.render import NAV, NavItem, render, templates

router = APIRouter(include_in_schema=False)

if not any(item.path == "/notices" for item in NAV):
    NAV.insert(max(0, len(NAV) - 1), NavItem("/notices", "Notices"))


def _settings() -> TakedownSettings:
    try:
        return TakedownSettings.load()
    except SettingsError as e:
        raise BadInput(str(e), 422) from None


def _load_notice(s, user: User, notice_id: int) -> TakedownNotice:
    notice = s.get(TakedownNotice, notice_id)
    if notice is None or not casework.can_see(s, user, notice.case_id):
        raise NotFound("no such notice")
    return notice


def _web_address(url: str) -> bool:
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return parts.scheme.lower() in ("http", "https") and bool(parts.netloc)


def _act(fn):  # noqa: ANN001, ANN202
    """Run a notice operation, turning its refusals into a 4xx page naming the problem."""
    try:
        return fn()
    except N.ElementsMissing as e:
        raise BadInput(str(e), 422) from None
    except N.NoticeError as e:
        raise BadInput(str(e), 409) from None
    except SettingsError as e:
        raise BadInput(str(e), 422) from None


def overdue_for(request: Request, user: User | None) -> list[dict[str, Any]]:
    """Overdue notices of the cases `user` may see (for the dashboard)."""
    if user is None:
        return []
    ids = visible_cases(request, user)
    with reading(request) as s:
        return [N.to_dict(s, n) for n in N.list_notices(s, overdue=True) if ids is None or n.case_id in ids]


# The dashboard (monitor/web/templates/dashboard.html) includes takedowns/_overdue.html, which calls this.
templates.env.globals["takedown_overdue"] = overdue_for


@router.get("/notices")
def notices_overview(request: Request, user: User = Depends(current_user)) -> Response:
    """Overdue notices first, then every open notice, of the cases the user may see."""
    ids = visible_cases(request, user)
    with reading(request) as s:
        rows = [N.to_dict(s, n) for n in N.list_notices(s) if ids is None or n.case_id in ids]
    return render(request, "takedowns/overview.html", {
        "overdue": [r for r in rows if r["overdue"]],
        "open": [r for r in rows if r["state"] not in ("removed",) and not r["overdue"]]})


@router.get("/notices/report")
def notices_report(request: Request, user: User = Depends(current_user)) -> Response:
    """Time to removal, share within the deadline, open and overdue, per platform and notice type."""
    ids = visible_cases(request, user)
    with reading(request) as s:
        rows = reports.takedown_report(s, case_ids=ids)
    return render(request, "takedowns/report.html", {"rows": rows})


@router.get("/notices/report.csv")
def notices_report_csv(request: Request, user: User = Depends(current_user)) -> Response:
    """The same report as CSV."""
    ids = visible_cases(request, user)
    with reading(request) as s:
        rows = reports.takedown_report(s, case_ids=ids)
    return Response(reports.to_csv(rows), media_type="text/csv; charset=utf-8", headers={
        "Content-Disposition": 'attachment; filename="takedowns.csv"', "Cache-Control": "no-store, private"})


@router.get("/cases/{reference}/notices")
def case_notices(request: Request, reference: str, user: User = Depends(current_user)) -> Response:
    """The notices tab of a case: its notices and the form to draft new ones."""
    with reading(request) as s:
        case = load_case(s, user, reference)
        rows = [N.to_dict(s, n) for n in N.list_notices(s, case_id=case.id)]
        ref = case.reference
    return render(request, "takedowns/case_notices.html", {"reference": ref, "notices": rows,
                                                             "types": PRIMARY_TYPES, "titles": notice_types()})


@router.post("/cases/{reference}/notices")
def draft_notices(request: Request, reference: str, notice_type: str = Form(""), platform: str = Form(""),
                  user: User = Depends(staff_post)) -> Response:
    """Draft one notice per platform for the case's confirmed matches."""
    ts = _settings()

    def run() -> list[int]:
        ts.require_identity()
        with writing(request) as s:
            case = load_case(s, user, reference)
            return [n.id for n in N.draft_for_case(s, case.id, ts, actor=accounts.actor_of(user),
                                                   notice_type=notice_type or None, platform=platform or None)]
    ids = _act(run)
    target = f"/notices/{ids[0]}" if len(ids) == 1 else f"/cases/{reference}/notices"
    return RedirectResponse(target, status_code=303)


@router.get("/notices/{notice_id}")
def notice_page(request: Request, notice_id: RowId, user: User = Depends(current_user)) -> Response:
    """One notice: text (editable while a draft), recipient, legal elements, state, URLs, actions."""
    with reading(request) as s:
        d = N.to_dict(s, _load_notice(s, user, notice_id), body=True)
    return render(request, "takedowns/notice.html", {"n": d, "marks": list(N.MARKS)})


@router.post("/notices/{notice_id}/edit")
def notice_edit(request: Request, notice_id: RowId, body: str = Form(...), subject: str = Form(...),
                to_email: str = Form(""), form_url: str = Form(""), user: User = Depends(staff_post)) -> Response:
    """Save the advocate's edit; the legal elements are checked again."""
    if any(ord(c) < 32 or ord(c) == 127 for c in subject):
        # A line break in the subject is an email header break: the .eml export and sending would fail.
        raise BadInput("the subject must be one line (no line breaks or control characters)", 422)
    if form_url.strip() and not _web_address(form_url.strip()):
        raise BadInput("the platform's web form must be an http:// or https:// address", 422)
    ts = _settings()

    def run() -> None:
        with writing(request) as s:
            notice = _load_notice(s, user, notice_id)
            r = notice.recipient or {}
            N.edit(s, notice, ts, actor=accounts.actor_of(user), body=body.replace("\r\n", "\n"), subject=subject,
                   to_email=(to_email.strip() or None) if to_email.strip() != (r.get("email") or "") else None,
                   form_url=(form_url.strip() or None) if form_url.strip() != (r.get("form_url") or "") else None)
    _act(run)
    return RedirectResponse(f"/notices/{notice_id}", status_code=303)


@router.post("/notices/{notice_id}/approve")
def notice_approve(request: Request, notice_id: RowId, user: User = Depends(staff_post)) -> Response:
    """Approve the final text (refused when a legal element is missing)."""
    ts = _settings()

    def run() -> None:
        with writing(request) as s:
            N.approve(s, _load_notice(s, user, notice_id), ts, actor=accounts.actor_of(user))
    _act(run)
    return RedirectResponse(f"/notices/{notice_id}", status_code=303)


@router.post("/notices/{notice_id}/send")
async def notice_send(request: Request, notice_id: RowId, user: User = Depends(staff_post)) -> Response:
    """Email an approved notice (once) over the configured SMTP server."""
    ts = _settings()

    def run() -> delivery.SendReport:
        with reading(request) as s:
            _load_notice(s, user, notice_id)
        return delivery.send_approved(request.app.state.engine, request.app.state.settings.smtp, ts,
                                      notice_ids=[notice_id], actor=accounts.actor_of(user))
    report = await run_in_threadpool(_act, run)
    if report.errors:
        raise BadInput("; ".join(report.errors), 502)
    if report.uncertain:
        raise BadInput("an earlier delivery of this notice was interrupted: check the copy sent to the organisation "
                       "before sending it again (ncii takedown send ID --retry-uncertain)", 409)
    return RedirectResponse(f"/notices/{notice_id}", status_code=303)


@router.post("/notices/{notice_id}/mark")
def notice_mark(request: Request, notice_id: RowId, state: str = Form(...), ticket: str = Form(""),
                user: User = Depends(staff_post)) -> Response:
    """Record what happened: submitted through a web form (with the ticket), acknowledged, removed, refused."""
    def run() -> None:
        with writing(request) as s:
            N.mark(s, _load_notice(s, user, notice_id), state, actor=accounts.actor_of(user),
                   ticket=ticket.strip() or None)
    _act(run)
    return RedirectResponse(f"/notices/{notice_id}", status_code=303)


@router.get("/notices/{notice_id}/notice.{fmt}")
def notice_export(request: Request, notice_id: RowId, fmt: str, user: User = Depends(current_user)) -> Response:
    """The notice as .eml or PDF."""
    if fmt not in ("eml", "pdf"):
        raise NotFound("no such export")
    ts = _settings()
    with reading(request) as s:
        notice = _load_notice(s, user, notice_id)
        data = delivery.eml_bytes(notice, ts) if fmt == "eml" else delivery.pdf_bytes(notice, ts)
    media = "message/rfc822" if fmt == "eml" else "application/pdf"
    return Response(data, media_type=media, headers={
        "Content-Disposition": f'attachment; filename="{N.reference(notice_id)}.{fmt}"',
        "Cache-Control": "no-store, private"})
