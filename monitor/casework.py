"""Case management for the web app: who may see a case, assignment, notes, jurisdiction and the
minor flag, and a case's timeline from the audit log. Every change is audited in its transaction.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from monitor import audit
from monitor.iso3166 import normalize_country
from monitor.models import AuditEntry, Case, CaseAssignment, CaseNote, Role, User, utcnow
from monitor.registry import InvalidCaseData

MAX_NOTE_CHARS = 5000


def visible_case_ids(session: Session, user: User) -> set[int] | None:
    """The ids of the cases `user` may see; None means every case (an admin)."""
    if user.role == Role.ADMIN:
        return None
    return set(session.scalars(select(CaseAssignment.case_id).where(CaseAssignment.user_id == user.id)))


def can_see(session: Session, user: User, case_id: int) -> bool:
    """True if `user` may see the case with this id."""
    ids = visible_case_ids(session, user)
    return ids is None or case_id in ids


def assignee(session: Session, case_id: int) -> User | None:
    """The advocate the case is assigned to, if any."""
    return session.scalar(select(User).join(CaseAssignment, CaseAssignment.user_id == User.id)
                          .where(CaseAssignment.case_id == case_id))


def assignees(session: Session, case_ids: list[int]) -> dict[int, str]:
    """Case id -> assigned user name, for lists."""
    if not case_ids:
        return {}
    return dict(session.execute(select(CaseAssignment.case_id, User.username)
                                .join(User, User.id == CaseAssignment.user_id)
                                .where(CaseAssignment.case_id.in_(case_ids))).all())


def assign(session: Session, case: Case, username: str | None, *, actor: str) -> User | None:
    """Assign the case to an active user (or unassign with None/empty); audited."""
    current = session.get(CaseAssignment, case.id)
    if not username:
        if current is not None:
            session.delete(current)
            session.flush()
            audit.append(session, "case.unassigned", actor, case.id, {"user_id": current.user_id})
        return None
    user = session.scalar(select(User).where(User.username == username.strip().lower()))
    if user is None or user.disabled:
        raise InvalidCaseData(f"no active user named {username.strip().lower()!r}")
    if current is None:
        session.add(CaseAssignment(case_id=case.id, user_id=user.id, assigned_at=utcnow()))
    elif current.user_id != user.id:
        current.user_id, current.assigned_at = user.id, utcnow()
    else:
        return user
    session.flush()
    audit.append(session, "case.assigned", actor, case.id, {"user_id": user.id})
    return user


def add_note(session: Session, case: Case, body: str, *, actor: str) -> CaseNote:
    """Add an (encrypted) note to a case; audited without its text."""
    body = (body or "").strip()
    if not body:
        raise InvalidCaseData("the note is empty")
    if len(body) > MAX_NOTE_CHARS:
        raise InvalidCaseData(f"note: at most {MAX_NOTE_CHARS} characters")
    note = CaseNote(case_id=case.id, author=actor[:128], created_at=utcnow(), body=body)
    session.add(note)
    session.flush()
    audit.append(session, "case.note_added", actor, case.id, {"note_id": note.id})
    return note


def notes(session: Session, case_id: int) -> list[CaseNote]:
    """A case's notes, oldest first."""
    return list(session.scalars(select(CaseNote).where(CaseNote.case_id == case_id).order_by(CaseNote.id)))


def update_case(session: Session, case: Case, *, jurisdiction: str | None = None, involves_minor: bool | None = None,
                actor: str) -> dict[str, Any]:
    """Change a case's jurisdiction and/or minor flag; returns what changed (audited)."""
    changed: dict[str, Any] = {}
    if jurisdiction is not None:
        try:
            country = normalize_country(jurisdiction) if jurisdiction.strip() else None
        except ValueError as e:
            raise InvalidCaseData(f"jurisdiction: {e}") from None
        if country != case.jurisdiction:
            changed["jurisdiction"] = country
            case.jurisdiction = country
    if involves_minor is not None and bool(involves_minor) != case.involves_minor:
        changed["involves_minor"] = bool(involves_minor)
        case.involves_minor = bool(involves_minor)
    if changed:
        case.updated_at = utcnow()
        session.flush()
        audit.append(session, "case.updated", actor, case.id, changed)
    return changed


def timeline(session: Session, case_id: int, limit: int = 200) -> list[AuditEntry]:
    """The case's audit records, newest first."""
    return list(session.scalars(select(AuditEntry).where(AuditEntry.case_id == case_id)
                                .order_by(AuditEntry.id.desc()).limit(limit)))
