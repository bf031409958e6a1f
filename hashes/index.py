"""Exact Hamming range search over registered perceptual hashes (PDQ 256-bit, pHash/dHash/wHash 64-bit).

Two implementations of one small interface, ``HammingIndex`` (in the spirit of
python-threatexchange's ``SignalTypeIndex``):

* ``BruteForceIndex``: the plain reference; every query is compared with every registered hash
  in numpy. Obviously correct, O(N) per query.
* ``MultiIndexHashIndex``: multi-index hashing (Norouzi et al.) with the generalised pigeonhole
  principle; the same results as brute force, exactly, at a small fraction of the work. See
  docs/index.md for the design, the exactness argument and measured numbers.

Both take ids (int64, e.g. database primary keys) and hashes as hex strings, bytes, ints, or
numpy arrays: ``(N, bits/8) uint8`` (the bytes in hex order) or ``(N, bits/64) uint64`` (word
``k`` is ``int(hex[16k:16k+16], 16)``; for 64-bit hashes a 1-D uint64/int64 array holds
``int(hex, 16)``). An id maps to exactly one hash: adding an id that is present replaces its
hash. Results are, for each query, the list of ``(id, distance)`` with ``distance <= radius``,
sorted by distance then id.
"""

from __future__ import annotations

import math
import os
import re
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from functools import lru_cache
from typing import Any

import numpy as np

from hashes import _index_kernels as _k

__all__ = [
    "HammingIndex",
    "BruteForceIndex",
    "MultiIndexHashIndex",
    "load_from_rows",
    "DEFAULT_RADIUS",
    "default_backend",
]

#: Default search radius per hash size: PDQ's "confident match" threshold for 256 bits.
DEFAULT_RADIUS = {256: 31, 64: 10}

Match = tuple[int, int]  # (id, distance)

_HEX_RE = re.compile(r"^[0-9a-fA-F]*$")
_INT64_MIN = -(1 << 63)
_INT64_MAX = (1 << 63) - 1


def default_backend() -> str:
    """'numba' when numba is importable (unless NCII_INDEX_BACKEND says otherwise), else 'numpy'."""
    name = os.environ.get("NCII_INDEX_BACKEND", "").strip().lower()
    if name:
        return name
    return "numba" if _k.HAVE_NUMBA else "numpy"


# ----------------------------------------------------------------------------- input handling


def _check_bits(bits: int) -> int:
    if not isinstance(bits, (int, np.integer)) or isinstance(bits, bool) or bits <= 0 or bits % 64:
        raise ValueError(f"bits must be a positive multiple of 64 (64 or 256), got {bits!r}")
    return int(bits)


def _hex_to_words(values: Sequence[str], bits: int) -> np.ndarray:
    nbytes = bits // 8
    want = nbytes * 2
    for i, v in enumerate(values):
        if not isinstance(v, str):
            raise ValueError(f"hash #{i}: expected a hex string, got {type(v).__name__}")
        if len(v) != want:
            raise ValueError(f"hash #{i}: expected {want} hex digits for a {bits}-bit hash, got {len(v)}")
    joined = "".join(values)
    if not _HEX_RE.match(joined):
        for i, v in enumerate(values):
            if not _HEX_RE.match(v):
                raise ValueError(f"hash #{i}: {v!r} is not hexadecimal")
    buf = bytes.fromhex(joined)
    return np.frombuffer(buf, dtype=np.uint8).reshape(len(values), nbytes).copy().view(np.uint64)


def _bytes_to_words(values: Sequence[bytes], bits: int) -> np.ndarray:
    nbytes = bits // 8
    for i, v in enumerate(values):
        if len(v) != nbytes:
            raise ValueError(f"hash #{i}: expected {nbytes} bytes for a {bits}-bit hash, got {len(v)}")
    buf = b"".join(bytes(v) for v in values)
    return np.frombuffer(buf, dtype=np.uint8).reshape(len(values), nbytes).copy().view(np.uint64)


def _ints_to_words(values: Sequence[int], bits: int) -> np.ndarray:
    nbytes = bits // 8
    out = bytearray()
    for i, v in enumerate(values):
        v = int(v)
        if v < 0 or v.bit_length() > bits:
            raise ValueError(f"hash #{i}: integer does not fit in {bits} unsigned bits")
        out += v.to_bytes(nbytes, "big")
    return np.frombuffer(bytes(out), dtype=np.uint8).reshape(len(values), nbytes).copy().view(np.uint64)


def _array_to_words(a: np.ndarray, bits: int) -> tuple[np.ndarray, bool]:
    nbytes, W = bits // 8, bits // 64
    if a.dtype == np.uint8:
        if a.ndim == 1 and a.shape[0] == nbytes:
            return _array_to_words(a.reshape(1, nbytes), bits)[0], True
        if a.ndim != 2 or a.shape[1] != nbytes:
            raise ValueError(
                f"expected uint8 hashes of shape (N, {nbytes}) for {bits}-bit hashes, got {a.shape}"
            )
        # always a copy: the index must never keep (or see changes to) a view of the caller's array
        return np.array(a, dtype=np.uint8, order="C", copy=True).view(np.uint64).reshape(a.shape[0], W), False
    if a.dtype.kind in "iu" and a.dtype.itemsize == 8:
        a = a.view(np.uint64)
        if a.ndim == 1 and bits == 64:
            return a.reshape(-1, 1).astype(">u8").view(np.uint8).view(np.uint64).reshape(-1, 1).copy(), False
        if a.ndim == 1 and a.shape[0] == W:
            return _array_to_words(a.reshape(1, W), bits)[0], True
        if a.ndim != 2 or a.shape[1] != W:
            raise ValueError(f"expected uint64 hashes of shape (N, {W}) for {bits}-bit hashes, got {a.shape}")
        be = np.ascontiguousarray(a.astype(">u8"))
        return be.view(np.uint8).reshape(a.shape[0], nbytes).view(np.uint64).copy(), False
    if a.dtype.kind in "iu" and bits == 64 and a.ndim == 1:
        if a.dtype.kind == "i" and a.size and a.min() < 0:
            raise ValueError("negative integer is not a 64-bit hash value")
        return _array_to_words(a.astype(np.uint64), bits)
    if a.dtype.kind in "US" or a.dtype == object:
        vals = a.reshape(-1).tolist()
        return _as_words(vals, bits)[0], a.ndim == 0
    raise ValueError(f"unsupported hash array dtype {a.dtype} (use uint8 bytes, uint64 words or hex strings)")


def _as_words(hashes: Any, bits: int) -> tuple[np.ndarray, bool]:
    """Hashes in any accepted form -> ((N, bits/64) uint64 in internal byte order, was_single)."""
    W = bits // 64
    if isinstance(hashes, str):
        return _hex_to_words([hashes.strip()], bits), True
    if isinstance(hashes, (bytes, bytearray, memoryview)):
        return _bytes_to_words([bytes(hashes)], bits), True
    if isinstance(hashes, (int, np.integer)) and not isinstance(hashes, (bool, np.bool_)):
        return _ints_to_words([int(hashes)], bits), True
    if isinstance(hashes, np.ndarray):
        return _array_to_words(hashes, bits)
    if hashes is None:
        raise ValueError("hashes must not be None")
    vals = list(hashes)
    if not vals:
        return np.zeros((0, W), np.uint64), False
    if all(isinstance(v, str) for v in vals):
        return _hex_to_words([v.strip() for v in vals], bits), False
    if all(isinstance(v, (bytes, bytearray, memoryview)) for v in vals):
        return _bytes_to_words(vals, bits), False
    if all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in vals):
        return _ints_to_words(vals, bits), False
    if all(isinstance(v, np.ndarray) for v in vals):
        return _array_to_words(np.stack(vals), bits)[0], False
    raise ValueError("hashes must all be hex strings, all bytes, all ints, or one numpy array")


def _as_ids(ids: Any, n: int) -> np.ndarray:
    if isinstance(ids, (int, np.integer)) and not isinstance(ids, (bool, np.bool_)):
        v = int(ids)
        if not _INT64_MIN <= v <= _INT64_MAX:
            raise ValueError(f"id {v} does not fit in int64")
        arr = np.array([v], dtype=np.int64)
    else:
        try:
            arr = np.asarray(ids)
        except (OverflowError, ValueError) as e:
            raise ValueError(f"ids must be int64 integers: {e}") from None
        if arr.size == 0:
            arr = np.zeros(0, np.int64)
        if arr.dtype == object:
            vals = arr.reshape(-1).tolist()
            for v in vals:
                if not isinstance(v, (int, np.integer)) or isinstance(v, bool):
                    raise ValueError(f"ids must be integers, got {type(v).__name__}")
                if not _INT64_MIN <= int(v) <= _INT64_MAX:
                    raise ValueError(f"id {int(v)} does not fit in int64")
            arr = np.array(vals, dtype=np.int64)
        if arr.dtype.kind not in "iu":
            raise ValueError(f"ids must be integers, got dtype {arr.dtype}")
        if arr.dtype == np.uint64 and arr.size and arr.max() > _INT64_MAX:
            raise ValueError("id does not fit in int64")
        arr = arr.astype(np.int64, copy=False).reshape(-1)
    if arr.shape[0] != n:
        raise ValueError(f"got {arr.shape[0]} ids for {n} hashes")
    return arr


def _dedupe_last(ids: np.ndarray, words: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Keep the last occurrence of each id (an id maps to one hash; later rows replace earlier)."""
    if ids.shape[0] <= 1:
        return ids, words
    rev = ids[::-1]
    _, idx = np.unique(rev, return_index=True)
    if idx.shape[0] == ids.shape[0]:
        return ids, words
    keep = np.sort(ids.shape[0] - 1 - idx)
    return ids[keep], words[keep]


def _sort_by_id(ids: np.ndarray, words: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unique ids (last wins) in ascending order, and their hashes."""
    if ids.shape[0] > 1 and not bool(np.all(ids[1:] > ids[:-1])):
        ids, words = _dedupe_last(ids, words)
        order = np.argsort(ids, kind="stable")
        ids, words = ids[order], words[order]
    return np.ascontiguousarray(ids), np.ascontiguousarray(words)


# ----------------------------------------------------------------------------- interface


class HammingIndex(ABC):
    """Exact Hamming range search over (id, hash) pairs; one hash per id.

    Subclasses implement ``add``, ``remove``, ``_search_arrays``, ``__len__`` and
    ``memory_bytes``; searching, result formatting and the dihedral convenience are shared.
    """

    def __init__(self, bits: int = 256, *, radius: int | None = None) -> None:
        self.bits = _check_bits(bits)
        self.radius = self._check_radius(DEFAULT_RADIUS.get(self.bits, 0) if radius is None else radius)

    # -- construction
    @classmethod
    def from_arrays(cls, ids: Any, hashes: Any, *, bits: int = 256, **kwargs: Any) -> "HammingIndex":
        """An index of ``hashes`` (any accepted form) under ``ids`` (int64), built in bulk."""
        index = cls(bits, **kwargs)
        index._bulk_load([(ids, hashes)])
        return index

    @classmethod
    def from_chunks(cls, chunks: Iterable[tuple[Any, Any]], *, bits: int = 256, **kwargs: Any) -> "HammingIndex":
        """An index built from an iterable of ``(ids, hashes)`` chunks (e.g. streamed from a database)."""
        index = cls(bits, **kwargs)
        index._bulk_load(chunks)
        return index

    def _bulk_load(self, chunks: Iterable[tuple[Any, Any]]) -> None:
        for ids, hashes in chunks:
            self.add(ids, hashes)

    # -- mutation
    @abstractmethod
    def add(self, ids: Any, hashes: Any) -> None:
        """Register ``hashes`` under ``ids`` (one id and one hash, or sequences of equal length).

        An id already present has its hash replaced; within one call the last occurrence wins.
        """

    @abstractmethod
    def remove(self, ids: Any) -> int:
        """Unregister ``ids`` (one or many); returns how many were present. Unknown ids are ignored."""

    @abstractmethod
    def __len__(self) -> int:
        """Number of registered ids."""

    @abstractmethod
    def memory_bytes(self) -> int:
        """Bytes held by the index's arrays and tables."""

    @abstractmethod
    def _search_arrays(self, Q: np.ndarray, radius: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(query index, id, distance) for every registered id within ``radius`` of each query row."""

    # -- search
    def _check_radius(self, radius: Any) -> int:
        if isinstance(radius, bool) or not isinstance(radius, (int, np.integer)):
            raise ValueError(f"radius must be an integer, got {radius!r}")
        radius = int(radius)
        if not 0 <= radius <= self.bits:
            raise ValueError(f"radius must be between 0 and {self.bits}, got {radius}")
        return radius

    def search(self, query: Any, radius: int | None = None) -> list[Match]:
        """Registered ``(id, distance)`` within ``radius`` of one query hash, by distance then id."""
        Q, single = _as_words(query, self.bits)
        if not single and Q.shape[0] != 1:
            raise ValueError(f"search() takes one hash, got {Q.shape[0]}; use search_batch()")
        return self._format(Q, radius)[0]

    def search_batch(self, queries: Any, radius: int | None = None) -> list[list[Match]]:
        """``search`` for each of many query hashes; one result list per query, in order."""
        Q, single = _as_words(queries, self.bits)
        return self._format(Q, radius)

    def search_best(self, variants: Sequence[Any], radius: int | None = None) -> list[list[Match]]:
        """Search several variants per query (e.g. PDQ's 8 dihedral hashes) and keep the best.

        ``variants[i]`` is the list of hashes of query ``i``; its result lists each id matched by
        any variant once, with the smallest distance over the variants, by distance then id.
        """
        r = self.radius if radius is None else self._check_radius(radius)
        groups, parts = [], []
        for gi, vs in enumerate(variants):
            V, _ = _as_words(vs, self.bits)
            parts.append(V)
            groups.append(np.full(V.shape[0], gi, np.int64))
        nq = len(parts)
        if nq == 0:
            return []
        Q = np.concatenate(parts)
        grp = np.concatenate(groups)
        if Q.shape[0] == 0:
            return [[] for _ in range(nq)]
        qi, ids, d = self._search_arrays(Q, r)
        g = grp[qi]
        order = np.lexsort((d, ids, g))
        g, ids, d = g[order], ids[order], d[order]
        first = np.ones(g.shape[0], bool)
        first[1:] = (g[1:] != g[:-1]) | (ids[1:] != ids[:-1])
        return self._split(g[first], ids[first], d[first], nq)

    def _format(self, Q: np.ndarray, radius: int | None) -> list[list[Match]]:
        r = self.radius if radius is None else self._check_radius(radius)
        nq = Q.shape[0]
        if nq == 0:
            return []
        qi, ids, d = self._search_arrays(Q, r)
        return self._split(qi, ids, d, nq)

    @staticmethod
    def _split(qi: np.ndarray, ids: np.ndarray, d: np.ndarray, nq: int) -> list[list[Match]]:
        if nq == 1:  # the common single-query case, without the query key
            if ids.shape[0] <= 1:
                return [list(zip(ids.tolist(), d.tolist()))]
            order = np.lexsort((ids, d))
            return [list(zip(ids[order].tolist(), d[order].tolist()))]
        order = np.lexsort((ids, d, qi))
        qi, ids, d = qi[order], ids[order], d[order]
        bounds = np.searchsorted(qi, np.arange(nq + 1))
        pairs = list(zip(ids.tolist(), d.tolist()))
        return [pairs[bounds[i] : bounds[i + 1]] for i in range(nq)]

    def __contains__(self, id_: object) -> bool:
        if not isinstance(id_, (int, np.integer)) or isinstance(id_, bool):
            return False
        return self._contains(int(id_))

    @abstractmethod
    def _contains(self, id_: int) -> bool: ...


# ----------------------------------------------------------------------------- brute force


class BruteForceIndex(HammingIndex):
    """Reference implementation: numpy popcount of every registered hash against every query."""

    def __init__(self, bits: int = 256, *, radius: int | None = None) -> None:
        super().__init__(bits, radius=radius)
        self._W = self.bits // 64
        self._raw = np.zeros((16, self._W), np.uint64)
        self._ids = np.zeros(16, np.int64)
        self._live = np.zeros(16, bool)
        self._n = 0
        self._row: dict[int, int] = {}

    def add(self, ids: Any, hashes: Any) -> None:
        words, _ = _as_words(hashes, self.bits)
        ids = _as_ids(ids, words.shape[0])
        ids, words = _dedupe_last(ids, words)
        self.remove(ids)
        k = ids.shape[0]
        if self._n + k > self._raw.shape[0]:
            cap = max(2 * self._raw.shape[0], self._n + k)
            for name in ("_raw", "_ids", "_live"):
                old = getattr(self, name)
                new = np.zeros((cap,) + old.shape[1:], old.dtype)
                new[: self._n] = old[: self._n]
                setattr(self, name, new)
        self._raw[self._n : self._n + k] = words
        self._ids[self._n : self._n + k] = ids
        self._live[self._n : self._n + k] = True
        for j, i in enumerate(ids.tolist()):
            self._row[i] = self._n + j
        self._n += k

    def remove(self, ids: Any) -> int:
        arr = _as_ids(ids, np.asarray(ids).size if not isinstance(ids, (int, np.integer)) else 1)
        removed = 0
        for i in arr.tolist():
            row = self._row.pop(i, None)
            if row is not None:
                self._live[row] = False
                removed += 1
        return removed

    def __len__(self) -> int:
        return len(self._row)

    def _contains(self, id_: int) -> bool:
        return id_ in self._row

    def memory_bytes(self) -> int:
        return self._raw.nbytes + self._ids.nbytes + self._live.nbytes + 100 * len(self._row)

    def _search_arrays(self, Q, radius):
        raw, n = self._raw, self._n
        qs, rs, ds = [], [], []
        for q in range(Q.shape[0]):
            d = np.bitwise_count(raw[:n] ^ Q[q]).sum(axis=1, dtype=np.int64)
            rows = np.nonzero((d <= radius) & self._live[:n])[0]
            qs.append(np.full(rows.shape[0], q, np.int64))
            rs.append(self._ids[rows])
            ds.append(d[rows])
        return _k._cat(qs), _k._cat(rs), _k._cat(ds)


# ----------------------------------------------------------------------------- multi-index hashing

# Cost model in nanoseconds, fitted on this project's 2-core AMD EPYC (see docs/index.md and
# benchmarks/index.py): probing one bucket, verifying one candidate row (a random access into the
# hashes; cheap while they fit in cache), and scanning one row by brute force.
def _cache_factor(n: int, bits: int) -> float:
    """0 while the rows and tables fit in cache, 1 once they are far larger (random access to RAM)."""
    return min(1.0, n * (bits // 8 + 32) / (32 << 20))


def _c_probe(n: int, bits: int) -> float:
    return 4.0 + 16.0 * _cache_factor(n, bits)


def _c_cand(n: int, bits: int) -> float:
    return 6.0 + 29.0 * _cache_factor(n, bits)


_C_ROW = 1.2  # brute force, per row ...
_C_ROW_PER_WORD = 0.4  # ... plus per 64-bit word
_MIN_TABLE_ROWS = 4096  # below this a segment is scanned (it fits in cache; tables do not pay)
_MAX_PROBES_PER_TABLE = 60_000  # larger thresholds fall back to scanning


@lru_cache(maxsize=None)
def _probe_count(b: int, t: int) -> int:
    """Keys within Hamming distance t of a b-bit key: sum_{k<=t} C(b, k)."""
    return sum(math.comb(b, k) for k in range(0, min(t, b) + 1))


def _thresholds(m: int, radius: int) -> np.ndarray:
    """Per-table thresholds t_j with sum(t_j + 1) = radius + 1 (generalised pigeonhole).

    t_j = -1 means the table is not probed (possible when radius + 1 < m).
    """
    units = radius + 1
    q, rem = divmod(units, m)
    return np.array([q - 1 + (1 if j < rem else 0) for j in range(m)], dtype=np.int64)


def _mih_cost(n: int, m: int, b: int, radius: int, bits: int = 256) -> float:
    cost = 0.0
    per_probe = _c_probe(n, bits) + _c_cand(n, bits) * n / float(1 << b)
    for t in _thresholds(m, radius).tolist():
        if t < 0:
            continue
        if t >= b:
            return math.inf
        v = _probe_count(b, t)
        if v > _MAX_PROBES_PER_TABLE:
            return math.inf
        cost += v * per_probe
    return cost


def _brute_cost(n: int, bits: int) -> float:
    return n * (_C_ROW + _C_ROW_PER_WORD * (bits // 64))


def _table_budget(bits: int) -> float:
    """Bytes per hash allowed for the tables: keeps the whole index <= 2.5x the raw 256-bit hashes."""
    return max(1.5 * bits / 8 - 8.2, 24.0)


def _choose_layout(n: int, bits: int, radius: int) -> tuple[int, int] | None:
    """(number of tables m, key bits b) minimising the modelled cost, or None to scan."""
    if n < _MIN_TABLE_ROWS:
        return None
    bmax = min(24, max(4, n.bit_length() - 2))  # 2^b <= n/2: offsets stay below ~0.65 byte per hash
    best_cost, best = _brute_cost(n, bits), None
    budget = _table_budget(bits)
    for m in range(1, bits // 4 + 1):
        for b in range(4, min(bmax, bits // m) + 1):
            mem = m * (3 + (1 << b) / n * (1 + 4 / (1 << _k.GROUP_SHIFT)))
            if mem > budget:
                continue
            c = _mih_cost(n, m, b, radius, bits)
            if c < best_cost:
                best_cost, best = c, (m, b)
    return best


class _Layout:
    """Which hash bits make up each table's key, and lookup tables to extract them."""

    SEED = 0x9D1C

    def __init__(self, bits: int, m: int, b: int) -> None:
        self.bits, self.m, self.b = bits, m, b
        nbytes = bits // 8
        # A fixed pseudo-random permutation of bit positions spreads correlated (neighbouring)
        # bits of real hashes over different tables, so keys are close to uniform.
        perm = np.random.default_rng(self.SEED + 7919 * bits).permutation(bits)
        self.positions = perm[: m * b].reshape(m, b)
        luts = np.zeros((m, nbytes, 256), np.uint32)
        vals = np.arange(256)
        for j in range(m):
            for i, p in enumerate(self.positions[j].tolist()):
                byte, bit = divmod(p, 8)
                luts[j, byte, ((vals >> bit) & 1).astype(bool)] |= np.uint32(1 << i)
        self.luts = luts
        self.touched = [np.unique(self.positions[j] // 8).astype(np.int64) for j in range(m)]

    @staticmethod
    @lru_cache(maxsize=None)
    def get(bits: int, m: int, b: int) -> "_Layout":
        return _Layout(bits, m, b)


@lru_cache(maxsize=64)
def _masks(b: int, tmax: int) -> tuple[np.ndarray, np.ndarray]:
    """All b-bit masks of popcount <= tmax ordered by popcount, and counts V(b, t) for t <= tmax."""
    from itertools import combinations

    out = [0]
    counts = [1]
    for k in range(1, tmax + 1):
        out.extend(sum(1 << i for i in c) for c in combinations(range(b), k))
        counts.append(len(out))
    return np.array(out, dtype=np.int64), np.array(counts, dtype=np.int64)


class _Segment:
    """An immutable block of rows (sorted by id) with its multi-index tables and a tombstone bitmap."""

    MAX_ROWS = 1 << 24  # row numbers are stored in 3 bytes

    def __init__(self, ids: np.ndarray, raw: np.ndarray, bits: int, radius_hint: int, backend) -> None:
        n = ids.shape[0]
        assert 0 < n <= self.MAX_ROWS
        self.n = n
        self.bits = bits
        self.raw = np.ascontiguousarray(raw)
        lo, hi = int(ids[0]), int(ids[-1])
        self.id_min, self.id_max = lo, hi
        if hi - lo < (1 << 32):
            self.id_base = lo
            self.ids = (ids - np.int64(lo)).astype(np.uint32)
        else:
            self.id_base = 0
            self.ids = ids.astype(np.int64)
        self.tomb = np.zeros((n >> 3) + 1, np.uint8)
        self.dead = 0
        self._plans: dict[int, Any] = {}
        layout = _choose_layout(n, bits, radius_hint)
        self.layout: _Layout | None = None
        if layout is not None:
            m, b = layout
            self.layout = _Layout.get(bits, m, b)
            raw8 = self.raw.view(np.uint8)
            tables = [backend.build_table(raw8, self.layout.luts[j], self.layout.touched[j], b) for j in range(m)]
            maxrel = max(int(t[2].max()) for t in tables)
            rel_dtype = np.uint8 if maxrel < (1 << 8) else np.uint16 if maxrel < (1 << 16) else np.uint32
            self.entries = np.stack([t[0] for t in tables])
            self.base = np.stack([t[1] for t in tables])
            self.rel = np.stack([t[2].astype(rel_dtype) for t in tables])
            del tables

    @property
    def live(self) -> int:
        return self.n - self.dead

    def nbytes(self) -> int:
        total = self.raw.nbytes + self.ids.nbytes + self.tomb.nbytes
        if self.layout is not None:
            total += self.entries.nbytes + self.base.nbytes + self.rel.nbytes
        return total

    def ids_of(self, rows: np.ndarray) -> np.ndarray:
        out = self.ids[rows].astype(np.int64)
        if self.id_base:
            out += np.int64(self.id_base)
        return out

    def find_rows(self, ids: np.ndarray) -> np.ndarray:
        """Row of each id among the live rows, or -1."""
        rows = np.full(ids.shape[0], -1, np.int64)
        inr = (ids >= self.id_min) & (ids <= self.id_max)
        if not inr.any():
            return rows
        sub = ids[inr]
        key = (sub - np.int64(self.id_base)).astype(self.ids.dtype)
        pos = np.searchsorted(self.ids, key)
        pos_c = np.minimum(pos, self.n - 1)
        hit = (pos < self.n) & (self.ids[pos_c] == key)
        hit &= ((self.tomb[pos_c >> 3] >> (pos_c & 7).astype(np.uint8)) & 1) == 0
        r = np.where(hit, pos_c, -1)
        rows[inr] = r
        return rows

    def kill(self, rows: np.ndarray) -> None:
        rows = np.unique(rows)
        np.bitwise_or.at(self.tomb, rows >> 3, (1 << (rows & 7)).astype(np.uint8))
        self.dead += rows.shape[0]

    def live_arrays(self) -> tuple[np.ndarray, np.ndarray]:
        rows = np.arange(self.n)
        alive = ((self.tomb[rows >> 3] >> (rows & 7).astype(np.uint8)) & 1) == 0
        return self.ids_of(rows[alive]), self.raw[alive]

    def plan(self, radius: int):
        """Per-table thresholds and probe masks for this radius, or None to scan the rows."""
        if radius in self._plans:
            return self._plans[radius]
        plan = None
        if self.layout is not None:
            m, b = self.layout.m, self.layout.b
            if _mih_cost(self.n, m, b, radius, self.bits) < _brute_cost(self.n, self.bits):
                thr = _thresholds(m, radius)
                masks, vcount = _masks(b, int(thr.max()))
                plan = (thr, masks, vcount)
        self._plans[radius] = plan
        return plan

    def search(self, Q, radius, backend, qkeys_for) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        plan = self.plan(radius)
        if plan is None:
            qi, rows, d = backend.brute_search(Q, self.raw, self.n, self.tomb, radius)
        else:
            thr, masks, vcount = plan
            qkeys = qkeys_for(self.layout)
            qi, rows, d = backend.mih_search(
                Q, qkeys, thr, masks, vcount, self.base, self.rel, self.entries, self.raw, self.tomb, radius
            )
        return qi, self.ids_of(rows), d


class _Delta:
    """Recent additions, scanned by brute force until they are turned into a segment."""

    def __init__(self, W: int, cap: int) -> None:
        self.cap = cap
        self.W = W
        self.raw = self.ids = self.tomb = None  # allocated on first use: bulk-built indexes never need them
        self.n = 0
        self.row: dict[int, int] = {}

    def _alloc(self) -> None:
        self.raw = np.zeros((self.cap, self.W), np.uint64)
        self.ids = np.zeros(self.cap, np.int64)
        self.tomb = np.zeros((self.cap >> 3) + 1, np.uint8)

    def free(self) -> int:
        return self.cap - self.n

    def append(self, ids: np.ndarray, words: np.ndarray) -> None:
        if self.raw is None:
            self._alloc()
        k = ids.shape[0]
        self.raw[self.n : self.n + k] = words
        self.ids[self.n : self.n + k] = ids
        for j, i in enumerate(ids.tolist()):
            self.row[i] = self.n + j
        self.n += k

    def remove(self, ids: np.ndarray) -> np.ndarray:
        """Remove the ids present; returns a bool mask of which were."""
        found = np.zeros(ids.shape[0], bool)
        if not self.row:
            return found
        for j, i in enumerate(ids.tolist()):
            row = self.row.pop(i, None)
            if row is not None:
                self.tomb[row >> 3] |= np.uint8(1 << (row & 7))
                found[j] = True
        return found

    def live_arrays(self) -> tuple[np.ndarray, np.ndarray]:
        rows = np.fromiter(self.row.values(), np.int64, len(self.row))
        rows.sort()
        return self.ids[rows], self.raw[rows]

    def clear(self) -> None:
        self.n = 0
        if self.tomb is not None:
            self.tomb[:] = 0
        self.row.clear()

    def nbytes(self) -> int:
        if self.raw is None:
            return 0
        return self.raw.nbytes + self.ids.nbytes + self.tomb.nbytes + 100 * len(self.row)


class MultiIndexHashIndex(HammingIndex):
    """Exact Hamming range search by multi-index hashing; results identical to ``BruteForceIndex``.

    Rows live in immutable segments (each with m tables keyed by b disjoint hash bits) plus a
    small brute-forced buffer of recent additions; removals set a tombstone bit that every
    search checks, so they are visible to the next query. When the buffer fills it becomes a
    segment, and similar-sized segments are merged (LSM-style), so no addition rebuilds the
    whole index. ``backend`` is "numba" (compiled kernels) or "numpy" (plain fallback).
    """

    DELTA_ROWS = 8192
    MERGE_RATIO = 4  # merge the two newest segments while newest * ratio >= previous

    def __init__(self, bits: int = 256, *, radius: int | None = None, backend: str | None = None) -> None:
        super().__init__(bits, radius=radius)
        self.backend = _k.Backend(backend or default_backend())
        self._W = self.bits // 64
        self._segments: list[_Segment] = []
        self._delta = _Delta(self._W, self.DELTA_ROWS)

    # -- construction
    def _bulk_load(self, chunks: Iterable[tuple[Any, Any]]) -> None:
        id_parts, word_parts = [], []
        for ids, hashes in chunks:
            words, _ = _as_words(hashes, self.bits)
            id_parts.append(_as_ids(ids, words.shape[0]))
            word_parts.append(words)
        if not id_parts:
            return
        ids = np.concatenate(id_parts) if len(id_parts) > 1 else id_parts[0]
        words = np.concatenate(word_parts) if len(word_parts) > 1 else word_parts[0]
        del id_parts, word_parts
        self._add_words(ids, words, bulk=True)

    def _make_segments(self, ids: np.ndarray, words: np.ndarray) -> list[_Segment]:
        """Segments of at most MAX_ROWS rows from unique ids sorted ascending."""
        out = []
        for s in range(0, ids.shape[0], _Segment.MAX_ROWS):
            e = min(ids.shape[0], s + _Segment.MAX_ROWS)
            out.append(_Segment(ids[s:e], words[s:e], self.bits, self.radius, self.backend))
        return out

    # -- mutation
    def add(self, ids: Any, hashes: Any) -> None:
        words, _ = _as_words(hashes, self.bits)
        self._add_words(_as_ids(ids, words.shape[0]), words)

    def _add_words(self, ids: np.ndarray, words: np.ndarray, bulk: bool = False) -> None:
        if ids.shape[0] == 0:
            return
        ids, words = _sort_by_id(ids, words)
        if len(self):
            self._discard(ids)
        if bulk or ids.shape[0] >= self.DELTA_ROWS:
            self._segments.extend(self._make_segments(ids, words))
            self._maybe_merge()
            return
        if ids.shape[0] > self._delta.free():
            self._flush()
        self._delta.append(ids, words)
        if self._delta.free() == 0:
            self._flush()

    def remove(self, ids: Any) -> int:
        if isinstance(ids, (int, np.integer)) and not isinstance(ids, (bool, np.bool_)):
            arr = _as_ids(ids, 1)
        else:
            a = np.asarray(ids)
            arr = _as_ids(a, a.size)
        arr = np.unique(arr)
        return self._discard(arr)

    def _discard(self, ids: np.ndarray) -> int:
        removed = 0
        if self._delta.row:
            removed += int(self._delta.remove(ids).sum())
        changed = False
        for seg in self._segments:
            rows = seg.find_rows(ids)
            rows = rows[rows >= 0]
            if rows.shape[0]:
                seg.kill(rows)
                removed += rows.shape[0]
                changed = True
        if changed:
            self._compact_dead()
        return removed

    def _compact_dead(self) -> None:
        """Drop empty segments; rebuild those that are more than half tombstones."""
        segs = []
        for seg in self._segments:
            if seg.live == 0:
                continue
            if seg.dead * 2 > seg.n:
                ids, words = seg.live_arrays()
                segs.extend(self._make_segments(ids, words))
            else:
                segs.append(seg)
        self._segments = segs

    def _flush(self) -> None:
        if self._delta.row:
            ids, words = _sort_by_id(*self._delta.live_arrays())
            self._segments.extend(self._make_segments(ids, words))
        self._delta.clear()
        self._maybe_merge()

    def _maybe_merge(self) -> None:
        segs = sorted(self._segments, key=lambda s: -s.live)
        while len(segs) >= 2:
            a, b = segs[-2], segs[-1]
            if b.live * self.MERGE_RATIO < a.live or a.live + b.live > _Segment.MAX_ROWS:
                break
            ia, wa = a.live_arrays()
            ib, wb = b.live_arrays()
            ids, words = _sort_by_id(np.concatenate([ia, ib]), np.concatenate([wa, wb]))
            segs[-2:] = self._make_segments(ids, words)
            segs.sort(key=lambda s: -s.live)
        self._segments = segs

    def compact(self) -> None:
        """Merge everything (buffer and segments) into as few segments as possible, dropping tombstones."""
        parts = [s.live_arrays() for s in self._segments]
        if self._delta.row:
            parts.append(self._delta.live_arrays())
        self._delta.clear()
        self._segments = []
        if parts:
            ids, words = _sort_by_id(np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]))
            if ids.shape[0]:
                self._segments = self._make_segments(ids, words)

    # -- queries
    def __len__(self) -> int:
        return sum(s.live for s in self._segments) + len(self._delta.row)

    def _contains(self, id_: int) -> bool:
        if id_ in self._delta.row:
            return True
        arr = np.array([id_], np.int64)
        return any(seg.find_rows(arr)[0] >= 0 for seg in self._segments)

    def memory_bytes(self) -> int:
        total = sum(s.nbytes() for s in self._segments) + self._delta.nbytes()
        layouts = {id(s.layout): s.layout for s in self._segments if s.layout is not None}
        total += sum(lay.luts.nbytes for lay in layouts.values())
        return total

    def segment_sizes(self) -> list[int]:
        """Live rows per segment (largest first) and, last, in the recent-additions buffer."""
        return [s.live for s in self._segments] + [len(self._delta.row)]

    def _search_arrays(self, Q, radius):
        Q = np.ascontiguousarray(Q)
        q8 = Q.view(np.uint8)
        cache: dict[int, np.ndarray] = {}

        def qkeys_for(layout: _Layout) -> np.ndarray:
            k = id(layout)
            if k not in cache:
                cache[k] = self.backend.query_keys(q8, layout.luts)
            return cache[k]

        parts = [seg.search(Q, radius, self.backend, qkeys_for) for seg in self._segments]
        if self._delta.row:
            qi, rows, d = self.backend.brute_search(Q, self._delta.raw, self._delta.n, self._delta.tomb, radius)
            parts.append((qi, self._delta.ids[rows], d))
        if not parts:
            e = np.empty(0, np.int64)
            return e, e, e
        if len(parts) == 1:
            return parts[0]
        return tuple(np.concatenate([p[i] for p in parts]) for i in range(3))


def load_from_rows(
    chunks: Iterable[tuple[Any, Any]],
    *,
    bits: int = 256,
    radius: int | None = None,
    index_cls: type[HammingIndex] = MultiIndexHashIndex,
    **kwargs: Any,
) -> HammingIndex:
    """Build an index from an iterable of ``(ids, hashes)`` chunks, e.g. rows streamed from a database.

    Each chunk is an int64 id array and the matching hashes ((N, bits/8) uint8 is cheapest).
    """
    return index_cls.from_chunks(chunks, bits=bits, radius=radius, **kwargs)
