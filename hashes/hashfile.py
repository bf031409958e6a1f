"""The versioned hash file a victim's computer writes and the registry reads (docs/hash-file.md).

A hash file holds hashes only: never pixels, thumbnails, keypoints or anything else from which
a picture could be rebuilt, and no file names unless the victim asks for them.
"""

from __future__ import annotations

import csv
import datetime as _dt
import io
import json
from dataclasses import dataclass, field
from typing import IO, Iterable, Iterator

from hashes.errors import InvalidHash
from hashes.signals import PDQ, get_signal_type
from hashes.types import FULL, HashValue, ImageHashes

FORMAT_NAME = "ncii-hashes"
FORMAT_VERSION = 1
EXPORT_FORMATS = ("jsonl", "csv", "hma", "stopncii")
#: A hash file is small (hundreds of bytes per image); anything far larger is not one.
MAX_LINE_BYTES = 1_000_000
MAX_HASHES_PER_IMAGE = 512
_REGION_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789:._-")


class InvalidHashFile(ValueError):
    """A hash file cannot be read; the message names the line and the problem."""

    def __init__(self, problem: str, line: int | None = None) -> None:
        super().__init__(f"line {line}: {problem}" if line else problem)
        self.problem = problem
        self.line = line


@dataclass
class HashFileImage:
    """One image's entry in a hash file."""

    number: int
    hashes: list[HashValue]
    md5: str | None = None
    sha256: str | None = None
    name: str | None = None


@dataclass
class HashFile:
    """A parsed hash file: its header and its images."""

    header: dict = field(default_factory=dict)
    images: list[HashFileImage] = field(default_factory=list)
    source_format: str = "jsonl"


def make_header(algorithms: Iterable[str], regions: str, generator: str) -> dict:
    """The first line of a hash file (the date only, not the time: less to identify a person by)."""
    return {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "created": _dt.date.today().isoformat(),
        "generator": generator,
        "algorithms": list(algorithms),
        "regions": regions,
    }


def image_record(number: int, image: ImageHashes, name: str | None = None) -> dict:
    """The JSON object of one hashed image (exact hashes kept at top level, others in `hashes`)."""
    rec: dict = {"image": number}
    if name is not None:
        rec["name"] = name
    exact = {h.algorithm: h.value for h in image.hashes if h.algorithm in ("md5", "sha256")}
    rec.update(exact)
    rec["hashes"] = [hash_json(h) for h in image.hashes if h.algorithm not in ("md5", "sha256")]
    return rec


def hash_json(h: HashValue) -> dict:
    """One hash as the JSON object the hash file uses (region left out for the whole picture)."""
    obj: dict = {"alg": h.algorithm, "hash": h.value}
    if h.quality is not None:
        obj["quality"] = h.quality
    if h.region != FULL:
        obj["region"] = h.region
    return obj


class HashFileWriter:
    """Streams hashed images to a file in one of the export formats, image by image."""

    def __init__(self, stream: IO[str], fmt: str, header: dict) -> None:
        if fmt not in EXPORT_FORMATS:
            raise ValueError(f"unknown format {fmt!r} (choose from {', '.join(EXPORT_FORMATS)})")
        self.stream, self.fmt, self.header = stream, fmt, header
        self.count = 0
        self._stopncii: list[dict] = []
        self._seen_hma: set[str] = set()
        if fmt == "jsonl":
            stream.write(json.dumps(header, separators=(",", ":")) + "\n")
        elif fmt == "csv":
            self._csv = csv.writer(stream, lineterminator="\n")
            self._csv.writerow(["image", "algorithm", "region", "hash", "quality"])

    def write(self, image: ImageHashes, name: str | None = None) -> None:
        """Append one image's hashes."""
        self.count += 1
        n = self.count
        if self.fmt == "jsonl":
            self.stream.write(json.dumps(image_record(n, image, name), separators=(",", ":")) + "\n")
        elif self.fmt == "csv":
            for h in image.hashes:
                self._csv.writerow([n, h.algorithm, h.region, h.value, "" if h.quality is None else h.quality])
        elif self.fmt == "hma":
            # python-threatexchange's file exchange: one "signal_type value" per line. HMA banks
            # compare whole pictures, so only whole-picture PDQs go in (region hashes would make
            # an HMA bank match sub-pictures with thresholds tuned for whole ones).
            for h in image.hashes:
                if h.algorithm == "pdq" and h.region == FULL and h.value not in self._seen_hma:
                    self._seen_hma.add(h.value)
                    self.stream.write(f"pdq {h.value}\n")
        elif self.fmt == "stopncii":
            for h in image.hashes:
                if h.algorithm == "pdq" and h.region == FULL:
                    self._stopncii.append({"signalType": "ImagePDQ", "hashValue": h.value})

    def close(self) -> None:
        """Finish the file (the StopNCII list is one JSON document, written at the end)."""
        if self.fmt == "stopncii":
            doc = {"count": len(self._stopncii), "hashRecords": self._stopncii}
            self.stream.write(json.dumps(doc, indent=1) + "\n")
        self.stream.flush()


def read_hash_file(stream: IO[str] | str) -> HashFile:
    """Parse and validate a hash file (our JSON Lines, or HMA's `pdq <hex>` lines)."""
    if isinstance(stream, str):
        stream = io.StringIO(stream)
    lines = _bounded_lines(stream)
    first = None
    for number, line in lines:
        if line.strip():
            first = (number, line)
            break
    if first is None:
        raise InvalidHashFile("the file is empty")
    if first[1].lstrip().startswith("{"):
        return _read_jsonl(first, lines)
    return _read_hma(first, lines)


def _bounded_lines(stream: IO[str]) -> Iterator[tuple[int, str]]:
    for number, line in enumerate(stream, start=1):
        if len(line) > MAX_LINE_BYTES:
            raise InvalidHashFile(f"line is longer than {MAX_LINE_BYTES} characters: not a hash file", number)
        yield number, line


def _read_jsonl(first: tuple[int, str], lines: Iterator[tuple[int, str]]) -> HashFile:
    number, line = first
    header = _json(line, number)
    if header.get("format") != FORMAT_NAME:
        raise InvalidHashFile(f"first line must be a header with \"format\": \"{FORMAT_NAME}\"", number)
    version = header.get("version")
    if not isinstance(version, int) or version < 1:
        raise InvalidHashFile("header has no valid \"version\"", number)
    if version > FORMAT_VERSION:
        raise InvalidHashFile(
            f"hash file version {version} is newer than this program understands ({FORMAT_VERSION}); upgrade ncii",
            number)
    out = HashFile(header=header, source_format="jsonl")
    seen_numbers: set[int] = set()
    for number, line in lines:
        if not line.strip():
            continue
        rec = _json(line, number)
        img = _image_from_record(rec, number)
        if img.number in seen_numbers:
            raise InvalidHashFile(f"image number {img.number} appears twice", number)
        seen_numbers.add(img.number)
        out.images.append(img)
    return out


def _json(line: str, number: int) -> dict:
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as e:
        raise InvalidHashFile(f"not valid JSON ({e.msg} at column {e.colno})", number) from None
    if not isinstance(obj, dict):
        raise InvalidHashFile("each line must be a JSON object", number)
    return obj


def _image_from_record(rec: dict, number: int) -> HashFileImage:
    n = rec.get("image")
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise InvalidHashFile("\"image\" must be a positive whole number", number)
    hashes_in = rec.get("hashes", [])
    if not isinstance(hashes_in, list):
        raise InvalidHashFile("\"hashes\" must be a list", number)
    if len(hashes_in) > MAX_HASHES_PER_IMAGE:
        raise InvalidHashFile(f"more than {MAX_HASHES_PER_IMAGE} hashes for one image", number)
    hashes: list[HashValue] = []
    exact: dict[str, str] = {}
    for alg in ("md5", "sha256"):
        if alg in rec:
            value = _validate(alg, rec[alg], number)
            exact[alg] = value
            hashes.append(HashValue(alg, value))
    for obj in hashes_in:
        if not isinstance(obj, dict):
            raise InvalidHashFile("each entry of \"hashes\" must be an object", number)
        alg = obj.get("alg")
        if not isinstance(alg, str):
            raise InvalidHashFile("a hash has no \"alg\"", number)
        value = _validate(alg, obj.get("hash"), number)
        quality = obj.get("quality")
        if quality is not None and (not isinstance(quality, int) or isinstance(quality, bool) or not 0 <= quality <= 100):
            raise InvalidHashFile(f"{alg}: \"quality\" must be a whole number from 0 to 100", number)
        region = obj.get("region", FULL)
        if not isinstance(region, str) or not region or len(region) > 64 or not set(region) <= _REGION_CHARS:
            raise InvalidHashFile(f"{alg}: \"region\" must be a short label of a-z, 0-9 and :._-", number)
        hashes.append(HashValue(alg, value, quality, region))
    if not hashes:
        raise InvalidHashFile("an image entry carries no hashes", number)
    name = rec.get("name")
    if name is not None and not isinstance(name, str):
        raise InvalidHashFile("\"name\" must be a string", number)
    return HashFileImage(number=n, hashes=hashes, md5=exact.get("md5"), sha256=exact.get("sha256"), name=name)


def _validate(alg: str, value: object, number: int) -> str:
    try:
        signal = get_signal_type(alg)
        if not isinstance(value, str):
            raise InvalidHash(f"{alg}: value must be a hex string")
        return signal.validate(value)
    except InvalidHash as e:
        raise InvalidHashFile(str(e), number) from None


def _read_hma(first: tuple[int, str], lines: Iterator[tuple[int, str]]) -> HashFile:
    out = HashFile(header={"format": "hma"}, source_format="hma")

    def one(number: int, line: str) -> None:
        text = line.strip()
        if not text or text.startswith("#"):
            return
        kind, _, value = text.partition(" ")
        if kind != PDQ.name:
            raise InvalidHashFile(
                f"expected \"pdq <64 hex digits>\" (HMA file exchange format), got signal type {kind!r}", number)
        out.images.append(HashFileImage(number=len(out.images) + 1, hashes=[HashValue("pdq", _validate("pdq", value.strip(), number))]))

    one(*first)
    for number, line in lines:
        one(number, line)
    if not out.images:
        raise InvalidHashFile("the file holds no hashes")
    return out
