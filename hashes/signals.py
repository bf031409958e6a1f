"""Signal types: one small class per hash algorithm (its name, size, validation and distance).

Modelled on python-threatexchange's ``SignalType``: the rest of the system treats every
algorithm through this interface, so adding an algorithm is adding one class here.
"""

from __future__ import annotations

import re
from abc import ABC
from typing import ClassVar

from hashes.errors import InvalidHash

_HEX = re.compile(r"^[0-9a-f]+$")


class SignalType(ABC):
    """A hash algorithm whose values are fixed-length hex strings."""

    name: ClassVar[str]
    bits: ClassVar[int]
    #: "perceptual" hashes match within a Hamming radius; "exact" hashes only when equal.
    kind: ClassVar[str] = "perceptual"
    description: ClassVar[str] = ""

    @classmethod
    def hex_length(cls) -> int:
        """Number of hex digits in a value of this signal type."""
        return (cls.bits + 3) // 4

    @classmethod
    def validate(cls, value: str) -> str:
        """Return `value` normalised (lower-case hex) or raise InvalidHash naming the problem."""
        if not isinstance(value, str):
            raise InvalidHash(f"{cls.name}: value must be a hex string, not {type(value).__name__}")
        v = value.strip().lower()
        if len(v) != cls.hex_length():
            raise InvalidHash(f"{cls.name}: expected {cls.hex_length()} hex digits, got {len(v)}")
        if not _HEX.match(v):
            raise InvalidHash(f"{cls.name}: value is not hexadecimal")
        return v

    @classmethod
    def distance(cls, a: str, b: str) -> int:
        """Hamming distance between two values (for exact types: 0 if equal, else the bit count)."""
        x = int(a, 16) ^ int(b, 16)
        if cls.kind == "exact":
            return 0 if x == 0 else cls.bits
        return x.bit_count()


class PDQ(SignalType):
    name = "pdq"
    bits = 256
    description = "Meta's PDQ: 256-bit DCT hash with a quality score (StopNCII, HMA, ThreatExchange)"


class PHash(SignalType):
    name = "phash"
    bits = 64
    description = "imagehash perceptual hash (DCT of 32x32 grey)"


class DHash(SignalType):
    name = "dhash"
    bits = 64
    description = "imagehash difference hash (horizontal gradients of 9x8 grey)"


class WHash(SignalType):
    name = "whash"
    bits = 64
    description = "imagehash wavelet hash (Haar, 8x8)"


class ColorHash(SignalType):
    name = "colorhash"
    bits = 42
    description = "imagehash colour hash (hue/saturation histogram, 3 bits per bin, 14 bins)"


class CropResistant(SignalType):
    """One segment of imagehash's crop-resistant hash; an image carries one value per segment."""

    name = "crophash"
    bits = 64
    description = "imagehash crop-resistant hash: a dHash per segmented region (one value per segment)"


class MD5(SignalType):
    name = "md5"
    bits = 128
    kind = "exact"
    description = "MD5 of the file bytes (what StopNCII exchanges for videos)"


class SHA256(SignalType):
    name = "sha256"
    bits = 256
    kind = "exact"
    description = "SHA-256 of the file bytes"


SIGNAL_TYPES: dict[str, type[SignalType]] = {
    t.name: t for t in (PDQ, PHash, DHash, WHash, ColorHash, CropResistant, MD5, SHA256)
}


def get_signal_type(name: str) -> type[SignalType]:
    """Look up a signal type by name, raising InvalidHash for an unknown algorithm."""
    try:
        return SIGNAL_TYPES[name]
    except KeyError:
        known = ", ".join(sorted(SIGNAL_TYPES))
        raise InvalidHash(f"unknown algorithm {name!r} (known: {known})") from None
