"""The schema on SQLite and PostgreSQL: migrations, constraints, encryption at rest, the audit log."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, select, text, update
from sqlalchemy.exc import DBAPIError, IntegrityError

from hashes.hashfile import read_hash_file
from monitor import audit, db, registry
from monitor.models import AuditEntry, Base, Case, Match, Media, MediaSighting, RegisteredHash, utcnow
from monitor.settings import Settings, sqlite_path

PDQ_A = "d8f8f0cee0f4a84f0637022a078f67f0b36e2ed596621e1d33e6339c4e9c9b22"
LABEL = "Zelda Quintessa Marchbanks"
CONTACT = "zelda.marchbanks@example.org +44 7700 900123"


def _hash_file(*pdqs: str, quality: int = 90):
    lines = ['{"format":"ncii-hashes","version":1}']
    for i, value in enumerate(pdqs, start=1):
        lines.append(f'{{"image":{i},"hashes":[{{"alg":"pdq","hash":"{value}","quality":{quality}}}]}}')
    return read_hash_file("\n".join(lines) + "\n")


def _new_case(engine, **kw) -> registry.NewCase:
    with db.transaction(engine) as s:
        return registry.create_case(s, actor="test", **kw)


# --- migrations ----------------------------------------------------------------------------------

def test_migrations_create_the_whole_schema_on_an_empty_database(empty_database_url, data_dir):
    engine = db.make_engine(empty_database_url)
    try:
        assert db.current_revision(engine) is None
        before, after = db.upgrade(engine)
        assert (before, after) == (None, db.head_revision())
        assert set(Base.metadata.tables) <= set(inspect(engine).get_table_names())
        # The hand-written migration and the models describe exactly the same schema.
        with engine.connect() as conn:
            assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
        # Upgrading again is a no-op.
        assert db.upgrade(engine) == (after, after)
    finally:
        engine.dispose()


def test_open_database_upgrades_on_start(empty_database_url, data_dir):
    settings = Settings.load({"NCII_DATA_DIR": str(data_dir), "NCII_DATABASE_URL": empty_database_url})
    engine = db.open_database(settings)
    try:
        assert db.current_revision(engine) == db.head_revision()
    finally:
        engine.dispose()


def test_a_database_from_a_newer_version_is_refused(engine):
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    with pytest.raises(db.SchemaTooNew, match="9999"):
        db.upgrade(engine)


def test_unreachable_database_is_reported_without_password(tmp_path):
    settings = Settings.load({"NCII_DATA_DIR": str(tmp_path),
                              "NCII_DATABASE_URL": "postgresql://ncii:hunter2@127.0.0.1:1/nothing"})
    with pytest.raises(db.DatabaseUnavailable) as e:
        db.open_database(settings)
    assert "hunter2" not in str(e.value) and "127.0.0.1" in str(e.value)


def test_sqlite_is_configured_for_safety(tmp_path):
    engine = db.open_database(Settings.load({"NCII_DATA_DIR": str(tmp_path / "d")}))
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 5000
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
    finally:
        engine.dispose()
    # Hashes are sensitive too: the database and its folder are the owner's only.
    assert stat.S_IMODE(os.stat(tmp_path / "d" / "ncii.db").st_mode) == 0o600
    assert stat.S_IMODE(os.stat(tmp_path / "d").st_mode) == 0o700


# --- encryption at rest --------------------------------------------------------------------------

def _raw_database_text(engine, settings: Settings) -> bytes:
    """Everything the database holds, as an attacker with the files (or a dump) would see it."""
    if engine.dialect.name == "sqlite":
        engine.dispose()  # close connections so nothing is only in memory
        path = sqlite_path(settings.database_url)
        return b"".join(Path(str(path) + suffix).read_bytes()
                        for suffix in ("", "-wal", "-shm") if Path(str(path) + suffix).exists())
    name = engine.url.database
    with engine.connect() as conn:
        schema = conn.execute(text("SELECT current_schema()")).scalar()  # each test has its own
    if shutil.which("pg_dump"):
        dump = subprocess.run(["pg_dump", "--data-only", "--schema", schema, "-h", "127.0.0.1", "-U", "postgres", name],
                              capture_output=True, check=True, timeout=60)
        return dump.stdout
    with engine.connect() as conn:  # pragma: no cover - pg_dump is normally installed with the server
        rows = [conn.exec_driver_sql(f"SELECT t::text FROM {t} AS t").scalars().all()
                for t in inspect(engine).get_table_names()]
    return "\n".join(str(r) for table in rows for r in table).encode()


def test_personal_data_and_secret_never_appear_in_the_raw_database(engine, settings):
    ref, secret = _new_case(engine, label=LABEL, contact=CONTACT, jurisdiction="GB")
    with db.transaction(engine) as s:  # reading it back works with the key...
        summary = registry.show_case(s, ref, actor="test", personal_data=True)
    assert (summary.label, summary.contact) == (LABEL, CONTACT)
    with engine.connect() as conn:  # ...and the stored bytes are ciphertext
        label_enc, contact_enc, secret_hash = conn.execute(
            text("SELECT label_enc, contact_enc, secret_hash FROM cases")).one()
    assert LABEL.encode() not in bytes(label_enc) and bytes(label_enc)[0] == 1  # format version byte
    assert secret_hash.startswith("$argon2id$")
    raw = _raw_database_text(engine, settings)
    assert ref.encode() in raw  # the check can see plain text where there is some
    for needle in (LABEL, "Marchbanks", CONTACT, "zelda", "7700 900123", secret, secret.replace("-", "")):
        assert needle.encode() not in raw, needle


def test_ciphertext_is_bound_to_its_column(engine):
    ref, _ = _new_case(engine, label="label text", contact="contact text")
    with engine.begin() as conn:  # an attacker swaps the encrypted label into the contact column
        conn.execute(text("UPDATE cases SET contact_enc = label_enc"))
    from monitor.crypto import DecryptionFailed

    with db.transaction(engine) as s, pytest.raises(DecryptionFailed, match="cases.contact"):
        registry.show_case(s, ref, actor="test", personal_data=True)


def test_a_wrong_key_fails_loudly_instead_of_returning_garbage(engine, settings):
    ref, _ = _new_case(engine, label="private")
    from monitor.crypto import DecryptionFailed, KeyRing, attach_keyring, generate_key

    attach_keyring(engine, KeyRing({1: generate_key()}))
    with db.transaction(engine) as s, pytest.raises(DecryptionFailed, match="wrong key"):
        registry.show_case(s, ref, actor="test", personal_data=True)


# --- constraints ---------------------------------------------------------------------------------

def test_utc_datetimes_round_trip_timezone_aware(engine):
    ref, _ = _new_case(engine)
    with db.transaction(engine, write=False) as s:
        created = s.scalar(select(Case.created_at).where(Case.reference == ref))
    assert created.tzinfo is not None and created.utcoffset() == dt.timedelta(0)
    assert abs(utcnow() - created) < dt.timedelta(minutes=5)


def test_media_is_unique_per_sha256_and_matches_per_media_hash_region(engine):
    ref, _ = _new_case(engine)
    with db.transaction(engine) as s:
        registry.register_hash_file(s, ref, _hash_file(PDQ_A), actor="test")
    with db.transaction(engine) as s:
        media = Media(sha256="a" * 64, md5="b" * 32, url="file:///scan/x.jpg", hashes=[{"alg": "pdq", "hash": PDQ_A}])
        s.add(media)
        s.flush()
        s.add(MediaSighting(media_id=media.id, url="file:///scan/x.jpg", url_sha256="c" * 64))
        h = s.scalar(select(RegisteredHash))
        s.add(Match(media_id=media.id, registered_hash_id=h.id, case_id=h.case_id, algorithm="pdq", distance=0))
    with pytest.raises(IntegrityError), db.transaction(engine) as s:
        s.add(Media(sha256="a" * 64, md5="b" * 32))
    with pytest.raises(IntegrityError), db.transaction(engine) as s:  # a rescan finds the same match
        s.add(Match(media_id=media.id, registered_hash_id=h.id, case_id=h.case_id, algorithm="pdq", distance=3))
    with pytest.raises(IntegrityError), db.transaction(engine) as s:
        s.add(Match(media_id=media.id, registered_hash_id=h.id, case_id=h.case_id, algorithm="pdq",
                    distance=0, query_region="trim", review_status="maybe"))


def test_purging_keeps_matches_but_unlinks_the_hash(engine):
    ref, _ = _new_case(engine)
    with db.transaction(engine) as s:
        registry.register_hash_file(s, ref, _hash_file(PDQ_A), actor="test")
        h = s.scalar(select(RegisteredHash))
        media = Media(sha256="d" * 64, md5="e" * 32)
        s.add(media)
        s.flush()
        s.add(Match(media_id=media.id, registered_hash_id=h.id, case_id=h.case_id, algorithm="pdq", distance=0,
                    review_status="confirmed", reviewer="test", reviewed_at=utcnow()))
    with db.transaction(engine) as s:
        registry.withdraw_case(s, ref, purge=True, actor="test")
    with db.transaction(engine, write=False) as s:
        match = s.scalar(select(Match))
        assert match.registered_hash_id is None and match.review_status == "confirmed"
        assert s.scalar(select(RegisteredHash)) is None


# --- audit log -----------------------------------------------------------------------------------

def test_audit_records_cannot_be_changed_or_deleted_through_the_orm(engine):
    _new_case(engine)
    with db.session(engine, write=True) as s:
        entry = s.scalar(select(AuditEntry))
        entry.action = "something.else"
        with pytest.raises(audit.AuditLogImmutable):
            s.flush()
        s.rollback()
        s.delete(s.scalar(select(AuditEntry)))
        with pytest.raises(audit.AuditLogImmutable):
            s.flush()
        s.rollback()
        with pytest.raises(audit.AuditLogImmutable):
            s.execute(update(AuditEntry).values(actor="x"))
        from sqlalchemy import delete

        with pytest.raises(audit.AuditLogImmutable):
            s.execute(delete(AuditEntry))


def test_audit_records_cannot_be_changed_or_deleted_with_raw_sql(engine):
    _new_case(engine)
    for sql in ("UPDATE audit_log SET actor = 'x'", "DELETE FROM audit_log"):
        with pytest.raises(DBAPIError, match="append-only"), engine.begin() as conn:
            conn.exec_driver_sql(sql)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM audit_log").scalar() == 1


def test_audit_chain_verifies_and_detects_tampering(engine, backend):
    ref, _ = _new_case(engine)
    with db.transaction(engine) as s:
        registry.register_hash_file(s, ref, _hash_file(PDQ_A), actor="test")
        registry.withdraw_case(s, ref, actor="test")
    with db.transaction(engine, write=False) as s:
        report = audit.verify_chain(s)
        assert report.ok and report.checked == 3
        entries = s.scalars(select(AuditEntry).order_by(AuditEntry.id)).all()
        assert entries[0].prev_hash == audit.GENESIS
        assert [e.prev_hash for e in entries[1:]] == [e.entry_hash for e in entries[:-1]]
    # Someone with database rights disables the protection and rewrites history.
    with engine.begin() as conn:
        if backend == "sqlite":
            conn.exec_driver_sql("DROP TRIGGER audit_log_no_update")
        else:
            conn.exec_driver_sql("ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only")
        conn.execute(text("UPDATE audit_log SET actor = 'someone else' WHERE id = :id"), {"id": entries[1].id})
    with db.transaction(engine, write=False) as s:
        report = audit.verify_chain(s)
    assert not report.ok and report.first_bad_id == entries[1].id


def test_audit_details_refuse_personal_data_and_hash_values(engine):
    for details in ({"label": "x"}, {"contact": "y"}, {"pdq": PDQ_A}, {"nested": {"value": "1"}},
                    {"note": "x" * 500}, {"ratio": 0.5}):
        with pytest.raises(audit.UnsafeAuditDetails):
            audit.check_details(details)
    audit.check_details({"submission_id": 3, "added": 2, "jurisdiction": "GB", "flags": [True, None]})


def test_every_case_change_is_audited_in_its_transaction(engine):
    ref, _ = _new_case(engine)
    with pytest.raises(RuntimeError), db.transaction(engine) as s:
        registry.register_hash_file(s, ref, _hash_file(PDQ_A), actor="test")
        raise RuntimeError("crash before commit")
    with db.transaction(engine, write=False) as s:  # neither the hashes nor their audit record exist
        assert s.scalar(select(RegisteredHash)) is None
        assert [e.action for e in s.scalars(select(AuditEntry).order_by(AuditEntry.id))] == ["case.created"]


def test_concurrent_writers_keep_one_linear_audit_chain(engine):
    import threading

    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(3):
                ref, _ = _new_case(engine)
                with db.transaction(engine) as s:
                    registry.withdraw_case(s, ref, actor="test")
        except BaseException as e:  # surfaced below
            errors.append(e)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with db.transaction(engine, write=False) as s:
        report = audit.verify_chain(s)
    assert report.ok and report.checked == 24
