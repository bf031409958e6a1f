"""The data key file: created once with owner-only permissions, refused if anyone else can read it.

Format (text; '#' lines are comments)::

    # ncii-monitor data key file ...
    key 1 <base64 of 32 random bytes>

More `key <id> <base64>` lines may be added when rotating: the highest id encrypts new values,
all of them decrypt. Back the file up with the database: without it the encrypted columns
(case labels, contact details) cannot be read by anyone, including you.
"""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

from monitor.crypto import InvalidKey, KeyRing, decode_key, encode_key, generate_key
from monitor.settings import SettingsError

_HEADER = """\
# ncii-monitor data key file (format 1).
# Encrypts case labels and contact details in the database. Keep it secret (mode 0600) and back
# it up together with the database: without it those fields cannot be read by anyone.
"""


class KeyFileError(SettingsError):
    """The key file is missing, unreadable, malformed or readable by other users."""


def load_or_create(path: Path) -> KeyRing:
    """Read the key file at `path`, creating it with a fresh key if it does not exist."""
    if not path.exists():
        create_key_file(path)
    return read_key_file(path)


def read_key_file(path: Path) -> KeyRing:
    """Parse the key file after checking that only its owner can read or write it."""
    try:
        st = os.stat(path)
    except OSError as e:
        raise KeyFileError(f"cannot read key file {path}: {e.strerror}") from None
    if not stat.S_ISREG(st.st_mode):
        raise KeyFileError(f"key file {path} is not a regular file")
    if os.name == "posix" and st.st_mode & 0o077:
        raise KeyFileError(
            f"refusing to start: key file {path} has mode {stat.S_IMODE(st.st_mode):04o}, so other users "
            f"can read it. It protects victims' personal data: run `chmod 600 {path}` (and consider "
            "whether it was exposed).")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise KeyFileError(f"cannot read key file {path}: {getattr(e, 'strerror', None) or e}") from None
    return _parse(text, str(path))


def create_key_file(path: Path) -> None:
    """Write a new key file atomically (0600): it appears complete or not at all, never replaced."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    content = f"{_HEADER}key 1 {encode_key(generate_key())}\n".encode("ascii")
    # mkstemp creates the file 0600 from the start, so the key is never readable by others.
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(content)
            f.flush()
            os.fsync(f.fileno())
        try:
            # link() fails if the name exists, so two processes starting at once cannot overwrite
            # each other's key (the loser simply reads the winner's file).
            os.link(tmp, path)
        except FileExistsError:
            pass
        except OSError:
            _create_exclusive(path, content)  # filesystems without hard links
    finally:
        os.unlink(tmp)
    _fsync_dir(path.parent)


def _create_exclusive(path: Path, content: bytes) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    with os.fdopen(fd, "wb") as f:
        f.write(content)
        f.flush()
        os.fsync(f.fileno())


def _fsync_dir(folder: Path) -> None:
    if os.name != "posix":
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _parse(text: str, source: str) -> KeyRing:
    keys: dict[int, bytes] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split()
        if len(parts) != 3 or parts[0] != "key" or not parts[1].isdigit():
            raise KeyFileError(f"{source}: line {number}: expected `key <id> <base64 key>`")
        key_id = int(parts[1])
        if key_id in keys:
            raise KeyFileError(f"{source}: line {number}: key id {key_id} appears twice")
        try:
            keys[key_id] = decode_key(parts[2])
        except InvalidKey as e:
            raise KeyFileError(f"{source}: line {number}: {e}") from None
    if not keys:
        raise KeyFileError(f"{source}: holds no key (expected a line `key 1 <base64 key>`)")
    try:
        return KeyRing(keys)
    except InvalidKey as e:
        raise KeyFileError(f"{source}: {e}") from None


def keyring_from_text(text: str, source: str) -> KeyRing:
    """Keys given as "KEY" (id 1) or "ID:KEY,ID:KEY" (e.g. from NCII_SECRET_KEY)."""
    keys: dict[int, bytes] = {}
    for position, item in enumerate(text.split(","), start=1):
        item = item.strip()
        key_id_text, sep, key_text = item.rpartition(":")
        try:
            key_id = int(key_id_text) if sep else 1
            if key_id in keys:
                raise InvalidKey(f"key id {key_id} appears twice")
            keys[key_id] = decode_key(key_text)
        except (ValueError, InvalidKey) as e:
            # The message names the position, never the key text itself.
            problem = e if isinstance(e, InvalidKey) else "key id must be a number"
            raise KeyFileError(f"{source}: key {position}: {problem}") from None
    try:
        return KeyRing(keys)
    except InvalidKey as e:
        raise KeyFileError(f"{source}: {e}") from None
