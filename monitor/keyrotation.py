"""Data key rotation: add a key, count stored values per key id, re-encrypt, retire an old key.

Procedure (docs/data-model.md): add_key() appends `key N+1` to the key file; restart every
process so it encrypts with the new key; reencrypt() rewrites every value still under an older
key; key_usage() shows none is left; retire_key() removes the old key from the file.

Counting reads only the 2-byte header (format, key id) of the stored bytes, in SQL: nothing is
decrypted. Re-encryption works on the raw bytes through Core statements, one column at a time in
primary-key order, one transaction per batch, so an interrupted run keeps every committed batch
and a new run continues with what is left (it selects only values not under the current key).
Plaintext lives only in a local variable between decrypt and encrypt; it is never logged.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from sqlalchemy import Column, LargeBinary, MetaData, Table, func, select, type_coerce, update
from sqlalchemy.engine import Engine

from monitor import audit, db, keyfile
from monitor.crypto import FORMAT_AES256GCM, DecryptionFailed, EncryptedText, KeyRing, encode_key, generate_key, keyring_for
from monitor.models import Base
from monitor.settings import Settings

DEFAULT_BATCH_SIZE = 500
MAX_KEY_ID = 255
#: Counted under this id: values too short to have a header, or of an unknown format.
MALFORMED = 0


class KeyRotationError(Exception):
    """A key operation was refused; the message says why and what to do (never key material)."""

    code = "key-rotation"


class KeysFromEnvironment(KeyRotationError):
    """The keys come from NCII_SECRET_KEY, so there is no key file to change."""

    code = "keys-from-environment"

    def __init__(self, message: str, new_key: str | None = None) -> None:
        super().__init__(message)
        self.new_key = new_key  # "ID:BASE64", for the operator to add to NCII_SECRET_KEY


class KeyStillInUse(KeyRotationError):
    """Values are still encrypted under the key to retire."""

    code = "key-in-use"

    def __init__(self, message: str, columns: dict[str, int]) -> None:
        super().__init__(message)
        self.columns = columns


# --- which columns are encrypted ---------------------------------------------------------------------

@dataclass(frozen=True)
class EncryptedColumn:
    """One EncryptedText column: its table, its database column and the purpose bound in its values."""

    table: Table
    column: Column
    purpose: str

    @property
    def primary_key(self) -> Column:
        """The table's single primary-key column (the order batches walk in)."""
        columns = list(self.table.primary_key.columns)
        if len(columns) != 1:
            raise KeyRotationError(f"{self.purpose}: table {self.table.name} needs a single-column primary key "
                                   "for re-encryption")
        return columns[0]

    @property
    def raw(self) -> Any:
        """The column as plain bytes: SQL on it neither decrypts nor encrypts."""
        return type_coerce(self.column, LargeBinary())


def encrypted_columns(metadata: MetaData = Base.metadata) -> list[EncryptedColumn]:
    """Every column whose type is EncryptedText, deferred or not, in table dependency order."""
    return [EncryptedColumn(table, column, column.type.purpose)
            for table in metadata.sorted_tables for column in table.columns
            if isinstance(column.type, EncryptedText)]


def _header_of(col: EncryptedColumn) -> Any:
    return func.substr(col.raw, 1, 2, type_=LargeBinary())


def _key_id(header: bytes | None) -> int:
    header = bytes(header or b"")
    if len(header) != 2 or header[0] != FORMAT_AES256GCM or header[1] == MALFORMED:
        return MALFORMED
    return header[1]


# --- counting ------------------------------------------------------------------------------------------

@dataclass
class KeyUsage:
    """How many stored values each key id encrypted, per column purpose (MALFORMED: no valid header)."""

    columns: dict[str, dict[int, int]] = field(default_factory=dict)

    def by_key(self) -> dict[int, int]:
        """Totals per key id over all columns."""
        totals: dict[int, int] = {}
        for counts in self.columns.values():
            for key_id, n in counts.items():
                totals[key_id] = totals.get(key_id, 0) + n
        return dict(sorted(totals.items()))

    def under(self, key_id: int) -> dict[str, int]:
        """Columns holding values under `key_id`, with their counts."""
        return {p: c[key_id] for p, c in self.columns.items() if c.get(key_id)}

    def not_under(self, key_id: int) -> int:
        """How many values are under any other key id (or malformed)."""
        return sum(n for k, n in self.by_key().items() if k != key_id)

    def total(self) -> int:
        """All encrypted values."""
        return sum(self.by_key().values())


def key_usage(engine: Engine) -> KeyUsage:
    """Count the encrypted values per column and key id from their headers (no key needed)."""
    usage = KeyUsage()
    with engine.connect() as conn:
        for col in encrypted_columns():
            header = _header_of(col).label("header")
            counts: dict[int, int] = {}
            for head, n in conn.execute(select(header, func.count()).where(col.column.is_not(None))
                                        .group_by(header)):
                key_id = _key_id(head)
                counts[key_id] = counts.get(key_id, 0) + n
            usage.columns[col.purpose] = dict(sorted(counts.items()))
    return usage


# --- re-encryption ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Batch:
    """One committed batch of one column."""

    purpose: str
    reencrypted: int  # rewritten under the current key
    changed: int  # rewritten by someone else between our read and our write: left alone
    failed: int  # could not be decrypted (unknown key id, wrong key, altered bytes): left alone

    @property
    def processed(self) -> int:
        """Values this batch looked at."""
        return self.reencrypted + self.changed + self.failed


def reencrypt_batches(engine: Engine, batch_size: int = DEFAULT_BATCH_SIZE) -> Iterator[Batch]:
    """Re-encrypt every value not under the engine's current key; yields after each batch's commit.

    Stopping the iteration (or a crash) between batches loses nothing; calling it again continues.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    ring = keyring_for(engine.dialect)
    current = bytes((FORMAT_AES256GCM, ring.current_id))
    for col in encrypted_columns():
        pk = col.primary_key
        # Keep "ON UPDATE now()" columns (updated_at) as they are: this is not a change of the data.
        unchanged = {c: c for c in col.table.columns if c.onupdate is not None}
        after: Any = None
        while True:
            query = (select(pk, col.raw).where(col.column.is_not(None), _header_of(col) != type_coerce(current, LargeBinary()))
                     .order_by(pk).limit(batch_size))
            if after is not None:
                query = query.where(pk > after)  # skip values that failed, so the walk always ends
            with db.transaction(engine) as s:
                rows = s.execute(query).all()
                if not rows:
                    break
                done = changed = failed = 0
                for row_id, blob in rows:
                    after = row_id
                    new = _reencrypt(ring, bytes(blob), col.purpose)
                    if new is None:
                        failed += 1
                        continue
                    # Compare-and-set: a value rewritten since we read it (by the app, under the
                    # current key) is left as it is rather than overwritten with the older text.
                    result = s.execute(update(col.table).where(pk == row_id, col.raw == type_coerce(bytes(blob), LargeBinary()))
                                       .values({col.column: type_coerce(new, LargeBinary()), **unchanged}))
                    if result.rowcount == 1:
                        done += 1
                    else:
                        changed += 1
            yield Batch(col.purpose, done, changed, failed)
            if len(rows) < batch_size:
                break


def _reencrypt(ring: KeyRing, blob: bytes, purpose: str) -> bytes | None:
    try:
        plaintext = ring.decrypt(blob, purpose)
    except DecryptionFailed:
        return None
    return ring.encrypt(plaintext, purpose)


@dataclass
class RotationReport:
    """Totals of a reencrypt() run."""

    key_id: int
    reencrypted: int = 0
    changed: int = 0
    failed: int = 0
    columns: dict[str, int] = field(default_factory=dict)  # purpose -> values re-encrypted
    failed_columns: dict[str, int] = field(default_factory=dict)
    remaining: int = 0  # values still not under key_id after the run

    @property
    def complete(self) -> bool:
        """Every value is under the current key."""
        return self.remaining == 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (counts only)."""
        return {"key_id": self.key_id, "reencrypted": self.reencrypted, "changed": self.changed,
                "failed": self.failed, "columns": self.columns, "failed_columns": self.failed_columns,
                "remaining": self.remaining, "complete": self.complete}


def reencrypt(engine: Engine, *, actor: str, batch_size: int = DEFAULT_BATCH_SIZE,
              on_batch: Callable[[Batch], None] | None = None) -> RotationReport:
    """Re-encrypt everything not under the current key; one audit entry with the counts."""
    report = RotationReport(key_id=keyring_for(engine.dialect).current_id)
    finished = False
    try:
        for batch in reencrypt_batches(engine, batch_size):
            report.reencrypted += batch.reencrypted
            report.changed += batch.changed
            report.failed += batch.failed
            if batch.reencrypted:
                report.columns[batch.purpose] = report.columns.get(batch.purpose, 0) + batch.reencrypted
            if batch.failed:
                report.failed_columns[batch.purpose] = report.failed_columns.get(batch.purpose, 0) + batch.failed
            if on_batch is not None:
                on_batch(batch)
        report.remaining = key_usage(engine).not_under(report.key_id)
        finished = True
    finally:
        # Record committed work even when the run was interrupted (Ctrl-C); if the database is gone,
        # the original error is what matters.
        if finished or report.reencrypted:
            try:
                with db.transaction(engine) as s:
                    details = report.to_dict() if finished else {
                        **{k: v for k, v in report.to_dict().items() if k not in ("remaining", "complete")},
                        "interrupted": True}
                    audit.append(s, "keys.reencrypted", actor, None, details)
            except Exception:
                if finished:
                    raise
    return report


# --- the key file ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class AddedKey:
    """A new key: written to the key file, or (keys from NCII_SECRET_KEY) only generated."""

    key_id: int
    key_file: Path | None


def add_key(settings: Settings) -> AddedKey:
    """Append `key N+1 <new key>` to the key file; it encrypts new values once processes restart.

    With NCII_SECRET_KEY set raises KeysFromEnvironment carrying the new key ("N:BASE64") for the
    operator to prepend to that variable.
    """
    if settings.secret_key is not None:
        ring = keyfile.keyring_from_text(settings.secret_key, "NCII_SECRET_KEY")
        key_id = _next_id(ring)
        new_key = f"{key_id}:{encode_key(generate_key())}"
        raise KeysFromEnvironment(
            "the data keys come from NCII_SECRET_KEY, so there is no key file to add to: put the new key "
            f"first in that variable (NCII_SECRET_KEY=\"{key_id}:NEWKEY,<its current value>\"), store it "
            "wherever that variable is kept, and restart every ncii process", new_key=new_key)
    path = settings.key_file
    if not path.exists():
        raise KeyRotationError(f"there is no key file at {path} yet (it is created on first use, with key 1): "
                               "nothing to rotate")
    added: list[int] = []

    def change(text: str, ring: KeyRing) -> str:
        key_id = _next_id(ring)
        added.append(key_id)
        if text and not text.endswith("\n"):
            text += "\n"
        return f"{text}key {key_id} {encode_key(generate_key())}\n"

    _rewrite_key_file(path, change)
    return AddedKey(added[-1], path)


def _next_id(ring: KeyRing) -> int:
    if ring.current_id >= MAX_KEY_ID:
        raise KeyRotationError(f"key id {MAX_KEY_ID} is in use, the highest possible: no further key can be added")
    return ring.current_id + 1


def retire_key(settings: Settings, engine: Engine, key_id: int, *, actor: str) -> Path:
    """Remove key `key_id` from the key file; refused while any value is still encrypted under it."""
    ring = keyfile.keyring_from_text(settings.secret_key, "NCII_SECRET_KEY") if settings.secret_key is not None \
        else keyfile.read_key_file(settings.key_file)
    _check_retirable(ring, key_id, engine)
    if settings.secret_key is not None:
        raise KeysFromEnvironment(
            f"no value is encrypted under key {key_id} any more, but the keys come from NCII_SECRET_KEY: remove "
            f"the `{key_id}:...` entry from that variable yourself and restart every ncii process")

    def change(text: str, ring: KeyRing) -> str:
        _check_retirable(ring, key_id, engine)  # again, under the file lock
        lines = text.splitlines(keepends=True)
        return "".join(line for line in lines if not _is_key_line(line, key_id))

    _rewrite_key_file(settings.key_file, change)
    with db.transaction(engine) as s:
        audit.append(s, "keys.retired", actor, None, {"key_id": key_id})
    return settings.key_file


def _is_key_line(line: str, key_id: int) -> bool:
    parts = line.split()
    return len(parts) == 3 and parts[0] == "key" and parts[1].isdigit() and int(parts[1]) == key_id


def _check_retirable(ring: KeyRing, key_id: int, engine: Engine) -> None:
    ids = ring.key_ids
    if key_id not in ids:
        raise KeyRotationError(f"there is no key {key_id} to retire (keys: {', '.join(map(str, ids))})")
    if key_id == ring.current_id:
        raise KeyRotationError(f"key {key_id} is the current key (it encrypts new values): add a newer key, "
                               "restart every ncii process and rotate before retiring it")
    left = key_usage(engine).under(key_id)
    if left:
        where = ", ".join(f"{n} in {p}" for p, n in left.items())
        raise KeyStillInUse(f"{sum(left.values())} values are still encrypted under key {key_id} ({where}): "
                            "run `ncii keys rotate` first", columns=left)


def configured_key_ids(settings: Settings) -> tuple[list[int], str]:
    """(key ids, where they come from) without creating a key file; ids empty if there is none yet."""
    if settings.secret_key is not None:
        return keyfile.keyring_from_text(settings.secret_key, "NCII_SECRET_KEY").key_ids, "NCII_SECRET_KEY"
    if not settings.key_file.exists():
        return [], str(settings.key_file)
    return keyfile.read_key_file(settings.key_file).key_ids, str(settings.key_file)


def _rewrite_key_file(path: Path, change: Callable[[str, KeyRing], str]) -> None:
    """Replace the key file with change(old text, its key ring), atomically, 0600, one writer at a time."""
    with _locked(path):
        ring = keyfile.read_key_file(path)  # also refuses a file others can read
        text = path.read_text(encoding="utf-8")
        new_text = change(text, ring)
        keyfile._parse(new_text, str(path))  # never write a file the program could not read back
        # mkstemp creates the file 0600 from the start; os.replace swaps it in whole, so a reader
        # sees the old file or the new one, never a half-written key file.
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(new_text.encode("ascii"))
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        keyfile._fsync_dir(path.parent)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    # Two `ncii keys add` at once must not both write key N+1 (one new key would be lost). The lock
    # is on the file itself; a waiter whose file was replaced meanwhile locks the new one instead.
    try:
        import fcntl
    except ImportError:  # not POSIX: no locking
        yield
        return
    while True:
        fd = os.open(path, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                same = os.fstat(fd).st_ino == os.stat(path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                yield
                return
        finally:
            os.close(fd)
