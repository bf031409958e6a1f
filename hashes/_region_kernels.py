"""Inner loops of the query-region detector (hashes.regions): a numpy version and a compiled (numba) one.

Both versions take the same arrays and return identical results: every quantity is an integer
count or an integer sum divided once by a length, and medians of integers, all exact in float64
whatever the order of summation. ``hashes.regions`` uses the numba versions (in
``hashes._region_kernels_numba``) when numba is importable, unless ``NCII_REGIONS_BACKEND=numpy`` or ``backend="numpy"`` says otherwise;
tests/test_regions.py checks the two agree on random and structured inputs.

Arrays: ``planes`` is the detector's reduced picture, (3, H, W) int16 with values 0-255;
``colours`` is (k, 3) float64; ``tol`` is the per-channel colour tolerance.
"""

from __future__ import annotations

import importlib.util
from types import ModuleType

import numpy as np

#: Whether the compiled versions can be used. numba itself is imported (and the kernels compiled,
#: or loaded from numba's cache) only on their first use, in hashes._region_kernels_numba, so that
#: importing hashes (the victim's CLI never runs the detector) does not pay for it.
HAVE_NUMBA = importlib.util.find_spec("numba") is not None
_compiled: ModuleType | None = None


def _nb() -> ModuleType:
    """hashes._region_kernels_numba, imported on first use."""
    global _compiled
    if _compiled is None:
        from hashes import _region_kernels_numba

        _compiled = _region_kernels_numba
    return _compiled

#: Medians of a line's colour are taken from about this many of its pixels (every n // 48th).
LINE_SAMPLES = 48


# ----------------------------------------------------------------------------- numpy versions


def activity_np(planes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(act_x, act_y): largest channel change to the right / lower neighbour (0 in the last column / row)."""
    _, h, w = planes.shape
    act_x = np.zeros((h, w), np.int16)
    act_y = np.zeros((h, w), np.int16)
    act_x[:, :-1] = np.abs(planes[:, :, 1:] - planes[:, :, :-1]).max(axis=0)
    act_y[:-1, :] = np.abs(planes[:, 1:, :] - planes[:, :-1, :]).max(axis=0)
    return act_x, act_y


def close_any_np(planes: np.ndarray, colours: np.ndarray, tol: int) -> np.ndarray:
    """Boolean (H, W): pixels within tol of any of colours in every channel."""
    out = np.zeros(planes.shape[1:], bool)
    for c in colours:
        near = np.abs(planes[0] - c[0]) <= tol
        near &= np.abs(planes[1] - c[1]) <= tol
        near &= np.abs(planes[2] - c[2]) <= tol
        out |= near
    return out


def line_colours_np(planes: np.ndarray, axis: int) -> np.ndarray:
    """(3, n) median colour of each row (axis=0) or column (axis=1), from every (len // 48)th pixel."""
    length = planes.shape[2 if axis == 0 else 1]
    step = max(1, length // LINE_SAMPLES)
    sub = planes[:, :, ::step] if axis == 0 else planes[:, ::step, :]
    return np.median(sub, axis=2 if axis == 0 else 1)


def flat_lines_np(planes: np.ndarray, axis: int, tol: int, share: float) -> np.ndarray:
    """Rows (axis=0) or columns (axis=1) with at least `share` of their pixels within tol of the line's median colour."""
    med = line_colours_np(planes, axis)
    c = med[:, :, None] if axis == 0 else med[:, None, :]
    near = np.abs(planes[0] - c[0]) <= tol
    near &= np.abs(planes[1] - c[1]) <= tol
    near &= np.abs(planes[2] - c[2]) <= tol
    return near.mean(axis=1 if axis == 0 else 0) >= share


def maybe_flat(act_along: np.ndarray, axis: int, tol: int, share: float) -> np.ndarray:
    """Lines that can pass flat_lines, from the activity along them (act_x for rows, act_y for columns).

    If `share` of a line's L pixels are within tol of one colour, every neighbouring pair of
    them differs by at most 2 * tol, and at most 2 * (1 - share) * L of the L - 1 pairs touch
    another pixel: a line with fewer quiet pairs than that cannot be flat. (act_along covers
    the box; its last entry along the line compares with a pixel outside it and is not used.)
    """
    quiet = act_along <= 2 * tol
    if axis == 0:
        length = act_along.shape[1]
        count = quiet[:, :-1].sum(axis=1)
    else:
        length = act_along.shape[0]
        count = quiet[:-1, :].sum(axis=0)
    # one pair of slack on top of the bound keeps float rounding of the share on the safe side
    return count >= (length - 1) - 2 * (1 - share) * length - 1


def reduce_multiplier(f: int) -> int:
    """Pillow's fixed-point reciprocal for an f x f box reduction (Reduce.c division_UINT32(f * f, 8)).

    Computed in single precision as Pillow does, so the compiled reduction divides exactly as Pillow's.
    """
    return int(np.float32(4294967296.0) / np.float32(256 * f * f))


def prepare_np(rgb: np.ndarray, f: int, still: int) -> tuple[np.ndarray, ...]:
    """The detector's reduced planes and maps: (planes, act_x, act_y, still_x, still_y, still).

    planes is (3, H // f, W // f) int16: Pillow's ``Image.reduce(f)`` of the whole f x f blocks of rgb
    (H, W, 3) uint8; the maps are activity_np of it and activity <= still.
    """
    if f > 1:
        from PIL import Image

        hh, ww = (rgb.shape[0] // f) * f, (rgb.shape[1] // f) * f
        small = np.asarray(Image.fromarray(np.ascontiguousarray(rgb[:hh, :ww])).reduce(f))
    else:
        small = rgb
    planes = np.ascontiguousarray(small.transpose(2, 0, 1)).astype(np.int16)
    act_x, act_y = activity_np(planes)
    still_x = act_x <= still
    still_y = act_y <= still
    return planes, act_x, act_y, still_x, still_y, still_x & still_y


def prepare(rgb: np.ndarray, f: int, still: int, numba: bool) -> tuple[np.ndarray, ...]:
    """(planes, act_x, act_y, still_x, still_y, still) of rgb reduced by f, see prepare_np."""
    if numba:
        return _nb().prepare_nb(rgb, f, reduce_multiplier(f), still)
    return prepare_np(rgb, f, still)


def border_run(p: np.ndarray, axis: int, tol: int, share: float, edge: float, numba: bool) -> int | None:
    """Border lines at the start of p (3, H, W) along axis, compiled (see hashes.regions._border_run,
    the numpy version); None when numba is off, for the caller to run the numpy version."""
    if not numba:
        return None
    return int(_nb().border_run_nb(p if axis == 0 else p.transpose(0, 2, 1), tol, share, edge))


def dominant_colours(px: np.ndarray, n: int, most: int, share: float, tol: int) -> list[np.ndarray] | None:
    """hashes.regions._dominant_colours compiled (numba on only; None: the caller runs the numpy version)."""
    return [c for c in _nb().dominant_colours_nb(px, n, most, share, tol)]


def ui_rows(planes: np.ndarray, colours: list[np.ndarray], tol: int, still_x: np.ndarray, share: float,
            numba: bool) -> tuple[np.ndarray, np.ndarray]:
    """(map of pixels near any of colours, rows where >= share of the pixels are in it and still_x)."""
    if numba:
        colours_arr = np.asarray(colours, np.float64).reshape(-1, 3)
        return _nb().ui_rows_nb(np.ascontiguousarray(planes), _bounds(colours_arr, tol), still_x, share)
    ui_map = close_any(planes, colours, tol, False)
    return ui_map, (ui_map & still_x).mean(axis=1) >= share


def _bounds(colours: np.ndarray, tol: int) -> np.ndarray:
    """(k, 3, 2) int64: for each colour and channel the integers v with |v - colour| <= tol."""
    c = np.asarray(colours, np.float64).reshape(-1, 3)
    return np.stack([np.ceil(c - tol), np.floor(c + tol)], axis=2).astype(np.int64)


def activity(planes: np.ndarray, numba: bool) -> tuple[np.ndarray, np.ndarray]:
    """(act_x, act_y) of planes, see activity_np."""
    return _nb().activity_nb(planes) if numba else activity_np(planes)


def close_any(planes: np.ndarray, colours: np.ndarray, tol: int, numba: bool) -> np.ndarray:
    """Pixels near any of colours, see close_any_np."""
    colours = np.asarray(colours, np.float64).reshape(-1, 3)
    if numba:
        return _nb().close_any_nb(np.ascontiguousarray(planes), _bounds(colours, tol))
    return close_any_np(planes, colours, tol)


def flat_lines(planes: np.ndarray, act_along: np.ndarray, axis: int, tol: int, share: float, numba: bool) -> np.ndarray:
    """Lines near their median colour, see flat_lines_np; lines maybe_flat rules out are never examined."""
    if numba:
        candidates = _nb().maybe_flat_nb(act_along, axis, tol, share)
        return _nb().flat_lines_nb(np.ascontiguousarray(planes), axis, tol, share, candidates)
    candidates = maybe_flat(act_along, axis, tol, share)
    out = np.zeros(candidates.size, bool)
    if candidates.any():
        sub = planes[:, candidates] if axis == 0 else planes[:, :, candidates]
        out[candidates] = flat_lines_np(sub, axis, tol, share)
    return out


def warm() -> None:
    """Compile (or load from numba's cache) every kernel now, not on the first picture (Docker build, benchmarks)."""
    if not HAVE_NUMBA:
        return
    planes = np.zeros((3, 8, 8), np.int16)
    act_x, act_y = activity(planes, True)
    border_run(planes, 0, 12, 0.97, 0.4, True)
    dominant_colours(planes[:, 0, :], 8, 2, 0.1, 12)
    border_run(planes[:, ::-1], 1, 12, 0.97, 0.4, True)
    border_run(planes[:, :, ::-1], 1, 12, 0.97, 0.4, True)
    for f in (1, 2, 3):
        rgb = np.zeros((8, 8, 3), np.uint8)
        prepare(rgb, f, 6, True)
        rgb.flags.writeable = False  # decoded pictures are read-only: a separate compiled version
        prepare(rgb, f, 6, True)
    close_any(planes, np.zeros((1, 3)), 12, True)
    ui_rows(planes, [np.zeros(3)], 12, act_x <= 6, 0.5, True)
    flat_lines(planes, act_x, 0, 12, 0.98, True)
    flat_lines(planes, act_y, 1, 12, 0.98, True)
