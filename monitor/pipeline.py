"""The monitor's pipeline: poll a source, fetch and hash what is new, match, record, alert.

For each page a connector yields::

    candidates -> drop keys this source listed before (source_candidates, per source + key)
               -> fetch + SHA-256 + exact dedup + perceptual hashes   (monitor.fetcher.Workers:
                  bounded work in flight, the same bytes never hashed twice; the next page is
                  fetched and hashed while this one is recorded)
               -> ONE transaction: Matcher.match_many, record_media_batch / record_matches, an outbox
                  alert per NEW match, a source_candidates row per candidate (done / retry /
                  failed / skipped) and the connector's cursor for the page

Crash safety: everything a page changes commits in that one transaction, after all the slow
work is done. A crash (or kill -9) before the commit leaves the database as if the page had never
been seen: the cursor still points before it, so the next poll lists the same candidates again
and they are processed then. A crash after the commit loses nothing either: the cursor is past
the page and every candidate of it has its row. Nothing is duplicated: a candidate key is
recorded once per source (unique), media once per SHA-256, a match once per (media, registered
hash, region), an alert once per match; all recorders are idempotent.

Failures of single items never fail the page: a temporary fetch failure (timeout, 5xx, 429, a
broken connection, a crashed hashing process) becomes a ``retry`` row, fetched again after
``item_retry_base`` doubling, at most ``item_max_attempts`` times; a permanent one (404, not an
image, too large, refused by the SSRF guard or robots.txt) and a poison image (truncated,
corrupt, a decompression bomb) become ``failed`` rows, and a poison image's bytes are recorded
as failed media, so the same bytes found anywhere else are never decoded again.

Failures of the whole source (the feed is down, unparseable) are the scheduler's business:
``poll`` records them in the source's health and backs off (monitor.sources).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import threading
import time
from concurrent.futures import Future, wait, FIRST_COMPLETED
from dataclasses import asdict, dataclass, field
from typing import Any, Iterable, Sequence

from sqlalchemy import bindparam, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from connectors.base import Candidate, Connector, Page, SourceSettings
from connectors.errors import ConnectorError
from connectors.http import HttpClient, HttpSettings
from monitor import alerts, db, sources
from monitor.fetcher import ItemResult, KnownMedia, Workers, image_from_stored
from monitor.matching import Matcher
from monitor.models import CandidateStatus, Media, MediaStatus, Source, SourceCandidate, utcnow
from monitor.scan import record_failure, record_matches, record_media_batch
from monitor.settings import MonitorSettings, Settings

log = logging.getLogger(__name__)

ACTOR = "monitor"
#: Candidate keys looked up per query, and retry rows handled per transaction.
_CHUNK = 500


@dataclass
class PollReport:
    """What one poll of one source did (`ncii monitor once --json` prints a list of these)."""

    source: str
    ok: bool = True
    busy: bool = False  # another process was polling it: skipped
    interrupted: bool = False  # stopped (shutdown) before the poll finished; the rest comes next time
    pages: int = 0
    listed: int = 0  # candidates the connector listed
    new: int = 0  # not listed by this source before
    hashed: int = 0  # new bytes, perceptually hashed
    reused: int = 0  # bytes already known: their stored hashes were matched, nothing rehashed
    retried: int = 0  # earlier temporary failures tried again
    retry: int = 0  # temporary failures, to be tried again
    failed: int = 0  # given up: permanent failures and poison images
    skipped: int = 0  # videos (not hashed yet)
    matches: int = 0  # matches of the pictures handled (new or recorded before)
    new_matches: int = 0
    alerts: int = 0  # alerts queued (one per new match)
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)
    errors: list[dict[str, str]] = field(default_factory=list)  # per item: url, code, problem
    error: dict[str, Any] | None = None  # the source as a whole failed
    match_list: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["matches_found"] = d.pop("match_list")
        d["errors"] = d["errors"][:50]
        d["notes"] = d["notes"][:50]
        return d


def http_client(settings: MonitorSettings) -> HttpClient:
    """The process's safe HTTP client, configured from the monitor settings."""
    return HttpClient(HttpSettings(contact_url=settings.contact_url, min_interval=settings.http_min_interval,
                                   retries=settings.http_retries, allow_hosts=settings.allow_hosts,
                                   allow_loopback=settings.allow_loopback))


def key_digest(key: str) -> str:
    """sha256 hex of a candidate key (keys can be long URLs)."""
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def stored_candidate(c: Candidate) -> dict[str, Any]:
    """What is kept to fetch a candidate again: no post text, no author (data minimisation)."""
    return {"media_url": c.media_url, "page_url": c.page_url, "source_kind": c.source_kind,
            "media_type": c.media_type.value, "key": c.key, "extra": dict(c.extra),
            "posted_at": c.posted_at.isoformat() if c.posted_at else None}


_LOOKUP = (select(Media.id, Media.status, Media.error, Media.md5, Media.hashes, Media.width, Media.height, Media.format)
           .where(Media.sha256 == bindparam("sha")))


@dataclass
class _Prepared:
    """A page whose new candidates are being fetched and hashed."""

    page: Page
    new: list[tuple[str, Candidate]]
    futures: list[Future]


class Interrupted(Exception):
    """The stop event was set while a page was in progress (it was abandoned, not committed)."""


class Pipeline:
    """Polls sources through the real connectors and records what they found. Thread-safe: the
    scheduler runs several sources at once through one Pipeline (one source at a time each)."""

    def __init__(self, engine: Engine, matcher: Matcher, http: HttpClient, workers: Workers, *,
                 settings: MonitorSettings | None = None, actor: str = ACTOR,
                 stop: threading.Event | None = None) -> None:
        self.engine = engine
        self.matcher = matcher
        self.http = http
        self.workers = workers
        self.settings = settings or MonitorSettings()
        self.actor = actor
        self.stop = stop or threading.Event()
        self.owner = sources.lease_owner()

    @classmethod
    def from_settings(cls, engine: Engine, settings: Settings, *, stop: threading.Event | None = None,
                      http: HttpClient | None = None, workers: Workers | None = None,
                      matcher: Matcher | None = None) -> "Pipeline":
        m = settings.monitor
        return cls(engine, matcher or Matcher(engine), http or http_client(m),
                   workers or Workers(fetch_threads=m.fetch_workers, hash_processes=m.hash_workers,
                                      hash_timeout=m.hash_timeout),
                   settings=m, stop=stop)

    def close(self) -> None:
        """Stop the workers, the HTTP client and the matcher's subscription."""
        self.workers.close(wait=False)
        self.http.close()
        self.matcher.close()

    # -- one source ---------------------------------------------------------------------------

    def poll(self, source_id: int) -> PollReport:
        """Poll one source now: every page, then its due retries; health and back-off recorded."""
        started = time.monotonic()
        with db.session(self.engine) as s:
            source = s.get(Source, source_id)
            if source is None:
                return PollReport(source=f"#{source_id}", ok=False,
                                  error={"code": "source-not-found", "message": "the source was removed"})
            name = source.name
        report = PollReport(source=name)
        if not sources.claim(self.engine, source_id, self.owner):
            report.busy = True
            report.ok = False
            report.error = {"code": "busy", "message": "another monitor process is polling this source"}
            return report
        try:
            self._poll(source_id, report)
        except Interrupted:
            report.interrupted = True
        except Exception as e:  # noqa: BLE001 - any failure is the source's, never the service's
            report.ok = False
            report.error = {"code": sources.error_code(e), "message": sources.error_text(e),
                            "retryable": bool(getattr(e, "retryable", False))}
            if not isinstance(e, ConnectorError):
                log.exception("source %s: internal error while polling", name)
            else:
                log.warning("source %s: %s", name, sources.error_text(e))
            try:
                with db.transaction(self.engine) as s:
                    src = s.get(Source, source_id)
                    if src is not None:
                        sources.record_failure(src, e, utcnow(), max_backoff=self.settings.source_max_backoff)
            except Exception:  # the database itself is down: the next poll finds the source due
                log.exception("source %s: could not record the failure", name)
        finally:
            try:
                sources.release(self.engine, source_id, self.owner)
            except Exception:
                log.exception("source %s: could not release its lease", name)
            report.seconds = round(time.monotonic() - started, 3)
        return report

    def _poll(self, source_id: int, report: PollReport) -> None:
        self.matcher.refresh()  # hashes registered or withdrawn by other processes
        with db.session(self.engine) as s:
            source = s.get(Source, source_id)
            connector, settings = sources.connector_settings(s, source)
            cursor = source.cursor
        pages = connector.poll(settings, cursor, self.http)
        # One page of look-ahead: page N+1 is fetched and hashed while page N is recorded, so the
        # hashing processes never wait for the database. Pages still commit one by one, in order,
        # each with its own cursor.
        pending: _Prepared | None = None
        started: list[_Prepared] = []  # prepared pages not yet committed (at most two)
        try:
            try:
                for page in pages:
                    self._check_stop()
                    prepared = self._prepare(source_id, connector, settings, page, report)
                    started.append(prepared)
                    if pending is not None:
                        self._commit(source_id, pending, report)
                        started.remove(pending)
                    pending = prepared
            except ConnectorError:
                # The source failed part way: the pages it did yield are valid and are kept.
                if pending is not None and not self.stop.is_set():
                    self._commit(source_id, pending, report)
                    started.remove(pending)
                    pending = None
                raise
            if pending is not None:
                self._commit(source_id, pending, report)
                started.remove(pending)
        finally:
            pages.close()
            for abandoned in started:  # stopping or failing: nothing of these was committed
                for f in abandoned.futures:
                    f.cancel()
        self._retries(source_id, connector, settings, report)
        with db.transaction(self.engine) as s:
            src = s.get(Source, source_id)
            if src is not None:
                sources.record_success(src, utcnow())

    def _check_stop(self) -> None:
        if self.stop.is_set():
            raise Interrupted()

    # -- one page -----------------------------------------------------------------------------

    def _prepare(self, source_id: int, connector: Connector, settings: SourceSettings, page: Page,
                 report: PollReport) -> "_Prepared":
        """Drop what this source listed before; start fetching and hashing the rest."""
        report.pages += 1
        report.listed += len(page.candidates)
        report.notes.extend(page.notes)
        unique: dict[str, Candidate] = {}
        for c in page.candidates:
            unique.setdefault(key_digest(c.key), c)
        with db.session(self.engine) as s:
            seen = self._seen(s, source_id, list(unique))
        new = [(k, c) for k, c in unique.items() if k not in seen]
        report.new += len(new)
        return _Prepared(page, new, self._submit([c for _, c in new], connector, settings))

    def _commit(self, source_id: int, prepared: "_Prepared", report: PollReport) -> None:
        """Wait for a page's items, then record them and its cursor in one transaction."""
        results = self._wait(prepared.futures)
        new = prepared.new
        now = utcnow()
        with db.transaction(self.engine) as s:
            source = s.scalar(select(Source).where(Source.id == source_id).with_for_update())
            if source is None:
                raise sources.SourceNotFound("the source was removed while it was being polled")
            # Recorded meanwhile (the previous page listed the same key, or another process did
            # while our lease had lapsed): that row stands, this one is not added twice.
            again = self._seen(s, source_id, [k for k, _ in new])
            rows: list[tuple[SourceCandidate, ItemResult]] = []
            for (digest, c), result in zip(new, results):
                if digest in again:
                    continue
                again.add(digest)
                row = SourceCandidate(source_id=source_id, key_sha256=digest, media_url=c.media_url[:10000],
                                      page_url=c.page_url, candidate=stored_candidate(c), attempts=0,
                                      first_seen_at=now, status=CandidateStatus.DONE.value)
                s.add(row)
                rows.append((row, result))
            self._record(s, source, rows, report, now)
            source.cursor = prepared.page.cursor
            sources.renew(source, self.owner, now)

    def _seen(self, session: Session, source_id: int, digests: Sequence[str]) -> set[str]:
        out: set[str] = set()
        sc = SourceCandidate
        for i in range(0, len(digests), _CHUNK):
            out.update(session.scalars(select(sc.key_sha256).where(sc.source_id == source_id,
                                                                   sc.key_sha256.in_(digests[i:i + _CHUNK]))))
        return out

    def _submit(self, candidates: Sequence[Candidate], connector: Connector,
                settings: SourceSettings) -> list[Future]:
        """Fetch and hash every candidate on the workers (futures of ItemResult, in order)."""
        def fetch(c: Candidate):
            return connector.fetch_media(c, settings, self.http)

        return [self.workers.submit(i, c, fetch, self._lookup, self.stop) for i, c in enumerate(candidates)]

    def _wait(self, futures: list[Future]) -> list[ItemResult]:
        """The items' results; abandons them (Interrupted) as soon as the stop event is set."""
        pending = set(futures)
        try:
            while pending:
                if self.stop.is_set():
                    raise Interrupted()
                _, pending = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
        except BaseException:
            for f in futures:
                f.cancel()
            raise
        results = [f.result() for f in futures]
        if any(r.outcome == "skipped" and isinstance(r.error, InterruptedError) for r in results):
            raise Interrupted()
        return results

    def _run(self, candidates: Sequence[Candidate], connector: Connector,
             settings: SourceSettings) -> list[ItemResult]:
        """Fetch and hash every candidate and wait for them all."""
        return self._wait(self._submit(candidates, connector, settings)) if candidates else []

    def _lookup(self, sha256: str) -> KnownMedia | None:
        """Media already recorded with these bytes (runs in fetch threads; one indexed read)."""
        with self.engine.connect() as conn:
            row = conn.execute(_LOOKUP, {"sha": sha256}).first()
        if row is None:
            return None
        image = None
        if row.status == MediaStatus.HASHED.value:
            image = image_from_stored(sha256, row.md5, row.hashes or [], row.width, row.height, row.format)
        return KnownMedia(row.id, row.status, row.error, image)

    # -- recording ----------------------------------------------------------------------------

    def _record(self, s: Session, source: Source, rows: Sequence[tuple[SourceCandidate, ItemResult]],
                report: PollReport, now: dt.datetime) -> None:
        """Apply item results to their rows, in the caller's transaction."""
        matchable = [(row, r) for row, r in rows if r.image is not None]
        found = self.matcher.match_many(s, [r.image for _, r in matchable]) if matchable else []
        # The sighting is where the source showed it (the post's URL for it), not a CDN redirect.
        media_ids = record_media_batch(s, [(r.image, r.candidate.media_url, r.candidate.page_url)
                                           for _, r in matchable], source=source.name, now=now)
        for (row, r), matches in zip(matchable, found):
            c = r.candidate
            media_id = media_ids[r.image.sha256]
            row.status, row.media_id, row.error, row.next_attempt_at = CandidateStatus.DONE.value, media_id, None, None
            row.last_attempt_at = now
            row.attempts = (row.attempts or 0) + 1
            if r.outcome == "hashed":
                report.hashed += 1
            else:
                report.reused += 1
            if not matches:
                continue
            for rec in record_matches(s, media_id, matches, actor=self.actor):
                report.matches += 1
                ev = rec.found.evidence
                report.match_list.append({
                    "case": rec.found.case_reference, "match_id": rec.match_id, "media_id": media_id,
                    "url": c.media_url, "page_url": c.page_url, "algorithm": ev.algorithm, "distance": ev.distance,
                    "max_distance": ev.max_distance, "rule": ev.rule, "query_region": ev.query_region,
                    "registered_region": ev.registered_region, "new": rec.new})
                if rec.new:
                    report.new_matches += 1
                    alerts.enqueue(s, rec, page_url=c.page_url, source=source)
                    report.alerts += 1
        for row, r in rows:
            if r.image is not None:
                continue
            row.last_attempt_at = now
            row.attempts = (row.attempts or 0) + 1
            code = r.error_code
            problem = " ".join(str(r.error or code).split())
            if r.outcome == "skipped":
                row.status, row.error = CandidateStatus.SKIPPED.value, f"{code}: {problem}"[:300]
                report.skipped += 1
                continue
            if r.outcome == "hash-failed":  # a poison image: its bytes are never decoded again
                record_failure(s, sha256=r.sha256, md5=r.md5, url=r.url, error_code=code)
                s.flush()
                row.media_id = s.scalar(select(Media.id).where(Media.sha256 == r.sha256))
                temporary = False
            elif r.outcome == "known-failed":
                row.media_id = r.known.media_id if r.known else None
                temporary = False
            else:  # fetch-failed, crashed
                temporary = r.outcome == "crashed" or bool(getattr(r.error, "retryable", False))
            if temporary and row.attempts < self.settings.item_max_attempts:
                row.status = CandidateStatus.RETRY.value
                delay = self.settings.item_retry_base * 2 ** (row.attempts - 1)
                retry_at = getattr(r.error, "retry_at", None)
                due = now + dt.timedelta(seconds=delay)
                if isinstance(retry_at, dt.datetime) and retry_at.tzinfo is not None and retry_at > due:
                    due = retry_at
                row.next_attempt_at = due
                report.retry += 1
            else:
                row.status, row.next_attempt_at = CandidateStatus.FAILED.value, None
                if temporary:
                    problem = f"gave up after {row.attempts} attempts: {problem}"
                report.failed += 1
            row.error = f"{code}: {problem}"[:300]
            report.errors.append({"url": row.media_url[:500], "code": code, "problem": problem[:300]})

    # -- retries ------------------------------------------------------------------------------

    def _retries(self, source_id: int, connector: Connector, settings: SourceSettings,
                 report: PollReport, *, batches: int = 20) -> None:
        """Fetch again, once each, this source's items whose retry time has come (bounded per poll)."""
        after = 0
        for _ in range(batches):
            self._check_stop()
            now = utcnow()
            with db.session(self.engine) as s:
                due = list(s.scalars(select(SourceCandidate).where(
                    SourceCandidate.source_id == source_id, SourceCandidate.status == CandidateStatus.RETRY.value,
                    SourceCandidate.next_attempt_at <= now, SourceCandidate.id > after)
                    .order_by(SourceCandidate.id).limit(_CHUNK)))
            if not due:
                return
            after = due[-1].id
            candidates = [Candidate.from_dict(row.candidate) for row in due]
            results = self._run(candidates, connector, settings)
            report.retried += len(due)
            now = utcnow()
            with db.transaction(self.engine) as s:
                source = s.scalar(select(Source).where(Source.id == source_id).with_for_update())
                if source is None:
                    return
                rows = []
                for old, result in zip(due, results):
                    row = s.get(SourceCandidate, old.id)
                    if row is not None and row.status == CandidateStatus.RETRY.value:
                        rows.append((row, result))
                self._record(s, source, rows, report, now)
                sources.renew(source, self.owner, now)
            if len(due) < _CHUNK:
                return


def poll_sources(pipeline: Pipeline, source_ids: Iterable[int], *, concurrency: int = 1) -> list[PollReport]:
    """Poll several sources (at most `concurrency` at once); one failing never stops the others."""
    ids = list(source_ids)
    if concurrency <= 1 or len(ids) <= 1:
        out = []
        for sid in ids:
            if pipeline.stop.is_set():
                break
            out.append(pipeline.poll(sid))
        return out
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="ncii-source") as pool:
        return list(pool.map(pipeline.poll, ids))
