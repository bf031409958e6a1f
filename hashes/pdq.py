"""PDQ (Meta's 256-bit perceptual hash), bit-exact with the reference C++ as built into `pdqhash`.

The pipeline follows Meta's reference (pdq/cpp in facebook/ThreatExchange); docs/pdq.md explains it and
records the evidence that the hashes are identical. Bit-exactness is the point of most of the choices below:
every float32 operation the reference performs is performed here too, in the same order, so that the same
coefficients land on the same side of the median. The reference is sequential C loops; here each of its
loops becomes a handful of whole-array numpy operations.

Two backends compute the same bits: this module's numpy code (the plain, readable implementation) and the
compiled kernels of hashes._pdq_kernels (numba; about 12x faster than the numpy code and 11x faster than
pdqhash at 512x384), which perform the same float32 operations in the same order. The numba one is used
when numba is installed, unless NCII_PDQ_BACKEND=numpy or a function's ``backend="numpy"`` says otherwise.
Importing this module imports neither numba nor the kernels: that (compiling them, about 10 s, or loading
them from numba's cache, under a second) happens on the first numba-backed call.
"""

from __future__ import annotations

import importlib.util
import math
import os
import threading
import warnings
from collections.abc import Sequence
from types import ModuleType

import numpy as np

from hashes.errors import InvalidHash

__all__ = [
    "DIHEDRAL_ORIENTATIONS",
    "bits_to_hex",
    "dct_from_luma",
    "dct_from_rgb",
    "default_backend",
    "dihedral_from_dct",
    "hash_from_dct",
    "hex_to_bits",
    "hex_to_bytes",
    "luma_from_rgb",
    "pdq_dihedral_from_luma",
    "pdq_dihedral_from_rgb",
    "pdq_from_luma",
    "pdq_from_rgb",
    "pdq_many",
    "pdq_many_from_rgb",
    "pdq_regions_from_rgb",
    "resize_like_cli",
]

#: Order and names of the 8 dihedral variants, as the reference returns and prints them.
DIHEDRAL_ORIENTATIONS: tuple[str, ...] = (
    "original", "rotate90", "rotate180", "rotate270", "flipX", "flipY", "flipPlus1", "flipMinus1",
)

_F32 = np.float32
_MIN_HASHABLE_DIM = 5  # the reference returns the all-zero hash, quality 0, below this on either side
_CLI_MAX_DIM = 512  # pdq-photo-hasher squashes anything larger to 512x512 before hashing
_ZERO_HEX = "0" * 64

# The reference builds its 16x64 DCT-II basis (frequencies 1..16, DC skipped) in double and stores it as
# float32; the scale factor itself is rounded to float32 before the multiply. math.cos is the C library's
# cos, the same one the reference calls, so the rounded matrix is identical.
_DCT_SCALE = float(_F32(math.sqrt(2.0 / 64.0)))
_DCT = np.array(
    [[_DCT_SCALE * math.cos((math.pi / 2.0 / 64.0) * (i + 1) * (2 * j + 1)) for j in range(64)] for i in range(16)],
    dtype=_F32,
)

# Luma weights (ITU-R 601). Multiplying uint8 by a Python float runs in float64; pdqhash does exactly that and
# only then rounds to float32, so we do the same (see luma_from_rgb).
_LUMA_R, _LUMA_G, _LUMA_B = 0.299, 0.587, 0.114


# ---------------------------------------------------------------- backends

_BACKENDS = ("numba", "numpy")
_kernels_module: ModuleType | None = None
_kernels_error: Exception | None = None
_kernels_lock = threading.Lock()


def default_backend() -> str:
    """'numba' when numba is installed (unless NCII_PDQ_BACKEND says otherwise), else 'numpy'."""
    name = os.environ.get("NCII_PDQ_BACKEND", "").strip().lower()
    if name:
        return name
    return "numba" if importlib.util.find_spec("numba") is not None else "numpy"


def _kernels() -> ModuleType | None:
    """hashes._pdq_kernels, imported (so compiled, or loaded from numba's cache) on first use; None if that
    failed."""
    global _kernels_module, _kernels_error
    if _kernels_module is None and _kernels_error is None:
        with _kernels_lock:
            if _kernels_module is None and _kernels_error is None:
                try:
                    from hashes import _pdq_kernels
                except Exception as exc:  # pragma: no cover - numba installed but not importable or broken
                    _kernels_error = exc
                else:
                    _kernels_module = _pdq_kernels
    return _kernels_module


def _use_numba(backend: str | None) -> bool:
    """Whether to run the compiled kernels: backend is "numba", "numpy" or None (default_backend())."""
    name = backend if backend is not None else default_backend()
    if name not in _BACKENDS:
        raise ValueError(f"unknown PDQ backend {name!r} (expected 'numba' or 'numpy')")
    if name == "numpy":
        return False
    if _kernels() is None:  # pragma: no cover - numba installed but broken
        if backend is None and not os.environ.get("NCII_PDQ_BACKEND", "").strip():
            if not _fallback_warned.is_set():
                _fallback_warned.set()
                warnings.warn(f"PDQ falls back to numpy: the numba kernels failed to load ({_kernels_error!r})",
                              RuntimeWarning, stacklevel=3)
            return False
        raise ValueError(f"PDQ backend 'numba' requested but its kernels failed to load: {_kernels_error!r}")
    return True


_fallback_warned = threading.Event()


# ---------------------------------------------------------------- luma

def luma_from_rgb(rgb: np.ndarray, *, backend: str | None = None) -> np.ndarray:
    """Float32 luma 0.299R + 0.587G + 0.114B of an HxWx3 uint8 image (HxW grey is returned as float32)."""
    rgb = np.asarray(rgb)
    if rgb.ndim == 2:
        # 0.299g + 0.587g + 0.114g rounds back to g for every uint8 g, so grey needs no arithmetic
        return rgb.astype(_F32)
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        # Alpha is the caller's decision (drop it or composite); see docs/pdq.md for what the reference does.
        raise ValueError(f"expected an HxWx3 RGB array, got shape {rgb.shape}")
    if rgb.dtype == np.uint8 and _use_numba(backend):
        src, _, box = _compiled_source(rgb)
        return _kernels().luma(src, *box)
    h, w = rgb.shape[:2]
    out = np.empty((h, w), _F32)
    # Row bands keep the float64 temporaries in cache; the arithmetic (and so every rounding) is the same as
    # pdqhash's whole-array expression r*0.299 + g*0.587 + b*0.114 in float64, then cast.
    band = max(1, (1 << 16) // max(w, 1))
    acc = np.empty((band, w), np.float64)
    tmp = np.empty((band, w), np.float64)
    for r0 in range(0, h, band):
        r1 = min(h, r0 + band)
        a, t = acc[: r1 - r0], tmp[: r1 - r0]
        np.multiply(rgb[r0:r1, :, 0], _LUMA_R, out=a)
        np.multiply(rgb[r0:r1, :, 1], _LUMA_G, out=t)
        a += t
        np.multiply(rgb[r0:r1, :, 2], _LUMA_B, out=t)
        a += t
        out[r0:r1] = a
    return out


# ---------------------------------------------------------------- Jarosz filter

def _window(old_dim: int, new_dim: int = 64) -> int:
    # Two box passes per axis together span old/new pixels, so each pass gets half of that, rounded up.
    return (old_dim + 2 * new_dim - 1) // (2 * new_dim)


def _box_counts(length: int, full: int) -> np.ndarray:
    """Number of samples inside the window at each output position of one box pass (the divisors)."""
    half = (full + 2) // 2
    return np.concatenate([
        np.arange(half, full + 1),  # window growing at the start
        np.full(length - full, full),
        np.arange(full - 1, full - half, -1),  # and shrinking at the end
    ]).astype(_F32)


def _running_sums(x: np.ndarray, full: int, keep: np.ndarray | None = None) -> np.ndarray:
    """The reference's float32 running window sums along axis 0 of x (L, ...): all L of them, or those at `keep`.

    The reference keeps one float32 sum per line: it adds `half - 1` samples without output, then adds and
    outputs while the window grows, then for each step adds the entering sample, subtracts the leaving one
    (in that order) and outputs, and finally only subtracts while the window shrinks. Rounding depends on
    exactly that order, so it is kept: one vector operation per add or subtract, each advancing all lines at
    once (x is sequence-major, so every operand is a contiguous row). A cumulative-sum difference would be
    fully vectorised but rounds differently, and numpy's add.accumulate is sequential per element and slow.
    """
    length = x.shape[0]
    half = (full + 2) // 2
    steady = length - full
    growing = full - half + 1
    acc = np.zeros(x.shape[1:], _F32)
    for r in range(half - 1):
        acc += x[r]
    if keep is None:
        sums = np.empty(x.shape, _F32)
        targets = list(sums)
        n_steps = length
    else:
        # Only the kept sums are stored; the others go to one scratch row that stays in cache. Small inputs
        # sample some positions more than once, so store each once and expand afterwards.
        positions, expand = np.unique(keep, return_inverse=True)
        sums = np.empty((len(positions),) + x.shape[1:], _F32)
        scratch = np.empty(x.shape[1:], _F32)
        n_steps = int(positions[-1]) + 1
        targets = [scratch] * n_steps
        for i, position in enumerate(positions):
            targets[position] = sums[i]
    xs = list(x)  # row views made once, not per step
    add, subtract = np.add, np.subtract
    prev = acc
    for cur, entering in zip(targets[:growing], xs[half - 1 : full]):
        add(prev, entering, out=cur)
        prev = cur
    for cur, entering, leaving in zip(targets[growing : growing + steady], xs[full:], xs[:steady]):
        add(prev, entering, out=cur)
        subtract(cur, leaving, out=cur)
        prev = cur
    for cur, leaving in zip(targets[growing + steady : n_steps], xs[steady : steady + half - 1]):
        subtract(prev, leaving, out=cur)
        prev = cur
    return sums if keep is None else sums[expand]


def _running_sums_few_lines(x: np.ndarray, full: int, keep: np.ndarray) -> np.ndarray:
    """_running_sums for inputs with few lines, where per-step numpy calls would dominate.

    The same float32 additions in the same order, written as one operand sequence +x0, +x1, ..., then
    (+entering, -leaving) pairs, then -leaving (negation is exact and s + (-v) rounds like s - v), and run
    through add.accumulate, which is sequential per line: a few ns per element but only one numpy call.
    """
    length = x.shape[0]
    half = (full + 2) // 2
    steady = length - full
    ops = np.empty((full + 2 * steady + half - 1,) + x.shape[1:], _F32)
    ops[:full] = x[:full]
    ops[full : full + 2 * steady : 2] = x[full:]
    np.negative(x[:steady], out=ops[full + 1 : full + 2 * steady : 2])
    np.negative(x[steady : steady + half - 1], out=ops[full + 2 * steady :])
    np.add.accumulate(ops, axis=0, out=ops)
    # Where each output is read: after each add while the window grows, after each add/subtract pair,
    # then after each subtract while it shrinks.
    read_at = np.concatenate([
        np.arange(half - 1, full), full + 1 + 2 * np.arange(steady), full + 2 * steady + np.arange(half - 1),
    ])
    return ops[read_at[keep]]


_FEW_LINES = 128  # below this many lines per step, one add.accumulate beats a numpy call per step


def _box_pass(x: np.ndarray, full: int, keep: np.ndarray | None = None) -> np.ndarray:
    """One box-filter pass along axis 0 of x (L, N, A); returns the outputs (all, or those at `keep`) as
    (A, N, K): transposed, so that the next pass, along the other image axis, again runs along axis 0.
    """
    length, n, a_len = x.shape
    counts = _box_counts(length, full)
    if keep is not None and n * a_len <= _FEW_LINES:
        sums = _running_sums_few_lines(x, full, keep)
    else:
        sums = _running_sums(x, full, keep)
    if keep is not None:
        counts = counts[keep]
    k_len = sums.shape[0]
    out = np.empty((a_len, n, k_len), _F32)
    # Divide (the reference's sum / count, float32) and transpose in bands of rows, so that every row of the
    # transposed output receives a whole cache line at a time.
    band = 64
    for k0 in range(0, k_len, band):
        k1 = min(k_len, k0 + band)
        out[:, :, k0:k1] = (sums[k0:k1] / counts[k0:k1, None, None]).transpose(2, 1, 0)
    return out


def _decimation_indices(length: int) -> np.ndarray:
    # Sample at the centres of 64 equal cells: floor((i + 0.5) * length / 64), exact in integers.
    return ((2 * np.arange(64) + 1) * length) // 128


def _downsample_64(luma_t: np.ndarray) -> np.ndarray:
    """Blur (two Jarosz x/y pass pairs) and decimate float32 luma given as (W, N, H) to (N, 64, 64)."""
    w, n, h = luma_t.shape
    if h == 64 and w == 64:
        # The reference skips the filter entirely for input that is already 64x64 (e.g. video frames).
        return np.ascontiguousarray(luma_t.transpose(1, 2, 0))
    win_w, win_h = _window(w), _window(h)
    t = _box_pass(luma_t, win_w)  # along rows -> (H, N, W)
    t = _box_pass(t, win_h)  # along columns -> (W, N, H)
    # Second pair: only the 64 sampled columns, then the 64 sampled rows, are ever read.
    t = _box_pass(t, win_w, keep=_decimation_indices(w))  # (H, N, 64)
    t = _box_pass(t, win_h, keep=_decimation_indices(h))  # (64 cols, N, 64 rows)
    return np.ascontiguousarray(t.transpose(1, 2, 0))


# ---------------------------------------------------------------- quality and DCT

def _quality(buf: np.ndarray) -> np.ndarray:
    """Gradient-based quality 0-100 of each (64, 64) downsample in buf (N, 64, 64)."""
    total = np.zeros(buf.shape[0], np.int64)
    for diff in (buf[:, :-1, :] - buf[:, 1:, :], buf[:, :, :-1] - buf[:, :, 1:]):
        # float32 (u - v) * 100 / 255, truncated toward zero like the reference's float -> int conversion
        steps = ((diff * _F32(100)) / _F32(255)).astype(np.int32)
        total += np.abs(steps).sum(axis=(1, 2), dtype=np.int64)
    return np.minimum(total // 90, 100)


def _dct_16(buf: np.ndarray) -> np.ndarray:
    """The 16x16 low-frequency DCT (N, 16, 16) of buf (N, 64, 64): D @ A @ D.T in float32, summed in order."""
    # The reference sums the 64 float32 products of each dot product one after another, so a matmul (BLAS
    # blocking, FMA) or a pairwise reduce would round differently. One vector multiply and add per k, each
    # covering every output (and every image of the batch), keeps the order at a cost of 256 numpy calls.
    n = buf.shape[0]
    dct_t = _DCT.T  # (64, 16): column k of D as row k
    t = np.empty((n, 16, 64), _F32)  # D @ A
    product = np.empty_like(t)
    np.multiply(dct_t[0][None, :, None], buf[:, 0, None, :], out=t)
    for k in range(1, 64):
        np.multiply(dct_t[k][None, :, None], buf[:, k, None, :], out=product)
        t += product
    out = np.empty((n, 16, 16), _F32)  # (D @ A) @ D.T
    product = np.empty_like(out)
    np.multiply(t[:, :, 0, None], dct_t[0][None, None, :], out=out)
    for k in range(1, 64):
        np.multiply(t[:, :, k, None], dct_t[k][None, None, :], out=product)
        out += product
    return out


def _hex_from_coefficients(coefs: np.ndarray) -> list[str]:
    """Threshold each 16x16 block of coefs (N, 16, 16) at its median and format as reference hex."""
    flat = coefs.reshape(len(coefs), 256)
    # The reference's Torben median of 256 values is the lower median, the 128th smallest.
    median = np.partition(flat, 127, axis=1)[:, 127:128]
    # Bit k = 16*i + j is set for coefficient (i, j) above the median. The reference prints its sixteen
    # 16-bit words most significant first, so the hex is the 256-bit number with bit k = flag k: reversing
    # the flags puts bit 255 first and packbits then yields the bytes in print order.
    packed = np.packbits((flat > median)[:, ::-1], axis=1)
    return [row.tobytes().hex() for row in packed]


# ---------------------------------------------------------------- the compiled path

_EMPTY_RGB = np.empty((0, 0, 3), np.uint8)
_EMPTY_LUMA = np.empty((0, 0), _F32)
_Hashed = tuple[np.ndarray, np.ndarray, np.ndarray]  # coefficients (N, 16, 16), qualities (N,), bytes (N, 32)


def _crop_of_contiguous(img: np.ndarray) -> tuple[np.ndarray, tuple[int, int, int, int]] | None:
    """(whole, box) when img is whole[top:bottom, left:right] of a C-contiguous array of its dtype, else None.

    Crops (the regions the monitor hashes are such views) then reach the kernels without a copy: the
    kernels take the whole array and the box. The whole array is rebuilt from img's base buffer, so
    nothing outside that buffer is ever addressed.
    """
    base = img.base
    item = img.itemsize * (img.shape[2] if img.ndim == 3 else 1)  # bytes per pixel
    inner = img.strides[1:]
    if (not isinstance(base, np.ndarray) or base.dtype != img.dtype or not base.flags.c_contiguous
            or inner != ((item, img.itemsize) if img.ndim == 3 else (item,))):
        return None
    row_bytes = img.strides[0]
    offset = img.__array_interface__["data"][0] - base.__array_interface__["data"][0]
    if row_bytes <= 0 or row_bytes % item or base.nbytes % row_bytes or offset < 0 or offset % item:
        return None
    top, rest = divmod(offset, row_bytes)
    left = rest // item
    h, w = img.shape[:2]
    rows, cols = base.nbytes // row_bytes, row_bytes // item
    if top + h > rows or left + w > cols:
        return None
    whole = base.reshape(-1).reshape((rows, cols) + img.shape[2:])
    return whole, (top, left, top + h, left + w)


def _compiled_source(img: np.ndarray) -> tuple[np.ndarray, bool, tuple[int, int, int, int]]:
    """(array, is_rgb, box) as the kernels take an image: C-contiguous uint8 HxWx3 RGB or C-contiguous
    float32 luma, and the image's box in it (the whole array, or the crop img is a view of)."""
    h, w = img.shape[:2]
    if img.ndim == 3 and img.dtype != np.uint8:
        # other dtypes: the numpy luma (float64 arithmetic on any numeric type), as before
        img = luma_from_rgb(img, backend="numpy")
    elif img.ndim == 2 and img.dtype != _F32:
        img = img.astype(_F32)  # grey, or luma of another float type: rounded to float32 as before
    if img.flags.c_contiguous:
        return img, img.ndim == 3, (0, 0, h, w)
    crop = _crop_of_contiguous(img)
    if crop is not None:
        return crop[0], img.ndim == 3, crop[1]
    return np.ascontiguousarray(img), img.ndim == 3, (0, 0, h, w)


def _compiled_boxes(src: np.ndarray, is_rgb: bool, boxes: np.ndarray) -> _Hashed:
    """The kernels on boxes (N, 4) int64 of one image (each in bounds and hashable)."""
    n = len(boxes)
    coefs = np.empty((n, 16, 16), _F32)
    qualities = np.empty(n, np.int64)
    packed = np.empty((n, 32), np.uint8)
    if is_rgb:
        _kernels().hash_boxes(src, _EMPTY_LUMA, True, boxes, _DCT, coefs, qualities, packed)
    else:
        _kernels().hash_boxes(_EMPTY_RGB, src, False, boxes, _DCT, coefs, qualities, packed)
    return coefs, qualities, packed


def _compiled_whole(img: np.ndarray) -> _Hashed:
    """The kernels on a whole (hashable) HxWx3 RGB or HxW luma image."""
    src, is_rgb, box = _compiled_source(img)
    return _compiled_boxes(src, is_rgb, np.array([box], np.int64))


# ---------------------------------------------------------------- single-image API

def _sequence_major(stack: np.ndarray) -> np.ndarray:
    """(N, H, W) luma as the (W, N, H) float32 layout the first box pass runs on."""
    n, h, w = stack.shape
    out = np.empty((w, n, h), _F32)
    band = 64  # rows per block: each output row receives a whole cache line at a time
    for r0 in range(0, h, band):
        out[:, :, r0 : r0 + band] = stack[:, r0 : r0 + band, :].transpose(2, 0, 1)
    return out


def _check_luma(luma: np.ndarray) -> np.ndarray:
    luma = np.asarray(luma)
    if luma.ndim != 2:
        raise ValueError(f"expected an HxW luma array, got shape {luma.shape}")
    return luma


def _check_rgb(rgb: np.ndarray, like_cli: bool) -> np.ndarray:
    rgb = np.asarray(rgb)
    if rgb.ndim not in (2, 3) or (rgb.ndim == 3 and rgb.shape[2] != 3):
        luma_from_rgb(rgb, backend="numpy")  # raises the usual error
    return resize_like_cli(rgb) if like_cli else rgb


def _hashable(shape: tuple[int, ...]) -> bool:
    return shape[0] >= _MIN_HASHABLE_DIM and shape[1] >= _MIN_HASHABLE_DIM


def _dct_and_quality(stack: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """16x16 DCTs (N, 16, 16) and qualities (N,) of a stack (N, H, W) of same-sized hashable lumas."""
    buf = _downsample_64(_sequence_major(stack))
    return _dct_16(buf), _quality(buf)


def dct_from_luma(luma: np.ndarray, *, backend: str | None = None) -> tuple[np.ndarray, int]:
    """The float32 16x16 DCT coefficients PDQ thresholds, and the quality, of HxW float32 luma."""
    luma = _check_luma(luma)
    if not _hashable(luma.shape):
        return np.zeros((16, 16), _F32), 0
    if _use_numba(backend):
        coefs, qualities, _ = _compiled_whole(luma)
        return coefs[0], int(qualities[0])
    dct, quality = _dct_and_quality(luma[None])
    return dct[0], int(quality[0])


def dct_from_rgb(rgb: np.ndarray, *, like_cli: bool = False, backend: str | None = None) -> tuple[np.ndarray, int]:
    """dct_from_luma of an HxWx3 uint8 image (the compiled path computes the luma on the fly)."""
    rgb = _check_rgb(rgb, like_cli)
    if not _hashable(rgb.shape):
        return np.zeros((16, 16), _F32), 0
    if _use_numba(backend):
        coefs, qualities, _ = _compiled_whole(rgb)
        return coefs[0], int(qualities[0])
    return dct_from_luma(luma_from_rgb(rgb, backend="numpy"), backend="numpy")


def hash_from_dct(dct: np.ndarray) -> str:
    """The PDQ hex of a 16x16 coefficient block (all-zero block gives the all-zero hash, like the reference)."""
    return _hex_from_coefficients(np.asarray(dct, _F32).reshape(1, 16, 16))[0]


def pdq_from_luma(luma: np.ndarray, *, backend: str | None = None) -> tuple[str, int]:
    """PDQ (64-char lower-case hex, quality 0-100) of HxW float32 luma (0.299R + 0.587G + 0.114B)."""
    luma = _check_luma(luma)
    if not _hashable(luma.shape):
        return _ZERO_HEX, 0
    if _use_numba(backend):
        _, qualities, packed = _compiled_whole(luma)
        return packed[0].tobytes().hex(), int(qualities[0])
    dct, quality = dct_from_luma(luma, backend="numpy")
    return hash_from_dct(dct), quality


def pdq_from_rgb(rgb: np.ndarray, *, like_cli: bool = False, backend: str | None = None) -> tuple[str, int]:
    """PDQ (hex, quality) of an HxWx3 uint8 image, identical to pdqhash.compute (like_cli: resize_like_cli first)."""
    rgb = _check_rgb(rgb, like_cli)
    if not _hashable(rgb.shape):
        return _ZERO_HEX, 0
    if _use_numba(backend):
        _, qualities, packed = _compiled_whole(rgb)
        return packed[0].tobytes().hex(), int(qualities[0])
    return pdq_from_luma(luma_from_rgb(rgb, backend="numpy"), backend="numpy")


# ---------------------------------------------------------------- dihedral variants

# How each orientation's DCT follows from the original's (from the reference): DCT basis functions of odd
# frequency (even index, since index 0 is frequency 1) are antisymmetric, so a flip along an axis negates
# them; a rotation or diagonal flip additionally transposes.
_EVEN = (np.arange(16) % 2 == 0)
_ROW_SIGN = np.where(_EVEN, -1, 1).astype(_F32)[:, None]  # negate odd vertical frequencies
_COL_SIGN = np.where(_EVEN, -1, 1).astype(_F32)[None, :]  # negate odd horizontal frequencies
_CHECKER = (_ROW_SIGN * _COL_SIGN)


def _dihedral_blocks(dct: np.ndarray) -> np.ndarray:
    """(8, 16, 16) coefficient blocks of the 8 orientations, in DIHEDRAL_ORIENTATIONS order."""
    return np.stack([
        dct,
        (dct * _COL_SIGN).T,  # rotate90
        dct * _CHECKER,  # rotate180
        (dct * _ROW_SIGN).T,  # rotate270
        dct * _ROW_SIGN,  # flipX: upside down
        dct * _COL_SIGN,  # flipY: mirrored left-right
        dct.T,  # flipPlus1: transpose
        (dct * _CHECKER).T,  # flipMinus1: transverse
    ])


def dihedral_from_dct(dct: np.ndarray, *, backend: str | None = None) -> list[tuple[str, str]]:
    """(orientation, hex) of the 8 dihedral variants, from one 16x16 DCT (see dct_from_luma)."""
    dct = np.asarray(dct, _F32).reshape(16, 16)
    if _use_numba(backend):
        packed = _kernels().dihedral_packed_bits(np.ascontiguousarray(dct))
        return [(name, row.tobytes().hex()) for name, row in zip(DIHEDRAL_ORIENTATIONS, packed)]
    return list(zip(DIHEDRAL_ORIENTATIONS, _hex_from_coefficients(_dihedral_blocks(dct))))


def pdq_dihedral_from_luma(luma: np.ndarray, *, backend: str | None = None) -> list[tuple[str, str, int]]:
    """(orientation, hex, quality) for the 8 dihedral variants of HxW float32 luma, filtering once."""
    if not _hashable(_check_luma(luma).shape):
        return [(name, _ZERO_HEX, 0) for name in DIHEDRAL_ORIENTATIONS]
    dct, quality = dct_from_luma(luma, backend=backend)
    return [(name, value, quality) for name, value in dihedral_from_dct(dct, backend=backend)]


def pdq_dihedral_from_rgb(
    rgb: np.ndarray, *, like_cli: bool = False, backend: str | None = None,
) -> list[tuple[str, str, int]]:
    """(orientation, hex, quality) for the 8 dihedral variants of an HxWx3 uint8 image, in reference order."""
    rgb = _check_rgb(rgb, like_cli)
    if not _hashable(rgb.shape):
        return [(name, _ZERO_HEX, 0) for name in DIHEDRAL_ORIENTATIONS]
    dct, quality = dct_from_rgb(rgb, backend=backend)
    return [(name, value, quality) for name, value in dihedral_from_dct(dct, backend=backend)]


# ---------------------------------------------------------------- batches

def pdq_many(lumas: Sequence[np.ndarray], *, backend: str | None = None) -> list[tuple[str, int]]:
    """PDQ (hex, quality) of several HxW float32 lumas; same-shaped ones are filtered together as one stack."""
    results: list[tuple[str, int]] = [(_ZERO_HEX, 0)] * len(lumas)
    by_shape: dict[tuple[int, int], list[int]] = {}
    for i, luma in enumerate(lumas):
        shape = _check_luma(luma).shape
        if _hashable(shape):
            by_shape.setdefault(shape, []).append(i)
    if by_shape and _use_numba(backend):
        for idx in by_shape.values():
            for i in idx:
                _, qualities, packed = _compiled_whole(np.asarray(lumas[i]))
                results[i] = (packed[0].tobytes().hex(), int(qualities[0]))
        return results
    # Stacking same-sized inputs turns N filters into one whose every vector operation covers N images, so
    # the per-operation overhead that dominates small images is paid once (tiles, video frames, thumbnails).
    dcts, qualities, order = [], [], []
    for idx in by_shape.values():
        dct, quality = _dct_and_quality(np.stack([np.asarray(lumas[i], _F32) for i in idx]))
        dcts.append(dct)
        qualities.append(quality)
        order.extend(idx)
    if order:
        hexes = _hex_from_coefficients(np.concatenate(dcts))
        for i, value, quality in zip(order, hexes, np.concatenate(qualities)):
            results[i] = (value, int(quality))
    return results


def pdq_many_from_rgb(images: Sequence[np.ndarray], *, backend: str | None = None) -> list[tuple[str, int]]:
    """PDQ (hex, quality) of several HxWx3 uint8 images (see pdq_many)."""
    if _use_numba(backend):
        return [pdq_from_rgb(im, backend="numba") for im in images]
    return pdq_many([luma_from_rgb(im, backend="numpy") for im in images], backend="numpy")


def _box_bounds(box: tuple[int, int, int, int], h: int, w: int) -> tuple[int, int, int, int]:
    """A (top, left, bottom, right) box clipped like the slice rgb[top:bottom, left:right]."""
    t, l, b, r = (int(v) for v in box)
    t, b, _ = slice(t, b).indices(h)
    l, r, _ = slice(l, r).indices(w)
    return t, l, max(t, b), max(l, r)


def pdq_regions_from_rgb(
    rgb: np.ndarray, boxes: Sequence[tuple[int, int, int, int]], *, backend: str | None = None,
) -> list[tuple[str, int]]:
    """PDQ (hex, quality) of regions (top, left, bottom, right) of one image; the luma is computed once.

    Boxes follow slicing rules (rgb[top:bottom, left:right]: negative values count from the end, and
    out-of-range ones are clipped). The result for each is exactly pdq_from_rgb of that crop.
    """
    rgb = _check_rgb(rgb, False)
    if not _use_numba(backend):
        # Luma is per pixel, so the luma of a crop is the crop of the luma: exact, and one conversion for all.
        luma = luma_from_rgb(rgb, backend="numpy")
        return pdq_many([luma[t:b, l:r] for t, l, b, r in boxes], backend="numpy")
    h, w = rgb.shape[:2]
    clipped = [_box_bounds(box, h, w) for box in boxes]
    todo = [i for i, (t, l, b, r) in enumerate(clipped) if _hashable((b - t, r - l))]
    results: list[tuple[str, int]] = [(_ZERO_HEX, 0)] * len(clipped)
    if not todo:
        return results
    src, is_rgb, (top, left, _, _) = _compiled_source(rgb)
    boxes_in_src = np.array([clipped[i] for i in todo], np.int64) + np.array([top, left, top, left])
    if is_rgb and len(todo) > 1:
        # One luma for all boxes (of the part of src they cover) rather than one per box.
        t0, l0 = boxes_in_src[:, 0].min(), boxes_in_src[:, 1].min()
        t1, l1 = boxes_in_src[:, 2].max(), boxes_in_src[:, 3].max()
        src, is_rgb = _kernels().luma(src, t0, l0, t1, l1), False
        boxes_in_src -= np.array([t0, l0, t0, l0])
    _, qualities, packed = _compiled_boxes(src, is_rgb, boxes_in_src)
    for i, row, quality in zip(todo, packed, qualities):
        results[i] = (row.tobytes().hex(), int(quality))
    return results


# ---------------------------------------------------------------- the reference command-line hasher

def resize_like_cli(img: np.ndarray) -> np.ndarray:
    """Squash an image to 512x512 by nearest neighbour when a side exceeds 512, as pdq-photo-hasher does.

    Meta's command-line hasher (and its WebAssembly build) calls CImg's resize(512, 512) with its default
    nearest-neighbour interpolation before hashing any image larger than 512 on either side, ignoring the
    aspect ratio. Published reference hashes of large images were made that way; pdqhash.compute (and
    pdq_from_rgb by default) hash the full-size pixels instead. CImg picks source pixel floor(i * old / 512).
    """
    img = np.asarray(img)
    h, w = img.shape[:2]
    if h <= _CLI_MAX_DIM and w <= _CLI_MAX_DIM:
        return img
    rows = (np.arange(_CLI_MAX_DIM) * h) // _CLI_MAX_DIM
    cols = (np.arange(_CLI_MAX_DIM) * w) // _CLI_MAX_DIM
    # Two one-axis takes: ~10x faster than one broadcast fancy index over the full-size image.
    return np.take(img.take(rows, axis=0), cols, axis=1)


# ---------------------------------------------------------------- hash conversions

def hex_to_bytes(value: str) -> bytes:
    """The 32 bytes of a PDQ hex string, in printed order."""
    if len(value) != 64:
        raise InvalidHash(f"PDQ hash must be 64 hex digits, got {len(value)}")
    try:
        raw = bytes.fromhex(value)
    except ValueError:
        raw = b""
    if len(raw) != 32:  # fromhex also skips whitespace, which a 64-character hash must not contain
        raise InvalidHash(f"PDQ hash is not 64 hexadecimal digits: {value!r}")
    return raw


def hex_to_bits(value: str) -> np.ndarray:
    """The 256 bits (uint8 0/1) of a PDQ hex string, most significant first: the order pdqhash.compute returns.

    Bit 255 - (16*i + j) of this array is the flag of DCT coefficient (i, j).
    """
    return np.unpackbits(np.frombuffer(hex_to_bytes(value), np.uint8))


def bits_to_hex(bits: np.ndarray) -> str:
    """The PDQ hex string of 256 bits in hex_to_bits order (e.g. the array pdqhash.compute returns)."""
    bits = np.asarray(bits).reshape(-1)
    if bits.size != 256:
        raise InvalidHash(f"PDQ hash has 256 bits, got {bits.size}")
    return np.packbits(bits.astype(bool)).tobytes().hex()
