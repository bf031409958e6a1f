"""Errors raised while reading or hashing an image; each names the file and the problem."""

from __future__ import annotations


class HashingError(Exception):
    """An image could not be hashed. `source` names the input, `problem` says what is wrong."""

    code = "error"

    def __init__(self, problem: str, source: str | None = None) -> None:
        super().__init__(problem)
        self.problem = problem
        self.source = source

    def with_source(self, source: str) -> "HashingError":
        """Return this error naming `source` (used when a lower layer did not know the name)."""
        self.source = source
        return self

    def __str__(self) -> str:
        return f"{self.source}: {self.problem}" if self.source else self.problem


class FileTooLarge(HashingError):
    code = "file-too-large"


class TooManyPixels(HashingError):
    code = "too-many-pixels"


class DecompressionBomb(TooManyPixels):
    code = "decompression-bomb"


class TruncatedImage(HashingError):
    code = "truncated"


class CorruptImage(HashingError):
    code = "corrupt"


class UnsupportedFormat(HashingError):
    code = "unsupported-format"


class NotAnImage(HashingError):
    code = "not-an-image"


class InvalidHash(ValueError):
    """A hash value is malformed (wrong length, not hex, unknown algorithm)."""
