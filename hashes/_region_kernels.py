"""Inner loops of the query-region detector (hashes.regions): a numpy version and a compiled (numba) one.

Both versions take the same arrays and return identical results: every quantity is an integer
count or an integer sum divided once by a length, and medians of integers, all exact in float64
whatever the order of summation. ``hashes.regions`` uses the numba versions when numba is
importable, unless ``NCII_REGIONS_BACKEND=numpy`` or ``backend="numpy"`` says otherwise;
tests/test_regions.py checks the two agree on random and structured inputs.

Arrays: ``planes`` is the detector's reduced picture, (3, H, W) int16 with values 0-255;
``colours`` is (k, 3) float64; ``tol`` is the per-channel colour tolerance.
"""

from __future__ import annotations

import numpy as np

try:  # pragma: no cover - exercised when numba is installed
    from numba import njit

    HAVE_NUMBA = True
except ImportError:  # pragma: no cover
    HAVE_NUMBA = False

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


# ----------------------------------------------------------------------------- numba versions

if HAVE_NUMBA:  # pragma: no branch
    _OPTS = {"cache": True, "nogil": True}

    @njit(**_OPTS)
    def activity_nb(planes):  # pragma: no cover - compiled
        _, h, w = planes.shape
        act_x = np.zeros((h, w), np.int16)
        act_y = np.zeros((h, w), np.int16)
        for i in range(h):
            for j in range(w):
                if j + 1 < w:
                    m = 0
                    for c in range(3):
                        d = abs(planes[c, i, j + 1] - planes[c, i, j])
                        if d > m:
                            m = d
                    act_x[i, j] = m
                if i + 1 < h:
                    m = 0
                    for c in range(3):
                        d = abs(planes[c, i + 1, j] - planes[c, i, j])
                        if d > m:
                            m = d
                    act_y[i, j] = m
        return act_x, act_y

    @njit(**_OPTS)
    def close_any_nb(planes, bounds):  # pragma: no cover - compiled
        # bounds (k, 3, 2): per colour and channel the integer range [lo, hi] within tol of it
        _, h, w = planes.shape
        out = np.zeros((h, w), np.bool_)
        for n in range(bounds.shape[0]):
            lo0, hi0 = bounds[n, 0, 0], bounds[n, 0, 1]
            lo1, hi1 = bounds[n, 1, 0], bounds[n, 1, 1]
            lo2, hi2 = bounds[n, 2, 0], bounds[n, 2, 1]
            for i in range(h):
                p0, p1, p2, o = planes[0, i], planes[1, i], planes[2, i], out[i]
                for j in range(w):
                    o[j] |= ((lo0 <= p0[j]) & (p0[j] <= hi0) & (lo1 <= p1[j]) & (p1[j] <= hi1)
                             & (lo2 <= p2[j]) & (p2[j] <= hi2))
        return out

    @njit(**_OPTS)
    def flat_lines_nb(planes, axis, tol, share, candidates):  # pragma: no cover - compiled
        _, h, w = planes.shape
        n, length = (h, w) if axis == 0 else (w, h)
        step = max(1, length // LINE_SAMPLES)
        m = (length + step - 1) // step
        hist = np.zeros(256, np.int32)
        lo = np.empty(3, np.int64)
        hi = np.empty(3, np.int64)
        out = np.zeros(n, np.bool_)
        for line in range(n):
            if not candidates[line]:
                continue
            for c in range(3):
                hist[:] = 0
                for k in range(m):
                    v = planes[c, line, k * step] if axis == 0 else planes[c, k * step, line]
                    hist[v] += 1
                # numpy's median of integers: the middle value, or the mean of the two middle ones
                # (2 * median, kept as an integer: the range within tol of it is then exact)
                a, b, seen, v = -1, -1, 0, 0
                while b < 0:
                    seen += hist[v]
                    if a < 0 and seen > (m - 1) // 2:
                        a = v
                    if seen > m // 2:
                        b = v
                    v += 1
                twice = a + b
                # |p - twice / 2| <= tol  <=>  twice - 2 tol <= 2 p <= twice + 2 tol
                lo[c] = (twice - 2 * tol + 1) // 2
                hi[c] = (twice + 2 * tol) // 2
            count = 0
            if axis == 0:
                p0, p1, p2 = planes[0, line], planes[1, line], planes[2, line]
                for k in range(length):
                    count += ((lo[0] <= p0[k]) & (p0[k] <= hi[0]) & (lo[1] <= p1[k]) & (p1[k] <= hi[1])
                              & (lo[2] <= p2[k]) & (p2[k] <= hi[2]))
            else:
                for k in range(length):
                    count += ((lo[0] <= planes[0, k, line]) & (planes[0, k, line] <= hi[0])
                              & (lo[1] <= planes[1, k, line]) & (planes[1, k, line] <= hi[1])
                              & (lo[2] <= planes[2, k, line]) & (planes[2, k, line] <= hi[2]))
            out[line] = count / length >= share
        return out


def _bounds(colours: np.ndarray, tol: int) -> np.ndarray:
    """(k, 3, 2) int64: for each colour and channel the integers v with |v - colour| <= tol."""
    c = np.asarray(colours, np.float64).reshape(-1, 3)
    return np.stack([np.ceil(c - tol), np.floor(c + tol)], axis=2).astype(np.int64)


def activity(planes: np.ndarray, numba: bool) -> tuple[np.ndarray, np.ndarray]:
    """(act_x, act_y) of planes, see activity_np."""
    return activity_nb(planes) if numba else activity_np(planes)


def close_any(planes: np.ndarray, colours: np.ndarray, tol: int, numba: bool) -> np.ndarray:
    """Pixels near any of colours, see close_any_np."""
    colours = np.asarray(colours, np.float64).reshape(-1, 3)
    if numba:
        return close_any_nb(np.ascontiguousarray(planes), _bounds(colours, tol))
    return close_any_np(planes, colours, tol)


def flat_lines(planes: np.ndarray, act_along: np.ndarray, axis: int, tol: int, share: float, numba: bool) -> np.ndarray:
    """Lines near their median colour, see flat_lines_np; lines maybe_flat rules out are never examined."""
    candidates = maybe_flat(act_along, axis, tol, share)
    if numba:
        return flat_lines_nb(np.ascontiguousarray(planes), axis, tol, share, candidates)
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
    close_any(planes, np.zeros((1, 3)), 12, True)
    flat_lines(planes, act_x, 0, 12, 0.98, True)
    flat_lines(planes, act_y, 1, 12, 0.98, True)
