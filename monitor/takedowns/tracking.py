"""Following sent notices until the content is gone: re-checks, deadlines, escalation, re-uploads.

* Re-check: every reported URL of a sent notice that is not yet gone is fetched again through the
  safe HTTP client. 404/410, a refused connection or a name that no longer resolves = gone; 200
  with other content = gone when the picture no longer matches (the same bytes, or a PDQ within
  the match distance of the reported copy, count as still there); anything else (timeouts, 5xx,
  429) = unknown, tried again next time. The time it was first seen gone is recorded on the URL
  (and on the media's sighting); the notice becomes removed or partly_removed.
* Deadlines: a notice still not removed after its deadline is marked expired (a refused one keeps
  its state) and the next escalation step is drafted, for a person to approve: 1 a reminder to the same recipient,
  2 the host's abuse contact or the registrar (RDAP, security.txt), 3 the regulator named by the
  jurisdiction profile. Each step gets the deadline again before the next one is drafted.
* Re-uploads: a confirmed copy on a platform where the case's earlier notice was removed, first
  seen after that removal, is flagged and a follow-up notice referring to the earlier one is drafted.

``now`` is injected everywhere so tests control the clock.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from connectors.errors import ConnectionFailed, FetchError, HttpStatus
from connectors.http import HttpClient
from hashes.compute import HashOptions, hash_bytes
from hashes.errors import HashingError
from monitor import db
from monitor.models import (Case, CaseStatus, Media, MediaSighting, NoticeKind, NoticeState, TakedownNotice,
                            TakedownNoticeUrl, utcnow)
from monitor.takedowns import notices as N
from monitor.takedowns.config import TakedownSettings, profiles
from monitor.takedowns.recipients import Recipient, RecipientFinder

log = logging.getLogger(__name__)

#: PDQ distance within which a re-fetched picture still counts as the reported one (the default
#: match policy's whole-picture limit is of this order; see docs/matching.md).
STILL_THERE_PDQ = 31
ESCALATION = {0: NoticeKind.REMINDER, 1: NoticeKind.HOST_ABUSE, 2: NoticeKind.REGULATOR}
ROOT_KINDS = (NoticeKind.NOTICE.value, NoticeKind.REUPLOAD.value)


@dataclass
class TrackReport:
    """What one tracking run did."""

    checked: int = 0
    gone: int = 0
    still_there: int = 0
    unknown: int = 0
    removed: list[int] = field(default_factory=list)
    partly_removed: list[int] = field(default_factory=list)
    expired: list[int] = field(default_factory=list)
    escalations: list[int] = field(default_factory=list)
    reuploads: list[int] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in ("checked", "gone", "still_there", "unknown", "removed",
                                              "partly_removed", "expired", "escalations", "reuploads", "errors")}


# --- one URL ------------------------------------------------------------------------------------------

def _pdq(hashes: list[dict[str, Any]] | None) -> str | None:
    for h in hashes or []:
        if h.get("alg") == "pdq" and h.get("region", "full") == "full":
            return h.get("hash")
    return None


def check_url(http: HttpClient, url: str, media: Media | None) -> tuple[bool | None, str]:
    """(gone?, result): True gone, False still there, None unknown (try again later)."""
    try:
        response = http.get(url, check_robots=False)
    except HttpStatus as e:
        if e.status in (404, 410):
            return True, f"gone-{e.status}"
        return None, f"error:http-{e.status}"
    except ConnectionFailed:
        return True, "gone-unreachable"
    except FetchError as e:
        return None, f"error:{e.code}"[:32]
    data = response.content
    if media is None:
        return False, "present"
    if hashlib.sha256(data).hexdigest() == media.sha256:
        return False, "present"
    try:
        found = hash_bytes(data, source=url, options=HashOptions(algorithms=("pdq",)))
    except HashingError:
        return True, "gone-not-an-image"  # a placeholder page or a different file type now
    reported = _pdq(media.hashes)
    mine = next((h.value for h in found.hashes if h.algorithm == "pdq"), None)
    if reported is None or mine is None:
        return None, "error:no-pdq"
    distance = bin(int(reported, 16) ^ int(mine, 16)).count("1")
    return (False, "present-reencoded") if distance <= STILL_THERE_PDQ else (True, "gone-changed")


def recheck(engine: Engine, http: HttpClient, *, now: dt.datetime | None = None, actor: str = "system",
            report: TrackReport | None = None) -> TrackReport:
    """Re-check every open URL of every sent notice; update the URLs, the sightings and the notices."""
    report = report or TrackReport()
    now = now or utcnow()
    with db.session(engine) as s:
        rows = list(s.execute(
            select(TakedownNoticeUrl.id, TakedownNoticeUrl.url, TakedownNoticeUrl.media_id)
            .join(TakedownNotice, TakedownNotice.id == TakedownNoticeUrl.notice_id)
            .where(TakedownNotice.state.in_(N.TRACKED_STATES), TakedownNotice.kind.in_(ROOT_KINDS),
                   TakedownNoticeUrl.gone_at.is_(None))
            .order_by(TakedownNoticeUrl.id)))
        medias = {m.id: m for m in s.scalars(select(Media).where(Media.id.in_({r.media_id for r in rows if r.media_id})))}
    touched: set[int] = set()
    for url_id, url, media_id in rows:
        gone, result = check_url(http, url, medias.get(media_id))
        report.checked += 1
        with db.transaction(engine) as s:
            u = s.get(TakedownNoticeUrl, url_id)
            u.last_checked_at, u.last_result = now, result
            if gone:
                u.gone_at, u.gone_reason = now, result
                if u.media_id is not None:
                    for sighting in s.scalars(select(MediaSighting).where(MediaSighting.media_id == u.media_id,
                                                                          MediaSighting.url == u.url,
                                                                          MediaSighting.gone_at.is_(None))):
                        sighting.gone_at = now
                touched.add(u.notice_id)
        if gone:
            report.gone += 1
        elif gone is None:
            report.unknown += 1
        else:
            report.still_there += 1
    for notice_id in sorted(touched):
        with db.transaction(engine) as s:
            notice = s.get(TakedownNotice, notice_id)
            left = s.scalar(select(TakedownNoticeUrl.id).where(TakedownNoticeUrl.notice_id == notice_id,
                                                               TakedownNoticeUrl.gone_at.is_(None)).limit(1))
            if left is None:
                N.transition(s, notice, NoticeState.REMOVED, actor=actor, now=now, by="recheck")
                report.removed.append(notice_id)
            elif notice.state != NoticeState.PARTLY_REMOVED.value:
                N.transition(s, notice, NoticeState.PARTLY_REMOVED, actor=actor, now=now, by="recheck")
                report.partly_removed.append(notice_id)
    return report


# --- deadlines and escalation -------------------------------------------------------------------------

def _chain(session: Session, root: TakedownNotice) -> list[TakedownNotice]:
    return list(session.scalars(select(TakedownNotice).where(
        TakedownNotice.parent_id == root.id,
        TakedownNotice.kind.in_([k.value for k in ESCALATION.values()])).order_by(TakedownNotice.step)))


def _present_copies(session: Session, root: TakedownNotice) -> list[N.Copy]:
    return [N.Copy(u.url, u.page_url, u.media_id, u.match_id) for u in session.scalars(
        select(TakedownNoticeUrl).where(TakedownNoticeUrl.notice_id == root.id, TakedownNoticeUrl.gone_at.is_(None))
        .order_by(TakedownNoticeUrl.id))]


def escalate_overdue(engine: Engine, settings: TakedownSettings, *, now: dt.datetime | None = None,
                     finder: RecipientFinder | None = None, actor: str = "system",
                     report: TrackReport | None = None) -> TrackReport:
    """Expire overdue notices and draft the next escalation step where the last one's deadline passed."""
    report = report or TrackReport()
    now = now or utcnow()
    with db.session(engine) as s:
        ids = list(s.scalars(select(TakedownNotice.id).join(Case, Case.id == TakedownNotice.case_id).where(
            Case.status == CaseStatus.ACTIVE.value,  # a withdrawn or closed case is not escalated
            TakedownNotice.kind.in_(ROOT_KINDS), TakedownNotice.deadline_at < now,
            TakedownNotice.state.in_([NoticeState.SENT.value, NoticeState.ACKNOWLEDGED.value,
                                      NoticeState.PARTLY_REMOVED.value, NoticeState.EXPIRED.value,
                                      NoticeState.REFUSED.value]))))
    for root_id in ids:
        try:
            with db.transaction(engine) as s:
                root = s.get(TakedownNotice, root_id)
                if root.state not in (NoticeState.EXPIRED.value, NoticeState.REFUSED.value):
                    N.transition(s, root, NoticeState.EXPIRED, actor=actor, now=now, by="deadline")
                    report.expired.append(root_id)
                chain = _chain(s, root)
                last = chain[-1] if chain else root
                if last is not root and (last.state in (NoticeState.DRAFT.value, NoticeState.APPROVED.value)
                                         or last.deadline_at is None or last.deadline_at >= now):
                    continue  # the current step is waiting for a person, or still within its deadline
                step = last.step if last is not root else 0
                if step >= 3:
                    continue  # every step taken: a person decides what next
                kind = ESCALATION[step]
                copies = _present_copies(s, root)
                if not copies:
                    continue
                recipient = _escalation_recipient(root, kind, finder)
                if recipient is None:  # no abuse contact found: go straight to the regulator
                    kind = NoticeKind.REGULATOR
                    recipient = _escalation_recipient(root, kind, finder)
                notice = N.draft(s, case_id=root.case_id, platform=root.platform, copies=copies, settings=settings,
                                 actor=actor, kind=kind, parent=root, recipient=recipient, language=root.language,
                                 now=now)
                report.escalations.append(notice.id)
        except Exception as e:  # one notice's problem never stops the others
            log.warning("escalation of notice %d failed: %s", root_id, type(e).__name__)
            report.errors.append(f"{N.reference(root_id)}: {e}"[:300])
    return report


def _escalation_recipient(root: TakedownNotice, kind: NoticeKind, finder: RecipientFinder | None) -> Recipient | None:
    if kind is NoticeKind.REMINDER:
        r = root.recipient or {}
        return Recipient(name=r.get("name") or root.host, email=r.get("email"), form_url=r.get("form_url"),
                         found_by=r.get("found_by", "none"), detail="the original notice's recipient")
    if kind is NoticeKind.HOST_ABUSE:
        if finder is None:
            return None
        found = finder.abuse_contact(root.host)
        return found if found.email or found.form_url else None
    reg = profiles()[root.profile].regulator
    return Recipient(name=reg["name"], form_url=reg["url"], found_by="profile",
                     detail=f"regulator of jurisdiction profile {root.profile}")


# --- re-uploads ---------------------------------------------------------------------------------------

def flag_reuploads(engine: Engine, settings: TakedownSettings, *, now: dt.datetime | None = None,
                   actor: str = "system", report: TrackReport | None = None) -> TrackReport:
    """Draft a follow-up for confirmed copies that appeared on a platform after its notice was removed."""
    report = report or TrackReport()
    now = now or utcnow()
    with db.session(engine) as s:
        removed = list(s.scalars(select(TakedownNotice).join(Case, Case.id == TakedownNotice.case_id).where(
            Case.status == CaseStatus.ACTIVE.value, TakedownNotice.kind.in_(ROOT_KINDS),
            TakedownNotice.state == NoticeState.REMOVED.value)))
    for earlier in removed:
        try:
            with db.transaction(engine) as s:
                earlier = s.get(TakedownNotice, earlier.id)
                if s.scalar(select(TakedownNotice.id).where(
                        TakedownNotice.parent_id == earlier.id, TakedownNotice.kind == NoticeKind.REUPLOAD.value,
                        TakedownNotice.state.not_in([NoticeState.REMOVED.value])).limit(1)) is not None:
                    continue  # a follow-up is already open
                reported = set(s.scalars(select(TakedownNoticeUrl.url).join(
                    TakedownNotice, TakedownNotice.id == TakedownNoticeUrl.notice_id).where(
                    TakedownNotice.case_id == earlier.case_id, TakedownNotice.platform == earlier.platform,
                    TakedownNoticeUrl.gone_at.is_(None))))
                copies = [c for c in N.confirmed_copies(s, earlier.case_id, settings).get(earlier.platform, [])
                          if c.url not in reported and _first_seen(s, c) > earlier.removed_at]
                if not copies:
                    continue
                notice = N.draft(s, case_id=earlier.case_id, platform=earlier.platform, copies=copies,
                                 settings=settings, actor=actor, kind=NoticeKind.REUPLOAD, parent=earlier,
                                 language=earlier.language, now=now)
                report.reuploads.append(notice.id)
        except N.NoticeError as e:
            report.errors.append(f"{N.reference(earlier.id)}: {e}"[:300])
    return report


def _first_seen(session: Session, copy: N.Copy) -> dt.datetime:
    seen = session.scalar(select(MediaSighting.first_seen_at).where(MediaSighting.media_id == copy.media_id,
                                                                    MediaSighting.url == copy.url))
    return seen or dt.datetime.min.replace(tzinfo=dt.timezone.utc)


def run(engine: Engine, http: HttpClient, settings: TakedownSettings, *, now: dt.datetime | None = None,
        finder: RecipientFinder | None = None, actor: str = "system") -> TrackReport:
    """One tracking pass: re-check, then deadlines and escalation, then re-uploads."""
    now = now or utcnow()
    report = recheck(engine, http, now=now, actor=actor)
    escalate_overdue(engine, settings, now=now, finder=finder, actor=actor, report=report)
    flag_reuploads(engine, settings, now=now, actor=actor, report=report)
    return report
