"""Human review of matches: the queue, and confirm/reject decisions (single and bulk), audited.

A match becomes "confirmed" only here, by a person; takedowns start from confirmed matches
(issue 8 calls `confirm`). Each decision writes a match_reviews row (decision, reason code,
optional note, encrypted) and an audit record in the same transaction.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field
from typing import Any, Iterable, Sequence

from sqlalchemy import case as sql_case
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from monitor import audit
from monitor.models import (Case, Match, MatchReview, Media, MediaSighting, ReviewDecision, ReviewStatus, Source,
                            SourceCandidate, utcnow)

#: Why a match was rejected (or, for confirmations, optional context); shown in the review form.
REJECT_REASONS = {
    "not-a-copy": "Not a copy of the victim's image",
    "different-person": "A different person",
    "not-intimate": "Not intimate / not within scope",
    "duplicate": "Duplicate of another match",
    "other": "Other (see note)",
}
CONFIRM_REASONS = {"copy": "A copy of the victim's image"}
MAX_NOTE_CHARS = 2000
MAX_BULK = 500


class ReviewError(Exception):
    """Base of review errors; `code` is a stable machine-readable name."""

    code = "review-error"


class MatchNotFound(ReviewError):
    """No such match (or not visible to this user)."""

    code = "match-not-found"


class InvalidDecision(ReviewError, ValueError):
    """A decision, reason or note is not acceptable; the message says why."""

    code = "invalid-decision"


@dataclass
class MatchView:
    """One match with everything the review screen shows (never image bytes or hash values)."""

    id: int
    case_reference: str
    case_id: int
    involves_minor: bool
    media_id: int
    media_url: str | None
    page_url: str | None
    source: str | None
    platform: str | None
    posted_at: str | None
    context: str | None
    first_seen_at: str
    last_seen_at: str
    algorithm: str
    distance: int
    query_region: str
    review_status: str
    reviewer: str | None
    reviewed_at: str | None
    created_at: str
    other_places: int = 0
    #: The same picture also matched a case flagged as involving a minor: no preview, whichever case.
    minor_elsewhere: bool = False
    places: list[dict[str, Any]] = field(default_factory=list)
    reviews: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat(timespec="seconds") if value else None


def _query(case_ids: Iterable[int] | None):
    q = (select(Match, Media, Case.reference, Case.involves_minor).select_from(Match)
         .join(Media, Media.id == Match.media_id).join(Case, Case.id == Match.case_id))
    if case_ids is not None:
        q = q.where(Match.case_id.in_(list(case_ids)))
    return q


def list_matches(session: Session, *, case_ids: Iterable[int] | None = None, status: str | None = None,
                 case_id: int | None = None, source: str | None = None, limit: int = 100,
                 offset: int = 0) -> list[MatchView]:
    """Matches, pending first then newest first; case_ids limits them to the cases a user may see."""
    q = _query(case_ids)
    if status:
        q = q.where(Match.review_status == ReviewStatus(status).value)
    if case_id is not None:
        q = q.where(Match.case_id == case_id)
    if source:
        q = q.where(Media.source == source)
    pending_first = sql_case((Match.review_status == ReviewStatus.PENDING.value, 0), else_=1)
    q = q.order_by(pending_first, Match.created_at.desc(), Match.id.desc()).limit(limit).offset(offset)
    return _views(session, session.execute(q).all(), detail=False)


def get_match(session: Session, match_id: int, *, case_ids: Iterable[int] | None = None) -> MatchView:
    """One match with every place its media was seen and its review history."""
    row = session.execute(_query(case_ids).where(Match.id == match_id)).first()
    if row is None:
        raise MatchNotFound(f"no match {match_id}")
    return _views(session, [row], detail=True)[0]


def _views(session: Session, rows: Sequence[Any], *, detail: bool) -> list[MatchView]:
    media_ids = list({r[1].id for r in rows})
    places: dict[int, list[MediaSighting]] = {}
    counts: dict[int, int] = {}
    context: dict[int, tuple[str | None, str | None, str | None]] = {}
    minor_media: set[int] = set()
    if media_ids:
        minor_media = set(session.scalars(select(Match.media_id).join(Case, Case.id == Match.case_id)
                                          .where(Match.media_id.in_(media_ids), Case.involves_minor.is_(True))))
        for mid, n in session.execute(select(MediaSighting.media_id, func.count())
                                      .where(MediaSighting.media_id.in_(media_ids)).group_by(MediaSighting.media_id)):
            counts[mid] = n
        for cand, kind in session.execute(select(SourceCandidate, Source.kind)
                                          .join(Source, Source.id == SourceCandidate.source_id)
                                          .where(SourceCandidate.media_id.in_(media_ids))
                                          .order_by(SourceCandidate.id)):
            if cand.media_id not in context:
                stored = cand.candidate or {}
                extra = stored.get("extra") or {}
                text = stored.get("text") or extra.get("text") or extra.get("alt") or extra.get("title")
                context[cand.media_id] = (kind, stored.get("posted_at"),
                                          str(text)[:1000] if text is not None else None)
        if detail:
            for s in session.scalars(select(MediaSighting).where(MediaSighting.media_id.in_(media_ids))
                                     .order_by(MediaSighting.first_seen_at)):
                places.setdefault(s.media_id, []).append(s)
    out = []
    for match, media, reference, minor in rows:
        platform, posted, text = context.get(media.id, (None, None, None))
        view = MatchView(
            id=match.id, case_reference=reference, case_id=match.case_id, involves_minor=bool(minor),
            media_id=media.id, media_url=media.url, page_url=media.page_url, source=media.source,
            platform=platform, posted_at=posted, context=text,
            first_seen_at=_iso(media.first_seen_at) or "", last_seen_at=_iso(media.last_seen_at) or "",
            algorithm=match.algorithm, distance=match.distance, query_region=match.query_region,
            review_status=match.review_status, reviewer=match.reviewer, reviewed_at=_iso(match.reviewed_at),
            created_at=_iso(match.created_at) or "", other_places=max(0, counts.get(media.id, 1) - 1),
            minor_elsewhere=media.id in minor_media and not minor)
        if detail:
            view.places = [{"url": s.url, "page_url": s.page_url, "source": s.source,
                            "first_seen_at": _iso(s.first_seen_at), "last_seen_at": _iso(s.last_seen_at),
                            "gone_at": _iso(s.gone_at)} for s in places.get(media.id, [])]
            view.reviews = [{"decision": r.decision, "reason": r.reason, "reviewer": r.reviewer,
                             "created_at": _iso(r.created_at), "note": r.note}
                            for r in session.scalars(select(MatchReview).where(MatchReview.match_id == match.id)
                                                     .order_by(MatchReview.id))]
        out.append(view)
    return out


def pending_counts(session: Session, *, case_ids: Iterable[int] | None = None) -> dict[str, dict[str, int]]:
    """Pending matches per case reference and per source (the dashboard)."""
    base = (select(Case.reference, Media.source, func.count()).select_from(Match).join(Case, Case.id == Match.case_id)
            .join(Media, Media.id == Match.media_id).where(Match.review_status == ReviewStatus.PENDING.value))
    if case_ids is not None:
        base = base.where(Match.case_id.in_(list(case_ids)))
    per_case: dict[str, int] = {}
    per_source: dict[str, int] = {}
    for reference, source, n in session.execute(base.group_by(Case.reference, Media.source)):
        per_case[reference] = per_case.get(reference, 0) + n
        key = source or "local scan"
        per_source[key] = per_source.get(key, 0) + n
    return {"cases": per_case, "sources": per_source}


# --- decisions -------------------------------------------------------------------------------------

def _check(decision: ReviewDecision, reason: str | None, note: str | None) -> tuple[str | None, str | None]:
    allowed = REJECT_REASONS if decision == ReviewDecision.REJECTED else CONFIRM_REASONS
    reason = (reason or "").strip() or None
    if decision == ReviewDecision.CONFIRMED and reason is None:
        reason = "copy"
    if decision == ReviewDecision.REJECTED and reason is None:
        raise InvalidDecision(f"a rejection needs a reason: one of {', '.join(REJECT_REASONS)}")
    if reason is not None and reason not in allowed:
        raise InvalidDecision(f"reason {reason!r} is not one of {', '.join(allowed)}")
    note = (note or "").strip() or None
    if note is not None and len(note) > MAX_NOTE_CHARS:
        raise InvalidDecision(f"note: at most {MAX_NOTE_CHARS} characters")
    return reason, note


def decide(session: Session, match_ids: Sequence[int], decision: str, *, actor: str, reason: str | None = None,
           note: str | None = None, case_ids: Iterable[int] | None = None) -> list[int]:
    """Confirm or reject matches (all or nothing); returns the ids whose status changed.

    case_ids limits the decision to matches of those cases (the user's); any other id is
    MatchNotFound, so a bulk request cannot touch a case the user may not see.
    """
    try:
        kind = ReviewDecision(decision)
    except ValueError:
        raise InvalidDecision(f"decision must be confirmed or rejected, got {decision!r}") from None
    reason, note = _check(kind, reason, note)
    ids = list(dict.fromkeys(int(i) for i in match_ids))
    if not ids:
        raise InvalidDecision("no match given")
    if any(not 1 <= i <= 2**62 for i in ids):
        raise MatchNotFound("no such match")
    if len(ids) > MAX_BULK:
        raise InvalidDecision(f"at most {MAX_BULK} matches at once")
    q = select(Match).where(Match.id.in_(ids)).with_for_update()
    if case_ids is not None:
        q = q.where(Match.case_id.in_(list(case_ids)))
    matches = {m.id: m for m in session.scalars(q)}
    missing = [i for i in ids if i not in matches]
    if missing:
        raise MatchNotFound(f"no match {missing[0]}" + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""))
    now = utcnow()
    changed = []
    for mid in ids:
        m = matches[mid]
        previous = m.review_status
        m.review_status, m.reviewer, m.reviewed_at = kind.value, actor[:128], now
        session.add(MatchReview(match_id=m.id, reviewer=actor[:128], decision=kind.value, reason=reason, note=note,
                                created_at=now))
        session.flush()
        audit.append(session, f"match.{kind.value}", actor, m.case_id,
                     {"match_id": m.id, "previous_status": previous, "reason": reason, "has_note": note is not None,
                      "bulk": len(ids) > 1})
        if previous != kind.value:
            changed.append(m.id)
    return changed


def confirm(session: Session, match_id: int, *, actor: str, reason: str | None = "copy", note: str | None = None,
            case_ids: Iterable[int] | None = None) -> bool:
    """Confirm that a match is a real copy (a person's decision); True when its status changed."""
    return bool(decide(session, [match_id], ReviewDecision.CONFIRMED, actor=actor, reason=reason, note=note,
                       case_ids=case_ids))


def reject(session: Session, match_id: int, *, actor: str, reason: str, note: str | None = None,
           case_ids: Iterable[int] | None = None) -> bool:
    """Reject a match with a reason; True when its status changed."""
    return bool(decide(session, [match_id], ReviewDecision.REJECTED, actor=actor, reason=reason, note=note,
                       case_ids=case_ids))


def record_view(session: Session, match_id: int, case_id: int, *, actor: str) -> None:
    """Audit that a person looked at a match's details."""
    audit.append(session, "match.viewed", actor, case_id, {"match_id": match_id})
