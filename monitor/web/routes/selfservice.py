"""Victim self-service (public, no account): with the case reference and secret, see the case's
status, add hashes from a hash file made by `ncii hash`, or withdraw the case.

Wrong secrets are throttled per reference and per client address, and every failure gets the
same answer, whether or not the reference exists. The self-service session is separate from staff
sessions (its own cookie, limited to /self-service) and lasts 15 minutes.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Form, Request, UploadFile
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import distinct, func, select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from monitor import accounts, audit, registry
from monitor.identifiers import InvalidReference, normalize_reference
from monitor.models import Case, Match, ReviewStatus, SessionKind, TakedownNotice, TakedownNoticeUrl
from monitor.web.deps import SELF_COOKIE, BadInput, csrf_protect, reading, writing
from monitor.web.hashupload import MAX_HASH_FILE_BYTES, read_uploaded_hash_file
from monitor.web.render import render
from monitor.web.security import client_address, set_cookie

router = APIRouter(include_in_schema=False)
ACTOR = "self-service"
PATH = "/self-service"
FAILED = "The case reference and secret do not match. Check both and try again."
THROTTLED = "Too many attempts. For your safety, please wait an hour and try again, or contact your advocate."

def _copies_taken_down(s: Session, case_id: int) -> int:
    """Addresses reported in the case's takedown notices that are gone."""
    return s.scalar(select(func.count(distinct(TakedownNoticeUrl.url_sha256)))
                    .join(TakedownNotice, TakedownNotice.id == TakedownNoticeUrl.notice_id)
                    .where(TakedownNotice.case_id == case_id, TakedownNoticeUrl.gone_at.is_not(None))) or 0


class _SelfSignIn(Exception):
    pass


def self_session(request: Request):  # noqa: ANN201
    """The victim's live self-service session, or a redirect to the sign-in form."""
    with reading(request) as s:
        ws = accounts.find_session(s, request.cookies.get(SELF_COOKIE), SessionKind.SELF_SERVICE)
    if ws is None or ws.case_id is None:
        raise BadInput("Your self-service session has ended: enter your case reference and secret again.", 401)
    request.state.self_session = ws
    return ws


async def self_post(request: Request, ws=Depends(self_session)):  # noqa: ANN001, ANN201
    """The self-service session of a form POST, after its CSRF check."""
    await csrf_protect(request)
    return ws


def case_status(s: Session, case_id: int) -> dict[str, int | str]:
    """Counts a victim may see: matches found, confirmed, taken down; never the images."""
    case = s.get(Case, case_id)
    counts = dict(s.execute(select(Match.review_status, func.count()).where(Match.case_id == case_id)
                            .group_by(Match.review_status)).all())
    summary = registry.show_case(s, case.reference)
    out: dict[str, int | str] = {
        "reference": case.reference, "status": case.status, "hashes": summary.hashes_active,
        # Matches the advocate rejected are not copies of the victim's pictures: not counted as found.
        "images": summary.images, "found": sum(counts.values()) - counts.get(ReviewStatus.REJECTED.value, 0),
        "confirmed": counts.get(ReviewStatus.CONFIRMED.value, 0),
        "awaiting_review": counts.get(ReviewStatus.PENDING.value, 0),
    }
    out["taken_down"] = _copies_taken_down(s, case_id)
    return out


@router.get(PATH)
def sign_in_page(request: Request) -> Response:
    """The form: case reference and secret."""
    return render(request, "self_login.html", {})


@router.post(PATH, dependencies=[Depends(csrf_protect)])
def sign_in(request: Request, reference: str = Form(""), secret: str = Form("")) -> Response:
    """Check the reference and secret (throttled; the same answer whether or not the case exists)."""
    client = client_address(request)
    try:
        ref_key = normalize_reference(reference)
    except InvalidReference:
        ref_key = reference.strip().upper()[:32]
    token = None
    with writing(request) as s:
        if accounts.throttled_for(s, "reference", ref_key) or accounts.throttled_for(s, "ss-client", client):
            message = THROTTLED
        elif registry.verify_case_secret(s, reference, secret):
            case = s.scalar(select(Case).where(Case.reference == ref_key))
            # A shared browser: the session of a case signed in earlier ends here.
            accounts.end_session(s, request.cookies.get(SELF_COOKIE))
            token, _ws = accounts.create_session(s, SessionKind.SELF_SERVICE, case_id=case.id)
            accounts.clear_failures(s, "reference", ref_key)
            audit.append(s, "self_service.signed_in", ACTOR, case.id, {})
            message = None
        else:
            accounts.record_failure(s, "reference", ref_key, accounts.REFERENCE_RULE)
            accounts.record_failure(s, "ss-client", client, accounts.SELF_SERVICE_CLIENT_RULE)
            audit.append(s, "self_service.sign_in_failed", ACTOR, None, {})
            message = FAILED
    if token is None:
        return render(request, "self_login.html", {"error": message}, status_code=401)
    response = RedirectResponse(f"{PATH}/case", status_code=303)
    set_cookie(response, request, SELF_COOKIE, token, int(accounts.SELF_SERVICE_TTL.total_seconds()), path=PATH,
               samesite="strict")
    return response


@router.get(f"{PATH}/case")
def status_page(request: Request, ws=Depends(self_session)) -> Response:  # noqa: ANN001
    """The case's status and what the victim can do."""
    with reading(request) as s:
        status = case_status(s, ws.case_id)
    return render(request, "self_case.html", {"st": status, "max_mib": MAX_HASH_FILE_BYTES // 2**20})


@router.post(f"{PATH}/hashes")
async def add_hashes(request: Request, file: UploadFile, ws=Depends(self_post)) -> Response:  # noqa: ANN001
    """Register more hashes from a hash file made by `ncii hash` (pictures are refused)."""
    data = await file.read(MAX_HASH_FILE_BYTES + 1)

    def register() -> registry.RegistrationSummary:
        hash_file = read_uploaded_hash_file(data)
        try:
            with writing(request) as s:
                case = s.get(Case, ws.case_id)
                return registry.register_hash_file(s, case.reference, hash_file, actor=ACTOR)
        except registry.RegistryError as e:
            raise BadInput(str(e), 409) from None

    try:
        summary = await run_in_threadpool(register)
    except BadInput as e:
        with reading(request) as s:
            status = case_status(s, ws.case_id)
        return render(request, "self_case.html", {"st": status, "upload_error": str(e),
                                                  "max_mib": MAX_HASH_FILE_BYTES // 2**20}, status_code=e.status)
    with reading(request) as s:
        status = case_status(s, ws.case_id)
    return render(request, "self_case.html", {"st": status, "registered": summary.to_dict(),
                                              "max_mib": MAX_HASH_FILE_BYTES // 2**20})


@router.get(f"{PATH}/withdraw")
def withdraw_page(request: Request, ws=Depends(self_session)) -> Response:  # noqa: ANN001
    """Ask for confirmation before withdrawing."""
    with reading(request) as s:
        status = case_status(s, ws.case_id)
    return render(request, "self_withdraw.html", {"st": status})


@router.post(f"{PATH}/withdraw")
def withdraw(request: Request, confirm: str = Form(""), ws=Depends(self_post)) -> Response:  # noqa: ANN001
    """Withdraw the case: matching stops at once; the session ends."""
    if confirm != "yes":
        with reading(request) as s:
            status = case_status(s, ws.case_id)
        return render(request, "self_withdraw.html", {"st": status, "error": "Tick the box to confirm."},
                      status_code=422)
    with writing(request) as s:
        case = s.get(Case, ws.case_id)
        result = registry.withdraw_case(s, case.reference, actor=ACTOR)
        accounts.end_session(s, request.cookies.get(SELF_COOKIE))
    response = render(request, "self_done.html", {"reference": result.reference})
    response.delete_cookie(SELF_COOKIE, path=PATH)
    return response


@router.post(f"{PATH}/logout")
def sign_out(request: Request, _ws=Depends(self_post)) -> Response:  # noqa: ANN001
    """End the self-service session."""
    with writing(request) as s:
        accounts.end_session(s, request.cookies.get(SELF_COOKIE))
    response = RedirectResponse(PATH, status_code=303)
    response.delete_cookie(SELF_COOKIE, path=PATH)
    return response
