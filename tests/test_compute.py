"""hashes.compute: every hash of an image, the same on the victim's and the monitor's side."""

from __future__ import annotations

import imagehash
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from hashes.compute import DEFAULT_ALGORITHMS, HashOptions, hash_bytes, hash_file
from hashes.errors import HashingError
from hashes.signals import get_signal_type
from monitor.demo.pictures import jpeg_bytes, png_bytes, picture


def _png(img: Image.Image) -> bytes:
    return png_bytes(img)


def test_default_set_has_every_default_algorithm_with_valid_values():
    out = hash_bytes(jpeg_bytes(picture(1)))
    assert {h.algorithm for h in out.hashes} == set(DEFAULT_ALGORITHMS)
    for h in out.hashes:
        get_signal_type(h.algorithm).validate(h.value)
    assert out.first("pdq").quality == 100
    assert (out.width, out.height, out.format) == (800, 600, "jpeg")


def test_phash_and_dhash_agree_with_imagehash_on_the_full_picture():
    img = picture(2, (1200, 900))
    out = hash_bytes(_png(img))
    full_p = imagehash.phash(img)
    full_d = imagehash.dhash(img)
    # computed on a box-reduced copy (docs/architecture.md): a few bits at most from imagehash
    assert full_p - imagehash.hex_to_hash(out.first("phash").value) <= 4
    assert full_d - imagehash.hex_to_hash(out.first("dhash").value) <= 4


def test_optional_algorithms_on_request():
    out = hash_bytes(jpeg_bytes(picture(3)), options=HashOptions(algorithms=("whash", "colorhash", "crophash")))
    algs = [h.algorithm for h in out.hashes]
    assert "whash" in algs and "colorhash" in algs and algs.count("crophash") >= 1
    assert all(h.region.startswith("segment:") for h in out.hashes if h.algorithm == "crophash")
    assert len(out.first("colorhash").value) == 11 and len(out.first("whash").value) == 16


def test_query_mode_adds_the_dihedral_variants_and_register_mode_adds_regions():
    data = jpeg_bytes(picture(4))
    query = hash_bytes(data, options=HashOptions(regions="query"))
    regions = {h.region for h in query.of("pdq", region=None)}
    assert {"full", "dihedral:rotate90", "dihedral:flipx", "dihedral:flipy"} <= regions
    register = hash_bytes(data, options=HashOptions(regions="register"))
    crop_regions = [h.region for h in register.of("pdq", region=None) if h.region != "full"]
    assert crop_regions and not any(r.startswith("dihedral") for r in crop_regions)
    assert len(register.of("pdq", region=None)) <= 64
    # the batched kernel path gives what hashing each window on its own gives
    from hashes import pdq, regions
    from hashes.decode import decode_image
    rgb = decode_image(data).rgb
    one_by_one = {label: pdq.pdq_from_rgb(np.ascontiguousarray(part))[0] for label, part in regions.registration_regions(rgb)}
    assert {h.region: h.value for h in register.of("pdq", region=None) if h.region != "full"} == one_by_one


def test_same_picture_same_hashes_whatever_the_side():
    data = jpeg_bytes(picture(5))
    a = hash_bytes(data)
    b = hash_bytes(data, options=HashOptions(regions="query"))
    assert a.first("pdq") == b.first("pdq") and a.first("phash") == b.first("phash")


def test_bad_options_and_bad_files_give_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="unknown algorithm"):
        HashOptions(algorithms=("pdq", "sha1"))
    with pytest.raises(ValueError, match="regions"):
        HashOptions(regions="everything")  # type: ignore[arg-type]
    missing = tmp_path / "nope.jpg"
    with pytest.raises(HashingError) as e:
        hash_file(missing)
    assert "nope.jpg" in str(e.value)
    text = tmp_path / "notes.jpg"
    text.write_text("hello")
    with pytest.raises(HashingError) as e:
        hash_file(text)
    assert e.value.code == "not-an-image" and "notes.jpg" in str(e.value)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(h=st.integers(1, 700), w=st.integers(1, 700), seed=st.integers(0, 2**32 - 1),
       kind=st.sampled_from(["noise", "flat", "extremes"]))
def test_small_grey_compiled_equals_pillow(h, w, seed, kind):
    """pHash and dHash's grey copy: the compiled pass equals Pillow's convert("L") + reduce, partial edge blocks included."""
    from hashes.compute import small_grey

    rng = np.random.default_rng(seed)
    if kind == "noise":
        rgb = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    elif kind == "flat":
        rgb = np.broadcast_to(rng.integers(0, 256, 3, dtype=np.uint8), (h, w, 3)).copy()
    else:
        rgb = rng.choice(np.array([0, 1, 127, 128, 254, 255], np.uint8), (h, w, 3))
    reference = small_grey(rgb, backend="numpy")
    got = small_grey(rgb, backend="numba")
    assert got.dtype == np.uint8 and got.shape == reference.shape and np.array_equal(got, reference)


def test_small_grey_every_colour():
    """The compiled RGB -> L conversion equals Pillow's for all 2**24 colours."""
    from hashes.compute import small_grey

    c = np.arange(1 << 24, dtype=np.uint32)
    rgb = np.stack([c >> 16, (c >> 8) & 255, c & 255], axis=1).astype(np.uint8).reshape(64, 1 << 18, 3)
    assert np.array_equal(small_grey(rgb, backend="numba"), small_grey(rgb, backend="numpy"))
