"""Matching found pictures against every active registered hash.

One exact Hamming index per perceptual algorithm the policy uses, built from the database at
start-up and kept in step with the registry: changes committed in this process arrive through
``monitor.changes``; changes made by other processes are noticed through the registry's
generation counter (``refresh()``). Exact hashes (SHA-256, MD5) are looked up in the database.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np
from sqlalchemy import and_, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from hashes.index import HammingIndex, MultiIndexHashIndex
from hashes.policy import Evidence, MatchPolicy, default_policy
from hashes.signals import get_signal_type
from hashes.types import HashValue, ImageHashes
from monitor import changes, db, registry
from monitor.models import Case, CaseStatus, RegisteredHash


@dataclass(frozen=True)
class FoundMatch:
    """A found picture the policy calls a copy of one registered original."""

    case_id: int
    case_reference: str
    registered_hash_id: int  # the hash whose comparison is the evidence
    evidence: Evidence
    reason: str


@dataclass(frozen=True)
class _RegisteredRow:
    id: int
    case_id: int
    reference: str
    original: tuple[int, int]  # (submission, image number): the hashes of one original picture
    value: HashValue


class Matcher:
    """In-memory indexes of the registered hashes plus the policy that turns hits into matches."""

    def __init__(self, engine: Engine, policy: MatchPolicy | None = None) -> None:
        self.engine = engine
        self.policy = policy or default_policy()
        self._lock = threading.RLock()
        self._indexes: dict[str, HammingIndex] = {}
        self._generation = -1
        self._unsubscribe = changes.subscribe(self._on_change)
        self.reload()

    # -- keeping the indexes current

    @property
    def perceptual_algorithms(self) -> tuple[str, ...]:
        """Algorithms matched through an index (the policy's non-exact ones)."""
        return tuple(a for a in self.policy.algorithms if get_signal_type(a).kind == "perceptual")

    def reload(self) -> None:
        """Rebuild every index from the database's active hashes."""
        with db.session(self.engine) as s:
            generation = registry.hash_generation(s)
            indexes = {alg: self._build(s, alg) for alg in self.perceptual_algorithms}
        with self._lock:
            self._indexes, self._generation = indexes, generation

    def _build(self, session: Session, algorithm: str) -> HammingIndex:
        bits = get_signal_type(algorithm).bits
        # The tables are laid out for the narrowest radius queries use (for PDQ, 40: the found
        # picture's mirrored and rotated variants, 7 of its ~9 hashes); wider queries scan.
        radii = self.policy.query_radii(algorithm).values()
        radius = min(radii) if radii else self.policy.index_radius(algorithm)

        def chunks():
            ids: list[int] = []
            values: list[bytes] = []
            for h in registry.active_hashes(session, algorithm):
                ids.append(h.id)
                values.append(h.value_bytes)
                if len(ids) >= 100_000:
                    yield np.asarray(ids, np.int64), values
                    ids, values = [], []
            if ids:
                yield np.asarray(ids, np.int64), values

        return MultiIndexHashIndex.from_chunks(chunks(), bits=bits, radius=radius)

    def refresh(self) -> bool:
        """Reload if another process changed the registered hashes; True when it reloaded."""
        with db.session(self.engine) as s:
            generation = registry.hash_generation(s)
        if generation != self._generation:
            self.reload()
            return True
        return False

    def _on_change(self, change: changes.HashChange) -> None:
        with self._lock:
            if change.kind == "removed":
                for index in self._indexes.values():
                    index.remove(list(change.ids))
            else:
                by_alg: dict[str, tuple[list[int], list[bytes]]] = defaultdict(lambda: ([], []))
                for h in change.hashes:
                    if h.algorithm in self._indexes:
                        by_alg[h.algorithm][0].append(h.id)
                        by_alg[h.algorithm][1].append(h.value_bytes)
                for alg, (ids, values) in by_alg.items():
                    self._indexes[alg].add(ids, values)

    def close(self) -> None:
        """Stop listening for registry changes."""
        self._unsubscribe()

    def __len__(self) -> int:
        return sum(len(i) for i in self._indexes.values())

    # -- matching

    def match(self, session: Session, image: ImageHashes) -> list[FoundMatch]:
        """The registered originals the policy says `image` is a copy of (best evidence each)."""
        return self.match_many(session, [image])[0]

    def match_many(self, session: Session, images: Sequence[ImageHashes]) -> list[list[FoundMatch]]:
        """`match` for a batch of pictures, with one index query per algorithm for the batch."""
        hits: list[list[tuple[HashValue, int, int]]] = [[] for _ in images]
        with self._lock:
            for alg, index in self._indexes.items():
                if not len(index):
                    continue
                # Each query hash at the radius its region kind needs (policy.query_radius), one
                # batch per radius.
                by_radius: dict[int, tuple[list[int], list[HashValue]]] = defaultdict(lambda: ([], []))
                for i, im in enumerate(images):
                    for h in im.of(alg, region=None):
                        radius = self.policy.query_radius(alg, h.region)
                        if radius >= 0:
                            by_radius[radius][0].append(i)
                            by_radius[radius][1].append(h)
                for radius, (owners, queries) in sorted(by_radius.items()):
                    results = index.search_batch([q.value for q in queries], radius=radius)
                    for owner, q, found in zip(owners, queries, results):
                        hits[owner].extend((q, rid, d) for rid, d in found)
        self._add_exact_hits(session, images, hits)
        rows = self._registered_rows(session, {rid for per in hits for _, rid, _ in per})
        return [self._decide(per, rows) for per in hits]

    def _add_exact_hits(self, session: Session, images: Sequence[ImageHashes],
                        hits: list[list[tuple[HashValue, int, int]]]) -> None:
        """Registered files with the same bytes (SHA-256/MD5): one query per algorithm per batch."""
        for alg in ("sha256", "md5"):
            if alg not in self.policy.algorithms:
                continue
            wanted: dict[str, list[tuple[int, HashValue]]] = defaultdict(list)
            for i, im in enumerate(images):
                q = im.first(alg)
                if q is not None:
                    wanted[q.value].append((i, q))
            values = sorted(wanted)
            for start in range(0, len(values), 500):
                rows = session.execute(select(RegisteredHash.id, RegisteredHash.value).where(
                    RegisteredHash.algorithm == alg, RegisteredHash.value.in_(values[start:start + 500])))
                for rid, value in rows:
                    for i, q in wanted[value]:
                        hits[i].append((q, rid, 0))

    def _registered_rows(self, session: Session, ids: set[int]) -> dict[int, _RegisteredRow]:
        if not ids:
            return {}
        rh = RegisteredHash
        out: dict[int, _RegisteredRow] = {}
        id_list = sorted(ids)
        for start in range(0, len(id_list), 500):
            # Re-checked here so a hash withdrawn by another process a moment ago never matches,
            # even before this process's index has caught up.
            stmt = (select(rh.id, rh.case_id, Case.reference, rh.submission_id, rh.image_number, rh.algorithm,
                           rh.value, rh.quality, rh.region)
                    .join(Case, and_(Case.id == rh.case_id, Case.status == CaseStatus.ACTIVE.value))
                    .where(rh.id.in_(id_list[start:start + 500]), rh.withdrawn_at.is_(None), rh.low_quality.is_(False)))
            for r in session.execute(stmt):
                out[r.id] = _RegisteredRow(r.id, r.case_id, r.reference, (r.submission_id, r.image_number),
                                           HashValue(r.algorithm, r.value, r.quality, r.region))
        return out

    def _decide(self, hits: Iterable[tuple[HashValue, int, int]], rows: dict[int, _RegisteredRow]) -> list[FoundMatch]:
        by_original: dict[tuple[int, tuple[int, int]], list[tuple[HashValue, _RegisteredRow, int]]] = defaultdict(list)
        for q, rid, d in hits:
            row = rows.get(rid)
            if row is not None:
                by_original[(row.case_id, row.original)].append((q, row, d))
        found: list[FoundMatch] = []
        # One match per registered original: a collage of two of a victim's pictures is two matches.
        for (case_id, _), group in by_original.items():
            decision = self.policy.decide((q, row.value, d) for q, row, d in group)
            if not decision.matched or decision.evidence is None:
                continue
            ev = decision.evidence
            row = next(r for q, r, d in group
                       if q.algorithm == ev.algorithm and q.region == ev.query_region
                       and r.value.region == ev.registered_region and d == ev.distance)
            found.append(FoundMatch(case_id, row.reference, row.id, ev, decision.reason))
        return sorted(found, key=lambda m: (m.case_reference, m.registered_hash_id))
