"""Settings, the key file, encryption at rest and case-secret hashing (no database needed)."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import platformdirs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from monitor import crypto, keyfile
from monitor.crypto import DecryptionFailed, KeyRing, encode_key, generate_key
from monitor.keyfile import KeyFileError
from monitor.settings import DEFAULT_PDQ_MIN_QUALITY, Settings, SettingsError

# --- settings ------------------------------------------------------------------------------------


def test_defaults_need_no_configuration():
    settings = Settings.load({})
    data_dir = Path(platformdirs.user_data_dir("ncii-monitor"))
    assert settings.data_dir == data_dir
    assert settings.database_url == f"sqlite:///{data_dir / 'ncii.db'}"
    assert settings.key_file == data_dir / "ncii.key"
    assert settings.pdq_min_quality == DEFAULT_PDQ_MIN_QUALITY == 50


def test_environment_overrides(tmp_path):
    settings = Settings.load({"NCII_DATA_DIR": str(tmp_path), "NCII_PDQ_MIN_QUALITY": "60",
                              "NCII_DATABASE_URL": "postgresql://ncii:pw@db.example/ncii"})
    assert settings.database_url.startswith("postgresql+psycopg://")  # psycopg 3, not psycopg2
    assert settings.key_file == tmp_path / "ncii.key"  # PostgreSQL: the key lives in the data dir
    assert "pw" not in settings.display_url and "pw" not in repr(settings)
    assert settings.pdq_min_quality == 60
    beside = Settings.load({"NCII_DATA_DIR": str(tmp_path), "NCII_DATABASE_URL": f"sqlite:///{tmp_path}/x/other.db"})
    assert beside.key_file == tmp_path / "x" / "ncii.key"  # SQLite: beside the database file


@pytest.mark.parametrize("env", [{"NCII_PDQ_MIN_QUALITY": "high"}, {"NCII_PDQ_MIN_QUALITY": "101"},
                                 {"NCII_DATABASE_URL": "not a url"}, {"NCII_DATABASE_URL": "mysql://x/y"}])
def test_bad_settings_are_named(env):
    with pytest.raises(SettingsError, match="NCII_"):
        Settings.load(env)


def test_the_secret_key_can_come_from_the_environment(tmp_path):
    key = generate_key()
    settings = Settings.load({"NCII_DATA_DIR": str(tmp_path), "NCII_SECRET_KEY": encode_key(key)})
    ring = settings.keyring()
    assert ring.current_id == 1 and not (tmp_path / "ncii.key").exists()
    assert KeyRing({1: key}).decrypt(ring.encrypt(b"x", "p"), "p") == b"x"
    rotated = Settings.load({"NCII_SECRET_KEY": f"2:{encode_key(generate_key())}, 1:{encode_key(key)}"}).keyring()
    assert rotated.current_id == 2 and rotated.decrypt(ring.encrypt(b"old", "p"), "p") == b"old"
    with pytest.raises(KeyFileError, match="NCII_SECRET_KEY: key 1") as e:
        Settings.load({"NCII_SECRET_KEY": "c2hvcnQ="}).keyring()
    assert "c2hvcnQ" not in str(e.value)  # the message never repeats key material


# --- key file ------------------------------------------------------------------------------------

def test_key_file_is_created_owner_only_and_reused(tmp_path):
    path = tmp_path / "new" / "ncii.key"
    ring = keyfile.load_or_create(path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(path.parent).st_mode) == 0o700
    blob = ring.encrypt(b"hello", "t")
    assert keyfile.load_or_create(path).decrypt(blob, "t") == b"hello"  # same key next time
    assert [p.name for p in path.parent.iterdir()] == ["ncii.key"]  # no temporary file left


def test_a_key_file_readable_by_others_is_refused(tmp_path):
    path = tmp_path / "ncii.key"
    keyfile.create_key_file(path)
    for mode in (0o644, 0o640, 0o604, 0o660):
        os.chmod(path, mode)
        with pytest.raises(KeyFileError, match=f"refusing to start.*{mode:04o}.*chmod 600"):
            keyfile.read_key_file(path)
    os.chmod(path, 0o400)  # read-only for the owner is fine
    keyfile.read_key_file(path)


@pytest.mark.parametrize("content, words", [
    ("", "holds no key"),
    ("# only a comment\n", "holds no key"),
    ("key one abc\n", "line 1"),
    ("key 1 not-base64!!\n", "line 1: key is not valid base64"),
    (f"key 1 {encode_key(b'short')}\n", "must be 32 bytes"),
    (f"key 1 {encode_key(generate_key())}\nkey 1 {encode_key(generate_key())}\n", "line 2: key id 1 appears twice"),
    (f"key 300 {encode_key(generate_key())}\n", "1 to 255"),
])
def test_a_malformed_key_file_is_refused_with_the_line(tmp_path, content, words):
    path = tmp_path / "ncii.key"
    path.write_text(content)
    os.chmod(path, 0o600)
    with pytest.raises(KeyFileError, match=words):
        keyfile.read_key_file(path)


def test_processes_starting_together_agree_on_one_key(tmp_path):
    path = tmp_path / "ncii.key"
    rings: list[KeyRing] = []
    threads = [threading.Thread(target=lambda: rings.append(keyfile.load_or_create(path))) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    blob = rings[0].encrypt(b"same", "t")
    assert all(r.decrypt(blob, "t") == b"same" for r in rings)


# --- encryption ----------------------------------------------------------------------------------

@given(st.binary(max_size=2000), st.sampled_from(["cases.label", "cases.contact"]))
def test_encryption_round_trips_and_is_randomised(plaintext, purpose):
    ring = KeyRing({1: bytes(range(32))})
    a, b = ring.encrypt(plaintext, purpose), ring.encrypt(plaintext, purpose)
    assert a != b  # random nonce: equal plaintexts do not look equal
    assert a[:2] == b"\x01\x01" and len(a) == 2 + 12 + len(plaintext) + 16
    assert ring.decrypt(a, purpose) == plaintext


def test_tampering_wrong_key_and_wrong_column_are_detected():
    ring = KeyRing({1: generate_key()})
    blob = bytearray(ring.encrypt(b"contact details", "cases.contact"))
    with pytest.raises(DecryptionFailed, match="cases.label"):
        ring.decrypt(bytes(blob), "cases.label")
    with pytest.raises(DecryptionFailed, match="wrong key"):
        KeyRing({1: generate_key()}).decrypt(bytes(blob), "cases.contact")
    with pytest.raises(DecryptionFailed, match="key id 1"):
        KeyRing({2: generate_key()}).decrypt(bytes(blob), "cases.contact")
    blob[-1] ^= 1
    with pytest.raises(DecryptionFailed):
        ring.decrypt(bytes(blob), "cases.contact")
    with pytest.raises(DecryptionFailed, match="too short"):
        ring.decrypt(b"\x01\x01", "cases.contact")


def test_key_rotation_encrypts_with_the_newest_and_decrypts_with_all():
    old, new = generate_key(), generate_key()
    before = KeyRing({1: old}).encrypt(b"old value", "c")
    ring = KeyRing({1: old, 2: new})
    assert ring.current_id == 2 and ring.encrypt(b"x", "c")[1] == 2
    assert ring.decrypt(before, "c") == b"old value"
    assert "KeyRing(ids=[1, 2]" in repr(ring) and old.hex() not in repr(ring)


# --- case secrets --------------------------------------------------------------------------------

def test_production_secret_hashing_is_argon2id_with_the_stated_parameters(monkeypatch):
    monkeypatch.undo()  # this test uses the real parameters, not the fast test ones
    stored = crypto.hash_secret("ABCDE")
    assert stored.startswith("$argon2id$v=19$m=65536,t=3,p=4$")
    assert crypto.verify_secret(stored, "ABCDE")
    assert not crypto.verify_secret(stored, "ABCDF")
    assert not crypto.verify_secret(None, "ABCDE")
    assert not crypto.verify_secret("not a hash", "ABCDE")
