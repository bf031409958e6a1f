"""hashes.policy: the rules on constructed hashes (limits, qualities, kinds, corroboration), evaluate vs
decide, and a small real check on a few shared photos (skipped when /work/shared/photos is absent)."""

from __future__ import annotations

import io
import random
from pathlib import Path

import numpy as np
import pytest

from hashes import policy as P
from hashes.policy import MatchPolicy, Rule, default_policy, region_kind
from hashes.signals import get_signal_type
from hashes.types import FULL, HashValue, ImageHashes

PHOTOS = Path(__file__).resolve().parents[1].parent / "shared" / "photos"


def rand_hex(bits: int, rng: random.Random) -> str:
    return f"{rng.getrandbits(bits):0{bits // 4}x}"


def flip(value: str, k: int, rng: random.Random, bits: int = 256) -> str:
    """`value` with exactly k bits flipped."""
    x = int(value, 16)
    for i in rng.sample(range(bits), k):
        x ^= 1 << i
    return f"{x:0{bits // 4}x}"


def pdq(value: str, region: str = FULL, quality: int | None = 100) -> HashValue:
    return HashValue("pdq", value, quality, region)


def dhash(value: str) -> HashValue:
    return HashValue("dhash", value)


@pytest.fixture
def rng() -> random.Random:
    return random.Random(1234)


@pytest.fixture
def pol() -> MatchPolicy:
    return default_policy()


def far_dhash(rng: random.Random) -> tuple[HashValue, HashValue]:
    a = rand_hex(64, rng)
    return dhash(a), dhash(flip(a, 32, rng, 64))


# ---------------------------------------------------------------- kinds and radii

def test_region_kinds():
    assert region_kind("full") == P.KIND_FULL
    assert region_kind("dihedral:rotate90") == region_kind("dihedral:flipX") == P.KIND_DIHEDRAL
    for label in ("trim", "trim:smooth", "trim:rot", "inner", "cell:0"):
        assert region_kind(label) == P.KIND_FOUND
    for label in ("crop:0.90:c", "cut:b:0.90", "aspect:1-1", "rot:p3"):
        assert region_kind(label) == P.KIND_CROP
    assert region_kind("segment:3") == P.KIND_OTHER


def test_index_radius(pol):
    assert pol.index_radius("pdq") == max(r.max_distance for r in pol.rules if r.algorithm == "pdq")
    assert pol.index_radius("pdq") >= P.PDQ_WHOLE_DISTANCE
    assert pol.index_radius("dhash") == P.DHASH_CORROBORATION
    assert pol.index_radius("phash") == -1  # not used by the default policy
    assert pol.index_radius("md5") == 0


def test_standard_rule_is_the_ecosystems(pol):
    whole = [r for r in pol.rules if r.name == "pdq-whole"][0]
    assert whole.max_distance == 31 and whole.min_quality == 50 and whole.allow_unknown_quality


# ---------------------------------------------------------------- the whole-picture rule

@pytest.mark.parametrize("k,expected", [(0, True), (31, True), (32, False), (45, False)])
def test_whole_boundary(pol, rng, k, expected):
    a = rand_hex(256, rng)
    q, r = far_dhash(rng)
    d = pol.evaluate([pdq(flip(a, k, rng)), q], [pdq(a), r])
    assert d.matched is expected
    assert d.distances["pdq"] == k
    if expected:
        assert d.evidence.rule == "pdq-whole" and d.evidence.distance == k


@pytest.mark.parametrize("q_quality,r_quality", [(49, 100), (100, 49), (0, 0), (None, 100)])
def test_low_quality_never_matches(pol, rng, q_quality, r_quality):
    a = rand_hex(256, rng)
    dq = dhash(rand_hex(64, rng))
    query = [pdq(a, quality=q_quality), pdq(a, "trim", q_quality), pdq(a, "dihedral:rotate90", q_quality), dq]
    registered = [pdq(a, quality=r_quality), pdq(a, "crop:0.90:c", r_quality), dq]
    d = pol.evaluate(query, registered)
    assert not d.matched, d.reason


def test_unknown_registered_quality_whole_only(pol, rng):
    """HMA/StopNCII imports carry no quality: the standard rule still works, region rules do not."""
    a = rand_hex(256, rng)
    q, r = far_dhash(rng)
    assert pol.evaluate([pdq(flip(a, 20, rng)), q], [pdq(a, quality=None), r]).matched
    assert not pol.evaluate([pdq(flip(a, 40, rng), "cell:0"), q], [pdq(a, quality=None), r]).matched
    assert not pol.evaluate([pdq(a), q], [pdq(a, "crop:0.90:c", quality=None), r]).matched


def test_dihedral_variant_matches_the_whole(pol, rng):
    a = rand_hex(256, rng)
    q, r = far_dhash(rng)
    query = [pdq(rand_hex(256, rng)), pdq(flip(a, 10, rng), "dihedral:flipY"), q]
    d = pol.evaluate(query, [pdq(a), r])
    assert d.matched and d.evidence.query_region == "dihedral:flipY" and d.evidence.distance == 10
    assert "flipY" in d.reason


# ---------------------------------------------------------------- region rules

@pytest.mark.parametrize("k", [P.PDQ_REGION_DISTANCE, P.PDQ_REGION_DISTANCE + 1])
def test_found_region_vs_whole_boundary(pol, rng, k):
    a = rand_hex(256, rng)
    q, r = far_dhash(rng)
    d = pol.evaluate([pdq(rand_hex(256, rng)), pdq(flip(a, k, rng), "inner"), q], [pdq(a), r])
    assert d.matched is (k <= P.PDQ_REGION_DISTANCE)


@pytest.mark.parametrize("k", [P.PDQ_REGION_DISTANCE, P.PDQ_REGION_DISTANCE + 1])
def test_crop_region_boundary(pol, rng, k):
    a = rand_hex(256, rng)
    q, r = far_dhash(rng)
    registered = [pdq(rand_hex(256, rng)), pdq(a, "crop:0.85:tl"), r]
    d = pol.evaluate([pdq(flip(a, k, rng)), q], registered)
    assert d.matched is (k <= P.PDQ_REGION_DISTANCE)
    if d.matched:
        assert d.evidence.registered_region == "crop:0.85:tl" and d.evidence.rule == "pdq-crop"


@pytest.mark.parametrize("k", [P.PDQ_TURNED_CROP_DISTANCE, P.PDQ_TURNED_CROP_DISTANCE + 1])
def test_turned_variant_vs_crop_is_stricter(pol, rng, k):
    """A mirrored copy of a crop: its dihedral variant meets the crop window at the stricter limit."""
    a = rand_hex(256, rng)
    q, r = far_dhash(rng)
    query = [pdq(rand_hex(256, rng)), pdq(flip(a, k, rng), "dihedral:flipY"), q]
    d = pol.evaluate(query, [pdq(rand_hex(256, rng)), pdq(a, "crop:0.90:tr"), r])
    assert d.matched is (k <= P.PDQ_TURNED_CROP_DISTANCE)
    if d.matched:
        assert d.evidence.rule == "pdq-crop-turned"


def test_region_quality_threshold(pol, rng):
    a = rand_hex(256, rng)
    q, r = far_dhash(rng)
    low = P.PDQ_REGION_MIN_QUALITY - 1
    assert not pol.evaluate([pdq(a), q], [pdq(rand_hex(256, rng)), pdq(a, "crop:0.90:c", low), r]).matched
    assert not pol.evaluate([pdq(a, "trim", low), q], [pdq(flip(a, 40, rng)), r]).matched


def test_other_region_kinds_never_match(pol, rng):
    a = rand_hex(64, rng)
    d = pol.evaluate([HashValue("crophash", a, None, "segment:0")], [HashValue("crophash", a, None, "segment:0")])
    assert not d.matched


# ---------------------------------------------------------------- corroboration

@pytest.mark.parametrize("k_pdq,k_dhash,expected", [
    (P.PDQ_CORROBORATED_DISTANCE, P.DHASH_CORROBORATION, True),
    (P.PDQ_CORROBORATED_DISTANCE, P.DHASH_CORROBORATION + 1, False),
    (P.PDQ_CORROBORATED_DISTANCE + 1, 0, False),
    (40, 3, True),
])
def test_whole_with_dhash(pol, rng, k_pdq, k_dhash, expected):
    a, h = rand_hex(256, rng), rand_hex(64, rng)
    d = pol.evaluate([pdq(flip(a, k_pdq, rng)), dhash(flip(h, k_dhash, rng, 64))], [pdq(a), dhash(h)])
    assert d.matched is expected, d.reason
    if expected:
        assert d.evidence.rule == "pdq-whole+dhash" and "dhash" in d.reason


def test_corroboration_needs_the_whole_pictures(pol, rng):
    """A dHash of the whole does not vouch for a PDQ of a region."""
    a, h = rand_hex(256, rng), rand_hex(64, rng)
    d = pol.evaluate([pdq(flip(a, P.PDQ_REGION_DISTANCE + 2, rng), "trim"), dhash(h)], [pdq(a), dhash(h)])
    assert not d.matched


# ---------------------------------------------------------------- exact hashes

def test_identical_file(pol, rng):
    md5 = rand_hex(128, rng)
    d = pol.evaluate([HashValue("md5", md5)], [HashValue("md5", md5)])
    assert d.matched and "identical" in d.reason
    assert not pol.evaluate([HashValue("md5", md5)], [HashValue("md5", rand_hex(128, rng))]).matched


# ---------------------------------------------------------------- evaluate and decide agree

def _random_image(rng: random.Random, base: dict[str, str], near: bool, query: bool) -> list[HashValue]:
    out = []
    labels = ["full", "trim", "inner", "cell:0", "dihedral:rotate90", "dihedral:flipY"] if query else \
        ["full", "crop:0.90:c", "crop:0.80:tl", "cut:b:0.90", "rot:p3"]
    for label in labels:
        k = rng.choice([0, 10, 25, 31, 32, 40, 47, 48, 49, 56, 57, 70, 128]) if near else 128
        q = rng.choice([100, 100, 80, 55, 50, 49, 20])
        out.append(pdq(flip(base["pdq"], min(k, 255), rng), label, q))
    out.append(dhash(flip(base["dhash"], rng.choice([0, 5, 10, 11, 20, 32]), rng, 64)))
    out.append(HashValue("phash", flip(base["phash"], rng.choice([0, 8, 30]), rng, 64)))
    return out


def hits_from_index(pol: MatchPolicy, qs: list[HashValue], rs: list[HashValue]):
    """What an index queried once per query hash with index_radius returns for one registered image."""
    hits = []
    for q in qs:
        radius = pol.index_radius(q.algorithm)
        for r in rs:
            if r.algorithm == q.algorithm:
                d = get_signal_type(q.algorithm).distance(q.value, r.value)
                if d <= radius:
                    hits.append((q, r, d))
    rng = random.Random(len(hits))
    rng.shuffle(hits)  # an index returns hits in no particular order
    return hits


def hits_per_query_radius(pol: MatchPolicy, qs: list[HashValue], rs: list[HashValue]):
    """What the registry's index returns when each query hash is searched at its own query_radius."""
    hits = []
    for q in qs:
        radius = pol.query_radius(q.algorithm, q.region)
        for r in rs:
            if r.algorithm == q.algorithm:
                d = get_signal_type(q.algorithm).distance(q.value, r.value)
                if d <= radius:
                    hits.append((q, r, d))
    return hits


def test_query_radius_per_region_kind(pol):
    assert pol.query_radius("pdq", "full") == P.PDQ_CORROBORATED_DISTANCE == pol.index_radius("pdq")
    assert pol.query_radius("pdq", "dihedral:rotate90") == P.PDQ_TURNED_CROP_DISTANCE
    assert pol.query_radius("pdq", "trim") == pol.query_radius("pdq", "cell:2") == P.PDQ_REGION_DISTANCE
    assert pol.query_radius("pdq", "segment:0") == -1  # no rule takes it: never queried
    assert pol.query_radius("dhash", "full") == P.DHASH_CORROBORATION
    assert pol.query_radius("dhash", "trim") == -1  # corroboration compares whole pictures only
    assert pol.query_radius("phash") == -1
    assert pol.query_radii("pdq") == {"full": 64, "dihedral": 40, "found": 48}
    assert pol.query_radii("dhash") == {"full": 10} and pol.query_radii("phash") == {}
    for alg in ("pdq", "dhash", "sha256"):
        for region in ("full", "dihedral:flipx", "inner", "cell:0", "segment:1"):
            assert pol.query_radius(alg, region) <= pol.index_radius(alg)


def test_per_kind_radius_gives_the_same_matches_as_the_widest(pol):
    """The registry queries each hash at its own radius: every match and its evidence must be
    exactly what querying everything at index_radius (and evaluate's pairwise comparison) gives."""
    rng = random.Random(7)
    matched = 0
    for trial in range(600):
        base = {"pdq": rand_hex(256, rng), "dhash": rand_hex(64, rng), "phash": rand_hex(64, rng)}
        qs = _random_image(rng, base, near=trial % 4 != 0, query=True)
        rs = _random_image(rng, base, near=True, query=False)
        wide = pol.decide(hits_from_index(pol, qs, rs))
        narrow = pol.decide(hits_per_query_radius(pol, qs, rs))
        assert wide.matched == narrow.matched == pol.evaluate(qs, rs).matched
        if wide.matched:
            matched += 1
            assert narrow.evidence == wide.evidence
    assert 100 < matched < 600  # both outcomes well represented


def test_evaluate_equals_decide_on_index_hits(pol):
    rng = random.Random(99)
    for trial in range(300):
        base = {"pdq": rand_hex(256, rng), "dhash": rand_hex(64, rng), "phash": rand_hex(64, rng)}
        qs = _random_image(rng, base, near=trial % 3 != 0, query=True)
        rs = _random_image(rng, base, near=True, query=False)
        a = pol.evaluate(qs, rs)
        b = pol.decide(hits_from_index(pol, qs, rs))
        assert a.matched == b.matched
        if a.matched:
            assert a.evidence == b.evidence


def test_decide_without_hits(pol):
    d = pol.decide([])
    assert not d.matched and d.evidence is None and d.reason


def test_custom_policy_and_as_dict(rng):
    pol = MatchPolicy(rules=(Rule("strict", "pdq", frozenset({"full"}), frozenset({"full"}), 10, 80),))
    a = rand_hex(256, rng)
    d = pol.evaluate(ImageHashes("", "", [pdq(flip(a, 10, rng))]), ImageHashes("", "", [pdq(a)]))
    assert d.matched
    as_dict = d.as_dict()
    assert as_dict["matched"] and as_dict["evidence"]["distance"] == 10 and as_dict["distances"] == {"pdq": 10}
    assert not pol.evaluate([pdq(flip(a, 11, rng))], [pdq(a)]).matched


# ---------------------------------------------------------------- real photos

needs_photos = pytest.mark.skipif(not PHOTOS.is_dir(), reason=f"shared photos not found at {PHOTOS}")


@pytest.fixture(scope="module")
def photos():
    paths = sorted(PHOTOS.glob("*/*.jpg"))
    return [paths[i] for i in (3, 57, 120, 160)] if len(paths) > 160 else paths[:4]


@needs_photos
def test_real_copies_match_and_different_photos_do_not(photos):
    from benchmarks import _transforms as T
    from hashes.compute import HashOptions, hash_bytes
    from PIL import Image

    pol = default_policy()
    register, query = HashOptions(regions="register"), HashOptions(regions="query")
    originals = [hash_bytes(p.read_bytes(), source=str(p), options=register) for p in photos[:3]]
    rgb = np.asarray(Image.open(io.BytesIO(photos[0].read_bytes())).convert("RGB"))
    rng = np.random.default_rng(0)
    crop = hash_bytes(T.crop(0.15, "br")(rgb, rng), options=query)
    shot = hash_bytes(T.phone_screenshot(fmt="jpeg", quality=80)(rgb, rng), options=query)

    d = pol.evaluate(crop, originals[0])
    assert d.matched, d.reason
    assert d.evidence.registered_region.startswith("crop:")
    d = pol.evaluate(shot, originals[0])
    assert d.matched, d.reason
    assert d.evidence.query_region == "inner"
    for other in originals[1:]:
        assert not pol.evaluate(crop, other).matched
        assert not pol.evaluate(shot, other).matched
    other = hash_bytes(photos[3].read_bytes(), options=query)
    for reg in originals:
        assert not pol.evaluate(other, reg).matched
