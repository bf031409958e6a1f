"""Compiled (numba) versions of the detector's inner loops in hashes._region_kernels.

Imported by hashes._region_kernels on the first compiled call, never at ``import hashes``. Each
kernel gives exactly what its numpy version there gives (tests/test_regions.py checks them on
random and structured inputs); ``cache=True`` keeps the machine code in ``__pycache__`` (or
``NUMBA_CACHE_DIR``) so that later processes load it instead of compiling (~10 s).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from hashes._region_kernels import LINE_SAMPLES


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
