"""Notifications of registered-hash changes, delivered after the transaction commits.

The in-memory match index (hashes/index.py: add(ids, hashes), remove(ids)) subscribes here so
that a withdrawal stops matching at once in this process. Other processes poll
registry.hash_generation() and reload when it moves (the index can also diff active_hashes()).

Listeners run after COMMIT only (a rolled-back change is never announced) and in the committing
thread; a listener that raises is logged and does not affect the others or the caller.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable, Literal

from sqlalchemy import event
from sqlalchemy.orm import Session

log = logging.getLogger(__name__)
_PENDING = "ncii_hash_changes"


@dataclass(frozen=True)
class ActiveHash:
    """A registered hash the index should search: what the index loader needs, nothing more."""

    id: int
    algorithm: str
    value_bytes: bytes
    case_id: int


@dataclass(frozen=True)
class HashChange:
    """Hashes that became matchable ("added") or stopped being matchable ("removed")."""

    kind: Literal["added", "removed"]
    ids: tuple[int, ...]
    hashes: tuple[ActiveHash, ...] = ()  # for "added": the new hashes (same order as ids)


HashListener = Callable[[HashChange], None]
_listeners: list[HashListener] = []


def subscribe(listener: HashListener) -> Callable[[], None]:
    """Call `listener` after every committed change; returns a function that unsubscribes it."""
    _listeners.append(listener)

    def unsubscribe() -> None:
        if listener in _listeners:
            _listeners.remove(listener)

    return unsubscribe


def queue(session: Session, change: HashChange) -> None:
    """Announce `change` once the session's transaction commits (dropped if it rolls back)."""
    if change.ids:
        session.info.setdefault(_PENDING, []).append(change)


@event.listens_for(Session, "after_commit")
def _deliver(session: Session) -> None:
    for change in session.info.pop(_PENDING, []):
        for listener in list(_listeners):
            try:
                listener(change)
            except Exception:  # one broken subscriber must not hide the change from the others
                log.exception("hash change listener %r failed on a %s of %d hashes",
                              listener, change.kind, len(change.ids))


@event.listens_for(Session, "after_rollback")
def _discard(session: Session) -> None:
    session.info.pop(_PENDING, None)
