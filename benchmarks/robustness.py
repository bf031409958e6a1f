"""Robustness of matching: recall per transform and false positives, per algorithm and for the policy.

    python benchmarks/robustness.py [--quick] [--photos N] [--jobs J] [--chart PATH]

Every shared photo is hashed once as an original (the victim's side, ``regions="register"``).
Every transformed copy (benchmarks/_transforms.py: resizes, recompression, crops, borders and
padding, phone and chat screenshots, collages, mirror and rotations, colour changes, overlays,
combinations) and every original again is hashed once as a found picture (the monitor's side,
``regions="query"``). Both go through the real pipeline, ``hashes.compute.hash_bytes``.

Then every found picture is compared with every registered original, vectorised:

* positives: a transformed copy against its own original -> recall per transform;
* negatives: every original against every other original (19,701 distinct pairs, both
  directions), and every transformed copy against every other original -> false positives.

Contenders: PDQ whole vs whole within 31 bits (the ecosystem's rule and the naive baseline), pHash
and dHash whole within 10 bits (imagehash's customary threshold), and the default match policy
(hashes.policy), which also uses regions. Each contender's closest non-match (the margin) is
reported, and the region threshold is swept to show where recall and false positives trade.
A sample of decisions is checked against ``MatchPolicy.evaluate`` (the code path the monitor uses).

Last line: one JSON object of the figures. --quick: 25 photos and a subset of transforms.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import numpy as np
from _common import ROOT, machine, photo_paths, print_json  # noqa: F401  (puts ROOT on sys.path)
from PIL import Image

import _transforms as T  # noqa: E402
from hashes.compute import HashOptions, hash_bytes  # noqa: E402
from hashes.policy import MatchPolicy, default_policy, region_kind  # noqa: E402
from hashes.signals import get_signal_type  # noqa: E402
from hashes.types import HashValue  # noqa: E402

REGISTER = HashOptions(regions="register")
QUERY = HashOptions(regions="query")
BASELINES = {"pdq": 31, "phash": 10, "dhash": 10}
SWEEP = (36, 40, 44, 48, 52, 56, 60, 64)
NONE = 10_000  # "no applicable pair" distance


def other_picture(rng: np.random.Generator) -> np.ndarray:
    """A synthetic textured picture (smooth random noise at three scales) for the collage's other cell."""
    from scipy.ndimage import gaussian_filter
    h, w = 300, int(rng.integers(300, 480))
    x = sum(gaussian_filter(rng.normal(size=(h, w, 3)), (s, s, 0)) * s for s in (2, 8, 30))
    x = (x - x.min()) / (np.ptp(x) + 1e-9) * 255
    return x.astype(np.uint8)


SPECS = T.catalogue(other_picture)
SPEC_BY_NAME = {s.name: s for s in SPECS}


# ---- hashing (worker processes) ---------------------------------------------------------

def _seed(photo: int, name: str) -> int:
    return (photo * 1_000_003 + sum(ord(c) * 131 ** i for i, c in enumerate(name))) % (2 ** 32)


def _hash_task(task: tuple[int, str, str]) -> tuple[int, str, list[HashValue], str, float]:
    """(photo index, transform name or "register"/"original", path) -> hashes; runs in a worker."""
    i, name, path = task
    data = open(path, "rb").read()
    start = time.perf_counter()
    if name == "register":
        h = hash_bytes(data, source=path, options=REGISTER)
        return i, name, h.hashes, h.md5, time.perf_counter() - start
    if name != "original":
        rgb = np.asarray(Image.open(path).convert("RGB"))
        data = SPEC_BY_NAME[name].fn(rgb, np.random.default_rng(_seed(i, name)))
        start = time.perf_counter()
    h = hash_bytes(data, source=f"{path}:{name}", options=QUERY)
    return i, name, h.hashes, h.md5, time.perf_counter() - start


def cached_results(tasks: list[tuple[int, str, str]], jobs: int, use_cache: bool):
    """run_tasks, remembered in the benchmark cache keyed by the hashing code and the task list.

    Changing the policy then costs seconds; changing regions, decoding, PDQ or a transform
    changes the key and hashes everything again.
    """
    import hashlib
    import pickle

    from _common import CACHE
    key = hashlib.sha256(repr(tasks).encode())
    for mod in ("hashes/regions.py", "hashes/compute.py", "hashes/pdq.py", "hashes/decode.py",
                "hashes/perceptual.py", "benchmarks/_transforms.py", "benchmarks/robustness.py"):
        path = ROOT / mod
        if mod.endswith("robustness.py"):  # only the hashing part of this file matters
            text = path.read_text()
            key.update(text[:text.index("\n# ---- packed hash tables")].encode())
        else:
            key.update(path.read_bytes())
    path = CACHE / f"robustness-{key.hexdigest()[:16]}.pkl"
    if use_cache and path.exists():
        with open(path, "rb") as fh:
            return pickle.load(fh)
    results = run_tasks(tasks, jobs)
    if use_cache:
        CACHE.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as fh:
            pickle.dump(results, fh)
    return results


def run_tasks(tasks: list[tuple[int, str, str]], jobs: int) -> list[tuple[int, str, list[HashValue], str, float]]:
    if jobs <= 1:
        return [_hash_task(t) for t in tasks]
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        return list(pool.map(_hash_task, tasks, chunksize=8))


# ---- packed hash tables --------------------------------------------------------------------

#: Files of the shared set that are the same picture (checked by eye): Set5's "head" is Set14's
#: "face", 4 px larger (PDQ 14 bits apart). They are neither positives nor
#: negatives of each other here; every other pair of distinct files is a true non-match.
SAME_PICTURE = (("set14/img_006_SRF_2.jpg", "set5/img_004_SRF_2.jpg"),)


@dataclass
class Table:
    """All hashes of one algorithm of a set of images, packed for vectorised comparison."""

    words: np.ndarray  # (n, k) uint64
    owner: np.ndarray  # (n,) image index, non-decreasing
    kind: np.ndarray  # (n,) region kind (str)
    label: np.ndarray  # (n,) region label (str)
    quality: np.ndarray  # (n,) int, -1 = unknown
    starts: np.ndarray  # first row of each image (len = images); images without rows repeat

    @classmethod
    def build(cls, images: list[list[HashValue]], algorithm: str) -> "Table":
        bits = get_signal_type(algorithm).bits
        k = (bits + 63) // 64
        rows, owner, kind, qual, label = [], [], [], [], []
        starts = []
        for idx, hashes in enumerate(images):
            starts.append(len(rows))
            for h in hashes:
                if h.algorithm != algorithm:
                    continue
                raw = bytes.fromhex(h.value.rjust(k * 16, "0"))
                rows.append(np.frombuffer(raw, ">u8").astype(np.uint64))
                owner.append(idx)
                kind.append(region_kind(h.region))
                label.append(h.region)
                qual.append(-1 if h.quality is None else h.quality)
        words = np.array(rows, np.uint64).reshape(-1, k)
        return cls(words, np.array(owner, np.int64), np.array(kind), np.array(label), np.array(qual, np.int64),
                   np.array(starts))


def hamming(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(len(a), len(b)) Hamming distances of packed rows."""
    out = np.zeros((a.shape[0], b.shape[0]), np.uint16)
    for j in range(a.shape[1]):
        out += np.bitwise_count(a[:, j, None] ^ b[None, :, j]).astype(np.uint16)
    return out


def _segment_min(m: np.ndarray, starts: np.ndarray, n_rows: int, axis: int) -> np.ndarray:
    """Minimum over each image's rows along axis (images without rows get NONE)."""
    counts = np.diff(np.append(starts, n_rows))
    nonempty = counts > 0
    out_shape = list(m.shape)
    out_shape[axis] = len(starts)
    out = np.full(out_shape, NONE, m.dtype)
    if nonempty.any():
        red = np.minimum.reduceat(m, starts[nonempty], axis=axis)
        if axis == 0:
            out[nonempty] = red
        else:
            out[:, nonempty] = red
    return out


def pair_minima(q: Table, r: Table, masks: list[tuple[np.ndarray, np.ndarray]], n_q: int, n_r: int,
                chunk: int = 1024, negatives_of: np.ndarray | None = None,
                same: np.ndarray | None = None) -> tuple[list[np.ndarray], np.ndarray]:
    """For each (query mask, registered mask): (n_q, n_r) least distance over applicable hash pairs.

    Also returns a histogram (index = distance) of every single hash pair that some mask applies
    to and that compares different pictures (negatives_of: the photo of each query image; same:
    which photos show the same picture).
    """
    outs = [np.full((n_q, n_r), NONE, np.uint16) for _ in masks]
    hist = np.zeros(get_signal_type("pdq").bits + 1, np.int64)
    if len(q.words) == 0 or len(r.words) == 0:
        return outs, hist
    # process whole query images per chunk so segment reductions stay inside a chunk
    img_bounds = np.append(q.starts, len(q.words))
    i0 = 0
    while i0 < n_q:
        i1 = i0
        while i1 < n_q and img_bounds[i1 + 1] - img_bounds[i0] <= chunk:
            i1 += 1
        i1 = max(i1, i0 + 1)
        lo, hi = img_bounds[i0], img_bounds[i1]
        if hi > lo:
            d = hamming(q.words[lo:hi], r.words)
            any_mask = np.zeros(d.shape, bool)
            for (qm, rm), out in zip(masks, outs):
                applies = qm[lo:hi, None] & rm[None, :]
                any_mask |= applies
                m = np.where(applies, d, NONE).astype(np.uint16)
                per_r = _segment_min(m, r.starts, len(r.words), axis=1)  # (rows, n_r)
                out[i0:i1] = _segment_min(per_r, q.starts[i0:i1] - lo, hi - lo, axis=0)
            if negatives_of is not None:
                neg = ~same[negatives_of[q.owner[lo:hi]][:, None], r.owner[None, :]]
                hist += np.bincount(d[any_mask & neg], minlength=hist.size)[: hist.size]
        i0 = i1
    return outs, hist


def rule_masks(policy: MatchPolicy, algorithm: str, q: Table, r: Table) -> list[tuple[np.ndarray, np.ndarray]]:
    """Applicability masks (query rows, registered rows) of each of the policy's rules for an algorithm."""
    out = []
    for rule in policy.rules:
        if rule.algorithm != algorithm:
            continue
        qm = np.isin(q.kind, list(rule.query_kinds))
        rm = np.isin(r.kind, list(rule.registered_kinds))
        if rule.min_quality is not None:
            qm &= q.quality >= rule.min_quality
            rm &= (r.quality >= rule.min_quality) | ((r.quality < 0) & rule.allow_unknown_quality)
        out.append((qm, rm))
    return out


# ---------------------------------------------------------------- main

def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="25 photos, a subset of transforms (about a minute)")
    ap.add_argument("--photos", type=int, default=None, help="use this many photos (evenly spaced)")
    ap.add_argument("--jobs", type=int, default=None, help="worker processes (default: 1 with --quick, else 2)")
    ap.add_argument("--chart", default=None,
                    help="PNG chart path ('' = none; default docs/robustness.png for a full run, none with --quick, "
                         "so a quick run never replaces the documented chart)")
    ap.add_argument("--sample", type=int, default=300, help="decisions checked against MatchPolicy.evaluate")
    ap.add_argument("--ablation", action="store_true", help="also: recall without each family of regions")
    ap.add_argument("--no-cache", action="store_true", help="hash everything again even if cached")
    args = ap.parse_args()

    all_paths = photo_paths()
    n_photos = args.photos or (25 if args.quick else len(all_paths))
    step = len(all_paths) / n_photos
    paths = [all_paths[int(i * step)] for i in range(n_photos)]
    specs = [s for s in SPECS if s.quick or not args.quick]
    jobs = args.jobs or (1 if args.quick else min(2, os.cpu_count() or 1))
    policy = default_policy()
    t0 = time.perf_counter()

    # ---- hash everything once
    tasks = [(i, "register", str(p)) for i, p in enumerate(paths)]
    tasks += [(i, "original", str(p)) for i, p in enumerate(paths)]
    tasks += [(i, s.name, str(p)) for s in specs for i, p in enumerate(paths)]
    results = cached_results(tasks, jobs, use_cache=not args.no_cache)
    registered: list[list[HashValue]] = [[] for _ in paths]
    queries: list[list[HashValue]] = []
    q_photo, q_name = [], []
    timing: dict[str, list[float]] = defaultdict(list)
    for i, name, hashes, md5, secs in results:
        if name == "register":
            registered[i] = hashes
            timing["register"].append(secs)
        else:
            queries.append(hashes)
            q_photo.append(i)
            q_name.append(name)
            timing["query"].append(secs)
    q_photo_a = np.array(q_photo)
    same = np.eye(len(paths), dtype=bool)  # which photos show the same picture
    rel = [str(p.relative_to(p.parents[1])) for p in paths]
    for a, b in SAME_PICTURE:
        if a in rel and b in rel:
            same[rel.index(a), rel.index(b)] = same[rel.index(b), rel.index(a)] = True
    q_name_a = np.array(q_name)
    n_q, n_r = len(queries), len(paths)
    t_hash = time.perf_counter() - t0

    # ---- per (query image, registered image) least distances, per contender and per rule
    tables = {}
    for alg in ("pdq", "phash", "dhash", "md5", "sha256"):
        tables[alg] = (Table.build(queries, alg), Table.build(registered, alg))
    whole = {}
    for alg in BASELINES:
        qt, rt = tables[alg]
        full = [(qt.kind == "full", rt.kind == "full")]
        whole[alg] = pair_minima(qt, rt, full, n_q, n_r)[0][0]
    rule_min: list[tuple[object, np.ndarray]] = []
    neg_hist = {}
    for alg in dict.fromkeys(r.algorithm for r in policy.rules):
        if alg in ("md5", "sha256"):
            continue
        qt, rt = tables[alg]
        rules = [r for r in policy.rules if r.algorithm == alg]
        minima, neg_hist[alg] = pair_minima(qt, rt, rule_masks(policy, alg, qt, rt), n_q, n_r,
                                            negatives_of=q_photo_a, same=same)
        rule_min.extend(zip(rules, minima))

    def rule_ok(rule, m: np.ndarray, limit: int | None = None, corroborate=None) -> np.ndarray:
        ok = m <= (rule.max_distance if limit is None else limit)
        for alg, lim in (rule.corroborate if corroborate is None else corroborate):
            ok &= whole[alg] <= lim
        return ok
    # exact rules: equal file hashes
    exact = np.zeros((n_q, n_r), bool)
    for alg in ("md5", "sha256"):
        if any(r.algorithm == alg for r in policy.rules):
            qt, rt = tables[alg]
            if len(qt.words) and len(rt.words):
                qi, ri = np.nonzero((qt.words[:, None, :] == rt.words[None, :, :]).all(axis=2))
                exact[qt.owner[qi], rt.owner[ri]] = True
    policy_match = exact.copy()
    for rule, m in rule_min:
        policy_match |= rule_ok(rule, m)
    t_cmp = time.perf_counter() - t0 - t_hash

    # ---- check a sample of decisions against MatchPolicy.evaluate (the monitor's code path)
    rng = np.random.default_rng(0)
    own = np.flatnonzero(q_name_a != "original")
    sample = [(int(k), int(q_photo_a[k])) for k in rng.choice(own, min(args.sample // 2, len(own)), replace=False)]
    sample += [(int(k), int(j)) for k, j in zip(rng.integers(0, n_q, args.sample // 2), rng.integers(0, n_r, args.sample // 2))]
    mismatches = 0
    for k, j in sample:
        d = policy.evaluate(queries[k], registered[j])
        if d.matched != bool(policy_match[k, j]):
            mismatches += 1
            print(f"MISMATCH query {q_name[k]} of photo {q_photo[k]} vs {j}: evaluate={d.matched} ({d.reason})")
    assert mismatches == 0, f"{mismatches} vectorised decisions differ from MatchPolicy.evaluate"

    # ---- positives and negatives
    pos_mask = q_photo_a[:, None] == np.arange(n_r)[None, :]
    is_orig = q_name_a == "original"
    contenders = {
        "pdq": whole["pdq"] <= BASELINES["pdq"],
        "phash": whole["phash"] <= BASELINES["phash"],
        "dhash": whole["dhash"] <= BASELINES["dhash"],
        "policy": policy_match,
    }
    recall = {c: {} for c in contenders}
    names = [s.name for s in specs]
    for c, m in contenders.items():
        for name in names:
            rows = np.flatnonzero(q_name_a == name)
            recall[c][name] = float(m[rows, q_photo_a[rows]].mean())
    groups = list(dict.fromkeys(s.group for s in specs))
    group_recall = {c: {g: float(np.mean([recall[c][s.name] for s in specs if s.group == g])) for g in groups}
                    for c in contenders}

    unrelated = ~same[q_photo_a]  # (n_q, n_r): the query's picture is not the registered one
    neg_orig = unrelated & is_orig[:, None]
    neg_tr = unrelated & ~is_orig[:, None]
    fp = {}
    for c, m in contenders.items():
        # distinct original pairs: a pair is a false positive if either direction matches
        oo = np.zeros((n_r, n_r), bool)
        rows = np.flatnonzero(is_orig)
        oo[q_photo_a[rows]] = m[rows]
        oo = (oo | oo.T) & ~same
        fp[c] = {"original_pairs": int(np.triu(oo).sum()), "transformed_pairs": int((m & neg_tr).sum())}
    pairs_checked = {"original_pairs": int(np.triu(~same).sum()), "original_ordered": int(neg_orig.sum()),
                     "same_picture_pairs_excluded": int(np.triu(same, 1).sum()),
                     "transformed_pairs": int(neg_tr.sum()), "positives": int((pos_mask & ~is_orig[:, None]).sum())}

    # ---- margins: the closest non-matching distance for each contender and rule
    negs = neg_orig | neg_tr
    margins = {}
    for alg, lim in BASELINES.items():
        closest = int(whole[alg][negs].min())
        margins[alg] = {"threshold": lim, "closest_negative": closest, "margin": closest - lim}
    for rule, m in rule_min:
        sel = negs.copy()
        for alg, lim in rule.corroborate:  # only negatives the corroborating hash lets through
            sel &= whole[alg] <= lim
        closest = int(m[sel].min()) if sel.any() else NONE
        margins[f"policy:{rule.name}"] = {"threshold": rule.max_distance, "closest_negative": closest,
                                          "margin": closest - rule.max_distance}
    # the tail of single hash-pair distances between different photos, under any policy rule
    tail = {}
    for alg, hist in neg_hist.items():
        cum = np.cumsum(hist)
        tail[alg] = {"pairs": int(cum[-1]), **{f"<={d}": int(cum[d]) for d in (48, 56, 64, 72, 80, 88, 96, 100)},
                     "histogram_to_110": [int(x) for x in hist[:111]]}
    def recall_by_group(mm: np.ndarray) -> dict[str, float]:
        out = {}
        for g in groups:
            vals = []
            for s_ in specs:
                if s_.group == g:
                    rows = np.flatnonzero(q_name_a == s_.name)
                    vals.append(mm[rows, q_photo_a[rows]].mean())
            out[g] = float(np.mean(vals))
        return out

    def policy_with(**changes) -> np.ndarray:
        """The policy's decisions with some rules' limits changed: name -> (limit, corroborate or None)."""
        mm = exact.copy()
        for rule, m in rule_min:
            limit, corr = changes.get(rule.name, (None, None))
            mm |= rule_ok(rule, m, limit, corr)
        return mm

    region_names = [r.name for r in policy.rules if r.algorithm == "pdq" and not r.corroborate
                    and r.max_distance > 31]
    sweep = {}
    for t in SWEEP:
        mm = policy_with(**{n: (t, None) for n in region_names})
        sweep[t] = {"false_positives": int((mm & negs).sum()), "recall": recall_by_group(mm)}
    rule_sweep = {}  # each region rule alone at t, the others as in the policy
    for name in region_names:
        for t in SWEEP:
            mm = policy_with(**{name: (t, None)})
            rule_sweep[f"{name}<={t}"] = {"false_positives": int((mm & negs).sum()), "recall": recall_by_group(mm)}
    corr_rules = [r for r in policy.rules if r.corroborate]
    corr_sweep = {}
    for r in corr_rules:
        for t in (40, 48, 56, 64, 72):
            for alg, _ in r.corroborate:
                for lim in (8, 10, 12, 14):
                    mm = policy_with(**{r.name: (t, ((alg, lim),))})
                    key = f"{r.name}:pdq<={t}:{alg}<={lim}"
                    corr_sweep[key] = {"false_positives": int((mm & negs).sum()), "recall": recall_by_group(mm)}
        mm = policy_with(**{r.name: (-1, None)})
        corr_sweep[f"{r.name}:off"] = {"false_positives": int((mm & negs).sum()), "recall": recall_by_group(mm)}
    # joint closeness of negatives: how many negative pairs come near on PDQ and dHash at once
    joint = {f"pdq<={tp},dhash<={td}": int(((whole["pdq"] <= tp) & (whole["dhash"] <= td) & negs).sum())
             for tp in (56, 64, 72, 80) for td in (10, 12, 14)}

    # ---- ablation: what each family of regions contributes (recall lost without it)
    ablation = {}
    if args.ablation:
        qt, rt = tables["pdq"]
        families = {
            "reg crop:0.95:off": lambda t: np.char.startswith(t.label, "crop:0.95:") & (t.label != "crop:0.95:c"),
            "reg crop:0.90:off": lambda t: np.char.startswith(t.label, "crop:0.90:") & (t.label != "crop:0.90:c"),
            "reg crop:0.85:off": lambda t: np.char.startswith(t.label, "crop:0.85:") & (t.label != "crop:0.85:c"),
            "reg crop:0.80:off": lambda t: np.char.startswith(t.label, "crop:0.80:") & (t.label != "crop:0.80:c"),
            "reg crop:*:c": lambda t: np.char.startswith(t.label, "crop:") & np.char.endswith(t.label, ":c"),
            "reg cut": lambda t: np.char.startswith(t.label, "cut:"),
            "reg aspect": lambda t: np.char.startswith(t.label, "aspect:"),
            "reg rot": lambda t: np.char.startswith(t.label, "rot:"),
            "query trim": lambda t: t.label == "trim",
            "query trim:smooth": lambda t: t.label == "trim:smooth",
            "query trim:rot": lambda t: t.label == "trim:rot",
            "query inner": lambda t: t.label == "inner",
            "query cell": lambda t: np.char.startswith(t.label, "cell:"),
            "query dihedral": lambda t: np.char.startswith(t.label, "dihedral:"),
        }
        pdq_rules = [r for r in policy.rules if r.algorithm == "pdq"]
        base_recall = recall_by_group(policy_match)
        for fam, sel in families.items():
            side = qt if fam.startswith("query") else rt
            drop = sel(side)
            masks = []
            for qm, rm in rule_masks(policy, "pdq", qt, rt):
                masks.append((qm & ~drop, rm) if side is qt else (qm, rm & ~drop))
            minima, _ = pair_minima(qt, rt, masks, n_q, n_r)
            mm = exact.copy()
            for rule, m in rule_min:
                if rule.algorithm != "pdq":
                    mm |= rule_ok(rule, m)
            for rule, m in zip(pdq_rules, minima):
                mm |= rule_ok(rule, m)
            rec = recall_by_group(mm)
            ablation[fam] = {g: round(rec[g] - base_recall[g], 4) for g in groups if abs(rec[g] - base_recall[g]) > 1e-9}

    # ---- distances of positives: how far the copies are (median of the best policy distance)
    best_pos = np.min(np.stack([m for _, m in rule_min]), axis=0)
    pos_median = {name: float(np.median(best_pos[q_name_a == name, q_photo_a[q_name_a == name]])) for name in names}

    # ---- report
    print(f"photos {n_r}, transforms {len(specs)}, found pictures hashed {n_q}, jobs {jobs}")
    print(f"hashing {t_hash:.0f} s (register {np.median(timing['register'])*1000:.0f} ms/image, "
          f"query {np.median(timing['query'])*1000:.0f} ms/image median), comparing {t_cmp:.1f} s")
    print(f"decisions checked against MatchPolicy.evaluate: {len(sample)}, all equal")
    print()
    hdr = f"{'transform':24s} {'group':15s} " + " ".join(f"{c:>7s}" for c in contenders) + "   best-d"
    print(hdr)
    print("-" * len(hdr))
    for s in specs:
        print(f"{s.name:24s} {s.group:15s} " + " ".join(f"{recall[c][s.name]:7.1%}" for c in contenders)
              + f"   {pos_median[s.name]:5.0f}")
    print()
    print(f"{'group':24s} " + " ".join(f"{c:>7s}" for c in contenders))
    for g in groups:
        print(f"{g:24s} " + " ".join(f"{group_recall[c][g]:7.1%}" for c in contenders))
    print()
    print(f"false positives (distinct original pairs of {pairs_checked['original_pairs']}; "
          f"transformed copies vs other originals, {pairs_checked['transformed_pairs']} pairs):")
    for c in contenders:
        print(f"  {c:8s} {fp[c]['original_pairs']:6d} {fp[c]['transformed_pairs']:8d}")
    print(f"(same picture in two files, excluded from negatives: {pairs_checked['same_picture_pairs_excluded']} pair)")
    print("closest non-match (margin = closest - threshold):")
    for k, v in margins.items():
        print(f"  {k:28s} threshold {v['threshold']:3d}  closest negative {v['closest_negative']:4d}  margin {v['margin']:+d}")
    print("negative hash pairs (different photos, any rule applicable) at or below a distance:")
    for alg, v in tail.items():
        print(f"  {alg}: " + "  ".join(f"{k}: {n}" for k, n in v.items() if not k.startswith("histogram")))
    print("negative image pairs close on PDQ and dHash at once (whole vs whole):")
    print("  " + "  ".join(f"{k}: {n}" for k, n in joint.items()))
    print("region threshold sweep (policy with the pdq region rules at t):")
    for t, v in sweep.items():
        print(f"  t={t:3d}  false positives {v['false_positives']:4d}  "
              + " ".join(f"{g}:{r:.0%}" for g, r in v["recall"].items()))
    print("each region rule alone at t (others unchanged):")
    for k, v in rule_sweep.items():
        print(f"  {k:28s} FP {v['false_positives']:4d}  "
              + " ".join(f"{g}:{r:.0%}" for g, r in v["recall"].items()
                         if g in ("crop-side", "crop-offgrid", "border/pad", "screenshot", "collage",
                                  "small-rotation", "overlay", "combined")))
    print("corroborated whole rule sweep:")
    for k, v in corr_sweep.items():
        print(f"  {k:40s} FP {v['false_positives']:4d}  "
              + " ".join(f"{g}:{r:.0%}" for g, r in v["recall"].items()
                         if g in ("colour", "overlay", "combined", "small-rotation", "blur/noise")))

    if ablation:
        print("ablation (recall change per group without each family of regions; empty = no loss):")
        for fam, v in ablation.items():
            print(f"  {fam:20s} " + " ".join(f"{g}:{d:+.1%}" for g, d in v.items()))

    if args.chart is None and not args.quick:
        args.chart = str(ROOT / "docs" / "robustness.png")
    if args.chart:
        chart(args.chart, specs, recall, contenders, fp)
        print(f"chart: {args.chart}")

    print_json({
        "benchmark": "robustness", "quick": bool(args.quick), "photos": n_r, "transforms": len(specs),
        "found_pictures": n_q, "recall_by_group": group_recall, "recall_by_transform": recall,
        "false_positives": fp, "pairs_checked": pairs_checked, "margins": margins,
        "region_threshold_sweep": {str(t): v for t, v in sweep.items()}, "region_rule_sweep": rule_sweep,
        "corroborated_rule_sweep": corr_sweep, "ablation": ablation, "negative_tail": tail, "negative_joint_pdq_dhash": joint,
        "evaluate_sample_checked": len(sample),
        "ms_per_image": {"register": float(np.median(timing["register"]) * 1000),
                         "query": float(np.median(timing["query"]) * 1000)},
        **machine(),
    })


def chart(path: str, specs: list, recall: dict, contenders: dict, fp: dict) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [s.name for s in specs]
    n = len(names)
    fig, ax = plt.subplots(figsize=(9, 1.6 + 0.22 * n))
    colours = {"pdq": "#9e9e9e", "phash": "#c7b299", "dhash": "#a6c8e0", "policy": "#d62728"}
    labels = {"pdq": "PDQ whole <= 31", "phash": "pHash whole <= 10", "dhash": "dHash whole <= 10",
              "policy": "default policy (regions)"}
    h = 0.8 / len(contenders)
    y = np.arange(n)
    for k, c in enumerate(contenders):
        vals = [recall[c][nm] * 100 for nm in names]
        ax.barh(y + (k - (len(contenders) - 1) / 2) * h, vals, height=h, color=colours.get(c),
                label=f"{labels.get(c, c)} (FP {fp[c]['original_pairs'] + fp[c]['transformed_pairs']})")
    ax.set_yticks(y)
    ax.set_yticklabels([f"{s.name}  [{s.group}]" for s in specs], fontsize=7)
    ax.set_ylim(n - 0.5, -0.5)
    ax.set_xlim(0, 100)
    ax.set_xlabel("recall (%)")
    ax.axvline(90, color="k", lw=0.5, ls=":")
    ax.axvline(99, color="k", lw=0.5, ls=":")
    handles, labels_ = ax.get_legend_handles_labels()
    height = fig.get_figheight()
    fig.suptitle("Copies found per transform (benchmarks/robustness.py; FP = false positives)", fontsize=10,
                 y=1 - 0.12 / height)
    fig.legend(handles, labels_, loc="upper center", bbox_to_anchor=(0.5, 1 - 0.4 / height),
               ncol=2, fontsize=7, frameon=False)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.95 / height))
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
