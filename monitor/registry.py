"""The registry: cases and their registered hashes (called by the CLI and, later, the web app).

Every function takes a Session and leaves committing to the caller, so a change and its audit
record always commit or roll back together: use ``with db.transaction(engine) as s: ...``.
Functions that change things lock the case row (PostgreSQL) or run in a BEGIN IMMEDIATE write
transaction (SQLite), so a registration can never slip in beside a withdrawal.

Low-quality PDQ: a PDQ hash whose quality is below ``min_pdq_quality`` (default 50, Meta's and
HMA's threshold) describes a nearly featureless picture and would match unrelated images. It is
rejected with its reason by default; with ``keep_low_quality=True`` it is stored but flagged
(``low_quality``) and never matched, so the advocate keeps a record that it was submitted.
A PDQ without a quality (HMA and StopNCII files carry none) is accepted: it cannot be judged.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Iterator, NamedTuple

from sqlalchemy import Select, and_, delete, func, select, update
from sqlalchemy.orm import Session, undefer

from hashes.errors import InvalidHash
from hashes.hashfile import HashFile
from hashes.signals import PDQ, get_signal_type
from monitor import audit, changes
from monitor.changes import ActiveHash, HashChange, subscribe
from monitor.crypto import hash_secret, verify_secret
from monitor.identifiers import InvalidReference, new_reference, new_secret, normalize_reference, normalize_secret
from monitor.iso3166 import normalize_country
from monitor.models import (Case, CaseNote, CaseStatus, Match, MatchReview, NoticeConsent, RegisteredHash,
                            RegistryState, Submission, WatchTerm, utcnow)
from monitor.settings import DEFAULT_PDQ_MIN_QUALITY

MAX_LABEL_CHARS = 200
MAX_CONTACT_CHARS = 2000
MAX_REGION_CHARS = 64

__all__ = [
    "RegistryError", "CaseNotFound", "InvalidCaseReference", "CaseNotActive", "CaseWithdrawn", "CaseClosed",
    "InvalidCaseData", "NewCase", "RejectedHash", "RegistrationSummary", "CaseSummary", "WithdrawalSummary",
    "ActiveHash", "HashChange", "create_case", "register_hash_file", "show_case", "list_cases",
    "withdraw_case", "verify_case_secret", "active_hashes", "active_hashes_query", "hash_generation",
    "subscribe", "value_to_bytes",
]


# --- errors --------------------------------------------------------------------------------------

class RegistryError(Exception):
    """Base of the registry's errors; `code` is a stable machine-readable name."""

    code = "registry-error"


class InvalidCaseReference(RegistryError):
    """The text given cannot be a case reference at all (a typo, not an unknown case)."""

    code = "invalid-reference"


class CaseNotFound(RegistryError):
    """No case has this reference."""

    code = "case-not-found"


class CaseNotActive(RegistryError):
    """The case no longer accepts hashes."""

    code = "case-not-active"


class CaseWithdrawn(CaseNotActive):
    """The victim withdrew the case: nothing may be registered to it."""

    code = "case-withdrawn"


class CaseClosed(CaseNotActive):
    """The case was closed: nothing may be registered to it."""

    code = "case-closed"


class InvalidCaseData(RegistryError, ValueError):
    """A field of a new case is invalid (e.g. an unknown country code)."""

    code = "invalid-case-data"


# --- results -------------------------------------------------------------------------------------

class NewCase(NamedTuple):
    """A new case's reference and its secret (the only time the secret exists outside the victim)."""

    reference: str
    secret: str


@dataclass(frozen=True)
class RejectedHash:
    """One hash of a hash file that was not registered, and why."""

    image: int
    algorithm: str
    region: str
    code: str  # "low-quality", "invalid-hash"
    reason: str


@dataclass
class RegistrationSummary:
    """What register_hash_file did."""

    reference: str
    submission_id: int
    images: int = 0
    added: int = 0
    duplicates: int = 0  # already registered to this case (or repeated within the file)
    flagged: int = 0  # kept but excluded from matching (low-quality PDQ with keep_low_quality)
    rejected: list[RejectedHash] = field(default_factory=list)
    names_ignored: int = 0  # file names in the hash file, deliberately not stored

    @property
    def partial(self) -> bool:
        """True when some hashes were rejected (the CLI exits 1)."""
        return bool(self.rejected)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        d = asdict(self)
        d["partial"] = self.partial
        return d


@dataclass
class CaseSummary:
    """A case and its counts; label/contact only when personal data was asked for."""

    reference: str
    status: str
    jurisdiction: str | None
    involves_minor: bool
    created_at: str
    updated_at: str
    purged_at: str | None
    hashes_active: int = 0  # not withdrawn, not flagged: matched while the case is active
    hashes_flagged: int = 0  # stored, never matched (low quality)
    hashes_withdrawn: int = 0
    images: int = 0
    submissions: int = 0
    algorithms: dict[str, int] = field(default_factory=dict)  # hashes_active per algorithm
    matches: dict[str, int] = field(default_factory=dict)  # per review status
    label: str | None = None
    contact: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


@dataclass
class WithdrawalSummary:
    """What withdraw_case did."""

    reference: str
    status: str
    already_withdrawn: bool
    hashes_withdrawn: int
    purged: bool
    hashes_deleted: int = 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


# --- cases ---------------------------------------------------------------------------------------

def create_case(session: Session, *, jurisdiction: str | None = None, involves_minor: bool = False,
                label: str | None = None, contact: str | None = None, actor: str) -> NewCase:
    """Open a case; returns its reference and its secret, which is stored only as a slow hash."""
    country = None
    if jurisdiction is not None and jurisdiction.strip():
        try:
            country = normalize_country(jurisdiction)
        except ValueError as e:
            raise InvalidCaseData(f"jurisdiction: {e}") from None
    label = _optional_text(label, "label", MAX_LABEL_CHARS)
    contact = _optional_text(contact, "contact", MAX_CONTACT_CHARS)
    reference = _unused_reference(session)
    secret = new_secret()
    now = utcnow()
    case = Case(created_at=now, updated_at=now, reference=reference, secret_hash=hash_secret(normalize_secret(secret)),
                status=CaseStatus.ACTIVE.value, jurisdiction=country, involves_minor=bool(involves_minor),
                label=label, contact=contact)
    session.add(case)
    session.flush()
    audit.append(session, "case.created", actor, case.id, {
        "jurisdiction": country, "involves_minor": case.involves_minor,
        "has_label": label is not None, "has_contact": contact is not None,
    })
    return NewCase(reference, secret)


def _optional_text(value: str | None, name: str, limit: int) -> str | None:
    if value is None or not value.strip():
        return None
    value = value.strip()
    if len(value) > limit:
        raise InvalidCaseData(f"{name}: at most {limit} characters (got {len(value)})")
    return value


def _unused_reference(session: Session) -> str:
    # 40 random bits: a clash is very unlikely, but cheap to rule out (the unique constraint
    # is the final guard).
    for _ in range(20):
        ref = new_reference()
        if session.scalar(select(Case.id).where(Case.reference == ref)) is None:
            return ref
    raise RegistryError("could not find an unused case reference")  # pragma: no cover


def _get_case(session: Session, reference: str, lock: str | None = None) -> Case:
    try:
        ref = normalize_reference(reference)
    except InvalidReference as e:
        raise InvalidCaseReference(str(e)) from None
    q = select(Case).where(Case.reference == ref)
    if lock == "share":
        q = q.with_for_update(read=True)  # blocks a concurrent withdrawal until we commit
    elif lock == "update":
        q = q.with_for_update()
    case = session.scalar(q)
    if case is None:
        raise CaseNotFound(f"no case {ref}")
    return case


def _require_active(case: Case) -> None:
    if case.status == CaseStatus.WITHDRAWN:
        raise CaseWithdrawn(f"case {case.reference} was withdrawn: nothing can be registered to it")
    if case.status == CaseStatus.CLOSED:
        raise CaseClosed(f"case {case.reference} is closed: nothing can be registered to it")


def show_case(session: Session, reference: str, *, actor: str | None = None,
              personal_data: bool = False) -> CaseSummary:
    """A case's status and counts; with personal_data=True also its label and contact (audited)."""
    case = _get_case(session, reference)
    summary = _summaries(session, [case])[0]
    if personal_data:
        if not actor:
            raise ValueError("an actor is required to read a case's personal data (the access is audited)")
        session.refresh(case, ["label", "contact"])
        summary.label, summary.contact = case.label, case.contact
        audit.append(session, "case.personal_data_viewed", actor, case.id, {})
    return summary


def list_cases(session: Session, *, status: str | None = None, labels: bool = False,
               actor: str | None = None) -> list[CaseSummary]:
    """Every case (optionally of one status), oldest first; labels only when asked for (audited)."""
    q = select(Case).order_by(Case.id)
    if status is not None:
        q = q.where(Case.status == CaseStatus(status).value)
    if labels:
        if not actor:
            raise ValueError("an actor is required to read case labels (the access is audited)")
        q = q.options(undefer(Case.label))
    cases = list(session.scalars(q))
    summaries = _summaries(session, cases)
    if labels:
        for summary, case in zip(summaries, cases):
            summary.label = case.label
        audit.append(session, "cases.labels_viewed", actor, None, {"cases": len(cases)})
    return summaries


def _summaries(session: Session, cases: list[Case]) -> list[CaseSummary]:
    ids = [c.id for c in cases]
    out = {c.id: CaseSummary(reference=c.reference, status=c.status, jurisdiction=c.jurisdiction,
                             involves_minor=c.involves_minor, created_at=c.created_at.isoformat(),
                             updated_at=c.updated_at.isoformat(),
                             purged_at=c.purged_at.isoformat() if c.purged_at else None) for c in cases}
    if not ids:
        return []
    rh = RegisteredHash
    counts = session.execute(
        select(rh.case_id, rh.algorithm, rh.withdrawn_at.is_(None), rh.low_quality, func.count())
        .where(rh.case_id.in_(ids)).group_by(rh.case_id, rh.algorithm, rh.withdrawn_at.is_(None), rh.low_quality))
    for case_id, algorithm, current, low, n in counts:
        s = out[case_id]
        if not current:
            s.hashes_withdrawn += n
        elif low:
            s.hashes_flagged += n
        else:
            s.hashes_active += n
            s.algorithms[algorithm] = s.algorithms.get(algorithm, 0) + n
    # Hashes of one original share (submission, image number); SQLite has no COUNT(DISTINCT a, b).
    images = select(rh.case_id, rh.submission_id, rh.image_number).where(rh.case_id.in_(ids)).distinct().subquery()
    for case_id, n in session.execute(select(images.c.case_id, func.count()).group_by(images.c.case_id)):
        out[case_id].images = n
    for case_id, n in session.execute(select(Submission.case_id, func.count()).where(Submission.case_id.in_(ids))
                                      .group_by(Submission.case_id)):
        out[case_id].submissions = n
    for case_id, status, n in session.execute(select(Match.case_id, Match.review_status, func.count())
                                              .where(Match.case_id.in_(ids))
                                              .group_by(Match.case_id, Match.review_status)):
        out[case_id].matches[status] = n
    return [out[i] for i in ids]


def verify_case_secret(session: Session, reference: str, secret: str) -> bool:
    """True if `secret` is this case's secret; same cost whether or not the case exists."""
    try:
        case = _get_case(session, reference)
        stored: str | None = case.secret_hash
    except (InvalidCaseReference, CaseNotFound):
        stored = None
    return verify_secret(stored, normalize_secret(secret))


def withdraw_case(session: Session, reference: str, *, purge: bool = False, actor: str) -> WithdrawalSummary:
    """Stop matching a case now (its hashes get withdrawn_at); purge also deletes its hashes.

    Purging deletes the hash rows and erases every piece of personal data the case holds: its
    label and contact details, its watch terms, its advocates' notes and review notes, and the
    victim's name and contact kept for notices. The case row (reference, status, dates), its
    submissions' counts, its matches (now without a hash), notices already sent (a record of
    what was asserted, to whom) and the audit log remain.
    """
    case = _get_case(session, reference, lock="update")
    now = utcnow()
    was_active = case.status == CaseStatus.ACTIVE
    already = case.status == CaseStatus.WITHDRAWN
    rh = RegisteredHash
    matchable = (list(session.scalars(select(rh.id).where(rh.case_id == case.id, rh.withdrawn_at.is_(None),
                                                         rh.low_quality.is_(False)).order_by(rh.id)))
                 if was_active else [])
    withdrawn = session.execute(update(rh).where(rh.case_id == case.id, rh.withdrawn_at.is_(None))
                                .values(withdrawn_at=now).execution_options(synchronize_session=False)).rowcount
    if not already:
        previous = case.status
        case.status = CaseStatus.WITHDRAWN.value
        case.updated_at = now
        session.flush()
        audit.append(session, "case.withdrawn", actor, case.id,
                     {"previous_status": previous, "hashes_withdrawn": withdrawn})
    deleted = 0
    if purge and case.purged_at is None:
        # Matches keep their review history: the database sets their registered_hash_id to NULL.
        deleted = session.execute(delete(rh).where(rh.case_id == case.id)
                                  .execution_options(synchronize_session=False)).rowcount
        case.label = None
        case.contact = None
        erased = _erase_personal_rows(session, case.id)
        case.purged_at = now
        case.updated_at = now
        session.flush()
        audit.append(session, "case.purged", actor, case.id,
                     {"hashes_deleted": deleted, "personal_data_erased": True, **erased})
    if withdrawn or deleted:
        _bump_generation(session)
    changes.queue(session, HashChange("removed", tuple(matchable)))
    return WithdrawalSummary(reference=case.reference, status=case.status, already_withdrawn=already,
                             hashes_withdrawn=withdrawn, purged=case.purged_at is not None, hashes_deleted=deleted)


def _erase_personal_rows(session: Session, case_id: int) -> dict[str, int]:
    """Delete or blank the rows of later features that hold a case's personal data; the counts."""
    counts = {
        "watch_terms_deleted": session.execute(delete(WatchTerm).where(WatchTerm.case_id == case_id)
                                               .execution_options(synchronize_session=False)).rowcount,
        "notes_deleted": session.execute(delete(CaseNote).where(CaseNote.case_id == case_id)
                                         .execution_options(synchronize_session=False)).rowcount,
        # The decision and its reason code stay (the review history); free-text notes go.
        "review_notes_erased": session.execute(
            update(MatchReview).where(MatchReview.note.is_not(None),
                                      MatchReview.match_id.in_(select(Match.id).where(Match.case_id == case_id)))
            .values(note=None).execution_options(synchronize_session=False)).rowcount,
    }
    consent = session.get(NoticeConsent, case_id)
    if consent is not None:
        consent.victim_name = None
        consent.victim_contact = None
        consent.name_in_notices = False
    return counts


# --- hashes --------------------------------------------------------------------------------------

def value_to_bytes(algorithm: str, value: str) -> bytes:
    """A hex hash value as big-endian bytes, ceil(bits/8) long (the registered_hashes.value_bytes form)."""
    bits = get_signal_type(algorithm).bits
    return int(value, 16).to_bytes((bits + 7) // 8, "big")


def register_hash_file(session: Session, case_ref: str, hash_file: HashFile, *, actor: str,
                       min_pdq_quality: int = DEFAULT_PDQ_MIN_QUALITY,
                       keep_low_quality: bool = False) -> RegistrationSummary:
    """Register a parsed hash file's hashes to an active case; duplicates add nothing."""
    case = _get_case(session, case_ref, lock="share")
    _require_active(case)
    rh = RegisteredHash
    existing = {(a, v, r) for a, v, r in session.execute(select(rh.algorithm, rh.value, rh.region)
                                                         .where(rh.case_id == case.id))}
    submission = Submission(case_id=case.id, actor=actor, source_format=hash_file.source_format[:16],
                            images=len(hash_file.images), added=0, duplicates=0, rejected=0, flagged=0)
    session.add(submission)
    session.flush()
    summary = RegistrationSummary(reference=case.reference, submission_id=submission.id, images=len(hash_file.images))
    rows: list[RegisteredHash] = []
    for image in hash_file.images:
        if image.name is not None:
            summary.names_ignored += 1  # a file name can identify the victim: never stored
        for h in image.hashes:
            region = h.region or "full"
            try:
                signal = get_signal_type(h.algorithm)
                value = signal.validate(h.value)
                if len(region) > MAX_REGION_CHARS:
                    raise InvalidHash(f"region label longer than {MAX_REGION_CHARS} characters")
            except InvalidHash as e:
                summary.rejected.append(RejectedHash(image.number, str(h.algorithm)[:16], region[:MAX_REGION_CHARS],
                                                     "invalid-hash", str(e)))
                continue
            low = signal is PDQ and h.quality is not None and h.quality < min_pdq_quality
            if low and not keep_low_quality:
                summary.rejected.append(RejectedHash(
                    image.number, signal.name, region, "low-quality",
                    f"PDQ quality {h.quality} is below {min_pdq_quality}: the picture has too little detail to "
                    "match reliably (register with --keep-low-quality to store it unmatched)"))
                continue
            key = (signal.name, value, region)
            if key in existing:
                summary.duplicates += 1
                continue
            existing.add(key)
            rows.append(rh(case_id=case.id, submission_id=submission.id, image_number=image.number,
                           algorithm=signal.name, value=value, value_bytes=value_to_bytes(signal.name, value),
                           quality=h.quality, region=region, low_quality=low))
            summary.flagged += int(low)
    session.add_all(rows)
    session.flush()
    summary.added = len(rows)
    submission.added, submission.duplicates = summary.added, summary.duplicates
    submission.rejected, submission.flagged = len(summary.rejected), summary.flagged
    if rows:
        _bump_generation(session)
    audit.append(session, "hashes.registered", actor, case.id, {
        "submission_id": submission.id, "images": summary.images, "added": summary.added,
        "duplicates": summary.duplicates, "rejected": len(summary.rejected), "flagged": summary.flagged,
    })
    new = tuple(ActiveHash(r.id, r.algorithm, r.value_bytes, case.id) for r in rows if not r.low_quality)
    changes.queue(session, HashChange("added", tuple(a.id for a in new), new))
    return summary


def active_hashes_query(algorithm: str | None = None) -> Select[tuple[int, str, bytes, int]]:
    """SELECT id, algorithm, value_bytes, case_id of every hash that should be matched now."""
    rh = RegisteredHash
    q = (select(rh.id, rh.algorithm, rh.value_bytes, rh.case_id)
         .join(Case, and_(Case.id == rh.case_id, Case.status == CaseStatus.ACTIVE.value))
         .where(rh.withdrawn_at.is_(None), rh.low_quality.is_(False))
         .order_by(rh.id))
    if algorithm is not None:
        q = q.where(rh.algorithm == algorithm)
    return q


def active_hashes(session: Session, algorithm: str | None = None, batch: int = 10_000) -> Iterator[ActiveHash]:
    """Stream the hashes to match (for building the index), in id order, without loading all at once."""
    result = session.execute(active_hashes_query(algorithm).execution_options(yield_per=batch))
    for id_, alg, value_bytes, case_id in result:
        yield ActiveHash(id_, alg, bytes(value_bytes), case_id)


def hash_generation(session: Session) -> int:
    """A counter that moves whenever registered hashes change (for processes that hold an index)."""
    return session.scalar(select(RegistryState.hash_generation).where(RegistryState.id == 1)) or 0


def _bump_generation(session: Session) -> None:
    session.execute(update(RegistryState).where(RegistryState.id == 1)
                    .values(hash_generation=RegistryState.hash_generation + 1))

