"""Compiled (numba) versions of two small loops outside the region detector.

* ``jpeg_markers_nb``: the JPEG scan-count guard's byte search in hashes.decode (reference:
  ``hashes.decode._jpeg_markers_after_np``), used unless NCII_DECODE_BACKEND=numpy;
* ``grey_reduce_nb``: the grey copy pHash and dHash are computed on in hashes.compute, Pillow's
  ``convert("L")`` then ``reduce(f)`` in one pass (reference: ``hashes.compute._small_grey_pil``),
  used unless NCII_GREY_BACKEND=numpy.

Imported on first use (never at ``import hashes``) when numba is installed. Each returns exactly what
its reference returns (tests/test_decode.py and tests/test_compute.py check them on random and real
inputs); ``cache=True`` keeps the machine code between processes.
"""

from __future__ import annotations

import numpy as np
from numba import njit

#: Bytes counted per branch-free pass; only the chunk holding the first EOI is walked byte by byte.
_CHUNK = 1 << 16


@njit(cache=True, nogil=True)
def jpeg_markers_nb(a, pos):  # pragma: no cover - compiled
    # (index of the first 0xFF 0xD9 pair starting at or after pos, or -1; 0xFF 0xDA pairs before it).
    # A pair starts at i for pos <= i <= n - 2, as in the numpy version.
    n = a.size
    count = 0
    start = pos
    while start < n - 1:
        stop = min(start + _CHUNK, n - 1)
        b = a[start:stop]
        c = a[start + 1:stop + 1]
        ends = np.int32(0)
        sos = np.int32(0)
        for i in range(b.size):
            ff = np.int32(b[i] == 0xFF)
            ends += ff & np.int32(c[i] == 0xD9)
            sos += ff & np.int32(c[i] == 0xDA)
        if ends:
            for i in range(b.size):
                if b[i] == 0xFF:
                    if c[i] == 0xD9:
                        return start + i, count
                    if c[i] == 0xDA:
                        count += 1
        count += sos
        start = stop
    return -1, count


@njit(cache=True, nogil=True)
def grey_reduce_nb(rgb, f, multipliers):  # pragma: no cover - compiled
    # rgb: (H, W, 3) uint8, C-contiguous
    # Pillow's RGB -> L: (19595 R + 38470 G + 7471 B + 0x8000) >> 16 (Convert.c, rgb2l; below 2**31).
    # Then its reduce(f): each output pixel averages its f x f block, or the partial block at the
    # right and bottom edges (ReduceCorners), of area A as ((sum + A // 2) * multipliers[A]) >> 24
    # (the product stays below 2**32, so 64-bit integers give the same). f <= 1: no reduction.
    hh, ww = rgb.shape[0], rgb.shape[1]
    rows = rgb.reshape(hh, ww * 3)  # C-contiguous (the caller makes sure)
    line = np.empty(ww, np.int32)
    if f <= 1:
        out = np.empty((hh, ww), np.uint8)
        for y in range(hh):
            _grey_line(rows[y], line)
            o = out[y]
            for x in range(ww):
                o[x] = line[x]
        return out
    h, w = (hh + f - 1) // f, (ww + f - 1) // f
    full = ww // f  # blocks of full width
    out = np.empty((h, w), np.uint8)
    acc = np.empty(w, np.int64)
    for i in range(h):
        acc[:] = 0
        y0 = i * f
        y1 = min(y0 + f, hh)
        for y in range(y0, y1):
            _grey_line(rows[y], line)
            if f == 2:
                for j in range(full):
                    acc[j] += line[2 * j] + line[2 * j + 1]
            else:
                for j in range(full):
                    s = acc[j]
                    for x in range(j * f, j * f + f):
                        s += line[x]
                    acc[j] = s
            if full < w:
                for x in range(full * f, ww):
                    acc[full] += line[x]
        for j in range(w):
            area = (min(j * f + f, ww) - j * f) * (y1 - y0)
            out[i, j] = ((acc[j] + area // 2) * multipliers[area]) >> 24
    return out


@njit(cache=True, nogil=True, inline="always")
def _grey_line(row, line):  # pragma: no cover - compiled
    # row: one picture row as 3 * width bytes; unsigned 32-bit arithmetic keeps the loop vectorised
    a, b, c = np.uint32(19595), np.uint32(38470), np.uint32(7471)
    half, shift = np.uint32(0x8000), np.uint32(16)
    for x in range(line.size):
        line[x] = (np.uint32(row[3 * x]) * a + np.uint32(row[3 * x + 1]) * b + np.uint32(row[3 * x + 2]) * c + half) >> shift
