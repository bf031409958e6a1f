"""Case references and case secrets: random, short, and easy to read aloud or copy by hand."""

from __future__ import annotations

import re
import secrets

#: 32 symbols, so each is 5 random bits. 0, O, 1 and I (the pairs most often confused when a
#: reference is read aloud or copied by hand) are all left out, so none of them can be mistyped
#: into a different valid reference.
ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"
_ALPHABET_SET = frozenset(ALPHABET)
REFERENCE_PREFIX = "NC"
#: 8 symbols = 40 bits: references are not secret, just unique and unguessable enough that one
#: case's reference does not reveal how many cases exist.
REFERENCE_SYMBOLS = 8
#: 25 symbols = 125 bits: enough that the secret cannot be guessed even from a stolen database.
SECRET_SYMBOLS = 25
_SEPARATORS = re.compile(r"[\s\-_]+")


class InvalidReference(ValueError):
    """Text that cannot be a case reference (wrong length or characters)."""


def _random(n: int) -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(n))


def _groups(text: str, size: int) -> str:
    return "-".join(text[i:i + size] for i in range(0, len(text), size))


def new_reference() -> str:
    """A fresh case reference such as NC-7K2M-Q9XD (uniqueness is checked by the database)."""
    return f"{REFERENCE_PREFIX}-{_groups(_random(REFERENCE_SYMBOLS), 4)}"


def normalize_reference(text: str) -> str:
    """Return the canonical form of a typed reference (any case, with or without dashes)."""
    compact = _SEPARATORS.sub("", text or "").upper()
    if compact.startswith(REFERENCE_PREFIX) and len(compact) == len(REFERENCE_PREFIX) + REFERENCE_SYMBOLS:
        compact = compact[len(REFERENCE_PREFIX):]
    if len(compact) != REFERENCE_SYMBOLS or not set(compact) <= _ALPHABET_SET:
        raise InvalidReference(
            f"{text!r} is not a case reference (expected {REFERENCE_PREFIX}-XXXX-XXXX using {ALPHABET})")
    return f"{REFERENCE_PREFIX}-{_groups(compact, 4)}"


def new_secret() -> str:
    """A fresh case secret in five groups of five symbols; shown once, stored only as a slow hash."""
    return _groups(_random(SECRET_SYMBOLS), 5)


def normalize_secret(text: str) -> str:
    """The form of a typed secret that is hashed: upper case, no spaces or dashes."""
    return _SEPARATORS.sub("", text or "").upper()
