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

# The scan-count guard looks for the byte pairs 0xFF 0xD9 (EOI) and 0xFF 0xDA (SOS). They are rare,
# while 0xFF alone is common in entropy-coded data (stuffing), so the data is read 8 bytes at a
# time as words and a block of words is flagged when any of its byte positions holds either pair
# (SWAR: XOR turns a match into a zero byte, and (v - 0x01..) & ~v & 0x80.. is non-zero exactly
# when v has a zero byte). Only flagged blocks (the one holding the first EOI, and one per later
# scan of a progressive JPEG) are walked byte by byte; the flag may be set by a pair just before
# `pos` in the first block, never missed. 1.85x faster than a byte-wise branch-free count on a
# 12 MP photo.
_ONES = np.uint64(0x0101010101010101)
_HIGH = np.uint64(0x8080808080808080)
_ALL = np.uint64(0xFFFFFFFFFFFFFFFF)
_EOI = np.uint64(0xD9D9D9D9D9D9D9D9)
_SOS = np.uint64(0xDADADADADADADADA)
#: Words per flag test (4 KB): small enough that walking a flagged block costs little.
_BLOCK = 512


@njit(cache=True, nogil=True)
def _walk_markers(a, lo, hi, count):  # pragma: no cover - compiled
    # Pairs starting at lo <= i < hi: (first EOI or -1, count plus the SOS before it).
    for i in range(lo, hi):
        if a[i] == 0xFF:
            x = a[i + 1]
            if x == 0xD9:
                return i, count
            if x == 0xDA:
                count += 1
    return -1, count


@njit(cache=True, nogil=True)
def jpeg_markers_nb(a, pos):  # pragma: no cover - compiled
    # (index of the first 0xFF 0xD9 pair starting at or after pos, or -1; 0xFF 0xDA pairs before it).
    # A pair starts at i for pos <= i <= n - 2, as in the numpy version.
    n = a.size
    if pos >= n - 1:
        return -1, 0
    nw = n // 8
    w = a[: nw * 8].view(np.uint64)  # little-endian: byte k of a word is bits 8k..8k+7
    eight = np.uint64(8)
    fifty_six = np.uint64(56)
    count = 0
    i = pos // 8
    while i < nw - 1:
        j = min(i + _BLOCK, nw - 1)
        flag = np.uint64(0)
        for k in range(i, j):
            cur = w[k]
            following = (cur >> eight) | (w[k + 1] << fifty_six)  # the byte after each byte of cur
            ff = cur ^ _ALL
            eoi = ff | (following ^ _EOI)
            sos = ff | (following ^ _SOS)
            flag |= ((eoi - _ONES) & ~eoi & _HIGH) | ((sos - _ONES) & ~sos & _HIGH)
        if flag:
            eoi_at, count = _walk_markers(a, max(pos, 8 * i), 8 * j, count)
            if eoi_at >= 0:
                return eoi_at, count
        i = j
    return _walk_markers(a, max(pos, 8 * i), n - 1, count)


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
