"""Drafting notices and their state machine.

A confirmed match (or all confirmed matches of a case on one platform) becomes a draft listing
every known copy on that platform: the sightings of the matched media there and of the case's
other confirmed matches there. A person edits and approves it; approval re-checks every legal
element on the final text and refuses a notice missing one. Every state change goes through
``transition`` (the one place the allowed moves are written down) and is audited (ids and
states only, never text, names or URLs).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from monitor import audit
from monitor.models import (Case, CaseStatus, Match, MediaSighting, NoticeConsent, NoticeKind, NoticeState,
                            ReviewStatus, TakedownNotice, TakedownNoticeUrl, utcnow)
from monitor.takedowns import elements as E
from monitor.takedowns.config import (PRIMARY_TYPES, NoticeType, Profile, TakedownSettings, notice_types,
                                      platform_for_host, profile_for, profiles)
from monitor.takedowns.recipients import Recipient, RecipientFinder, from_platform, host_of
from monitor.takedowns.render import render

S = NoticeState
#: The allowed moves. Removal can be recorded from any state after sending (a platform may remove
#: after refusing, or after the deadline).
TRANSITIONS: dict[str, frozenset[str]] = {
    S.DRAFT: frozenset({S.APPROVED}),
    S.APPROVED: frozenset({S.SENT, S.DRAFT}),
    S.SENT: frozenset({S.ACKNOWLEDGED, S.REMOVED, S.PARTLY_REMOVED, S.REFUSED, S.EXPIRED}),
    S.ACKNOWLEDGED: frozenset({S.REMOVED, S.PARTLY_REMOVED, S.REFUSED, S.EXPIRED}),
    S.PARTLY_REMOVED: frozenset({S.REMOVED, S.REFUSED, S.EXPIRED}),
    S.EXPIRED: frozenset({S.REMOVED, S.PARTLY_REMOVED, S.REFUSED}),
    S.REFUSED: frozenset({S.REMOVED, S.PARTLY_REMOVED}),
    S.REMOVED: frozenset(),
}
#: States in which the content may still be online and the recipient was told.
OPEN_STATES = (S.SENT.value, S.ACKNOWLEDGED.value, S.PARTLY_REMOVED.value, S.EXPIRED.value, S.REFUSED.value)
TRACKED_STATES = (S.SENT.value, S.ACKNOWLEDGED.value, S.PARTLY_REMOVED.value, S.EXPIRED.value, S.REFUSED.value)
#: `ncii takedown mark` words for the states a person records.
MARKS = {"submitted": S.SENT, "sent": S.SENT, "acknowledged": S.ACKNOWLEDGED, "removed": S.REMOVED,
         "partly_removed": S.PARTLY_REMOVED, "refused": S.REFUSED}
ADVOCATE_NOTE = ("The software drafted this notice; you decide whether it is sent, and you sign it. Check every "
                 "URL, the recipient and the law before approving.")


class NoticeError(Exception):
    """A takedown operation was refused; ``code`` names the kind, the message says why."""

    code = "takedown-error"


class NoticeNotFound(NoticeError):
    code = "notice-not-found"


class InvalidTransition(NoticeError):
    code = "invalid-transition"


class ElementsMissing(NoticeError):
    code = "elements-missing"

    def __init__(self, report: E.ElementReport) -> None:
        super().__init__(f"the notice lacks required element(s): {report.message()}")
        self.report = report


class NothingToReport(NoticeError):
    code = "nothing-to-report"


def reference(notice_id: int) -> str:
    """The reference quoted in a notice and its replies."""
    return f"TD-{notice_id:06d}"


def url_digest(url: str) -> str:
    return hashlib.sha256(url.encode("utf-8", "surrogatepass")).hexdigest()


def platform_key(host: str, settings: TakedownSettings) -> str:
    """The registry key serving `host`, else "host:<host>"."""
    p = platform_for_host(host, settings)
    return p.key if p is not None else f"host:{host}"[:64]


# --- the state machine ---------------------------------------------------------------------------------

def transition(session: Session, notice: TakedownNotice, new: NoticeState | str, *, actor: str,
               now: dt.datetime | None = None, **details: Any) -> None:
    """Move a notice to `new` if allowed (else InvalidTransition), stamping times and auditing it."""
    new = NoticeState(new)
    old = notice.state
    if new.value not in TRANSITIONS[NoticeState(old)]:
        raise InvalidTransition(f"notice {reference(notice.id)} is {old}: it cannot become {new.value}")
    now = now or utcnow()
    notice.state = new.value
    if new is S.APPROVED:
        notice.approved_at, notice.approved_by = now, actor
    elif new is S.DRAFT:
        notice.approved_at = notice.approved_by = None
    elif new is S.SENT:
        notice.sent_at = notice.sent_at or now
        notice.deadline_at = notice.sent_at + dt.timedelta(hours=notice.deadline_hours)
    elif new is S.ACKNOWLEDGED:
        notice.acknowledged_at = now
    elif new is S.REMOVED:
        notice.removed_at = notice.removed_at or now
    elif new in (S.REFUSED, S.EXPIRED):
        notice.closed_at = now
    audit.append(session, f"takedown.{new.value}", actor, notice.case_id,
                 {"notice_id": notice.id, "from": old, **details})


def get(session: Session, notice_id: int) -> TakedownNotice:
    """The notice, or NoticeNotFound."""
    notice = session.get(TakedownNotice, notice_id)
    if notice is None:
        raise NoticeNotFound(f"no notice {notice_id}")
    return notice


# --- consent -------------------------------------------------------------------------------------------

def record_consent(session: Session, case_id: int, *, consents: bool, actor: str, victim_name: str | None = None,
                   victim_contact: str | None = None, now: dt.datetime | None = None) -> NoticeConsent:
    """Record whether the victim agrees to their own name and contact in notices (with the time)."""
    now = now or utcnow()
    if consents and not (victim_name or "").strip():
        raise NoticeError("consent to be named needs the name to use in notices")
    row = session.get(NoticeConsent, case_id)
    if row is None:
        row = NoticeConsent(case_id=case_id, recorded_by=actor)
        session.add(row)
    row.name_in_notices = consents
    row.consented_at = now if consents else None
    row.recorded_by = actor
    row.victim_name = (victim_name or "").strip() or None if consents else None
    row.victim_contact = (victim_contact or "").strip() or None if consents else None
    row.updated_at = now
    audit.append(session, "takedown.consent", actor, case_id, {"name_in_notices": consents})
    return row


# --- what a notice lists -----------------------------------------------------------------------------

@dataclass(frozen=True)
class Copy:
    """One reported copy: the image URL, its page, the media and match it came from."""

    url: str
    page_url: str | None
    media_id: int | None
    match_id: int | None


def confirmed_copies(session: Session, case_id: int, settings: TakedownSettings,
                     match_ids: Iterable[int] | None = None) -> dict[str, list[Copy]]:
    """Every known, not-gone copy of the case's confirmed matches, by platform key."""
    q = (select(Match.id, Match.media_id, MediaSighting.url, MediaSighting.page_url)
         .join(MediaSighting, MediaSighting.media_id == Match.media_id)
         .where(Match.case_id == case_id, Match.review_status == ReviewStatus.CONFIRMED.value,
                MediaSighting.gone_at.is_(None))
         .order_by(Match.id, MediaSighting.id))
    wanted = set(match_ids or [])
    out: dict[str, list[Copy]] = {}
    seen: set[tuple[str, str]] = set()
    for match_id, media_id, url, page_url in session.execute(q):
        if url.startswith("file:"):
            continue  # a local scan: nothing to ask anyone to remove
        host = host_of(page_url or url) or host_of(url)
        key = platform_key(host, settings)
        if (key, url) in seen:
            continue
        seen.add((key, url))
        out.setdefault(key, []).append(Copy(url, page_url, media_id, match_id))
    if wanted:
        keep = {k for k, copies in out.items() if any(c.match_id in wanted for c in copies)}
        out = {k: v for k, v in out.items() if k in keep}
    return out


# --- drafting ------------------------------------------------------------------------------------------

def choose_type(profile: Profile, accepted: Sequence[str] | None, requested: str | None) -> str:
    """The notice type: the one asked for, else the profile's first that the platform takes."""
    types = notice_types()
    if requested:
        if requested not in PRIMARY_TYPES:
            raise NoticeError(f"unknown notice type {requested!r} (one of {', '.join(PRIMARY_TYPES)})")
        return requested
    for t in profile.notice_types:
        if accepted is None or t in accepted:
            return t
    return next(t for t in profile.notice_types if t in types)


def _requester(session: Session, case_id: int, may_name: bool, settings: TakedownSettings) -> dict[str, Any]:
    consent = session.get(NoticeConsent, case_id)
    named = bool(may_name and consent is not None and consent.name_in_notices and consent.victim_name)
    org = settings.org_name or ""
    if named:
        assert consent is not None
        signer = consent.victim_name or ""
        email = consent.victim_contact if consent.victim_contact and "@" in consent.victim_contact else settings.org_email
        return {"victim_named": True, "signer": signer, "notifier": signer, "email": email or "",
                "address": settings.org_address, "phone": settings.org_phone, "org_name": org}
    return {"victim_named": False, "signer": settings.signatory or "", "notifier": org, "email": settings.org_email or "",
            "address": settings.org_address, "phone": settings.org_phone, "org_name": org}


def element_context(session: Session, notice: TakedownNotice, settings: TakedownSettings) -> E.ElementContext:
    """What the notice's data elements are checked against (its URLs, signer, contact, law, parent)."""
    requester = _requester(session, notice.case_id, notice.uses_victim_identity, settings)
    urls = tuple(session.scalars(select(TakedownNoticeUrl.url).where(TakedownNoticeUrl.notice_id == notice.id)
                                 .order_by(TakedownNoticeUrl.id)))
    parent_ref = reference(notice.parent_id) if notice.parent_id else None
    return E.ElementContext(signer=requester["signer"], email=requester["email"], notifier=requester["notifier"],
                            urls=urls, address=requester["address"], law=profiles()[notice.profile].law,
                            reference=parent_ref)


def _context(notice_id: int, ntype: NoticeType, profile: Profile, platform_name: str, host: str,
             copies: Sequence[Copy], requester: dict[str, Any], now: dt.datetime,
             parent: TakedownNotice | None, recipient: Recipient, deadline_hours: int,
             host_contacted: bool = False, kind: NoticeKind = NoticeKind.NOTICE) -> dict[str, Any]:
    return {
        "ref": reference(notice_id), "date": now.date().isoformat(), "platform": {"name": platform_name},
        "host": host, "urls": [{"url": c.url, "page_url": c.page_url} for c in copies], "requester": requester,
        "profile": profile, "law": ntype, "deadline_hours": deadline_hours, "recipient_name": recipient.name,
        "parent": ({"reference": reference(parent.id), "subject": parent.subject, "deadline_hours": parent.deadline_hours,
                    "sent_date": (parent.sent_at or now).date().isoformat()} if parent is not None else None),
        "host_contacted": host_contacted, "reupload": parent is not None and kind is NoticeKind.REUPLOAD,
    }


def draft(session: Session, *, case_id: int, platform: str, copies: Sequence[Copy], settings: TakedownSettings,
          actor: str, notice_type: str | None = None, language: str | None = None, kind: NoticeKind = NoticeKind.NOTICE,
          parent: TakedownNotice | None = None, recipient: Recipient | None = None,
          finder: RecipientFinder | None = None, now: dt.datetime | None = None) -> TakedownNotice:
    """Write one draft notice for `copies` on one platform (rendered, element-checked, audited)."""
    settings.require_identity()
    now = now or utcnow()
    if not copies:
        raise NothingToReport("no confirmed copy on that platform is still online")
    case = session.get(Case, case_id)
    if case is None:
        raise NoticeError(f"no case {case_id}")
    if case.status != CaseStatus.ACTIVE.value:
        raise NoticeError(f"case {case.reference} is {case.status}: no notice is drafted for it")
    if case.involves_minor:
        # Material depicting a minor is reported to the hotlines (NCMEC, IWF, ...), not by this flow.
        raise NoticeError(f"case {case.reference} involves a minor: report to a child-protection hotline instead")
    host = host_of(copies[0].page_url or copies[0].url) or host_of(copies[0].url)
    registry_entry = platform_for_host(host, settings)
    case_profile = profile_for(case.jurisdiction)
    if kind in (NoticeKind.NOTICE, NoticeKind.REUPLOAD):
        code = parent.notice_type if parent is not None and notice_type is None else choose_type(
            case_profile, registry_entry.notice_types if registry_entry else None, notice_type)
    else:
        code = kind.value
    ntype = notice_types()[code]
    base = notice_types()[parent.notice_type] if parent is not None else ntype
    profile = profiles()[base.profile] if base.profile else case_profile
    if parent is not None:
        profile = profiles()[parent.profile]
    if recipient is None:
        if registry_entry is not None:
            recipient = from_platform(registry_entry)
        elif finder is not None:
            recipient = finder.find(host)
        else:
            recipient = Recipient(name=host, found_by="none", detail="not looked up: set one by hand")
    # The law's own period when it fixes one, else what the platform is known to take, else the profile's.
    deadline = (ntype.deadline_hours or base.deadline_hours
                or (registry_entry.deadline_hours if registry_entry is not None else None) or profile.deadline_hours)
    requester = _requester(session, case_id, base.may_name_victim, settings)
    language = language or settings.language
    notice = TakedownNotice(case_id=case_id, parent_id=parent.id if parent else None, kind=kind.value,
                            step={NoticeKind.REMINDER: 1, NoticeKind.HOST_ABUSE: 2, NoticeKind.REGULATOR: 3}.get(kind, 0),
                            notice_type=code, profile=profile.code, language=language, platform=platform[:64],
                            host=host[:255], state=S.DRAFT.value, delivery=recipient.delivery,
                            recipient=recipient.to_dict(), subject="(drafting)", body="", edited=False,
                            uses_victim_identity=requester["victim_named"], elements={}, deadline_hours=deadline,
                            created_at=now, created_by=actor, updated_at=now)
    session.add(notice)
    session.flush()
    for c in copies:
        session.add(TakedownNoticeUrl(notice_id=notice.id, match_id=c.match_id, media_id=c.media_id, url=c.url,
                                      url_sha256=url_digest(c.url), page_url=c.page_url))
    session.flush()
    platform_name = registry_entry.name if registry_entry else host
    host_contacted = kind is NoticeKind.REGULATOR and _chain_has(session, parent, NoticeKind.HOST_ABUSE)
    ctx = _context(notice.id, ntype, profile, platform_name, host, copies, requester, now, parent, recipient,
                   deadline, host_contacted, kind)
    notice.subject, notice.body = render(code, ctx, language=language, templates_dir=settings.templates_dir)
    notice.subject = notice.subject[:300]
    report = E.check(notice.body, code, element_context(session, notice, settings), language=language,
                     templates_dir=settings.templates_dir, extra=_extra_elements(notice))
    notice.elements = report.to_dict()
    audit.append(session, "takedown.draft", actor, case_id,
                 {"notice_id": notice.id, "kind": kind.value, "type": code, "profile": profile.code,
                  "copies": len(copies), "recipient_found_by": recipient.found_by,
                  "parent_id": parent.id if parent else None, "elements_ok": report.ok})
    return notice


def _chain_has(session: Session, notice: TakedownNotice | None, kind: NoticeKind) -> bool:
    if notice is None:
        return False
    root = notice.id if notice.parent_id is None else notice.parent_id
    return session.scalar(select(TakedownNotice.id).where(TakedownNotice.parent_id == root,
                                                          TakedownNotice.kind == kind.value,
                                                          TakedownNotice.state != S.DRAFT.value).limit(1)) is not None


def draft_for_case(session: Session, case_id: int, settings: TakedownSettings, *, actor: str,
                   match_ids: Iterable[int] | None = None, platform: str | None = None,
                   notice_type: str | None = None, language: str | None = None,
                   finder: RecipientFinder | None = None, now: dt.datetime | None = None) -> list[TakedownNotice]:
    """One draft per platform for the case's confirmed matches (or those holding `match_ids`)."""
    match_ids = list(match_ids or [])
    for mid in match_ids:
        m = session.get(Match, mid)
        if m is None:
            raise NoticeError(f"no match {mid}")
        if m.case_id != case_id:
            raise NoticeError(f"match {mid} belongs to another case")
        if m.review_status != ReviewStatus.CONFIRMED.value:
            raise NoticeError(f"match {mid} is {m.review_status}: a person must confirm it before a notice is drafted")
    by_platform = confirmed_copies(session, case_id, settings, match_ids or None)
    if platform is not None:
        by_platform = {k: v for k, v in by_platform.items() if k == platform}
    if not by_platform:
        raise NothingToReport("no confirmed match with a copy still online" +
                              (f" on platform {platform}" if platform else ""))
    return [draft(session, case_id=case_id, platform=key, copies=copies, settings=settings, actor=actor,
                  notice_type=notice_type, language=language, finder=finder, now=now)
            for key, copies in sorted(by_platform.items())]


# --- editing and approval ------------------------------------------------------------------------------

def _extra_elements(notice: TakedownNotice) -> tuple[str, ...]:
    # A re-upload follow-up must say which earlier notice it follows.
    return ("reference",) if notice.kind == NoticeKind.REUPLOAD.value else ()


def recheck(session: Session, notice: TakedownNotice, settings: TakedownSettings) -> E.ElementReport:
    """Run the element check on the notice's current text and store the result."""
    report = E.check(notice.body, notice.notice_type, element_context(session, notice, settings),
                     language=notice.language, templates_dir=settings.templates_dir, extra=_extra_elements(notice))
    notice.elements = report.to_dict()
    return report


def edit(session: Session, notice: TakedownNotice, settings: TakedownSettings, *, actor: str,
         body: str | None = None, subject: str | None = None, to_email: str | None = None,
         form_url: str | None = None) -> E.ElementReport:
    """Change a draft's text or recipient (an approved notice goes back to draft); re-checks elements."""
    if notice.state == S.APPROVED.value:
        transition(session, notice, S.DRAFT, actor=actor, reason="edited")
    if notice.state != S.DRAFT.value:
        raise InvalidTransition(f"notice {reference(notice.id)} is {notice.state}: only drafts can be edited")
    if body is not None:
        notice.body, notice.edited = body, True
    if subject is not None:
        notice.subject, notice.edited = subject.strip()[:300], True
    if to_email is not None or form_url is not None:
        if to_email is not None and ("@" not in to_email or any(c.isspace() or c in "<>,;" for c in to_email)):
            raise NoticeError("--to is not an email address")
        r = dict(notice.recipient or {})
        if to_email is not None:
            r["email"] = to_email
        if form_url is not None:
            r["form_url"] = form_url
        r["found_by"], r["detail"] = "advocate", "set by hand"
        notice.recipient = r
        notice.delivery = "email" if r.get("email") else "web_form"
    report = recheck(session, notice, settings)
    audit.append(session, "takedown.edit", actor, notice.case_id,
                 {"notice_id": notice.id, "elements_ok": report.ok, "recipient_changed": to_email is not None})
    return report


def approve(session: Session, notice: TakedownNotice, settings: TakedownSettings, *, actor: str,
            now: dt.datetime | None = None) -> TakedownNotice:
    """A person approves the final text: refused when an element is missing or there is no recipient."""
    if notice.state != S.DRAFT.value:
        raise InvalidTransition(f"notice {reference(notice.id)} is {notice.state}: only a draft can be approved")
    status = session.scalar(select(Case.status).where(Case.id == notice.case_id))
    if status != CaseStatus.ACTIVE.value:
        raise NoticeError(f"the case is {status}: its notices are not sent")
    report = recheck(session, notice, settings)
    if not report.ok:
        raise ElementsMissing(report)
    r = notice.recipient or {}
    if not r.get("email") and not r.get("form_url"):
        raise NoticeError(f"notice {reference(notice.id)} has no recipient: set one with "
                          "`ncii takedown edit ID --to ADDRESS` or --form URL")
    if notice.parent_id is not None:
        root = session.get(TakedownNotice, notice.parent_id)
        if root is not None and root.state == S.REMOVED.value and notice.kind != NoticeKind.REUPLOAD.value:
            raise NoticeError(f"the content of {reference(root.id)} has been removed: this escalation is not needed")
    if notice.message_id is None:
        domain = (settings.sender or settings.org_email or "ncii.invalid").rpartition("@")[2]
        notice.message_id = f"<ncii-notice-{notice.id}-{secrets.token_hex(6)}@{domain}>"
    transition(session, notice, S.APPROVED, actor=actor, now=now)
    return notice


def mark(session: Session, notice: TakedownNotice, what: str, *, actor: str, ticket: str | None = None,
         now: dt.datetime | None = None) -> TakedownNotice:
    """Record what a person saw: submitted (through a web form) / sent, acknowledged, removed, refused."""
    if what not in MARKS:
        raise NoticeError(f"unknown state {what!r} (one of {', '.join(MARKS)})")
    now = now or utcnow()
    target = MARKS[what]
    if ticket:
        notice.ticket = ticket.strip()[:128]
    if target is S.SENT:
        if notice.state != S.APPROVED.value:
            raise InvalidTransition(f"notice {reference(notice.id)} is {notice.state}: only an approved notice "
                                    "can be marked submitted")
        notice.sent_at = now
    if target is S.REMOVED:
        for u in session.scalars(select(TakedownNoticeUrl).where(TakedownNoticeUrl.notice_id == notice.id,
                                                                 TakedownNoticeUrl.gone_at.is_(None))):
            u.gone_at, u.gone_reason = now, "marked"
    transition(session, notice, target, actor=actor, now=now, by="advocate", ticket_recorded=bool(ticket))
    return notice


def to_dict(session: Session, notice: TakedownNotice, *, body: bool = False,
            now: dt.datetime | None = None) -> dict[str, Any]:
    """A notice as shown by the CLI and the web app."""
    now = now or utcnow()
    urls = session.scalars(select(TakedownNoticeUrl).where(TakedownNoticeUrl.notice_id == notice.id)
                           .order_by(TakedownNoticeUrl.id)).all()
    case_ref = session.scalar(select(Case.reference).where(Case.id == notice.case_id))
    out = {
        "id": notice.id, "reference": reference(notice.id), "case": case_ref, "kind": notice.kind,
        "step": notice.step, "parent": reference(notice.parent_id) if notice.parent_id else None,
        "type": notice.notice_type, "profile": notice.profile, "language": notice.language,
        "platform": notice.platform, "host": notice.host, "state": notice.state, "delivery": notice.delivery,
        "recipient": notice.recipient, "subject": notice.subject, "elements": notice.elements,
        "victim_named": notice.uses_victim_identity, "deadline_hours": notice.deadline_hours,
        "created_at": notice.created_at, "approved_at": notice.approved_at, "approved_by": notice.approved_by,
        "sent_at": notice.sent_at, "deadline_at": notice.deadline_at, "removed_at": notice.removed_at,
        "ticket": notice.ticket, "message_id": notice.message_id, "last_error": notice.last_error,
        "delivery_uncertain": bool(notice.send_started_at and not notice.sent_at),
        "overdue": bool(notice.deadline_at and notice.deadline_at < now and notice.state in OPEN_STATES
                        and notice.state != S.REMOVED.value),
        "urls": [{"url": u.url, "page_url": u.page_url, "match_id": u.match_id, "gone_at": u.gone_at,
                  "gone_reason": u.gone_reason, "last_result": u.last_result, "last_checked_at": u.last_checked_at}
                 for u in urls],
    }
    if body:
        out["body"] = notice.body
        out["advocate_note"] = ADVOCATE_NOTE
    return out


def list_notices(session: Session, *, case_id: int | None = None, state: str | None = None,
                 overdue: bool = False, now: dt.datetime | None = None) -> list[TakedownNotice]:
    """Notices, newest first, optionally of one case, in one state, or overdue."""
    now = now or utcnow()
    q = select(TakedownNotice).order_by(TakedownNotice.id.desc())
    if case_id is not None:
        q = q.where(TakedownNotice.case_id == case_id)
    if state is not None:
        q = q.where(TakedownNotice.state == state)
    if overdue:
        q = q.where(TakedownNotice.deadline_at < now, TakedownNotice.state.in_(
            [s for s in OPEN_STATES if s != S.REMOVED.value]))
    return list(session.scalars(q))
