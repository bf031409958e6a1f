"""Plain records passed between decoding, hashing, hash files and the registry."""

from __future__ import annotations

from dataclasses import dataclass, field

#: The whole picture, as decoded (after EXIF orientation).
FULL = "full"


@dataclass(frozen=True, slots=True)
class HashValue:
    """One hash of one image (or of one region of it)."""

    algorithm: str
    value: str  # lower-case hex
    quality: int | None = None  # PDQ quality 0-100; None for algorithms without one
    region: str = FULL  # which part of the picture; see docs/hash-file.md for the vocabulary


@dataclass(slots=True)
class ImageHashes:
    """Every hash computed for one image file."""

    md5: str
    sha256: str
    hashes: list[HashValue] = field(default_factory=list)
    width: int = 0  # decoded size before any reduction, after EXIF orientation
    height: int = 0
    format: str = ""  # e.g. "jpeg", "png", "heif"

    def of(self, algorithm: str, region: str | None = FULL) -> list[HashValue]:
        """The hashes of one algorithm (of one region, or of all regions when region is None)."""
        return [h for h in self.hashes if h.algorithm == algorithm and (region is None or h.region == region)]

    def first(self, algorithm: str, region: str = FULL) -> HashValue | None:
        """The hash of `algorithm` for `region`, or None when it was not computed."""
        found = self.of(algorithm, region)
        return found[0] if found else None
