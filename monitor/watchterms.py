"""Watch terms: names, user names and handles an advocate watches for in one case.

Search-capable sources (Bluesky search, Reddit search) with ``use_watch_terms`` search for the
terms of every *active* case; a candidate found by a term carries only the case id. Terms are
personal data: stored encrypted (``WatchTerm.term``), never logged, never put in alerts, audit
details (they name the term id) or error messages. Reading them back is audited.

The function API is what the CLI (`ncii watch`) and the web app use. Like the registry, functions
take a Session and leave committing to the caller.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from connectors.base import SearchTerm
from monitor import audit
from monitor.models import Case, CaseStatus, WatchTerm, utcnow
from monitor.registry import CaseNotFound, _get_case, _require_active

KINDS = ("name", "username", "handle")
MAX_TERM_LENGTH = 200
MAX_TERMS_PER_CASE = 100


class WatchTermError(ValueError):
    """A bad term (empty, too long, unknown kind) or an unknown term id; names the problem,
    never the term."""

    code = "invalid-watch-term"


class WatchTermNotFound(LookupError):
    code = "watch-term-not-found"


@dataclass
class TermSummary:
    """A watch term as shown to the case's advocates."""

    id: int
    kind: str
    term: str
    created_at: str
    created_by: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _clean(term: str) -> str:
    text = " ".join((term or "").split())
    if not text:
        raise WatchTermError("a watch term is empty")
    if len(text) > MAX_TERM_LENGTH:
        raise WatchTermError(f"a watch term is longer than {MAX_TERM_LENGTH} characters")
    if not text.isprintable():
        raise WatchTermError("a watch term contains control characters")
    return text


def add_terms(session: Session, case_ref: str, terms: Iterable[str], *, kind: str = "name",
              actor: str) -> list[TermSummary]:
    """Add terms to an active case (duplicates of its existing terms are skipped); returns the
    new ones."""
    if kind not in KINDS:
        raise WatchTermError(f"kind must be one of {', '.join(KINDS)}")
    case = _get_case(session, case_ref, lock="update")
    _require_active(case)
    cleaned = [_clean(t) for t in terms]
    if not cleaned:
        raise WatchTermError("no watch terms given")
    existing = list(session.scalars(select(WatchTerm).where(WatchTerm.case_id == case.id)))
    known = {w.term.casefold() for w in existing}
    added: list[WatchTerm] = []
    for text in cleaned:
        if text.casefold() in known:
            continue
        known.add(text.casefold())
        added.append(WatchTerm(case_id=case.id, term=text, kind=kind, created_at=utcnow(),
                               created_by=actor[:128]))
    if len(existing) + len(added) > MAX_TERMS_PER_CASE:
        raise WatchTermError(f"a case can have at most {MAX_TERMS_PER_CASE} watch terms")
    session.add_all(added)
    session.flush()
    if added:
        audit.append(session, "watch.terms_added", actor, case.id,
                     {"term_ids": [w.id for w in added], "kind": kind})
    return [_summary(w) for w in added]


def list_terms(session: Session, case_ref: str, *, actor: str) -> list[TermSummary]:
    """The case's terms, decrypted (any case status); the reading is audited."""
    case = _get_case(session, case_ref)
    rows = list(session.scalars(select(WatchTerm).where(WatchTerm.case_id == case.id)
                                .order_by(WatchTerm.id)))
    audit.append(session, "watch.terms_viewed", actor, case.id, {"count": len(rows)})
    return [_summary(w) for w in rows]


def remove_term(session: Session, case_ref: str, term_id: int, *, actor: str) -> None:
    """Delete one term of the case (the personal data goes with the row)."""
    case = _get_case(session, case_ref, lock="update")
    row = session.scalar(select(WatchTerm).where(WatchTerm.id == term_id,
                                                 WatchTerm.case_id == case.id))
    if row is None:
        raise WatchTermNotFound(f"case {case.reference} has no watch term {term_id}")
    session.delete(row)
    session.flush()
    audit.append(session, "watch.term_removed", actor, case.id, {"term_id": term_id})


def count_terms(session: Session, case_ids: Iterable[int]) -> dict[int, int]:
    """{case id: number of terms} without decrypting anything."""
    ids = list(case_ids)
    out = {i: 0 for i in ids}
    for cid in session.scalars(select(WatchTerm.case_id).where(WatchTerm.case_id.in_(ids))):
        out[cid] += 1
    return out


def active_terms_for_search(session: Session) -> list[SearchTerm]:
    """Every term of every active case, for a search-capable source's poll (not audited per
    poll: the monitor itself reads them; nothing is logged or stored)."""
    rows = session.execute(select(WatchTerm.id, WatchTerm.case_id, WatchTerm.term)
                           .join(Case, Case.id == WatchTerm.case_id)
                           .where(Case.status == CaseStatus.ACTIVE.value, Case.purged_at.is_(None))
                           .order_by(WatchTerm.id))
    return [SearchTerm(case_id=cid, term_id=tid, term=term) for tid, cid, term in rows if term]


def _summary(w: WatchTerm) -> TermSummary:
    return TermSummary(id=w.id, kind=w.kind, term=w.term,
                       created_at=w.created_at.isoformat(timespec="seconds"),
                       created_by=w.created_by)


__all__ = ["add_terms", "list_terms", "remove_term", "count_terms", "active_terms_for_search",
           "TermSummary", "WatchTermError", "WatchTermNotFound", "CaseNotFound", "KINDS"]
