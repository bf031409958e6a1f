"""Encryption of personal data at rest (AES-256-GCM) and slow hashing of case secrets (argon2id).

Encrypted value layout (stored as bytes): ``version(1) | key_id(1) | nonce(12) | ciphertext+tag``.
Version 1 is AES-256-GCM with a random 96-bit nonce. The key id says which key of the key ring
encrypted it, so keys can be rotated later: add a key with a higher id (it encrypts new values),
keep the old ones until a re-encryption job has rewritten every value.
"""

from __future__ import annotations

import base64
import binascii
import os
from typing import Any, Mapping

from argon2 import PasswordHasher, profiles
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy.engine import Dialect, Engine
from sqlalchemy.types import LargeBinary, TypeDecorator

FORMAT_AES256GCM = 1
KEY_BYTES = 32
NONCE_BYTES = 12
_HEADER_BYTES = 2
_AAD_PREFIX = b"ncii-monitor/v1:"


class CryptoError(Exception):
    """Base class of encryption errors; messages never contain key material or plaintext."""


class InvalidKey(CryptoError):
    """Key material is malformed (wrong length, not base64, bad key id)."""


class DecryptionFailed(CryptoError):
    """A stored value cannot be decrypted: wrong key, unknown key id, or the bytes were altered."""


def generate_key() -> bytes:
    """A fresh random 256-bit data key."""
    return AESGCM.generate_key(bit_length=256)


def encode_key(key: bytes) -> str:
    """Key bytes as URL-safe base64 text (how keys are written in the key file and env var)."""
    return base64.urlsafe_b64encode(key).decode("ascii")


def decode_key(text: str) -> bytes:
    """Parse base64 key text (standard or URL-safe alphabet), checking it is 256 bits."""
    t = text.strip()
    try:
        raw = base64.b64decode(t.replace("-", "+").replace("_", "/"), validate=True)
    except (binascii.Error, ValueError):
        raise InvalidKey("key is not valid base64") from None
    if len(raw) != KEY_BYTES:
        raise InvalidKey(f"key must be {KEY_BYTES} bytes (256 bits), got {len(raw)}")
    return raw


class KeyRing:
    """Data keys by id (1-255): the highest id encrypts, every id decrypts."""

    def __init__(self, keys: Mapping[int, bytes]) -> None:
        if not keys:
            raise InvalidKey("no encryption key given")
        for key_id, key in keys.items():
            if not isinstance(key_id, int) or not 1 <= key_id <= 255:
                raise InvalidKey(f"key id must be a whole number from 1 to 255, got {key_id!r}")
            if len(key) != KEY_BYTES:
                raise InvalidKey(f"key {key_id} must be {KEY_BYTES} bytes, got {len(key)}")
        self._aead = {key_id: AESGCM(bytes(key)) for key_id, key in keys.items()}
        self.current_id = max(keys)

    @property
    def key_ids(self) -> list[int]:
        """The ids of the keys in the ring, ascending."""
        return sorted(self._aead)

    def __repr__(self) -> str:  # never show key material, even in tracebacks
        return f"KeyRing(ids={sorted(self._aead)}, current={self.current_id})"

    def encrypt(self, plaintext: bytes, purpose: str) -> bytes:
        """Encrypt with the current key; `purpose` (e.g. "cases.label") is bound as associated data."""
        header = bytes((FORMAT_AES256GCM, self.current_id))
        nonce = os.urandom(NONCE_BYTES)
        return header + nonce + self._aead[self.current_id].encrypt(nonce, plaintext, _aad(header, purpose))

    def decrypt(self, blob: bytes, purpose: str) -> bytes:
        """Decrypt a value made by encrypt() for the same purpose, or raise DecryptionFailed."""
        blob = bytes(blob)
        if len(blob) < _HEADER_BYTES + NONCE_BYTES + 16:
            raise DecryptionFailed(f"{purpose}: stored value is too short to be encrypted data")
        header, nonce, body = blob[:_HEADER_BYTES], blob[_HEADER_BYTES:_HEADER_BYTES + NONCE_BYTES], blob[_HEADER_BYTES + NONCE_BYTES:]
        if header[0] != FORMAT_AES256GCM:
            raise DecryptionFailed(f"{purpose}: unknown encryption format {header[0]}")
        aead = self._aead.get(header[1])
        if aead is None:
            raise DecryptionFailed(
                f"{purpose}: encrypted with key id {header[1]}, which is not in the key ring "
                f"(have {sorted(self._aead)}): is this the right key file / NCII_SECRET_KEY?")
        try:
            return aead.decrypt(nonce, body, _aad(header, purpose))
        except InvalidTag:
            raise DecryptionFailed(
                f"{purpose}: cannot decrypt with key id {header[1]}: wrong key, or the stored value "
                "was altered") from None


def _aad(header: bytes, purpose: str) -> bytes:
    # Binding the column name means a ciphertext copied into another column will not decrypt.
    return _AAD_PREFIX + header + purpose.encode("utf-8")


_KEYRING_ATTR = "_ncii_keyring"


def attach_keyring(engine: Engine, keyring: KeyRing) -> None:
    """Make `keyring` the one EncryptedText columns use on this engine (each engine has its own)."""
    # The dialect object belongs to one engine (and its execution_options() copies), and it is
    # what SQLAlchemy hands to TypeDecorator hooks, so keys never live in a process-wide global.
    setattr(engine.dialect, _KEYRING_ATTR, keyring)


def keyring_for(dialect: Dialect) -> KeyRing:
    """The key ring attached to the engine using `dialect`, or a CryptoError saying how to fix it."""
    ring = getattr(dialect, _KEYRING_ATTR, None)
    if ring is None:
        raise CryptoError("no encryption key attached to this database engine (use monitor.db.open_database)")
    return ring


class EncryptedText(TypeDecorator):
    """A text column stored encrypted (AES-256-GCM); `purpose` names it in the associated data."""

    impl = LargeBinary
    cache_ok = True

    def __init__(self, purpose: str) -> None:
        super().__init__()
        self.purpose = purpose

    def process_bind_param(self, value: Any, dialect: Dialect) -> bytes | None:
        if value is None:
            return None
        if not isinstance(value, str):
            raise TypeError(f"{self.purpose}: expected text, got {type(value).__name__}")
        return keyring_for(dialect).encrypt(value.encode("utf-8"), self.purpose)

    def process_result_value(self, value: Any, dialect: Dialect) -> str | None:
        if value is None:
            return None
        return keyring_for(dialect).decrypt(value, self.purpose).decode("utf-8")


# --- case secrets --------------------------------------------------------------------------------

#: RFC 9106's second recommended option (argon2id, t=3, m=64 MiB, p=4; ~0.1 s here). The
#: parameters are stored in each hash ($argon2id$v=19$m=65536,t=3,p=4$...), so raising them later
#: does not invalidate existing secrets.
SECRET_HASH_PARAMETERS = profiles.RFC_9106_LOW_MEMORY
_hasher = PasswordHasher.from_parameters(SECRET_HASH_PARAMETERS)
_dummy_hash: str | None = None


def hash_secret(secret: str) -> str:
    """Slow, salted argon2id hash of a case secret, in PHC string form."""
    return _hasher.hash(secret)


def verify_secret(stored_hash: str | None, secret: str) -> bool:
    """True if `secret` matches `stored_hash`; takes the same time when there is no hash to check."""
    if stored_hash is None:
        # Spend the same work on an unknown case, so timing does not reveal which references exist.
        _verify(_dummy(), secret)
        return False
    return _verify(stored_hash, secret)


def _verify(stored_hash: str, secret: str) -> bool:
    try:
        # argon2's verify recomputes the hash and compares in constant time (libargon2).
        return _hasher.verify(stored_hash, secret)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def _dummy() -> str:
    global _dummy_hash
    if _dummy_hash is None:
        _dummy_hash = _hasher.hash(os.urandom(16).hex())
    return _dummy_hash
