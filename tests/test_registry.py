"""The registry service on SQLite and PostgreSQL: case lifecycle, registration, withdrawal, purge."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import func, select

from hashes.hashfile import HashFile, HashFileImage, read_hash_file
from hashes.types import HashValue
from monitor import changes, db, registry
from monitor.identifiers import ALPHABET, InvalidReference, normalize_reference
from monitor.models import AuditEntry, Case, RegisteredHash, Submission

PDQ_A = "d8f8f0cee0f4a84f0637022a078f67f0b36e2ed596621e1d33e6339c4e9c9b22"
PDQ_B = "f" * 64
PHASH = "c3a1b26f0e4d3c5a"
MD5 = "0123456789abcdef0123456789abcdef"
REF_RE = re.compile(rf"^NC-[{ALPHABET}]{{4}}-[{ALPHABET}]{{4}}$")


def hash_file_text(extra: str = "", quality_b: int = 80) -> str:
    return (
        '{"format":"ncii-hashes","version":1,"created":"2026-01-01","generator":"test"}\n'
        f'{{"image":1,"name":"IMG_0001.jpg","md5":"{MD5}","hashes":[{{"alg":"pdq","hash":"{PDQ_A}","quality":92}},'
        f'{{"alg":"phash","hash":"{PHASH}"}}]}}\n'
        f'{{"image":2,"hashes":[{{"alg":"pdq","hash":"{PDQ_B}","quality":{quality_b},"region":"crop:0.80:c"}}]}}\n'
        + extra
    )


@pytest.fixture
def case(engine) -> registry.NewCase:
    with db.transaction(engine) as s:
        return registry.create_case(s, jurisdiction="de", label="L", contact="C", actor="test")


def register(engine, ref: str, text: str | HashFile, **kw) -> registry.RegistrationSummary:
    parsed = read_hash_file(text) if isinstance(text, str) else text
    with db.transaction(engine) as s:
        return registry.register_hash_file(s, ref, parsed, actor="test", **kw)


def active_ids(engine) -> set[int]:
    with db.transaction(engine, write=False) as s:
        return {h.id for h in registry.active_hashes(s)}


def actions(engine) -> list[str]:
    with db.transaction(engine, write=False) as s:
        return list(s.scalars(select(AuditEntry.action).order_by(AuditEntry.id)))


# --- cases ---------------------------------------------------------------------------------------

def test_create_case_gives_a_reference_and_a_secret_stored_only_as_a_slow_hash(engine, case):
    ref, secret = case
    assert REF_RE.match(ref)
    assert re.fullmatch(rf"([{ALPHABET}]{{5}}-){{4}}[{ALPHABET}]{{5}}", secret)
    with db.transaction(engine, write=False) as s:
        row = s.scalar(select(Case).where(Case.reference == ref))
        assert row.secret_hash.startswith("$argon2id$") and secret not in row.secret_hash
        assert row.jurisdiction == "DE" and row.status == "active" and not row.involves_minor
        summary = registry.show_case(s, ref)
    assert "secret" not in str(summary.to_dict()).lower()
    assert summary.label is None and summary.contact is None  # personal data only when asked for
    assert actions(engine) == ["case.created"]


def test_case_secret_verification(engine, case):
    ref, secret = case
    with db.transaction(engine, write=False) as s:
        assert registry.verify_case_secret(s, ref, secret)
        assert registry.verify_case_secret(s, ref.lower().replace("-", ""), secret.lower().replace("-", " "))
        assert not registry.verify_case_secret(s, ref, secret[:-1] + ("2" if secret[-1] != "2" else "3"))
        assert not registry.verify_case_secret(s, ref, "")
        assert not registry.verify_case_secret(s, "NC-2222-2222", secret)  # unknown case
        assert not registry.verify_case_secret(s, "not a reference", secret)


@pytest.mark.parametrize("bad", ["UK", "XX", "G", "DEU", "12"])
def test_jurisdiction_must_be_an_iso_country_code(engine, bad):
    with pytest.raises(registry.InvalidCaseData, match="ISO 3166"), db.transaction(engine) as s:
        registry.create_case(s, jurisdiction=bad, actor="test")


def test_minor_flag_and_optional_fields(engine):
    with db.transaction(engine) as s:
        ref, _ = registry.create_case(s, involves_minor=True, actor="test")
        summary = registry.show_case(s, ref, actor="test", personal_data=True)
    assert summary.involves_minor and summary.jurisdiction is None and summary.label is None
    assert actions(engine) == ["case.created", "case.personal_data_viewed"]


def test_unknown_and_malformed_references(engine):
    with db.transaction(engine) as s:
        with pytest.raises(registry.CaseNotFound):
            registry.show_case(s, "NC-2222-2222")
        with pytest.raises(registry.InvalidCaseReference):
            registry.show_case(s, "NC-0000-0000")  # 0 is not in the alphabet
        with pytest.raises(registry.CaseNotFound):
            registry.withdraw_case(s, "NC-2222-2222", actor="test")


# --- registration --------------------------------------------------------------------------------

def test_register_then_register_again_adds_nothing(engine, case):
    first = register(engine, case.reference, hash_file_text())
    assert (first.images, first.added, first.duplicates, first.rejected) == (2, 4, 0, [])
    assert first.names_ignored == 1  # the file name is not stored anywhere
    second = register(engine, case.reference, hash_file_text())
    assert (second.added, second.duplicates, second.rejected) == (0, 4, [])
    with db.transaction(engine, write=False) as s:
        assert s.scalar(select(func.count()).select_from(RegisteredHash)) == 4
        assert s.scalar(select(func.count()).select_from(Submission)) == 2
        rows = s.scalars(select(RegisteredHash).order_by(RegisteredHash.id)).all()
        summary = registry.show_case(s, case.reference)
    assert {(r.algorithm, r.image_number, r.region) for r in rows} == {
        ("md5", 1, "full"), ("pdq", 1, "full"), ("phash", 1, "full"), ("pdq", 2, "crop:0.80:c")}
    pdq = next(r for r in rows if r.algorithm == "pdq" and r.region == "full")
    assert pdq.value == PDQ_A and pdq.value_bytes == bytes.fromhex(PDQ_A) and pdq.quality == 92
    assert summary.hashes_active == 4 and summary.algorithms == {"md5": 1, "pdq": 2, "phash": 1}
    assert actions(engine) == ["case.created", "hashes.registered", "hashes.registered"]


def test_register_an_hma_file(engine, case):
    summary = register(engine, case.reference, f"pdq {PDQ_A}\n# comment\npdq {PDQ_B}\n")
    assert summary.added == 2  # HMA files have no quality: accepted, cannot be judged


def test_low_quality_pdq_is_rejected_by_default_with_the_reason(engine, case):
    summary = register(engine, case.reference, hash_file_text(quality_b=30))
    assert summary.added == 3 and summary.partial
    (rejected,) = summary.rejected
    assert (rejected.image, rejected.algorithm, rejected.code) == (2, "pdq", "low-quality")
    assert "quality 30 is below 50" in rejected.reason


def test_low_quality_pdq_can_be_kept_but_is_never_matched(engine, case):
    summary = register(engine, case.reference, hash_file_text(quality_b=30), keep_low_quality=True)
    assert (summary.added, summary.flagged, summary.rejected) == (4, 1, [])
    with db.transaction(engine, write=False) as s:
        flagged = s.scalar(select(RegisteredHash).where(RegisteredHash.low_quality.is_(True)))
        assert flagged.value == PDQ_B
        assert flagged.id not in {h.id for h in registry.active_hashes(s)}
        assert registry.show_case(s, case.reference).hashes_flagged == 1


def test_quality_threshold_is_an_argument(engine, case):
    assert not register(engine, case.reference, hash_file_text(quality_b=30), min_pdq_quality=20).rejected
    assert register(engine, case.reference, f"pdq {PDQ_A}\n").duplicates == 1


def test_invalid_hashes_built_in_code_are_rejected_per_hash(engine, case):
    # The web app will build HashFile objects itself; the registry re-validates every value.
    hf = HashFile(images=[HashFileImage(1, [HashValue("pdq", PDQ_A, 90), HashValue("sha1", "ab" * 20),
                                            HashValue("phash", "xyz"), HashValue("pdq", PDQ_B, 90, "r" * 65)])])
    summary = register(engine, case.reference, hf)
    assert summary.added == 1
    assert [(r.algorithm, r.code) for r in summary.rejected] == [("sha1", "invalid-hash"), ("phash", "invalid-hash"),
                                                               ("pdq", "invalid-hash")]
    assert "unknown algorithm" in summary.rejected[0].reason


def test_registering_to_a_withdrawn_case_is_refused(engine, case):
    with db.transaction(engine) as s:
        registry.withdraw_case(s, case.reference, actor="test")
    with pytest.raises(registry.CaseWithdrawn):
        register(engine, case.reference, hash_file_text())
    with pytest.raises(registry.CaseNotFound):
        register(engine, "NC-2222-2222", hash_file_text())


def test_the_same_hash_may_belong_to_two_cases(engine, case):
    with db.transaction(engine) as s:
        other, _ = registry.create_case(s, actor="test")
    register(engine, case.reference, f"pdq {PDQ_A}\n")
    assert register(engine, other, f"pdq {PDQ_A}\n").added == 1
    assert len(active_ids(engine)) == 2


def test_value_bytes_are_big_endian_and_sized_by_algorithm():
    assert registry.value_to_bytes("pdq", PDQ_A) == bytes.fromhex(PDQ_A)
    assert registry.value_to_bytes("colorhash", "0" * 10 + "1") == b"\x00" * 5 + b"\x01"  # 42 bits -> 6 bytes
    assert len(registry.value_to_bytes("phash", PHASH)) == 8


# --- withdrawal, purge, notifications ------------------------------------------------------------

def test_withdraw_stops_matching_immediately_and_keeps_the_audit(engine, case):
    register(engine, case.reference, hash_file_text())
    with db.transaction(engine) as s:
        generation = registry.hash_generation(s)
    seen: list[changes.HashChange] = []
    unsubscribe = registry.subscribe(seen.append)
    try:
        before = active_ids(engine)
        assert len(before) == 4
        with db.transaction(engine) as s:
            result = registry.withdraw_case(s, case.reference, actor="test")
            assert seen == []  # nothing announced before the commit
        assert active_ids(engine) == set()
        assert seen == [changes.HashChange("removed", tuple(sorted(before)))]
    finally:
        unsubscribe()
    assert result.hashes_withdrawn == 4 and result.status == "withdrawn" and not result.purged
    with db.transaction(engine, write=False) as s:
        assert registry.hash_generation(s) > generation
        assert s.scalar(select(func.count()).select_from(RegisteredHash)
                        .where(RegisteredHash.withdrawn_at.is_not(None))) == 4
        summary = registry.show_case(s, case.reference)
    assert (summary.status, summary.hashes_active, summary.hashes_withdrawn) == ("withdrawn", 0, 4)
    assert actions(engine) == ["case.created", "hashes.registered", "case.withdrawn"]


def test_withdrawing_twice_changes_nothing(engine, case):
    with db.transaction(engine) as s:
        registry.withdraw_case(s, case.reference, actor="test")
    with db.transaction(engine) as s:
        again = registry.withdraw_case(s, case.reference, actor="test")
    assert again.already_withdrawn and again.hashes_withdrawn == 0
    assert actions(engine) == ["case.created", "case.withdrawn"]


def test_purge_deletes_hashes_and_personal_data_but_keeps_case_and_audit(engine, case):
    register(engine, case.reference, hash_file_text())
    with db.transaction(engine) as s:
        result = registry.withdraw_case(s, case.reference, purge=True, actor="test")
    assert result.purged and result.hashes_deleted == 4
    with db.transaction(engine) as s:
        assert s.scalar(select(func.count()).select_from(RegisteredHash)) == 0
        summary = registry.show_case(s, case.reference, actor="test", personal_data=True)
        assert summary.status == "withdrawn" and summary.purged_at is not None
        assert summary.label is None and summary.contact is None
        assert summary.submissions == 1  # counts only; no hash values left
    assert actions(engine)[:4] == ["case.created", "hashes.registered", "case.withdrawn", "case.purged"]
    assert active_ids(engine) == set()


def test_purge_erases_watch_terms_notes_and_naming_consent(engine, case):
    """Personal data added by later features goes with a purge too; the audit says how much."""
    from monitor import casework, watchterms
    from monitor.models import CaseNote, NoticeConsent, WatchTerm
    from monitor.takedowns.notices import record_consent

    with db.transaction(engine) as s:
        watchterms.add_terms(s, case.reference, ["Jane Example", "@jane"], actor="test")
        row = s.scalar(select(Case).where(Case.reference == case.reference))
        casework.add_note(s, row, "called her on Tuesday", actor="test")
        record_consent(s, row.id, consents=True, actor="test", victim_name="Jane Example",
                       victim_contact="jane@example.org")
    with db.transaction(engine) as s:
        registry.withdraw_case(s, case.reference, purge=True, actor="test")
    with db.transaction(engine) as s:
        assert s.scalar(select(func.count()).select_from(WatchTerm)) == 0
        assert s.scalar(select(func.count()).select_from(CaseNote)) == 0
        consent = s.scalar(select(NoticeConsent))
        assert consent.victim_name is None and consent.victim_contact is None and not consent.name_in_notices
        purged = s.scalar(select(AuditEntry).where(AuditEntry.action == "case.purged"))
        assert purged.details["watch_terms_deleted"] == 2 and purged.details["notes_deleted"] == 1


def test_purge_after_withdrawal(engine, case):
    register(engine, case.reference, hash_file_text())
    with db.transaction(engine) as s:
        registry.withdraw_case(s, case.reference, actor="test")
    with db.transaction(engine) as s:
        result = registry.withdraw_case(s, case.reference, purge=True, actor="test")
    assert result.already_withdrawn and result.hashes_deleted == 4


def test_registration_is_announced_after_commit_and_not_on_rollback(engine, case):
    seen: list[changes.HashChange] = []
    unsubscribe = registry.subscribe(seen.append)
    try:
        with pytest.raises(RuntimeError), db.transaction(engine) as s:
            registry.register_hash_file(s, case.reference, read_hash_file(hash_file_text()), actor="test")
            raise RuntimeError("rolled back")
        assert seen == []
        register(engine, case.reference, hash_file_text(quality_b=10), keep_low_quality=True)
    finally:
        unsubscribe()
    (change,) = seen
    assert change.kind == "added" and len(change.ids) == 3  # the flagged hash is not announced
    assert set(change.ids) == active_ids(engine)
    assert {h.algorithm for h in change.hashes} == {"md5", "pdq", "phash"}


def test_a_failing_listener_does_not_break_the_others(engine, case):
    seen: list[changes.HashChange] = []

    def broken(_change: changes.HashChange) -> None:
        raise ValueError("index exploded")

    undo = [registry.subscribe(broken), registry.subscribe(seen.append)]
    try:
        register(engine, case.reference, hash_file_text())
    finally:
        for u in undo:
            u()
    assert len(seen) == 1


def test_list_cases_counts_and_filters(engine, case):
    with db.transaction(engine) as s:
        other, _ = registry.create_case(s, actor="test", label="second")
    register(engine, case.reference, hash_file_text())
    with db.transaction(engine) as s:
        registry.withdraw_case(s, other, actor="test")
    with db.transaction(engine, write=False) as s:
        all_cases = registry.list_cases(s)
        active = registry.list_cases(s, status="active")
    assert [c.reference for c in all_cases] == [case.reference, other]
    assert [c.reference for c in active] == [case.reference]
    assert all_cases[0].hashes_active == 4 and all_cases[0].images == 2 and all_cases[0].label is None
    with db.transaction(engine) as s:
        labelled = registry.list_cases(s, labels=True, actor="test")
    assert [c.label for c in labelled] == ["L", "second"]
    assert actions(engine)[-1] == "cases.labels_viewed"


def test_active_hashes_by_algorithm_streams_in_id_order(engine, case):
    register(engine, case.reference, hash_file_text())
    with db.transaction(engine, write=False) as s:
        pdqs = list(registry.active_hashes(s, "pdq", batch=1))
    assert [h.value_bytes for h in pdqs] == [bytes.fromhex(PDQ_A), bytes.fromhex(PDQ_B)]
    assert pdqs[0].id < pdqs[1].id


# --- identifiers (no database) -------------------------------------------------------------------

@given(st.text(alphabet=ALPHABET, min_size=8, max_size=8), st.sampled_from(["-", " ", ""]), st.booleans())
def test_references_normalise_however_they_are_typed(body, sep, lower):
    canonical = f"NC-{body[:4]}-{body[4:]}"
    typed = f"NC{sep}{body[:4]}{sep}{body[4:]}"
    assert normalize_reference(typed.lower() if lower else typed) == canonical
    assert normalize_reference(body) == canonical


@given(st.text(max_size=20))
def test_reference_parsing_never_crashes(text):
    try:
        assert REF_RE.match(normalize_reference(text))
    except InvalidReference:
        pass
