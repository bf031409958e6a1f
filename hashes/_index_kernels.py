"""Inner loops of hashes.index: a compiled (numba) version and a plain numpy version of each.

Both versions take and return the same arrays and give identical results; ``hashes.index``
picks the numba one when numba is importable and the numpy one otherwise (or when asked:
``NCII_INDEX_BACKEND=numpy`` or ``backend="numpy"``). The tests run both against brute force.

Layout used by every kernel (see docs/index.md):

* ``raw``: (n, W) uint64, one row per registered hash (W = bits / 64), the hash's bytes in hex
  order viewed as native words;
* ``tomb``: uint8 bitmap of removed rows (bit ``row & 7`` of byte ``row >> 3``);
* a table j keys each row by ``b`` of its bits (``lut[j]`` gathers them byte by byte); rows
  sorted by key are stored as 3-byte little-endian row numbers in ``entries[j]``; bucket
  ``x`` is ``entries[j][start(x):start(x + 1)]`` with
  ``start(x) = base[j, x >> GROUP_SHIFT] + rel[j, x]``.
"""

from __future__ import annotations

import numpy as np

GROUP_SHIFT = 4  # 16 buckets share one uint32 base offset; rel is the offset within the group

try:  # pragma: no cover - exercised when numba is installed
    from llvmlite import binding as _llvm_binding
    from llvmlite import ir as _ir
    from numba import njit, types
    from numba.core import cgutils as _cgutils
    from numba.extending import intrinsic

    HAVE_NUMBA = True
except ImportError:  # pragma: no cover
    HAVE_NUMBA = False


# ----------------------------------------------------------------------------- numpy versions


def table_keys_np(raw8: np.ndarray, lut: np.ndarray, touched: np.ndarray) -> np.ndarray:
    """Key of every row for one table: OR of lut[k, byte k] over the bytes the table uses."""
    keys = np.zeros(raw8.shape[0], dtype=np.uint32)
    for k in touched:
        keys |= lut[k][raw8[:, k]]
    return keys


def query_keys_np(q8: np.ndarray, luts: np.ndarray) -> np.ndarray:
    """(nq, m) keys of queries for all m tables. luts is (m, nbytes, 256) uint32."""
    m, nbytes = luts.shape[0], luts.shape[1]
    out = np.zeros((q8.shape[0], m), dtype=np.int64)
    ar = np.arange(nbytes)
    for j in range(m):
        out[:, j] = np.bitwise_or.reduce(luts[j][ar, q8], axis=1)
    return out


def build_table_np(raw8: np.ndarray, lut: np.ndarray, touched: np.ndarray, b: int):
    """Counting-sort the rows by key: (entries (3n,) uint8, base (ng+1,) uint32, rel (2^b+1,) uint32)."""
    n = raw8.shape[0]
    nb = 1 << b
    keys = table_keys_np(raw8, lut, touched)
    order = np.argsort(keys, kind="stable").astype("<u4")
    counts = np.bincount(keys, minlength=nb)
    starts = np.zeros(nb + 1, dtype=np.int64)
    np.cumsum(counts, out=starts[1:])
    base = starts[:: 1 << GROUP_SHIFT].astype(np.uint32)
    rel = (starts - np.repeat(base.astype(np.int64), 1 << GROUP_SHIFT)[: nb + 1]).astype(np.uint32)
    entries = np.ascontiguousarray(order.view(np.uint8).reshape(n, 4)[:, :3]).reshape(-1)
    return entries, base, rel


def _decode_rows_np(entries: np.ndarray, pos: np.ndarray) -> np.ndarray:
    p = pos * 3
    return (
        entries[p].astype(np.int64)
        | (entries[p + 1].astype(np.int64) << 8)
        | (entries[p + 2].astype(np.int64) << 16)
    )


def _dist_np(raw: np.ndarray, rows: np.ndarray, Q: np.ndarray, qi: np.ndarray) -> np.ndarray:
    return np.bitwise_count(raw[rows] ^ Q[qi]).sum(axis=1, dtype=np.int64)


def _alive_np(tomb: np.ndarray, rows: np.ndarray) -> np.ndarray:
    return ((tomb[rows >> 3] >> (rows & 7).astype(np.uint8)) & 1) == 0


def mih_search_np(Q, qkeys, thr, masks, vcount, base, rel, entries, raw, tomb, radius):
    """Multi-index search; returns (query index, row, distance), one entry per (query, row)."""
    out_q, out_r, out_d = [], [], []
    nq = Q.shape[0]
    step = 16
    for q0 in range(0, nq, step):
        q1 = min(nq, q0 + step)
        cq, cr = [], []
        for j in range(qkeys.shape[1]):
            t = int(thr[j])
            if t < 0:
                continue
            mk = masks[: vcount[t]]
            keys = (qkeys[q0:q1, j][:, None] ^ mk[None, :]).reshape(-1)
            s = base[j][keys >> GROUP_SHIFT].astype(np.int64) + rel[j][keys]
            k1 = keys + 1
            e = base[j][k1 >> GROUP_SHIFT].astype(np.int64) + rel[j][k1]
            lens = e - s
            total = int(lens.sum())
            if total == 0:
                continue
            qi = np.repeat(np.repeat(np.arange(q0, q1), len(mk)), lens)
            first = np.repeat(s - np.concatenate(([0], np.cumsum(lens)[:-1])), lens)
            pos = first + np.arange(total)
            rows = _decode_rows_np(entries[j], pos)
            d = _dist_np(raw, rows, Q, qi)
            ok = d <= radius
            cq.append(qi[ok])
            cr.append(rows[ok])
        if not cq:
            continue
        qi = np.concatenate(cq)
        rows = np.concatenate(cr)
        ok = _alive_np(tomb, rows)
        pair = np.unique(qi[ok] * (raw.shape[0] + 1) + rows[ok])
        qi = pair // (raw.shape[0] + 1)
        rows = pair % (raw.shape[0] + 1)
        out_q.append(qi)
        out_r.append(rows)
        out_d.append(_dist_np(raw, rows, Q, qi))
    return _cat(out_q), _cat(out_r), _cat(out_d)


def brute_search_np(Q, raw, n, tomb, radius):
    """Every live row of raw[:n] within radius of each query: (query index, row, distance)."""
    out_q, out_r, out_d = [], [], []
    chunk = max(1, 4_000_000 // max(1, Q.shape[0] * raw.shape[1]))
    for r0 in range(0, n, chunk):
        r1 = min(n, r0 + chunk)
        d = np.bitwise_count(raw[None, r0:r1, :] ^ Q[:, None, :]).sum(axis=2, dtype=np.int64)
        qi, rr = np.nonzero(d <= radius)
        rows = rr + r0
        ok = _alive_np(tomb, rows)
        out_q.append(qi[ok])
        out_r.append(rows[ok])
        out_d.append(d[qi[ok], rr[ok]])
    return _cat(out_q), _cat(out_r), _cat(out_d)


def _cat(parts):
    if not parts:
        return np.empty(0, np.int64)
    return np.concatenate(parts).astype(np.int64, copy=False)


# ----------------------------------------------------------------------------- numba versions

if HAVE_NUMBA:

    @intrinsic
    def _popcnt(typingctx, x):
        sig = types.uint64(types.uint64)

        def codegen(context, builder, signature, args):
            return builder.ctpop(args[0])

        return sig, codegen

    _PREFETCH = "llvm.prefetch.p0" if _llvm_binding.llvm_version_info[0] >= 15 else "llvm.prefetch"

    @intrinsic
    def _prefetch(typingctx, arr, idx):
        """Hint the CPU to start loading arr[idx] (a 1-D index into the first axis)."""
        if not isinstance(arr, types.Array):
            return None
        sig = types.void(arr, idx)

        def codegen(context, builder, signature, args):
            aryty = signature.args[0]
            ary = context.make_array(aryty)(context, builder, args[0])
            idxs = [args[1]] + [_ir.Constant(_ir.IntType(64), 0)] * (aryty.ndim - 1)
            ptr = _cgutils.get_item_pointer(context, builder, aryty, ary, idxs, wraparound=False)
            i8p = _ir.IntType(8).as_pointer()
            i32 = _ir.IntType(32)
            fnty = _ir.FunctionType(_ir.VoidType(), [i8p, i32, i32, i32])
            fn = _cgutils.get_or_insert_function(builder.module, fnty, _PREFETCH)
            builder.call(fn, [builder.bitcast(ptr, i8p), _ir.Constant(i32, 0), _ir.Constant(i32, 3), _ir.Constant(i32, 1)])
            return context.get_dummy_value()

        return sig, codegen

    @njit(cache=True, nogil=True)
    def _table_keys_nb(raw8, lut, touched):
        n = raw8.shape[0]
        keys = np.empty(n, np.uint32)
        for i in range(n):
            k = np.uint32(0)
            for tk in touched:
                k |= lut[tk, raw8[i, tk]]
            keys[i] = k
        return keys

    def table_keys_nb(raw8, lut, touched):
        return _table_keys_nb(raw8, lut, touched)

    @njit(cache=True, nogil=True)
    def _query_keys_nb(q8, luts):
        nq = q8.shape[0]
        m = luts.shape[0]
        nbytes = luts.shape[1]
        out = np.zeros((nq, m), np.int64)
        for i in range(nq):
            for j in range(m):
                k = np.uint32(0)
                for c in range(nbytes):
                    k |= luts[j, c, q8[i, c]]
                out[i, j] = k
        return out

    def query_keys_nb(q8, luts):
        return _query_keys_nb(q8, luts)

    @njit(cache=True, nogil=True)
    def _build_table_nb(raw8, lut, touched, b):
        n = raw8.shape[0]
        nb = 1 << b
        gs = 1 << GROUP_SHIFT
        keys = _table_keys_nb(raw8, lut, touched)
        starts = np.zeros(nb + 1, np.int64)
        for i in range(n):
            starts[keys[i] + 1] += 1
        for x in range(nb):
            starts[x + 1] += starts[x]
        base = np.empty((nb >> GROUP_SHIFT) + 1, np.uint32)
        rel = np.empty(nb + 1, np.uint32)
        for x in range(nb + 1):
            g = x >> GROUP_SHIFT
            if (x & (gs - 1)) == 0:
                base[g] = starts[x]
            rel[x] = starts[x] - base[g]
        entries = np.empty(3 * n, np.uint8)
        for i in range(n):
            k = keys[i]
            p = starts[k]
            starts[k] = p + 1
            entries[3 * p] = i & 255
            entries[3 * p + 1] = (i >> 8) & 255
            entries[3 * p + 2] = (i >> 16) & 255
        return entries, base, rel

    def build_table_nb(raw8, lut, touched, b):
        return _build_table_nb(raw8, lut, touched, b)

    @njit(cache=True, nogil=True)
    def _dist_nb(raw, row, Q, qi):
        d = 0
        for w in range(raw.shape[1]):
            d += _popcnt(raw[row, w] ^ Q[qi, w])
        return d

    @njit(cache=True, nogil=True)
    def _dedupe_tail(oq, orow, od, first, cnt, raw, Q):
        """Sort the rows found for one query (positions first..cnt) and drop repeats."""
        if cnt - first <= 1:
            return cnt
        sub = np.sort(orow[first:cnt])
        k = first
        prev = -1
        for x in sub:
            if x != prev:
                orow[k] = x
                oq[k] = oq[first]
                od[k] = _dist_nb(raw, x, Q, oq[first])
                k += 1
                prev = x
        return k

    _CAND_CHUNK = 1024  # candidate rows gathered (and prefetched) before they are verified

    @njit(cache=True, nogil=True, inline="always")
    def _emit(qi, row, d, radius, tomb, oq, orow, od, cnt):
        """Append (qi, row, d) if d is within radius and the row is live; -1 when the buffers are full."""
        if d <= radius and ((tomb[row >> 3] >> (row & 7)) & 1) == 0:
            if cnt == oq.shape[0]:
                return -1
            oq[cnt] = qi
            orow[cnt] = row
            od[cnt] = d
            cnt += 1
        return cnt

    @njit(cache=True, nogil=True)
    def _verify_nb(cand, nc, raw, Q, qi, radius, tomb, oq, orow, od, cnt):
        """Append the live candidates within radius; -1 when the output buffers are full."""
        # The append is written out here rather than through _emit: measured, the inlined helper
        # made this loop (the multi-index hot path) 2-3x slower.
        cap = oq.shape[0]
        for k in range(nc):
            row = cand[k]
            d = _dist_nb(raw, row, Q, qi)
            if d <= radius and ((tomb[row >> 3] >> (row & 7)) & 1) == 0:
                if cnt == cap:
                    return -1
                oq[cnt] = qi
                orow[cnt] = row
                od[cnt] = d
                cnt += 1
        return cnt

    @njit(cache=True, nogil=True)
    def _mih_search_nb(Q, qkeys, thr, masks, vcount, base, rel, entries, raw, tomb, radius, q0, oq, orow, od):
        """Search queries q0.. into the output buffers; returns (count, next query).

        Stops before a query whose matches do not fit (next query < nq): the caller grows the
        buffers and calls again from there (growing inside this loop would slow it ~10x).
        Per table, three passes keep many memory loads in flight: bucket bounds of every probe
        (prefetching the bucket's entries), then the candidate rows (prefetching their hashes),
        then the verification of up to _CAND_CHUNK candidates at a time.
        """
        nq = Q.shape[0]
        m = qkeys.shape[1]
        starts = np.empty(masks.shape[0], np.int64)
        ends = np.empty(masks.shape[0], np.int64)
        cand = np.empty(_CAND_CHUNK, np.int64)
        cnt = 0
        for qi in range(q0, nq):
            first = cnt
            nc = 0
            for j in range(m):
                t = thr[j]
                if t < 0:
                    continue
                kq = qkeys[qi, j]
                nv = vcount[t]
                ent = entries[j]
                for v in range(nv):
                    key = kq ^ masks[v]
                    s = np.int64(base[j, key >> GROUP_SHIFT]) + np.int64(rel[j, key])
                    k1 = key + 1
                    starts[v] = s
                    ends[v] = np.int64(base[j, k1 >> GROUP_SHIFT]) + np.int64(rel[j, k1])
                    _prefetch(ent, 3 * s)
                for v in range(nv):
                    for i in range(starts[v], ends[v]):
                        p = 3 * i
                        row = np.int64(ent[p]) | (np.int64(ent[p + 1]) << 8) | (np.int64(ent[p + 2]) << 16)
                        _prefetch(raw, row)
                        cand[nc] = row
                        nc += 1
                        if nc == _CAND_CHUNK:
                            cnt = _verify_nb(cand, nc, raw, Q, qi, radius, tomb, oq, orow, od, cnt)
                            if cnt < 0:
                                return first, qi
                            nc = 0
            cnt = _verify_nb(cand, nc, raw, Q, qi, radius, tomb, oq, orow, od, cnt)
            if cnt < 0:
                return first, qi
            cnt = _dedupe_tail(oq, orow, od, first, cnt, raw, Q)
        return cnt, nq

    # A scan reads every registered hash once per query: at 1M PDQ hashes that is 32 MB per query,
    # so a query-at-a-time scan runs at memory speed. Scanning a block of rows that fits in the L2
    # cache for a whole group of queries reads the rows once per group instead, and the work
    # becomes popcounts. Output order within a group is by row block, not by query; every caller
    # sorts the results (``_format``, ``search_best``).
    _SCAN_QUERIES = 64   # queries sharing one pass over the rows
    _SCAN_ROWS = 2048    # rows per block: 64 KB of 256-bit hashes

    @njit(cache=True, nogil=True)
    def _scan_block4(Q, raw, r0, r1, tomb, radius, qi, oq, orow, od, cnt):
        """Rows r0..r1 against query qi for 4-word (256-bit) hashes; -1 when the buffers are full."""
        a = Q[qi, 0]
        b = Q[qi, 1]
        c = Q[qi, 2]
        e = Q[qi, 3]
        for row in range(r0, r1):
            d = (_popcnt(raw[row, 0] ^ a) + _popcnt(raw[row, 1] ^ b)
                 + _popcnt(raw[row, 2] ^ c) + _popcnt(raw[row, 3] ^ e))
            if d <= radius:
                cnt = _emit(qi, row, d, radius, tomb, oq, orow, od, cnt)
                if cnt < 0:
                    return -1
        return cnt

    @njit(cache=True, nogil=True)
    def _scan_block(Q, raw, r0, r1, tomb, radius, qi, oq, orow, od, cnt):
        """Rows r0..r1 against query qi, any hash width; -1 when the buffers are full."""
        for row in range(r0, r1):
            cnt = _emit(qi, row, _dist_nb(raw, row, Q, qi), radius, tomb, oq, orow, od, cnt)
            if cnt < 0:
                return -1
        return cnt

    @njit(cache=True, nogil=True)
    def _brute_search_nb(Q, raw, n, tomb, radius, q0, oq, orow, od):
        """Scan queries q0.. in groups; returns (count, next query), stopping before a group that does not fit."""
        nq = Q.shape[0]
        wide = raw.shape[1] == 4
        cnt = 0
        g0 = q0
        while g0 < nq:
            g1 = min(g0 + _SCAN_QUERIES, nq)
            first = cnt
            for r0 in range(0, n, _SCAN_ROWS):
                r1 = min(r0 + _SCAN_ROWS, n)
                for qi in range(g0, g1):
                    if wide:
                        cnt = _scan_block4(Q, raw, r0, r1, tomb, radius, qi, oq, orow, od, cnt)
                    else:
                        cnt = _scan_block(Q, raw, r0, r1, tomb, radius, qi, oq, orow, od, cnt)
                    if cnt < 0:
                        return first, g0
            g0 = g1
        return cnt, nq

    def _drive(kernel, nq, args):
        """Call a buffer-filling kernel until every query is done, growing the buffers as needed."""
        cap = max(256, 4 * nq)
        parts = []
        q0 = 0
        while True:
            oq = np.empty(cap, np.int64)
            orow = np.empty(cap, np.int64)
            od = np.empty(cap, np.int64)
            cnt, q_next = kernel(*args, q0, oq, orow, od)
            parts.append((oq[:cnt], orow[:cnt], od[:cnt]))
            if q_next >= nq:
                break
            if q_next == q0 and cnt == 0:
                cap *= 4  # one query has more matches than the buffer holds
            q0 = q_next
        if len(parts) == 1:
            return parts[0]
        return tuple(np.concatenate([p[i] for p in parts]) for i in range(3))

    def mih_search_nb(Q, qkeys, thr, masks, vcount, base, rel, entries, raw, tomb, radius):
        args = (Q, qkeys, thr, masks, vcount, base, rel, entries, raw, tomb, radius)
        return _drive(_mih_search_nb, Q.shape[0], args)

    def brute_search_nb(Q, raw, n, tomb, radius):
        return _drive(_brute_search_nb, Q.shape[0], (Q, raw, n, tomb, radius))


class Backend:
    """The set of kernels one index uses."""

    def __init__(self, name: str) -> None:
        if name == "numba":
            if not HAVE_NUMBA:
                raise ValueError("backend 'numba' requested but numba is not installed")
            self.table_keys = table_keys_nb
            self.query_keys = query_keys_nb
            self.build_table = build_table_nb
            self.mih_search = mih_search_nb
            self.brute_search = brute_search_nb
        elif name == "numpy":
            self.table_keys = table_keys_np
            self.query_keys = query_keys_np
            self.build_table = build_table_np
            self.mih_search = mih_search_np
            self.brute_search = brute_search_np
        else:
            raise ValueError(f"unknown backend {name!r} (expected 'numba' or 'numpy')")
        self.name = name
