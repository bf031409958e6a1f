"""Recording what the monitor saw: media (once per distinct bytes), where it was seen, and matches.

Every function here is idempotent: recording the same picture, sighting or match again changes
nothing but the "last seen" time, so a rescan or a retried batch never duplicates a match. The
connectors' pipeline (issue 5) records through these same functions.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable

from sqlalchemy import select
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


@dataclass(frozen=True)
class RecordedMatch:
    """A match as stored, and whether this call created it."""

    match_id: int
    found: FoundMatch
    new: bool


def record_media(session: Session, image: ImageHashes, *, url: str | None, page_url: str | None = None,
                 source: str | None = None) -> Media:
    """The media row for these bytes (created on first sight) with this sighting recorded."""
    now = utcnow()
    media = session.scalar(select(Media).where(Media.sha256 == image.sha256))
    if media is None:
        try:
            with session.begin_nested():  # another worker may insert the same bytes concurrently
                media = Media(sha256=image.sha256, md5=image.md5, url=url, page_url=page_url, source=source,
                              width=image.width, height=image.height, format=image.format,
                              hashes=[hash_json(h) for h in image.hashes
                                      if h.algorithm not in ("md5", "sha256")],
                              status=MediaStatus.HASHED.value, first_seen_at=now, last_seen_at=now)
                session.add(media)
                session.flush()
        except IntegrityError:
            media = session.scalar(select(Media).where(Media.sha256 == image.sha256))
            assert media is not None
    else:
        media.last_seen_at = now
    if url:
        _record_sighting(session, media, url, page_url, source, now)
    return media


def _record_sighting(session: Session, media: Media, url: str, page_url: str | None, source: str | None, now) -> None:
    digest = hashlib.sha256(url.encode("utf-8", "surrogatepass")).hexdigest()
    sighting = session.scalar(select(MediaSighting).where(MediaSighting.media_id == media.id,
                                                          MediaSighting.url_sha256 == digest))
    if sighting is None:
        try:
            with session.begin_nested():
                session.add(MediaSighting(media_id=media.id, url=url, url_sha256=digest, page_url=page_url,
                                          source=source, first_seen_at=now, last_seen_at=now))
                session.flush()
        except IntegrityError:
            pass
    else:
        sighting.last_seen_at = now
        sighting.gone_at = None


def record_matches(session: Session, media: Media, found: list[FoundMatch], *, actor: str) -> list[RecordedMatch]:
    """Store each found match once (unique per media, registered hash and region); audit new ones."""
    out = []
    for f in found:
        existing = session.scalar(select(Match).where(
            Match.media_id == media.id, Match.registered_hash_id == f.registered_hash_id,
            Match.query_region == f.evidence.query_region))
        if existing is not None:
            out.append(RecordedMatch(existing.id, f, False))
            continue
        try:
            with session.begin_nested():
                row = Match(media_id=media.id, registered_hash_id=f.registered_hash_id, case_id=f.case_id,
                            algorithm=f.evidence.algorithm, distance=f.evidence.distance,
                            query_region=f.evidence.query_region)
                session.add(row)
                session.flush()
        except IntegrityError:  # recorded concurrently by another worker
            existing = session.scalar(select(Match).where(
                Match.media_id == media.id, Match.registered_hash_id == f.registered_hash_id,
                Match.query_region == f.evidence.query_region))
            out.append(RecordedMatch(existing.id, f, False))
            continue
        audit.append(session, "match.recorded", actor, f.case_id,
                     {"match_id": row.id, "media_id": media.id, "algorithm": f.evidence.algorithm,
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
            for (path, image), matches in zip(pending, found):
                media = record_media(s, image, url=path.resolve().as_uri(), source=source)
                for rec in record_matches(s, media, matches, actor=actor):
                    ev = rec.found.evidence
                    report.matches.append({
                        "file": str(path), "case": rec.found.case_reference, "algorithm": ev.algorithm,
                        "distance": ev.distance, "max_distance": ev.max_distance, "rule": ev.rule,
                        "query_region": ev.query_region, "registered_region": ev.registered_region,
                        "match_id": rec.match_id, "media_id": media.id, "new": rec.new})
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
