"""Compiled (numba) PDQ: the float32 operations of hashes.pdq's numpy code, in the same order.

``hashes.pdq`` imports this module only when the numba backend is first used. Every kernel has one
explicit signature, so importing this module compiles all of them (about 10 s), or, with
``cache=True``, loads the machine code that an earlier process left in ``__pycache__`` (well under a
second); nothing is compiled later. The kernels perform exactly the reference's float32 operations,
so the numpy and numba backends give bit-identical coefficients, hashes and qualities; docs/pdq.md
explains which operations that constrains, and tests/test_pdq.py checks it.

One image (or one box of it), H x W, streams through the Jarosz filter in strips of ``_LANES``
rows, so that every intermediate stays in cache whatever the image size:

1. the strip's luma rows (computed from RGB on the fly, or read from a luma array) are
   transposed into a tile (W, _LANES) by 8x8 blocks;
2. first horizontal pass along the tile, one lane per image row -> transposed back into a ring
   buffer of first-pass rows;
3. first vertical pass down the ring, one lane per column, as soon as its window's rows are in
   -> rows of the second-pass output, collected _LANES at a time and transposed into a tile;
4. second horizontal pass along that tile, keeping only the 64 sampled columns -> P3 (H, 64);
5. second vertical pass down P3, keeping only the 64 sampled rows -> the 64x64 buffer;
6. quality, the 16x16 DCT of the buffer, and the bits (coefficients above their median).

Each pass is the reference's running sum per line: add the entering sample, subtract the leaving
one, divide by the window's sample count, in float32 and in that order. Lanes are independent
lines, so vectorising across them changes no line's arithmetic. Nothing is compiled with
fastmath, so there is no reassociation and no fused multiply-add.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

# Every kernel has one explicit signature, so it is compiled once (or loaded from the cache) when this
# module is imported, and never again for other argument types: read-only inputs (decoded images often
# are) and writable ones share the same machine code.
_i64 = types.int64
_ro = {  # read-only views of the inputs; writable arrays convert to these
    "u8_3": types.Array(types.uint8, 3, "C", readonly=True),
    "f32_2": types.Array(types.float32, 2, "C", readonly=True),
    "f32_1": types.Array(types.float32, 1, "C", readonly=True),
    "i64_2": types.Array(types.int64, 2, "C", readonly=True),
    "i64_1": types.Array(types.int64, 1, "C", readonly=True),
}
_f32_1, _f32_2, _f32_3 = types.float32[::1], types.float32[:, ::1], types.float32[:, :, ::1]
_u8_1, _u8_2 = types.uint8[::1], types.uint8[:, ::1]

_LANES = 32  # lines per horizontal-pass tile: 4 AVX2 vectors, enough independent sums in flight per step
_OPTS = {"cache": True, "nogil": True, "error_model": "numpy"}


# ---------------------------------------------------------------- building blocks

# In _luma_row and _transpose, indexing goes through row views and slices so that every index inside a
# loop is built from loop counters only: numba then emits no negative-index wraparound, which would
# keep those loops from vectorising (2-3x slower).


@njit(types.void(_ro["u8_3"], _i64, _i64, _i64, _f32_1, types.int32[:, ::1]), **_OPTS)
def _luma_row(rgb, i, c0, n, out, planes):
    """out[j] = luma of pixel (i, c0 + j): 0.299 R + 0.587 G + 0.114 B in float64, then float32.
    planes (3, >= n) is scratch: splitting the channels first lets the arithmetic vectorise."""
    row = rgb[i].reshape(-1)[3 * c0 : 3 * (c0 + n)]
    r, g, b = planes[0, :n], planes[1, :n], planes[2, :n]
    for j in range(n):
        r[j] = row[3 * j]
        g[j] = row[3 * j + 1]
        b[j] = row[3 * j + 2]
    for j in range(n):
        out[j] = np.float32((r[j] * 0.299 + g[j] * 0.587) + b[j] * 0.114)


@intrinsic
def _transpose8(typingctx, src, si, sj, dst, di, dj):
    """dst[di + c, dj + r] = src[si + r, sj + c] for r, c < 8: one 8x8 float32 block of two C-contiguous
    2-D arrays, in AVX registers (8 row loads, 24 shuffles, 8 row stores). No bounds checks."""
    sig = types.void(src, si, sj, dst, di, dj)

    def codegen(context, builder, signature, args):
        src_ty, dst_ty = signature.args[0], signature.args[3]
        src_arr = context.make_array(src_ty)(context, builder, args[0])
        dst_arr = context.make_array(dst_ty)(context, builder, args[3])
        vec = ir.VectorType(ir.FloatType(), 8)
        i64 = ir.IntType(64)

        def row_ptr(ty, arr, i, j, k):
            ptr = cgutils.get_item_pointer(context, builder, ty, arr, [builder.add(i, ir.Constant(i64, k)), j],
                                           wraparound=False)
            return builder.bitcast(ptr, vec.as_pointer())

        def shuffle(a, b, mask):
            return builder.shuffle_vector(a, b, ir.Constant(ir.VectorType(ir.IntType(32), 8), mask))

        rows = [builder.load(row_ptr(src_ty, src_arr, args[1], args[2], k), align=4) for k in range(8)]
        # unpack pairs of rows, then pairs of pairs, then the 128-bit halves (the classic AVX transpose)
        t = []
        for k in range(0, 8, 2):
            t.append(shuffle(rows[k], rows[k + 1], [0, 8, 1, 9, 4, 12, 5, 13]))
            t.append(shuffle(rows[k], rows[k + 1], [2, 10, 3, 11, 6, 14, 7, 15]))
        lo, hi = [0, 1, 8, 9, 4, 5, 12, 13], [2, 3, 10, 11, 6, 7, 14, 15]
        u = [shuffle(t[0], t[2], lo), shuffle(t[0], t[2], hi), shuffle(t[1], t[3], lo), shuffle(t[1], t[3], hi),
             shuffle(t[4], t[6], lo), shuffle(t[4], t[6], hi), shuffle(t[5], t[7], lo), shuffle(t[5], t[7], hi)]
        cols = [shuffle(u[k], u[k + 4], [0, 1, 2, 3, 8, 9, 10, 11]) for k in range(4)]
        cols += [shuffle(u[k], u[k + 4], [4, 5, 6, 7, 12, 13, 14, 15]) for k in range(4)]
        for k in range(8):
            builder.store(cols[k], row_ptr(dst_ty, dst_arr, args[4], args[5], k), align=4)
        return context.get_dummy_value()

    return sig, codegen


@njit(types.void(_ro["f32_2"], _i64, _i64, _i64, _i64, _f32_2, _i64), **_OPTS)
def _transpose(src, r0, nr, c0, nc, dst, d0):
    """dst[d0 + j, r] = src[r0 + r, c0 + j] for r < nr, j < nc (in bounds: the caller's promise)."""
    nr8 = nr - nr % 8
    nc8 = nc - nc % 8
    for rb in range(0, nr8, 8):
        for jb in range(0, nc8, 8):
            _transpose8(src, r0 + rb, c0 + jb, dst, d0 + jb, rb)
    sv = src[r0 : r0 + nr, c0 : c0 + nc]
    dv = dst[d0 : d0 + nc]
    for r in range(nr8):  # the last nc % 8 columns
        for j in range(nc8, nc):
            dv[j, r] = sv[r, j]
    for r in range(nr8, nr):  # the last nr % 8 rows
        for j in range(nc):
            dv[j, r] = sv[r, j]


@njit(types.void(_ro["f32_2"], _i64, _i64, _ro["i64_1"], _i64, _f32_2, _i64, _f32_1), **_OPTS)
def _box(x, length, full, keep, nkeep, out, nl, acc):
    """One box-filter pass: the reference's running sums along x's first axis, for nl lines (lanes)
    at once; out[m, :nl] = sum / count at output position keep[m] for m < nkeep (keep ascending),
    or at every position o into out[o] when nkeep is 0.

    At output position o the window is [o - growing + 1, o + half - 1], clipped to the line. The
    sum adds the entering sample, then subtracts the leaving one, exactly as the reference does.
    """
    half = (full + 2) // 2
    growing = full - half + 1
    for c in range(nl):
        acc[c] = 0
    for e in range(half - 1):
        for c in range(nl):
            acc[c] += x[e, c]
    last = length - 1 if nkeep == 0 else keep[nkeep - 1]
    m = 0
    for o in range(last + 1):
        e = o + half - 1
        lv = o - growing
        cnt = np.float32(min(e, length - 1) - max(lv + 1, 0) + 1)
        if nkeep == 0:  # every output: add, subtract and divide in one sweep
            if e < length:
                if lv >= 0:
                    for c in range(nl):
                        t = acc[c] + x[e, c]
                        t = t - x[lv, c]
                        acc[c] = t
                        out[o, c] = t / cnt
                else:
                    for c in range(nl):
                        t = acc[c] + x[e, c]
                        acc[c] = t
                        out[o, c] = t / cnt
            else:
                for c in range(nl):
                    t = acc[c] - x[lv, c]
                    acc[c] = t
                    out[o, c] = t / cnt
            continue
        if e < length:
            if lv >= 0:
                for c in range(nl):
                    t = acc[c] + x[e, c]
                    acc[c] = t - x[lv, c]
            else:
                for c in range(nl):
                    acc[c] += x[e, c]
        else:
            for c in range(nl):
                acc[c] -= x[lv, c]
        while m < nkeep and keep[m] == o:
            for c in range(nl):
                out[m, c] = acc[c] / cnt
            m += 1


@njit(types.void(_ro["f32_2"], _i64, _i64, _i64, _i64, _i64, _f32_1, _f32_1), **_OPTS)
def _vstep(ring, nring, o, length, full, w, acc, out):
    """Output row o of the first vertical pass into out (first-pass row i is ring[i % nring]).
    The first half - 1 rows must already be summed into acc."""
    half = (full + 2) // 2
    e = o + half - 1
    lv = o - (full - half + 1)
    cnt = np.float32(min(e, length - 1) - max(lv + 1, 0) + 1)
    if e < length:
        re = ring[e % nring]
        if lv >= 0:
            rl = ring[lv % nring]
            for c in range(w):
                t = acc[c] + re[c]
                t = t - rl[c]
                acc[c] = t
                out[c] = t / cnt
        else:
            for c in range(w):
                t = acc[c] + re[c]
                acc[c] = t
                out[c] = t / cnt
    else:
        rl = ring[lv % nring]
        for c in range(w):
            t = acc[c] - rl[c]
            acc[c] = t
            out[c] = t / cnt


# ---------------------------------------------------------------- quality, DCT, bits


@njit(types.void(_ro["f32_1"], _u8_1, types.int64[::1]), **_OPTS)
def _bits(flat, out, keys):
    """Set bit k of the 256-bit number (out: its 32 big-endian bytes) where flat[k] > lower median."""
    # The lower median (the 128th smallest) by bisection over order-preserving integer keys of the
    # float32 bit patterns: the smallest key with at least 128 keys at or below it.
    bits = flat.view(np.uint32)
    for k in range(256):
        u = np.int64(bits[k])
        keys[k] = u + 0x80000000 if u < 0x80000000 else 0xFFFFFFFF - u
    lo, hi = 0, 0xFFFFFFFF
    while lo < hi:
        mid = (lo + hi) // 2
        n = 0
        for k in range(256):
            n += keys[k] <= mid
        if n >= 128:
            hi = mid
        else:
            lo = mid + 1
    median = np.float32(0)
    for k in range(256):
        if keys[k] == lo:
            median = flat[k]
    for k in range(256):
        if flat[k] > median:  # compared as floats, as the reference does (-0.0 == 0.0)
            out[31 - (k >> 3)] |= np.uint8(1 << (k & 7))


@njit(types.void(_ro["u8_3"], _ro["f32_2"], types.boolean, _ro["i64_2"], _ro["f32_2"],
                 _f32_3, types.int64[::1], _u8_2), **_OPTS)
def hash_boxes(rgb, lum, use_rgb, boxes, dct, coefs, qualities, packed):
    """PDQ of each box (top, left, bottom, right: in bounds, both sides >= 5) of one image, from its
    RGB pixels (use_rgb) or from its luma: the 16x16 coefficients into coefs[i], the quality into
    qualities[i] and the hash's 32 bytes (hex order) into packed[i]."""
    height, width = (rgb.shape[0], rgb.shape[1]) if use_rgb else (lum.shape[0], lum.shape[1])
    hmax, wmax = 0, 0
    for i in range(boxes.shape[0]):
        t, left, b, r = boxes[i, 0], boxes[i, 1], boxes[i, 2], boxes[i, 3]
        if t < 0 or left < 0 or b > height or r > width or b - t < 5 or r - left < 5:
            raise ValueError("box out of bounds or smaller than 5 pixels")  # the block copies are unchecked
        hmax = max(hmax, b - t)
        wmax = max(wmax, r - left)
    wpad = wmax + 24 - wmax % 16  # row stride off powers of two, so rows in flight use different cache sets
    nring_max = _LANES * (((hmax + 127) // 128 + _LANES - 1) // _LANES + 1)
    rows = np.empty((_LANES, wpad), np.float32)  # luma rows computed from RGB
    planes = np.empty((3, max(wmax, 64)), np.int32)
    tile = np.zeros((wmax, _LANES), np.float32)  # a strip, transposed: one lane per image row
    tile_out = np.empty((wmax, _LANES), np.float32)
    strip = np.empty((_LANES, wpad), np.float32)  # rows of the first vertical pass
    ring = np.empty((nring_max, wpad), np.float32)
    acc = np.empty(max(wmax, 64), np.float32)
    acc_v = np.empty(wmax, np.float32)
    p3 = np.empty((hmax, 64), np.float32)  # second horizontal pass, at the 64 sampled columns
    p3_t = np.empty((64, _LANES), np.float32)
    buf = np.empty((64, 64), np.float32)
    keep_w = np.empty(64, np.int64)
    keep_h = np.empty(64, np.int64)
    t_dct = np.empty((16, 64), np.float32)
    keys = np.empty(256, np.int64)
    for b in range(boxes.shape[0]):
        t, left = boxes[b, 0], boxes[b, 1]
        h, w = boxes[b, 2] - t, boxes[b, 3] - left
        if h == 64 and w == 64:  # the reference skips the filter for 64x64 input
            for i in range(64):
                if use_rgb:
                    _luma_row(rgb, t + i, left, 64, buf[i], planes)
                else:
                    buf[i, :] = lum[t + i, left : left + 64]
        else:
            win_w = (w + 127) // 128
            win_h = (h + 127) // 128
            half_h = (win_h + 2) // 2
            for i in range(64):
                keep_w[i] = ((2 * i + 1) * w) // 128  # sample at floor((i + 0.5) * w / 64)
                keep_h[i] = ((2 * i + 1) * h) // 128
            # The ring holds the first-pass rows the vertical pass still needs (its window, win_h + 1
            # rows) plus the strip being added, in whole strips so that no strip wraps around.
            nring = _LANES * ((win_h + _LANES - 1) // _LANES + 1)
            acc_v[:w] = 0
            primed = False  # the vertical pass's first half_h - 1 rows are summed
            o = 0  # next output row of the first vertical pass
            o0 = 0  # the first of those still in strip
            for r0 in range(0, h, _LANES):
                nr = min(_LANES, h - r0)
                # first horizontal pass over image rows r0 .. r0 + nr, into the ring
                if use_rgb:
                    for r in range(nr):
                        _luma_row(rgb, t + r0 + r, left, w, rows[r], planes)
                    _transpose(rows, 0, nr, 0, w, tile, 0)
                else:
                    _transpose(lum, t + r0, nr, left, w, tile, 0)
                _box(tile, w, win_w, keep_w, 0, tile_out, _LANES, acc)
                _transpose(tile_out, 0, w, 0, nr, ring, r0 % nring)
                loaded = r0 + nr
                # first vertical pass: every output row whose window is in
                if not primed and half_h - 1 <= loaded:
                    primed = True
                    for e in range(half_h - 1):
                        re = ring[e % nring]
                        for c in range(w):
                            acc_v[c] += re[c]
                while o < h and min(o + half_h - 1, h - 1) < loaded:
                    _vstep(ring, nring, o, h, win_h, w, acc_v, strip[o - o0])
                    o += 1
                    if o - o0 == _LANES or o == h:
                        # second horizontal pass over those rows, kept at the sampled columns
                        nv = o - o0
                        _transpose(strip, 0, nv, 0, w, tile, 0)
                        _box(tile, w, win_w, keep_w, 64, p3_t, _LANES, acc)
                        _transpose(p3_t, 0, 64, 0, nv, p3, o0)
                        o0 = o
            # second vertical pass, kept at the sampled rows
            _box(p3, h, win_h, keep_h, 64, buf, 64, acc)
        # quality: float32 (u - v) * 100 / 255 truncated toward zero, |.| summed, / 90, at most 100
        total = 0
        for i in range(63):
            for j in range(64):
                total += abs(np.int32(((buf[i, j] - buf[i + 1, j]) * np.float32(100)) / np.float32(255)))
        for i in range(64):
            for j in range(63):
                total += abs(np.int32(((buf[i, j] - buf[i, j + 1]) * np.float32(100)) / np.float32(255)))
        qualities[b] = min(total // 90, 100)
        # DCT: D @ buf @ D.T, every dot product a float32 sum of 64 products in order of k
        out = coefs[b]
        for i in range(16):
            d0 = dct[i, 0]
            for j in range(64):
                t_dct[i, j] = d0 * buf[0, j]
            for k in range(1, 64):
                dk = dct[i, k]
                for j in range(64):
                    t_dct[i, j] = t_dct[i, j] + dk * buf[k, j]
        for i in range(16):
            for j in range(16):
                out[i, j] = t_dct[i, 0] * dct[j, 0]
            for k in range(1, 64):
                tk = t_dct[i, k]
                for j in range(16):
                    out[i, j] = out[i, j] + tk * dct[j, k]
        packed[b, :] = 0
        _bits(out.reshape(-1), packed[b], keys)


@njit(_f32_2(_ro["u8_3"], _i64, _i64, _i64, _i64), **_OPTS)
def luma(rgb, top, left, bottom, right):
    """Float32 luma of rgb[top:bottom, left:right] (uint8, in bounds): the values of
    hashes.pdq.luma_from_rgb."""
    if top < 0 or left < 0 or bottom > rgb.shape[0] or right > rgb.shape[1]:
        raise ValueError("box out of bounds")
    h, w = max(bottom - top, 0), max(right - left, 0)
    out = np.empty((h, w), np.float32)
    planes = np.empty((3, w), np.int32)
    for i in range(h):
        _luma_row(rgb, top + i, left, w, out[i], planes)
    return out


@njit(_u8_2(_ro["f32_2"]), **_OPTS)
def dihedral_packed_bits(coefs):
    """(8, 32) uint8: hash bytes of the 8 dihedral variants of one 16x16 block, derived as in
    hashes.pdq._dihedral_blocks (sign flips of odd frequencies, which are exact, and transposes)."""
    out = np.zeros((8, 32), np.uint8)
    flat = np.empty(256, np.float32)
    work = np.empty(256, np.int64)
    for v in range(8):
        for i in range(16):
            for j in range(16):
                # frequency index k is odd (sign flips under a flip of its axis) when k is even
                si = i % 2 == 0
                sj = j % 2 == 0
                if v == 0:
                    x, neg = coefs[i, j], False
                elif v == 1:  # rotate90: transpose of (dct * column signs)
                    x, neg = coefs[j, i], si
                elif v == 2:  # rotate180: dct * row signs * column signs
                    x, neg = coefs[i, j], si != sj
                elif v == 3:  # rotate270: transpose of (dct * row signs)
                    x, neg = coefs[j, i], sj
                elif v == 4:  # flipX: dct * row signs
                    x, neg = coefs[i, j], si
                elif v == 5:  # flipY: dct * column signs
                    x, neg = coefs[i, j], sj
                elif v == 6:  # flipPlus1: transpose
                    x, neg = coefs[j, i], False
                else:  # flipMinus1: transpose of (dct * row signs * column signs)
                    x, neg = coefs[j, i], si != sj
                flat[16 * i + j] = -x if neg else x
        _bits(flat, out[v], work)
    return out
