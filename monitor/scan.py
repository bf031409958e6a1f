"""Recording what the monitor saw: media (once per distinct bytes), where it was seen, and matches.

Every function here is idempotent: recording the same picture, sighting or match again changes
nothing but the "last seen" time, so a rescan or a retried batch never duplicates a match. The
connectors' pipeline (issue 5) records through these same functions.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable, Sequence

from sqlalchemy import select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from hashes.batch import hash_paths
from hashes.compute import HashOptions
from hashes.errors import HashingError
from hashes.hashfile import hash_json
from hashes.types import ImageHashes
from monitor import audit, db
from monitor.matching import FoundMatch
from monitor.models import Match, Media, MediaSighting, MediaStatus, utcnow


#: Rows looked up per IN (...) query: well under every database's parameter limit.
_CHUNK = 500


@dataclass(frozen=True)
class RecordedMatch:
    """A match as stored, and whether this call created it."""

    match_id: int
    found: FoundMatch
    new: bool


def record_media_batch(session: Session, items: Sequence[tuple[ImageHashes, str, str | None]], *, source: str,
                       now: dt.datetime) -> dict[str, int]:
    """Record a batch of hashed pictures and where each was seen; returns {sha256: media id}.

    Idempotent: a media row per distinct bytes, a sighting per URL of it, "last seen" moved on for
    the known ones, in a handful of statements for the whole batch: INSERT ... ON CONFLICT DO NOTHING, so bytes recorded concurrently by another
    process are simply found.
    """
    if not items:
        return {}
    first: dict[str, tuple[ImageHashes, str, str | None]] = {}
    for image, url, page_url in items:
        first.setdefault(image.sha256, (image, url, page_url))
    shas = list(first)
    ids = _media_ids(session, shas)
    missing = [first[h] for h in shas if h not in ids]
    known = list(ids.values())
    if missing:
        session.execute(_insert_ignore(session, Media.__table__, ["sha256"]), [
            {"sha256": im.sha256, "md5": im.md5, "url": url, "page_url": page_url, "source": source,
             "width": im.width, "height": im.height, "format": im.format,
             "hashes": [hash_json(h) for h in im.hashes if h.algorithm not in ("md5", "sha256")],
             "status": MediaStatus.HASHED.value, "error": None, "first_seen_at": now, "last_seen_at": now}
            for im, url, page_url in missing])
        ids = _media_ids(session, shas)
    if known:
        session.execute(update(Media).where(Media.id.in_(known)).values(last_seen_at=now)
                        .execution_options(synchronize_session=False))
    sightings: dict[tuple[int, str], tuple[str, str | None]] = {}
    for image, url, page_url in items:
        digest = hashlib.sha256(url.encode("utf-8", "surrogatepass")).hexdigest()
        sightings.setdefault((ids[image.sha256], digest), (url, page_url))
    ms = MediaSighting
    existing = set()
    media_list = sorted({m for m, _ in sightings})
    for i in range(0, len(media_list), _CHUNK):
        existing.update(tuple(r) for r in session.execute(select(ms.media_id, ms.url_sha256).where(
            ms.media_id.in_(media_list[i:i + _CHUNK]))))
    new = [k for k in sightings if k not in existing]
    if new:
        session.execute(_insert_ignore(session, ms.__table__, ["url_sha256", "media_id"]), [
            {"media_id": m, "url": sightings[(m, d)][0], "url_sha256": d, "page_url": sightings[(m, d)][1],
             "source": source, "first_seen_at": now, "last_seen_at": now, "gone_at": None} for m, d in new])
    seen_again = [k for k in sightings if k in existing]
    for m, d in seen_again:
        session.execute(update(ms).where(ms.media_id == m, ms.url_sha256 == d)
                        .values(last_seen_at=now, gone_at=None).execution_options(synchronize_session=False))
    return ids


def _media_ids(session: Session, shas: Sequence[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for i in range(0, len(shas), _CHUNK):
        out.update(session.execute(select(Media.sha256, Media.id).where(Media.sha256.in_(shas[i:i + _CHUNK]))).all())
    return out


def _insert_ignore(session: Session, table, conflict: list[str]):
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert(table).on_conflict_do_nothing(index_elements=conflict)


def record_matches(session: Session, media_id: int, found: list[FoundMatch], *, actor: str) -> list[RecordedMatch]:
    """Store each found match once (unique per media, registered hash and region); audit new ones."""
    out = []
    for f in found:
        existing = session.scalar(select(Match).where(
            Match.media_id == media_id, Match.registered_hash_id == f.registered_hash_id,
            Match.query_region == f.evidence.query_region))
        if existing is not None:
            out.append(RecordedMatch(existing.id, f, False))
            continue
        try:
            with session.begin_nested():
                row = Match(media_id=media_id, registered_hash_id=f.registered_hash_id, case_id=f.case_id,
                            algorithm=f.evidence.algorithm, distance=f.evidence.distance,
                            query_region=f.evidence.query_region)
                session.add(row)
                session.flush()
        except IntegrityError:  # recorded concurrently by another worker
            existing = session.scalar(select(Match).where(
                Match.media_id == media_id, Match.registered_hash_id == f.registered_hash_id,
                Match.query_region == f.evidence.query_region))
            out.append(RecordedMatch(existing.id, f, False))
            continue
        audit.append(session, "match.recorded", actor, f.case_id,
                     {"match_id": row.id, "media_id": media_id, "algorithm": f.evidence.algorithm,
                      "distance": f.evidence.distance, "rule": f.evidence.rule})
        out.append(RecordedMatch(row.id, f, True))
    return out


def record_failure(session: Session, *, sha256: str | None, md5: str | None, url: str | None, error_code: str) -> None:
    """Remember bytes that could not be hashed, so they are not fetched and retried forever."""
    if sha256 is None or session.scalar(select(Media.id).where(Media.sha256 == sha256)) is not None:
        return
    now = utcnow()
    session.add(Media(sha256=sha256, md5=md5 or "", url=url, status=MediaStatus.FAILED.value, error=error_code[:32],
                      hashes=[], first_seen_at=now, last_seen_at=now))


if TYPE_CHECKING:
    from monitor.matching import Matcher


@dataclass
class ScanReport:
    """What a scan of local files found."""

    scanned: int = 0
    failures: list[dict] = field(default_factory=list)
    matches: list[dict] = field(default_factory=list)

    @property
    def new_matches(self) -> int:
        """Matches this scan recorded for the first time."""
        return sum(1 for m in self.matches if m["new"])

    def as_dict(self) -> dict:
        """The JSON form printed by `ncii scan --json`."""
        return {"scanned": self.scanned, "failed": len(self.failures), "errors": self.failures,
                "matches": self.matches, "new_matches": self.new_matches}


#: Pictures matched and recorded per transaction: small enough that an interruption loses
#: little, large enough that the index is queried in efficient batches.
BATCH = 32


def scan_files(engine: Engine, matcher: "Matcher", files: Iterable[Path], *, actor: str, jobs: int | None = None,
               source: str = "local-scan", on_item: Callable[[Path, HashingError | None], None] | None = None) -> ScanReport:
    """Hash `files` on every core, match them and record media and matches, a batch per transaction."""
    report = ScanReport()
    pending: list[tuple[Path, ImageHashes]] = []

    def flush() -> None:
        if not pending:
            return
        with db.transaction(engine) as s:
            found = matcher.match_many(s, [im for _, im in pending])
            urls = [path.resolve().as_uri() for path, _ in pending]
            ids = record_media_batch(s, [(image, url, None) for (_, image), url in zip(pending, urls)],
                                     source=source, now=utcnow())
            for (path, image), matches in zip(pending, found):
                media_id = ids[image.sha256]
                for rec in record_matches(s, media_id, matches, actor=actor):
                    ev = rec.found.evidence
                    report.matches.append({
                        "file": str(path), "case": rec.found.case_reference, "algorithm": ev.algorithm,
                        "distance": ev.distance, "max_distance": ev.max_distance, "rule": ev.rule,
                        "query_region": ev.query_region, "registered_region": ev.registered_region,
                        "match_id": rec.match_id, "media_id": media_id, "new": rec.new})
        report.scanned += len(pending)
        pending.clear()

    for path, result in hash_paths(list(files), HashOptions(regions="query"), jobs=jobs):
        if isinstance(result, HashingError):
            report.failures.append({"file": str(path), "error": result.code, "problem": result.problem})
        else:
            pending.append((path, result))
            if len(pending) >= BATCH:
                flush()
        if on_item is not None:
            on_item(path, result if isinstance(result, HashingError) else None)
    flush()
    return report
