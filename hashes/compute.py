"""Turn image bytes into every hash the project uses: the one place both the victim's CLI and
the monitor compute hashes, so the two sides always agree.

The picture is decoded once (JPEGs at reduced size through DCT scaling, see ``hashes.decode``)
and every hash is computed from that one array: PDQ from the decoded pixels, the imagehash
family from a small grey copy, regions from views of the same array.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from os import PathLike
from typing import Literal

import numpy as np
from PIL import Image

from hashes import perceptual, pdq, regions
from hashes.decode import DEFAULT_LIMITS, DecodedImage, DecodeLimits, decode_image, read_image_file
from hashes.errors import HashingError
from hashes.signals import SIGNAL_TYPES
from hashes.types import FULL, HashValue, ImageHashes

#: What ``ncii hash`` and the monitor compute unless told otherwise: the exact hashes, PDQ
#: (with regions and dihedral variants, see ``RegionMode``) and the cheap imagehash pair.
DEFAULT_ALGORITHMS: tuple[str, ...] = ("md5", "sha256", "pdq", "phash", "dhash")
#: Computed only on request: slower, and not used by the default match policy.
OPTIONAL_ALGORITHMS: tuple[str, ...] = ("whash", "colorhash", "crophash")

#: pHash and dHash are computed on a grey copy box-reduced by a whole factor to no less than this.
IMAGEHASH_SIDE = 128

#: "register": the victim's side, which adds hashes of sub-regions of the original so that crops
#: of it still match. "query": the monitor's side, which adds hashes of candidate regions found in
#: a picture (borders trimmed, a picture inside a screenshot, collage cells) and the dihedral
#: variants. "none": the whole picture only.
RegionMode = Literal["none", "register", "query"]


@dataclass(frozen=True)
class HashOptions:
    """What to compute for each image."""

    algorithms: tuple[str, ...] = DEFAULT_ALGORITHMS
    regions: RegionMode = "none"
    limits: DecodeLimits = field(default=DEFAULT_LIMITS)

    def __post_init__(self) -> None:
        unknown = [a for a in self.algorithms if a not in SIGNAL_TYPES]
        if unknown:
            known = ", ".join(sorted(SIGNAL_TYPES))
            raise ValueError(f"unknown algorithm(s) {', '.join(unknown)} (known: {known})")
        if self.regions not in ("none", "register", "query"):
            raise ValueError(f"regions must be none, register or query, not {self.regions!r}")


DEFAULT_OPTIONS = HashOptions()


def hash_file(path: str | PathLike[str], options: HashOptions = DEFAULT_OPTIONS) -> ImageHashes:
    """Read and hash one image file; raises HashingError naming the file on any bad input."""
    source = str(path)
    try:
        data = read_image_file(path, options.limits)
    except HashingError as e:
        raise e.with_source(source)
    except OSError as e:
        raise HashingError(f"cannot read file: {e.strerror or e}", source) from None
    return hash_bytes(data, source=source, options=options)


def hash_bytes(data: bytes, *, source: str = "<bytes>", options: HashOptions = DEFAULT_OPTIONS) -> ImageHashes:
    """Hash an image held in memory; raises HashingError naming `source` on any bad input."""
    md5 = hashlib.md5(data, usedforsecurity=False).hexdigest()
    sha256 = hashlib.sha256(data).hexdigest()
    decoded = decode_image(data, source=source, limits=options.limits)
    return hash_decoded(decoded, md5=md5, sha256=sha256, options=options)


def hash_decoded(decoded: DecodedImage, *, md5: str, sha256: str, options: HashOptions = DEFAULT_OPTIONS) -> ImageHashes:
    """Compute the perceptual hashes of an already decoded picture."""
    algs = set(options.algorithms)
    out = ImageHashes(md5=md5, sha256=sha256, width=decoded.width, height=decoded.height, format=decoded.format)
    if "md5" in algs:
        out.hashes.append(HashValue("md5", md5))
    if "sha256" in algs:
        out.hashes.append(HashValue("sha256", sha256))
    rgb = decoded.rgb
    if "pdq" in algs:
        out.hashes.extend(_pdq_hashes(rgb, options.regions, options.limits.min_side))
    if algs & {"phash", "dhash", "whash", "colorhash", "crophash"}:
        out.hashes.extend(_imagehash_family(rgb, algs))
    return out


def _pdq_hashes(rgb: np.ndarray, mode: RegionMode, window_side: int = DEFAULT_LIMITS.min_side) -> list[HashValue]:
    if mode == "query":
        # The dihedral variants come from the one DCT of the whole picture: a mirrored or rotated
        # repost then matches the registered original without any extra registered hashes.
        found = [HashValue("pdq", h, q, FULL if name == "original" else f"dihedral:{name.lower()}")
                 for name, h, q in pdq.pdq_dihedral_from_rgb(rgb)]
    else:
        h, q = pdq.pdq_from_rgb(rgb)
        found = [HashValue("pdq", h, q, FULL)]
    if mode == "none":
        return found
    if mode == "register":
        source = window_source(rgb, window_side)
        boxes = regions.registration_boxes(*source.shape[:2])
        extra = [(label, regions.rotated_window(source, d)) for label, d in regions.rotated_labels(source)]
    else:
        source = rgb
        boxes = regions.query_boxes(rgb)
        extra = []
    # All windows of one picture are filtered in one kernel call, sharing one luma conversion.
    for (label, _box), (h, q) in zip(boxes, pdq.pdq_regions_from_rgb(source, [b for _, b in boxes])):
        found.append(HashValue("pdq", h, q, label))
    for label, part in extra:
        h, q = pdq.pdq_from_rgb(part)
        found.append(HashValue("pdq", h, q, label))
    return found


def window_source(rgb: np.ndarray, side: int) -> np.ndarray:
    """The copy a victim's registration windows are hashed on: `rgb` box-reduced by the largest whole
    factor that keeps its shorter side >= `side` (`rgb` itself when that factor is 1, or `side` is 0).

    A JPEG already arrives at this scale (DCT scaling, ``hashes.decode``); PNG, HEIC, WebP and
    other originals did not, and rotating and filtering 60-odd windows of a 24-megapixel PNG took
    seconds where a JPEG takes milliseconds. PDQ sees a 64x64 summary of each window, so the
    reduction moves a window's hash by a few bits at most, as DCT scaling does. The whole picture
    is still hashed at full size, so its PDQ stays equal to Meta's reference on the same pixels.
    """
    factor = min(rgb.shape[:2]) // side if side > 0 else 1
    if factor < 2:
        return rgb
    return np.asarray(Image.fromarray(np.ascontiguousarray(rgb)).reduce(factor))


def _imagehash_family(rgb: np.ndarray, algs: set[str]) -> list[HashValue]:
    # pHash and dHash resample to 32x32 and 9x8 with Lanczos, whose cost grows with the input: a
    # box reduction to about 4x their size first costs little and changes nothing they measure.
    grey = Image.fromarray(small_grey(rgb)) if algs & {"phash", "dhash"} else None
    image = Image.fromarray(rgb) if algs & {"whash", "colorhash", "crophash"} else None
    found: list[HashValue] = []
    if "phash" in algs:
        found.append(HashValue("phash", perceptual.phash(grey)))
    if "dhash" in algs:
        found.append(HashValue("dhash", perceptual.dhash(grey)))
    if "whash" in algs:
        found.append(HashValue("whash", perceptual.whash(perceptual.thumbnail(image.convert("L")))))
    if "colorhash" in algs:
        found.append(HashValue("colorhash", perceptual.colorhash(perceptual.thumbnail(image))))
    if "crophash" in algs:
        for i, value in enumerate(perceptual.crop_resistant(image)):
            found.append(HashValue("crophash", value, None, f"segment:{i}"))
    return found


def small_grey(rgb: np.ndarray, *, backend: str | None = None) -> np.ndarray:
    """The grey copy pHash and dHash are computed on: Pillow's ``convert("L")``, box-reduced by
    ``min(height, width) // IMAGEHASH_SIDE`` when that is over 1 (Pillow's ``reduce``), as uint8.

    backend: "numba" (one compiled pass, hashes._kernels_numba) or "numpy" (Pillow itself); both
    give the same array. Default: numba when installed, unless NCII_GREY_BACKEND=numpy.
    """
    name = backend or os.environ.get("NCII_GREY_BACKEND", "").strip().lower() or "numba"
    factor = min(rgb.shape[:2]) // IMAGEHASH_SIDE
    if name == "numba":
        kernel = _grey_kernel()
        if kernel is not None:
            return kernel(np.ascontiguousarray(rgb), factor, _reduce_multipliers(factor))
    return _small_grey_pil(rgb, factor)


def _small_grey_pil(rgb: np.ndarray, factor: int) -> np.ndarray:
    grey = Image.fromarray(rgb).convert("L")
    if factor > 1:
        grey = grey.reduce(factor)
    return np.asarray(grey)


_multipliers: dict[int, np.ndarray] = {}
_grey_compiled: object = None  # the compiled kernel once loaded; False when numba is unavailable


def _reduce_multipliers(factor: int) -> np.ndarray:
    """Pillow's fixed-point reciprocals (Reduce.c division_UINT32(area, 8), single precision) by block area."""
    found = _multipliers.get(factor)
    if found is None:
        areas = np.arange(1, max(1, factor) ** 2 + 1, dtype=np.float32)
        found = np.zeros(areas.size + 1, np.int64)
        found[1:] = (np.float32(4294967296.0) / (np.float32(256) * areas)).astype(np.int64)
        _multipliers[factor] = found
    return found


def _grey_kernel():
    """hashes._kernels_numba.grey_reduce_nb, imported on first use; None when numba is unavailable."""
    global _grey_compiled
    if _grey_compiled is None:
        try:
            from hashes._kernels_numba import grey_reduce_nb

            _grey_compiled = grey_reduce_nb
        except Exception:  # pragma: no cover - numba missing or broken: Pillow's own path
            _grey_compiled = False
    return _grey_compiled or None
