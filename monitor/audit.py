"""The append-only audit log: one record per change, hash-chained, written in the change's transaction.

Chain: ``entry_hash = sha256(prev_hash || canonical_json(created_at, case_id, actor, action,
details))`` with ``prev_hash`` of the first entry all zeros. Deleting, altering or reordering
entries breaks the chain, which verify_chain() reports. The database refuses UPDATE and DELETE
on audit_log (triggers from the migration); the ORM refuses them before they reach it.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import event, select, update
from sqlalchemy.orm import ORMExecuteState, Session, UOWTransaction

from monitor.models import AuditEntry, RegistryState, utcnow

GENESIS = "0" * 64
#: Keys that would name personal data or hash values; details must refer to them by id instead.
_FORBIDDEN_KEYS = frozenset({"label", "contact", "secret", "secret_hash", "name", "email", "phone",
                             "hash", "value", "value_bytes", "url", "page_url"})
_HEXISH = re.compile(r"^[0-9a-fA-F]{16,}$")
_MAX_STRING = 200


class AuditLogImmutable(RuntimeError):
    """Something tried to change or delete an audit record."""


class UnsafeAuditDetails(ValueError):
    """Audit details would have stored personal data or a hash value in clear."""


class RegistryNotInitialised(RuntimeError):
    """The registry_state row is missing: the database was not created by the migrations."""


def append(session: Session, action: str, actor: str, case_id: int | None = None,
           details: dict[str, Any] | None = None) -> AuditEntry:
    """Add an audit record to the session's transaction, linked to the previous one."""
    details = dict(details or {})
    check_details(details)
    # Taking the registry_state row lock first makes appends strictly one after another, so two
    # transactions can never link to the same predecessor.
    locked = session.execute(
        update(RegistryState).where(RegistryState.id == 1).values(audit_seq=RegistryState.audit_seq + 1)
    ).rowcount
    if locked != 1:
        raise RegistryNotInitialised("registry_state row missing: create the database with `ncii db upgrade`")
    prev = session.scalar(select(AuditEntry.entry_hash).order_by(AuditEntry.id.desc()).limit(1)) or GENESIS
    entry = AuditEntry(created_at=utcnow(), case_id=case_id, actor=actor, action=action,
                       details=details, prev_hash=prev)
    entry.entry_hash = entry_digest(entry)
    session.add(entry)
    session.flush()  # take the next id now, in chain order
    return entry


def entry_digest(entry: AuditEntry) -> str:
    """SHA-256 over the previous hash and the canonical form of the entry's content."""
    body = {
        "created_at": entry.created_at.isoformat(timespec="microseconds"),
        "case_id": entry.case_id,
        "actor": entry.actor,
        "action": entry.action,
        "details": entry.details,
    }
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(entry.prev_hash.encode("ascii") + canonical.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class ChainReport:
    """Result of verify_chain: ok, how many entries were checked, the first bad entry's id."""

    ok: bool
    checked: int
    first_bad_id: int | None = None
    problem: str | None = None


def verify_chain(session: Session, batch: int = 1000) -> ChainReport:
    """Recompute the whole chain in id order and report the first entry that does not fit."""
    prev, checked, after = GENESIS, 0, 0
    while True:
        rows = session.scalars(select(AuditEntry).where(AuditEntry.id > after)
                               .order_by(AuditEntry.id).limit(batch)).all()
        if not rows:
            return ChainReport(True, checked)
        for entry in rows:
            if entry.prev_hash != prev:
                return ChainReport(False, checked, entry.id, "prev_hash does not match the entry before it")
            if entry_digest(entry) != entry.entry_hash:
                return ChainReport(False, checked, entry.id, "entry_hash does not match the entry's content")
            prev, after, checked = entry.entry_hash, entry.id, checked + 1
        session.expunge_all()  # keep memory flat on long logs


def check_details(details: dict[str, Any]) -> None:
    """Refuse details that could carry personal data or hash values (ids and counts only)."""
    for key, value in details.items():
        if key.lower() in _FORBIDDEN_KEYS:
            raise UnsafeAuditDetails(f"audit details must not contain {key!r}: record an id instead")
        _check_value(key, value)


def _check_value(key: str, value: Any) -> None:
    if value is None or isinstance(value, (bool, int)):
        return
    if isinstance(value, str):
        if len(value) > _MAX_STRING or _HEXISH.match(value):
            raise UnsafeAuditDetails(f"audit detail {key!r} looks like free text or a hash value")
        return
    if isinstance(value, (list, tuple)):
        for item in value:
            _check_value(key, item)
        return
    if isinstance(value, dict):
        check_details(value)
        return
    # Floats would not survive every database's JSON round trip bit for bit, breaking the chain.
    raise UnsafeAuditDetails(f"audit detail {key!r} has unsupported type {type(value).__name__}")


# --- append-only, enforced in the ORM (the migration's triggers enforce it in the database) ---------

@event.listens_for(Session, "before_flush")
def _refuse_changes(session: Session, _ctx: UOWTransaction, _instances: object) -> None:
    for obj in session.deleted:
        if isinstance(obj, AuditEntry):
            raise AuditLogImmutable("audit records cannot be deleted")
    for obj in session.dirty:
        if isinstance(obj, AuditEntry) and session.is_modified(obj):
            raise AuditLogImmutable("audit records cannot be changed")


@event.listens_for(Session, "do_orm_execute")
def _refuse_bulk(state: ORMExecuteState) -> None:
    if (state.is_update or state.is_delete) and getattr(state.statement, "table", None) is not None:
        if state.statement.table.name == AuditEntry.__tablename__:
            raise AuditLogImmutable("audit records cannot be changed or deleted")


__all__ = ["append", "verify_chain", "check_details", "entry_digest", "ChainReport", "AuditLogImmutable",
           "UnsafeAuditDetails", "RegistryNotInitialised", "GENESIS"]
