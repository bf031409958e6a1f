"""hashes.index: the multi-index hash index must give exactly the brute-force results."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import hashes.index as hidx
from hashes import _index_kernels
from hashes.index import BruteForceIndex, HammingIndex, MultiIndexHashIndex, load_from_rows

BACKENDS = ["numpy"] + (["numba"] if _index_kernels.HAVE_NUMBA else [])
HYP = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


class SmallDelta(MultiIndexHashIndex):
    """Tiny buffer so that a few additions already create, merge and compact segments."""

    DELTA_ROWS = 16


@pytest.fixture
def force_tables(monkeypatch):
    """Make every segment, however small, use multi-index tables (the path under test)."""
    monkeypatch.setattr(hidx, "_MIN_TABLE_ROWS", 1)
    monkeypatch.setattr(hidx, "_C_ROW_PER_WORD", 1e9)


def rand_words(rng, n, bits):
    return rng.integers(0, 256, (n, bits // 8), dtype=np.uint8)


def flip(rng, h, k):
    """h (uint8 bytes) with k distinct random bits flipped."""
    h = h.copy()
    for p in rng.choice(h.shape[0] * 8, size=k, replace=False):
        h[p // 8] ^= np.uint8(1 << (p % 8))
    return h


def clustered(seed, n, bits, radius, nq):
    """Registered hashes and queries at distances close to the radius of each other."""
    rng = np.random.default_rng(seed)
    centres = rand_words(rng, max(1, n // 8), bits)
    lo, hi = max(0, radius - 3), min(bits, radius + 3)
    reg = np.stack([flip(rng, centres[rng.integers(len(centres))], int(rng.integers(0, hi // 2 + 1))) for _ in range(n)])
    qs = [flip(rng, centres[rng.integers(len(centres))], int(rng.integers(lo // 2, hi // 2 + 2))) for _ in range(nq)]
    qs += [reg[rng.integers(n)]] + [flip(rng, reg[rng.integers(n)], int(rng.integers(lo, hi + 1))) for _ in range(nq)]
    return reg, np.stack(qs)


def both(bits, backend, cls=MultiIndexHashIndex, radius=None):
    return cls(bits, radius=radius, backend=backend), BruteForceIndex(bits, radius=radius)


# ----------------------------------------------------------------------------- against brute force


@pytest.mark.parametrize("backend", BACKENDS)
@HYP
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(0, 300),
    bits=st.sampled_from([64, 256]),
    radius_kind=st.sampled_from(["default", "zero", "max", "near"]),
)
def test_random_and_clustered_match_brute_force(force_tables, backend, seed, n, bits, radius_kind):
    rng = np.random.default_rng(seed)
    radius = {"default": hidx.DEFAULT_RADIUS[bits], "zero": 0, "max": bits}.get(
        radius_kind, int(rng.integers(1, bits // 4))
    )
    reg, qs = clustered(seed, max(n, 1), bits, radius, 6)
    reg = reg[:n]
    ids = rng.choice(10**12, size=n, replace=False).astype(np.int64) - 5 * 10**11
    fast = MultiIndexHashIndex.from_arrays(ids, reg, bits=bits, backend=backend)
    ref = BruteForceIndex.from_arrays(ids, reg, bits=bits)
    qs = np.concatenate([qs, rand_words(rng, 3, bits)])
    assert fast.search_batch(qs, radius) == ref.search_batch(qs, radius)


@pytest.mark.parametrize("backend", BACKENDS)
@HYP
@given(seed=st.integers(0, 2**32 - 1), bits=st.sampled_from([64, 256]), data=st.data())
def test_adds_removes_interleaved_with_queries(force_tables, backend, seed, bits, data):
    rng = np.random.default_rng(seed)
    radius = hidx.DEFAULT_RADIUS[bits]
    fast, ref = both(bits, backend, SmallDelta)
    pool = rand_words(rng, 12, bits)  # few centres: many near-duplicates and exact duplicates
    for _ in range(data.draw(st.integers(1, 12), label="steps")):
        op = data.draw(st.sampled_from(["add", "add", "remove", "query"]), label="op")
        if op == "add":
            k = data.draw(st.integers(1, 40), label="k")
            ids = rng.integers(0, 60, k)  # small id space: replacements and in-batch duplicates
            hs = np.stack([flip(rng, pool[rng.integers(len(pool))], int(rng.integers(0, radius + 4))) for _ in range(k)])
            fast.add(ids, hs)
            ref.add(ids, hs)
        elif op == "remove":
            ids = rng.integers(0, 60, data.draw(st.integers(0, 20), label="r"))
            assert fast.remove(ids) == ref.remove(ids)
        qs = np.stack([flip(rng, pool[rng.integers(len(pool))], int(rng.integers(0, radius + 6))) for _ in range(4)])
        assert len(fast) == len(ref)
        assert fast.search_batch(qs) == ref.search_batch(qs)
        r = int(rng.integers(0, bits + 1))
        assert fast.search_batch(qs[:2], r) == ref.search_batch(qs[:2], r)


@pytest.mark.parametrize("backend", BACKENDS)
def test_default_layout_uses_tables_and_matches_brute_force(backend):
    """No forcing: at 40k rows the cost model chooses multi-index tables for radius 31."""
    rng = np.random.default_rng(7)
    reg = rand_words(rng, 40_000, 256)
    ids = np.arange(40_000, dtype=np.int64) * 7 + 3
    fast = MultiIndexHashIndex.from_arrays(ids, reg, backend=backend)
    assert fast._segments[0].plan(31) is not None
    ref = BruteForceIndex.from_arrays(ids, reg)
    qs = np.stack([flip(rng, reg[rng.integers(len(reg))], int(k)) for k in rng.integers(0, 41, 60)])
    qs = np.concatenate([qs, rand_words(rng, 20, 256)])
    got = fast.search_batch(qs)
    assert got == ref.search_batch(qs)
    assert sum(map(len, got)) > 0
    # removals are visible to the very next query, additions too
    victim = got[0][0][0] if got[0] else int(ids[0])
    fast.remove(victim)
    ref.remove(victim)
    fast.add(10**15, qs[1])
    ref.add(10**15, qs[1])
    assert fast.search_batch(qs[:5]) == ref.search_batch(qs[:5])
    assert (10**15, 0) in fast.search(qs[1])


@pytest.mark.parametrize("backend", BACKENDS)
def test_heavy_bucket_of_identical_hashes(force_tables, backend):
    """Thousands of identical hashes (one overfull bucket per table) stay exact."""
    rng = np.random.default_rng(3)
    same = np.repeat(rand_words(rng, 1, 256), 3000, axis=0)
    reg = np.concatenate([same, rand_words(rng, 2000, 256)])
    ids = np.arange(len(reg), dtype=np.int64)
    fast = MultiIndexHashIndex.from_arrays(ids, reg, backend=backend)
    assert fast._segments[0].rel.dtype != np.uint8  # offsets widened for the big bucket
    ref = BruteForceIndex.from_arrays(ids, reg)
    qs = np.stack([same[0], flip(rng, same[0], 5), flip(rng, same[0], 31), flip(rng, same[0], 32)])
    got = fast.search_batch(qs)
    assert got == ref.search_batch(qs)
    assert len(got[0]) == 3000 and got[3] == []


# ----------------------------------------------------------------------------- semantics


@pytest.mark.parametrize("cls", [MultiIndexHashIndex, BruteForceIndex])
def test_add_replace_remove_semantics(cls):
    a, b = "0" * 64, "f" * 64
    idx = cls()
    assert len(idx) == 0 and idx.search(a) == []
    idx.add([1, 2], [a, a])
    assert idx.search(a) == [(1, 0), (2, 0)]  # duplicate hash values under different ids
    idx.add(1, b)  # re-adding an id replaces its hash
    assert len(idx) == 2 and idx.search(a) == [(2, 0)] and idx.search(b) == [(1, 0)]
    idx.add([5, 5], [a, b])  # within one call the last occurrence wins
    assert idx.search(b) == [(1, 0), (5, 0)]
    assert idx.remove([2, 99]) == 1  # unknown ids are ignored
    assert idx.search(a) == [] and 2 not in idx and 1 in idx
    assert idx.remove(2) == 0
    assert len(idx) == 2


@pytest.mark.parametrize("backend", BACKENDS)
def test_results_sorted_by_distance_then_id(backend):
    q = np.zeros(32, np.uint8)
    hs = [flip(np.random.default_rng(i), q, k) for i, k in enumerate([3, 0, 3, 1, 31, 32])]
    idx = MultiIndexHashIndex.from_arrays([50, 40, 30, 20, 10, 5], np.stack(hs), backend=backend)
    assert idx.search(q) == [(40, 0), (20, 1), (30, 3), (50, 3), (10, 31)]
    assert idx.search(q, radius=0) == [(40, 0)]
    assert len(idx.search(q, radius=256)) == 6


@pytest.mark.parametrize("backend", BACKENDS)
def test_batch_equals_single_and_empty_inputs(backend):
    rng = np.random.default_rng(5)
    reg = rand_words(rng, 500, 256)
    idx = MultiIndexHashIndex.from_arrays(np.arange(500), reg, backend=backend)
    qs = np.stack([flip(rng, reg[i], 10) for i in range(20)])
    batch = idx.search_batch(qs)
    assert batch == [idx.search(q) for q in qs]
    assert batch == idx.search_batch([q.tobytes().hex() for q in qs])
    assert idx.search_batch([]) == [] and idx.search_batch(np.zeros((0, 32), np.uint8)) == []
    empty = MultiIndexHashIndex(backend=backend)
    assert empty.search_batch(qs[:3]) == [[], [], []] and len(empty) == 0
    assert MultiIndexHashIndex.from_arrays([], np.zeros((0, 32), np.uint8)).search(qs[0]) == []


@pytest.mark.parametrize("backend", BACKENDS)
def test_search_best_over_dihedral_variants(backend):
    rng = np.random.default_rng(11)
    reg = rand_words(rng, 300, 256)
    idx = MultiIndexHashIndex.from_arrays(np.arange(300), reg, backend=backend)
    queries = [[flip(rng, reg[i], k) for k in (30, 4, 20)] + [rand_words(rng, 1, 256)[0]] for i in range(5)]
    best = idx.search_best(queries)
    for vs, got in zip(queries, best):
        merged: dict[int, int] = {}
        for res in idx.search_batch(np.stack(vs)):
            for i, d in res:
                merged[i] = min(d, merged.get(i, 999))
        assert got == sorted(merged.items(), key=lambda p: (p[1], p[0]))
    assert idx.search_best([]) == [] and idx.search_best([[]]) == [[]]


def test_input_forms_agree_64_and_256_bits():
    rng = np.random.default_rng(2)
    for bits in (64, 256):
        raw = rand_words(rng, 50, bits)
        hexes = [r.tobytes().hex() for r in raw]
        be_words = np.array([[int(h[16 * k : 16 * k + 16], 16) for k in range(bits // 64)] for h in hexes], dtype=np.uint64)
        forms = [raw, hexes, [h.upper() for h in hexes], [r.tobytes() for r in raw], be_words, [int(h, 16) for h in hexes]]
        if bits == 64:
            forms.append(be_words[:, 0])
        results = []
        for form in forms:
            idx = MultiIndexHashIndex.from_arrays(np.arange(50), form, bits=bits)
            results.append(idx.search_batch(hexes[:10], radius=bits // 8))
        assert all(r == results[0] for r in results)
        assert results[0][3][0] == (3, 0)


def test_load_from_rows_chunks():
    rng = np.random.default_rng(4)
    reg = rand_words(rng, 30_000, 256)
    ids = rng.permutation(10**6)[:30_000].astype(np.int64)
    chunks = [(ids[i : i + 7000], reg[i : i + 7000]) for i in range(0, 30_000, 7000)]
    idx = load_from_rows(iter(chunks))
    assert isinstance(idx, MultiIndexHashIndex) and len(idx) == 30_000
    ref = BruteForceIndex.from_arrays(ids, reg)
    qs = np.stack([flip(rng, reg[i], 25) for i in range(0, 30_000, 1000)])
    assert idx.search_batch(qs) == ref.search_batch(qs)
    assert 0 < idx.memory_bytes() < 3 * reg.nbytes
    assert load_from_rows([], bits=64).search(0) == []


def test_index_does_not_alias_caller_arrays():
    reg = np.zeros((10, 32), np.uint8)
    idx = MultiIndexHashIndex.from_arrays(np.arange(10), reg)
    reg[:] = 255
    assert len(idx.search(np.zeros(32, np.uint8), radius=0)) == 10


def test_segments_merge_and_compact(force_tables):
    rng = np.random.default_rng(9)
    fast, ref = SmallDelta(), BruteForceIndex()
    for i in range(40):
        hs = rand_words(rng, 10, 256)
        fast.add(np.arange(i * 10, i * 10 + 10), hs)
        ref.add(np.arange(i * 10, i * 10 + 10), hs)
    assert len(fast.segment_sizes()) <= 8 and sum(fast.segment_sizes()) == 400
    fast.remove(np.arange(0, 400, 3))
    ref.remove(np.arange(0, 400, 3))
    qs = rand_words(rng, 5, 256)
    assert fast.search_batch(qs, 120) == ref.search_batch(qs, 120)
    fast.compact()
    assert fast.segment_sizes() == [len(ref), 0]
    assert fast.search_batch(qs, 120) == ref.search_batch(qs, 120)


def test_interface():
    for cls in (MultiIndexHashIndex, BruteForceIndex):
        assert issubclass(cls, HammingIndex)
    with pytest.raises(TypeError):
        HammingIndex()  # abstract


# ----------------------------------------------------------------------------- errors


@pytest.mark.parametrize("cls", [MultiIndexHashIndex, BruteForceIndex])
def test_clear_errors(cls):
    idx = cls()
    with pytest.raises(ValueError, match="expected 64 hex digits for a 256-bit hash, got 63"):
        idx.add(1, "0" * 63)
    with pytest.raises(ValueError, match="not hexadecimal"):
        idx.add([1, 2], ["0" * 64, "g" * 64])
    with pytest.raises(ValueError, match=r"shape \(N, 32\)"):
        idx.add([1], np.zeros((1, 31), np.uint8))
    with pytest.raises(ValueError, match=r"shape \(N, 4\)"):
        idx.search_batch(np.zeros((2, 3), np.uint64))
    with pytest.raises(ValueError, match="got 2 ids for 1 hashes"):
        idx.add([1, 2], ["0" * 64])
    with pytest.raises(ValueError, match="expected 32 bytes"):
        idx.search(b"\x00" * 8)
    with pytest.raises(ValueError, match="radius must be between 0 and 256"):
        idx.search("0" * 64, radius=257)
    with pytest.raises(ValueError, match="radius must be between 0 and 256"):
        idx.search("0" * 64, radius=-1)
    with pytest.raises(ValueError, match="int64"):
        idx.add(2**63, "0" * 64)
    with pytest.raises(ValueError, match="ids must be integers"):
        idx.add(["a"], ["0" * 64])
    with pytest.raises(ValueError, match="search_batch"):
        idx.search(["0" * 64, "1" * 64])
    with pytest.raises(ValueError, match="bits must be a positive multiple of 64"):
        cls(bits=42)
    small = cls(bits=64)
    with pytest.raises(ValueError, match="expected 16 hex digits for a 64-bit hash"):
        small.add(1, "0" * 64)
    with pytest.raises(ValueError, match="unknown backend"):
        MultiIndexHashIndex(backend="gpu")


@pytest.mark.skipif(not _index_kernels.HAVE_NUMBA, reason="numba not installed")
@pytest.mark.parametrize("bits", [64, 256])
@pytest.mark.parametrize("radius", [0, 20, "max"])
def test_scan_kernel_over_many_row_blocks_and_query_groups(bits, radius):
    """The compiled scan works on blocks of rows for groups of queries and regrows its output
    buffers; it must still give exactly the plain scan's matches (tombstones honoured)."""
    rng = np.random.default_rng(bits + (99 if radius == "max" else radius))
    n = 5_000  # three row blocks, the last one partial
    raw8 = rand_words(rng, n, bits)
    q8 = np.concatenate([raw8[rng.integers(0, n, 70)], rand_words(rng, 80, bits)])  # three query groups
    for i in range(0, 70, 3):
        q8[i] = flip(rng, q8[i], int(rng.integers(1, 25)))
    raw = np.ascontiguousarray(raw8).view(np.uint64)
    Q = np.ascontiguousarray(q8).view(np.uint64)
    tomb = np.zeros((n >> 3) + 1, np.uint8)
    dead = rng.choice(n, 400, replace=False)
    np.bitwise_or.at(tomb, dead >> 3, (1 << (dead & 7)).astype(np.uint8))
    r = bits if radius == "max" else radius  # "max": every live row matches every query
    got = _index_kernels.brute_search_nb(Q, raw, n, tomb, r)
    want = _index_kernels.brute_search_np(Q, raw, n, tomb, r)
    key = lambda t: sorted(zip(*(np.asarray(a).tolist() for a in t)))  # noqa: E731
    assert key(got) == key(want)
    assert len(got[0]) > 0
