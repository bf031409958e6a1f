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
def prepare_nb(rgb, f, multiplier, still):  # pragma: no cover - compiled
    # One pass instead of Pillow's reduce, two copies, a transpose, a dtype change and four maps.
    # Pillow rounds an f x f box sum ss as ((ss + f*f // 2) * multiplier) >> 24 in 32-bit unsigned
    # arithmetic (for f = 2 as (ss + 2) >> 2, which that equals); the product stays below 2**32, so
    # 64-bit integers give the same. f = 1 copies.
    h, w = rgb.shape[0] // f, rgb.shape[1] // f
    planes = np.empty((3, h, w), np.int16)
    p0, p1, p2 = planes[0], planes[1], planes[2]
    if f == 1:
        for i in range(h):
            row = rgb[i]
            for j in range(w):
                p0[i, j] = row[j, 0]
                p1[i, j] = row[j, 1]
                p2[i, j] = row[j, 2]
    elif f == 2:
        for i in range(h):
            r0 = rgb[2 * i]
            r1 = rgb[2 * i + 1]
            for j in range(w):
                x = 2 * j
                p0[i, j] = (np.int32(r0[x, 0]) + r0[x + 1, 0] + r1[x, 0] + r1[x + 1, 0] + 2) >> 2
                p1[i, j] = (np.int32(r0[x, 1]) + r0[x + 1, 1] + r1[x, 1] + r1[x + 1, 1] + 2) >> 2
                p2[i, j] = (np.int32(r0[x, 2]) + r0[x + 1, 2] + r1[x, 2] + r1[x + 1, 2] + 2) >> 2
    else:
        amend = (f * f) // 2
        acc = np.empty((w, 3), np.int64)
        for i in range(h):
            acc[:] = amend
            for y in range(i * f, i * f + f):
                row = rgb[y]
                for j in range(w):
                    s0 = acc[j, 0]
                    s1 = acc[j, 1]
                    s2 = acc[j, 2]
                    for x in range(j * f, j * f + f):
                        s0 += row[x, 0]
                        s1 += row[x, 1]
                        s2 += row[x, 2]
                    acc[j, 0] = s0
                    acc[j, 1] = s1
                    acc[j, 2] = s2
            for j in range(w):
                p0[i, j] = (acc[j, 0] * multiplier) >> 24
                p1[i, j] = (acc[j, 1] * multiplier) >> 24
                p2[i, j] = (acc[j, 2] * multiplier) >> 24
    # activity as in activity_nb, in branch-free loops the compiler vectorises
    act_x = np.zeros((h, w), np.int16)
    act_y = np.zeros((h, w), np.int16)
    for i in range(h):
        a0, a1, a2, out = p0[i], p1[i], p2[i], act_x[i]
        for j in range(w - 1):
            out[j] = max(abs(a0[j + 1] - a0[j]), max(abs(a1[j + 1] - a1[j]), abs(a2[j + 1] - a2[j])))
    for i in range(h - 1):
        a0, a1, a2, b0, b1, b2, out = p0[i], p1[i], p2[i], p0[i + 1], p1[i + 1], p2[i + 1], act_y[i]
        for j in range(w):
            out[j] = max(abs(b0[j] - a0[j]), max(abs(b1[j] - a1[j]), abs(b2[j] - a2[j])))
    still_x = np.empty((h, w), np.bool_)
    still_y = np.empty((h, w), np.bool_)
    still_xy = np.empty((h, w), np.bool_)
    fx, fy, fxy, ax, ay = still_x.ravel(), still_y.ravel(), still_xy.ravel(), act_x.ravel(), act_y.ravel()
    for k in range(h * w):
        sx = ax[k] <= still
        sy = ay[k] <= still
        fx[k] = sx
        fy[k] = sy
        fxy[k] = sx & sy
    return planes, act_x, act_y, still_x, still_y, still_xy


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


@njit(**_OPTS)
def border_run_nb(p, tol, share, edge):  # pragma: no cover - compiled
    # hashes.regions._border_run along rows of p (3, N, L) (columns: the caller transposes):
    # leading lines with >= share of their pixels within tol of the first line's median colour,
    # kept only if one of the next two lines has >= edge of its pixels off that colour.
    _, size, length = p.shape
    if length == 0 or size == 0:
        return 0
    colour = np.empty(3, np.float64)
    for c in range(3):
        colour[c] = np.median(p[c, 0, :])  # numpy's median: the mean of the middle two for even counts
    c0, c1, c2 = colour[0], colour[1], colour[2]
    n = 0
    while n < size:
        count = 0
        for k in range(length):
            if abs(p[0, n, k] - c0) <= tol and abs(p[1, n, k] - c1) <= tol and abs(p[2, n, k] - c2) <= tol:
                count += 1
        if count / length >= share:
            n += 1
        else:
            break
    if n == 0 or n >= size:
        return n
    differ = 0.0
    for line in range(n, min(n + 2, size)):
        count = 0
        for k in range(length):
            if abs(p[0, line, k] - c0) > tol or abs(p[1, line, k] - c1) > tol or abs(p[2, line, k] - c2) > tol:
                count += 1
        differ = max(differ, count / length)
    return n if differ >= edge else 0


@njit(**_OPTS)
def maybe_flat_nb(act_along, axis, tol, share):  # pragma: no cover - compiled
    # hashes._region_kernels.maybe_flat in one pass: lines with enough quiet neighbouring pairs
    if axis == 0:
        n, length = act_along.shape
    else:
        length, n = act_along.shape
    limit = (length - 1) - 2 * (1 - share) * length - 1
    out = np.zeros(n, np.bool_)
    if axis == 0:
        for line in range(n):
            count = 0
            for k in range(length - 1):
                count += act_along[line, k] <= 2 * tol
            out[line] = count >= limit
    else:
        counts = np.zeros(n, np.int64)
        for k in range(length - 1):
            row = act_along[k]
            for line in range(n):
                counts[line] += row[line] <= 2 * tol
        for line in range(n):
            out[line] = counts[line] >= limit
    return out


@njit(**_OPTS)
def dominant_colours_nb(px, n, most, share, tol):  # pragma: no cover - compiled
    # hashes.regions._dominant_colours: up to `most` colours (rows of the result) each covering
    # >= share of n pixels, from px (3, m): the fullest 16-level colour bin's median colour, then
    # the pixels within tol of it are removed and the next one is looked for.
    out = np.empty((most, 3), np.float64)
    found = 0
    m = px.shape[1]
    alive = np.ones(m, np.bool_)
    left = m
    keys = np.empty(m, np.int64)
    for k in range(m):
        keys[k] = (px[0, k] >> 4) * 256 + (px[1, k] >> 4) * 16 + (px[2, k] >> 4)
    hist = np.zeros(4096, np.int64)
    while left >= share * n and found < most and n > 0:
        hist[:] = 0
        for k in range(m):
            if alive[k]:
                hist[keys[k]] += 1
        mode = 0
        for v in range(4096):
            if hist[v] > hist[mode]:
                mode = v  # the first fullest bin, as argmax
        chosen = hist[mode]
        vals = np.empty(chosen, np.int64)
        for c in range(3):
            j = 0
            for k in range(m):
                if alive[k] and keys[k] == mode:
                    vals[j] = px[c, k]
                    j += 1
            out[found, c] = np.median(vals)
        c0, c1, c2 = out[found, 0], out[found, 1], out[found, 2]
        near = 0
        for k in range(m):
            if alive[k] and abs(px[0, k] - c0) <= tol and abs(px[1, k] - c1) <= tol and abs(px[2, k] - c2) <= tol:
                near += 1
        if near < share * n:
            break
        for k in range(m):
            if alive[k] and abs(px[0, k] - c0) <= tol and abs(px[1, k] - c1) <= tol and abs(px[2, k] - c2) <= tol:
                alive[k] = False
        left -= near
        found += 1
    return out[:found].copy()


@njit(**_OPTS)
def symmetric_pad_nb(act, axis, k, lo, hi, smooth_max, smooth_contrast):  # pragma: no cover - compiled
    # hashes.regions._symmetric_pad of the line means of act (H, W): rows (axis=1, act_x.mean(axis=1))
    # or columns (axis=0). Means are integer sums over a length (exact, as numpy's); the cumulative
    # sums and every expression follow the numpy version's order, so the floats are identical.
    if axis == 1:
        n, length = act.shape
    else:
        length, n = act.shape
    a = np.zeros(n, np.float64)
    if axis == 1:
        for i in range(n):
            t = 0
            for j in range(length):
                t += act[i, j]
            a[i] = t / length
    else:
        sums = np.zeros(n, np.int64)
        for j in range(length):
            row = act[j]
            for i in range(n):
                sums[i] += row[i]
        for i in range(n):
            a[i] = sums[i] / length
    if hi <= lo:
        return 0
    c = np.zeros(n + 1, np.float64)
    for i in range(n):
        c[i + 1] = c[i] + a[i]
    pre = np.empty(n, np.float64)
    suf = np.empty(n, np.float64)
    m1 = a[0]
    m2 = a[n - 1]
    for i in range(n):
        m1 = max(m1, a[i])
        m2 = max(m2, a[n - 1 - i])
        pre[i] = m1
        suf[i] = m2
    best_w = 0
    best = 0.0
    any_ok = False
    for w in range(lo, hi + 1):
        outside = (c[w] - c[w - k] + c[n - w + k] - c[n - w]) / (2 * k)
        inside = (c[w + k] - c[w] + c[n - w] - c[n - w - k]) / (2 * k)
        pad_max = max(pre[w - 1], suf[w - 1])
        contrast = inside / (outside + 0.25)
        ok = pad_max < smooth_max and pad_max < 0.6 * inside and contrast >= smooth_contrast
        value = contrast if ok else -1.0
        if w == lo or value > best:  # the first largest, as argmax
            best, best_w = value, w
        any_ok = any_ok or ok
    return best_w if any_ok else 0


@njit(**_OPTS)
def ui_rows_nb(planes, bounds, still_x, share):  # pragma: no cover - compiled
    # close_any_nb's map and, per row, whether >= share of its pixels are in it and still along the row
    ui_map = close_any_nb(planes, bounds)
    h, w = ui_map.shape
    rows = np.zeros(h, np.bool_)
    for i in range(h):
        count = 0
        m, s = ui_map[i], still_x[i]
        for j in range(w):
            count += m[j] & s[j]
        rows[i] = count / w >= share
    return ui_map, rows


@njit(**_OPTS)
def scan_ui_nb(lines, colours, still, tol, share):  # pragma: no cover - compiled
    # The "ui" test of hashes.regions._Reduced._scan on full-resolution lines (N, L, 3) uint8 (any
    # strides): line n is outside the picture when >= share of its L - 1 pixel pairs (k, k + 1)
    # are still (no channel changes by more than `still`) and pixel k + 1 is within tol of one of
    # colours (k, 3) in every channel.
    n, length = lines.shape[0], lines.shape[1]
    out = np.zeros(n, np.bool_)
    if length < 2:
        return out  # numpy's mean of nothing is nan, and nan >= share is False
    for line in range(n):
        count = 0
        for k in range(length - 1):
            m = 0
            for c in range(3):
                d = abs(np.int64(lines[line, k + 1, c]) - np.int64(lines[line, k, c]))
                if d > m:
                    m = d
            if m > still:
                continue
            v0 = np.float64(lines[line, k + 1, 0])
            v1 = np.float64(lines[line, k + 1, 1])
            v2 = np.float64(lines[line, k + 1, 2])
            for j in range(colours.shape[0]):
                if abs(v0 - colours[j, 0]) <= tol and abs(v1 - colours[j, 1]) <= tol and abs(v2 - colours[j, 2]) <= tol:
                    count += 1
                    break
        out[line] = count / (length - 1) >= share
    return out
