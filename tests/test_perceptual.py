"""hashes.perceptual's pHash and dHash are imagehash's, value for value (imagehash is the reference)."""

from __future__ import annotations

from pathlib import Path

import imagehash
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from hashes import perceptual

PHOTOS = Path(__file__).resolve().parents[1].parent / "shared" / "photos"


@st.composite
def pictures(draw) -> Image.Image:
    w, h = draw(st.integers(1, 140)), draw(st.integers(1, 140))
    kind = draw(st.sampled_from(["noise", "flat", "few", "ramp"]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    if kind == "noise":
        a = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    elif kind == "flat":  # every DCT coefficient ties: the median comparison must still agree
        a = np.full((h, w, 3), draw(st.integers(0, 255)), np.uint8)
    elif kind == "few":
        a = rng.choice(np.array([0, 1, 254, 255], np.uint8), (h, w, 3))
    else:
        a = (np.add.outer(np.arange(h), np.arange(w)) % 256).astype(np.uint8)[:, :, None].repeat(3, 2)
    mode = draw(st.sampled_from(["L", "RGB", "RGBA", "P"]))
    img = Image.fromarray(a)
    return img.convert(mode) if mode != "RGB" else img


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(img=pictures())
def test_phash_and_dhash_equal_imagehash(img):
    assert perceptual.phash(img) == str(imagehash.phash(img))
    assert perceptual.dhash(img) == str(imagehash.dhash(img))


def test_on_real_photos():
    paths = sorted(PHOTOS.glob("*/*.jpg"))[::20]
    if not paths:
        pytest.skip("needs the shared photos at ../shared/photos")
    for path in paths:
        img = Image.open(path)
        img.draft("RGB", (256, 256))
        grey = img.convert("L")
        assert perceptual.phash(grey) == str(imagehash.phash(grey))
        assert perceptual.dhash(grey) == str(imagehash.dhash(grey))
