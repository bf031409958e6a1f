"""Data key rotation on SQLite and PostgreSQL: add a key, re-encrypt (interrupted and resumed),
retire the old key, read everything back with the new key alone; the key file stays 0600; keys
from NCII_SECRET_KEY; the `ncii keys` commands; the audit chain still verifies."""

from __future__ import annotations

import json
import os
import stat
import threading

import pytest
import typer
from sqlalchemy import select, text
from typer.testing import CliRunner

from monitor import audit, db, keyfile, keyrotation, registry
from monitor.commands import audit as audit_commands
from monitor.commands import keys as keys_commands
from monitor.crypto import KeyRing, encode_key, generate_key
from monitor.keyrotation import KeysFromEnvironment, KeyRotationError, KeyStillInUse
from monitor.models import AuditEntry, Case, CaseNote, NoticeConsent, Source, TakedownNotice, WatchTerm
from monitor.settings import Settings

CASES = 5
SECRET_WORDS = ("Victim Name", "victim@example.org", "api-token-", "Jane Q. Example", "note about",
                "Notice body", "Consenting Name", "+44 7700")


def populate(engine) -> None:
    """Personal data in every kind of encrypted column, several rows each (all under the current key)."""
    with db.transaction(engine) as s:
        for i in range(CASES):
            new = registry.create_case(s, label=f"Victim Name {i}", contact=f"victim{i}@example.org", actor="test")
            case = s.scalar(select(Case).where(Case.reference == new.reference))
            s.add(WatchTerm(case_id=case.id, term=f"Jane Q. Example {i}", created_by="test"))
            s.add(CaseNote(case_id=case.id, author="test", body=f"note about case {i}"))
            if i % 2 == 0:
                s.add(NoticeConsent(case_id=case.id, recorded_by="test", name_in_notices=True,
                                    victim_name=f"Consenting Name {i}", victim_contact=f"+44 7700 90000{i}"))
                s.add(TakedownNotice(case_id=case.id, notice_type="dmca", profile="US", platform="example",
                                     host="example.org", subject="Removal request", body=f"Notice body {i}",
                                     deadline_hours=48, created_by="test"))
        s.add(Source(name="with-token", kind="rss", url="https://example.org/feed", interval_seconds=60,
                     secrets=json.dumps({"token": "api-token-1"})))
        s.add(Source(name="no-token", kind="rss", url="https://example.org/other", interval_seconds=60))


def read_all(engine) -> dict[str, list[str]]:
    """Every encrypted value, decrypted with the engine's key ring, per column."""
    out = {}
    with engine.connect() as conn:
        for col in keyrotation.encrypted_columns():
            out[col.purpose] = sorted(v for (v,) in conn.execute(select(col.column).where(col.column.is_not(None))))
    return out


def reopen(settings):
    """A new engine with the key ring as it is now on disk / in the environment."""
    return db.open_database(settings)


def key_ids(settings) -> list[int]:
    return keyrotation.configured_key_ids(settings)[0]


def audit_entries(engine, action: str) -> list[AuditEntry]:
    with db.session(engine) as s:
        return list(s.scalars(select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.id)))


def test_every_encrypted_column_is_found_with_its_purpose():
    found = {(c.table.name, c.column.name, c.purpose) for c in keyrotation.encrypted_columns()}
    assert ("cases", "label_enc", "cases.label") in found  # deferred
    assert ("cases", "contact_enc", "cases.contact") in found
    assert ("sources", "secrets_enc", "sources.secrets") in found
    assert ("watch_terms", "term_enc", "watch_terms.term") in found  # not deferred
    assert ("takedown_notices", "body_enc", "takedown_notices.body") in found
    assert len(found) == 9
    for col in keyrotation.encrypted_columns():
        assert col.primary_key is not None  # re-encryption walks every table by a single-column key


def test_add_rotate_retire_then_read_everything_with_the_new_key_alone(engine, settings):
    populate(engine)
    expected = read_all(engine)
    total = sum(len(v) for v in expected.values())
    assert total == CASES * 4 + 3 * 3 + 1
    usage = keyrotation.key_usage(engine)
    assert usage.by_key() == {1: total} and usage.under(1)["cases.label"] == CASES
    with engine.connect() as conn:
        updated_before = sorted(conn.execute(text("SELECT id, updated_at FROM cases")).all())

    added = keyrotation.add_key(settings)
    assert added.key_id == 2 and key_ids(settings) == [1, 2]
    assert stat.S_IMODE(os.stat(settings.key_file).st_mode) == 0o600
    engine2 = reopen(settings)
    try:
        report = keyrotation.reencrypt(engine2, actor="test:rotate", batch_size=3)
        assert report.complete and report.reencrypted == total and report.failed == report.changed == 0
        assert report.columns["cases.label"] == CASES and report.columns["sources.secrets"] == 1
        assert keyrotation.key_usage(engine2).by_key() == {2: total}
        assert read_all(engine2) == expected
        with engine2.connect() as conn:  # re-encryption is not an edit: updated_at stays
            assert sorted(conn.execute(text("SELECT id, updated_at FROM cases")).all()) == updated_before

        path = keyrotation.retire_key(settings, engine2, 1, actor="test:rotate")
        assert path == settings.key_file and key_ids(settings) == [2]
        assert stat.S_IMODE(os.stat(settings.key_file).st_mode) == 0o600

        entry = audit_entries(engine2, "keys.reencrypted")[-1]
        assert entry.details["reencrypted"] == total and entry.details["remaining"] == 0
        assert entry.actor == "test:rotate" and audit_entries(engine2, "keys.retired")[-1].details == {"key_id": 2 - 1}
        with engine2.connect() as conn:
            details = json.dumps([r[0] for r in conn.execute(text("SELECT details FROM audit_log"))])
        assert not any(word in details for word in SECRET_WORDS)  # counts only
        with db.session(engine2) as s:
            assert audit.verify_chain(s).ok
    finally:
        engine2.dispose()

    engine3 = reopen(settings)  # only key 2 on disk now
    try:
        assert keyfile.read_key_file(settings.key_file).current_id == 2
        assert read_all(engine3) == expected
        with db.session(engine3) as s:  # and through the ORM, deferred columns included
            case = s.scalar(select(Case).order_by(Case.id).limit(1))
            assert case.label == "Victim Name 0" and case.contact == "victim0@example.org"
    finally:
        engine3.dispose()


def test_an_interrupted_rotation_keeps_its_batches_and_resumes(engine, settings):
    populate(engine)
    expected = read_all(engine)
    total = sum(len(v) for v in expected.values())
    keyrotation.add_key(settings)
    engine2 = reopen(settings)
    try:
        batches = keyrotation.reencrypt_batches(engine2, batch_size=2)
        first = next(batches)
        batches.close()  # as if the process stopped after the first commit
        assert first.reencrypted == 2
        usage = keyrotation.key_usage(engine2)
        assert usage.by_key() == {1: total - 2, 2: 2}
        assert read_all(engine2) == expected  # a mixed database reads fine

        with pytest.raises(KeyStillInUse) as refused:
            keyrotation.retire_key(settings, engine2, 1, actor="test")
        assert f"{total - 2} values are still encrypted under key 1" in str(refused.value)
        assert "cases.contact" in str(refused.value) and refused.value.columns["watch_terms.term"] == CASES
        assert key_ids(settings) == [1, 2]  # nothing was removed

        report = keyrotation.reencrypt(engine2, actor="test", batch_size=2)
        assert report.reencrypted == total - 2 and report.complete
        again = keyrotation.reencrypt(engine2, actor="test")  # idempotent
        assert again.reencrypted == 0 and again.complete
        assert read_all(engine2) == expected
        keyrotation.retire_key(settings, engine2, 1, actor="test")
    finally:
        engine2.dispose()


def test_undecryptable_values_are_reported_and_left_alone(engine, settings):
    populate(engine)
    foreign = KeyRing({9: generate_key()}).encrypt(b"someone else's", "cases.label")
    with db.transaction(engine) as s:
        s.execute(text("UPDATE cases SET label_enc = :v WHERE id = 1"), {"v": foreign})
    keyrotation.add_key(settings)
    engine2 = reopen(settings)
    try:
        report = keyrotation.reencrypt(engine2, actor="test", batch_size=2)
        assert report.failed == 1 and report.failed_columns == {"cases.label": 1}
        assert report.remaining == 1 and not report.complete
        usage = keyrotation.key_usage(engine2)
        assert usage.under(9) == {"cases.label": 1} and usage.under(1) == {}
        keyrotation.retire_key(settings, engine2, 1, actor="test")  # key 1 is free; key 9 never was ours
    finally:
        engine2.dispose()


def test_retire_refuses_the_current_key_and_unknown_ids(engine, settings):
    populate(engine)
    with pytest.raises(KeyRotationError, match="current key"):
        keyrotation.retire_key(settings, engine, 1, actor="test")
    with pytest.raises(KeyRotationError, match="no key 7"):
        keyrotation.retire_key(settings, engine, 7, actor="test")
    assert key_ids(settings) == [1]


def test_keys_from_the_environment(env, database_url):
    old = encode_key(generate_key())
    settings = Settings.load({**env, "NCII_SECRET_KEY": old})
    engine = db.open_database(settings)
    try:
        populate(engine)
        expected = read_all(engine)
    finally:
        engine.dispose()

    with pytest.raises(KeysFromEnvironment) as refused:
        keyrotation.add_key(settings)
    assert refused.value.new_key.startswith("2:") and old not in str(refused.value)
    assert "NCII_SECRET_KEY" in str(refused.value) and not settings.key_file.exists()

    rotating = Settings.load({**env, "NCII_SECRET_KEY": f"{refused.value.new_key},{old}"})
    engine = db.open_database(rotating)
    try:
        with pytest.raises(KeyStillInUse):
            keyrotation.retire_key(rotating, engine, 1, actor="test")
        assert keyrotation.reencrypt(engine, actor="test").complete
        with pytest.raises(KeysFromEnvironment, match="remove the `1:...` entry"):
            keyrotation.retire_key(rotating, engine, 1, actor="test")
    finally:
        engine.dispose()

    engine = db.open_database(Settings.load({**env, "NCII_SECRET_KEY": refused.value.new_key}))
    try:
        assert read_all(engine) == expected
    finally:
        engine.dispose()
    assert not settings.key_file.exists()


# --- the key file (no database needed) ------------------------------------------------------------

def _file_settings(tmp_path) -> Settings:
    return Settings.load({"NCII_DATA_DIR": str(tmp_path), "NCII_KEY_FILE": str(tmp_path / "keys" / "ncii.key")})


def test_adding_keeps_the_file_owner_only_and_its_existing_lines(tmp_path):
    settings = _file_settings(tmp_path)
    with pytest.raises(KeyRotationError, match="no key file"):
        keyrotation.add_key(settings)
    ring = settings.keyring()  # creates the file, key 1
    before = settings.key_file.read_text()
    assert keyrotation.add_key(settings).key_id == 2
    after = settings.key_file.read_text()
    assert after.startswith(before) and after.count("\nkey ") == 2
    assert stat.S_IMODE(os.stat(settings.key_file).st_mode) == 0o600
    assert not [p for p in settings.key_file.parent.iterdir() if p.name != "ncii.key"]  # no temporary left
    new_ring = keyfile.read_key_file(settings.key_file)
    assert new_ring.current_id == 2 and new_ring.decrypt(ring.encrypt(b"x", "p"), "p") == b"x"


def test_a_key_file_others_can_read_is_not_rotated(tmp_path):
    settings = _file_settings(tmp_path)
    settings.keyring()
    os.chmod(settings.key_file, 0o644)
    with pytest.raises(keyfile.KeyFileError, match="chmod 600"):
        keyrotation.add_key(settings)
    os.chmod(settings.key_file, 0o600)
    assert key_ids(settings) == [1]


def test_concurrent_adds_lose_no_key(tmp_path):
    settings = _file_settings(tmp_path)
    settings.keyring()
    added, errors = [], []

    def add() -> None:
        try:
            added.append(keyrotation.add_key(settings).key_id)
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=add) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and sorted(added) == [2, 3, 4, 5, 6, 7]
    assert key_ids(settings) == [1, 2, 3, 4, 5, 6, 7]


# --- the commands ------------------------------------------------------------------------------------

def _app() -> typer.Typer:
    app = typer.Typer(name="ncii", no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
    keys_commands.register(app)
    audit_commands.register(app)
    return app


APP = _app()


@pytest.fixture
def ncii(env):
    runner = CliRunner()

    def run(*args: str, extra_env: dict[str, str] | None = None):
        return runner.invoke(APP, list(args), env={**env, **(extra_env or {})}, catch_exceptions=False)

    return run


def test_the_keys_commands_end_to_end(ncii, engine, settings):
    populate(engine)
    expected = read_all(engine)
    total = sum(len(v) for v in expected.values())

    status = json.loads(ncii("keys", "status", "--json").stdout)
    assert status["keys"] == [1] and status["by_key"] == {"1": total} and status["complete"]
    added = ncii("keys", "add", "--json")
    assert added.exit_code == 0 and json.loads(added.stdout)["key_id"] == 2
    status = json.loads(ncii("keys", "status", "--json").stdout)
    assert status["current"] == 2 and status["not_current"] == total and not status["complete"]
    assert ncii("keys", "rotate", "--batch-size", "0").exit_code == 2  # usage error

    rotated = ncii("keys", "rotate", "--batch-size", "4", "--json")
    assert rotated.exit_code == 0, rotated.output
    obj = json.loads(rotated.stdout)
    assert obj["ok"] and obj["reencrypted"] == total and obj["complete"]
    assert not any(word in rotated.stdout for word in SECRET_WORDS)
    status = json.loads(ncii("keys", "status", "--json").stdout)
    assert status["by_key"] == {"2": total} and status["complete"]
    assert "can be retired" in ncii("keys", "status").stdout

    refused = ncii("keys", "retire", "2", "--json")
    assert refused.exit_code == 1 and json.loads(refused.stdout)["error"]["code"] == "key-rotation"
    retired = ncii("keys", "retire", "1", "--json")
    assert retired.exit_code == 0 and json.loads(retired.stdout)["key_id"] == 1
    assert key_ids(settings) == [2]
    verify = ncii("audit", "verify", "--json")
    assert verify.exit_code == 0 and json.loads(verify.stdout)["intact"]

    engine2 = reopen(settings)
    try:
        assert read_all(engine2) == expected
    finally:
        engine2.dispose()


def test_keys_commands_refusals_and_exit_codes(ncii, engine, settings):
    populate(engine)
    keyrotation.add_key(settings)
    in_use = ncii("keys", "retire", "1", "--json")
    assert in_use.exit_code == 1
    error = json.loads(in_use.stdout)["error"]
    assert error["code"] == "key-in-use" and error["columns"]["cases.label"] == CASES
    assert "run `ncii keys rotate` first" in ncii("keys", "retire", "1").stderr

    old = encode_key(generate_key())
    from_env = ncii("keys", "add", "--json", extra_env={"NCII_SECRET_KEY": old})
    assert from_env.exit_code == 1
    obj = json.loads(from_env.stdout)
    assert obj["ok"] is False and obj["error"]["code"] == "keys-from-environment"
    assert obj["new_key"].startswith("2:") and old not in from_env.stdout
    human = ncii("keys", "add", extra_env={"NCII_SECRET_KEY": old})
    assert human.exit_code == 1 and "new key (shown once): 2:" in human.stdout
    assert "NCII_SECRET_KEY" in human.stderr


def test_keys_help_explains_the_procedure_in_order():
    result = CliRunner().invoke(APP, ["keys", "--help"], terminal_width=200)
    assert result.exit_code == 0
    steps = [result.stdout.index(s) for s in ("keys add", "keys rotate", "keys status", "keys retire", "back up")]
    assert steps == sorted(steps)
    click_group = typer.main.get_command(APP).commands["keys"]
    for name, command in click_group.commands.items():
        assert command.help, name
        for param in command.params:
            assert getattr(param, "help", None), f"keys {name}: {param.name} has no help"
