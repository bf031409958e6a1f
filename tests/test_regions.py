"""hashes.regions: registration windows, and finding the picture inside borders, padding, screenshots,
chats and collages. Every picture here is synthetic (smooth random noise fields): no photos, no files."""

from __future__ import annotations

import io
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageDraw, ImageFilter, ImageFont
from scipy.ndimage import gaussian_filter

from hashes import regions
from hashes.hashfile import _REGION_CHARS


def texture(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A photo-like textured picture: colour noise smoothed at three scales."""
    rng = np.random.default_rng(seed)
    x = sum(gaussian_filter(rng.normal(size=(h, w, 3)), (s, s, 0)) * s for s in (1.5, 6, 25))
    x = (x - x.min()) / np.ptp(x) * 235 + 10
    return x.astype(np.uint8)


def jpeg(rgb: np.ndarray, quality: int = 85) -> np.ndarray:
    """Round trip through JPEG (the noise every found picture carries)."""
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "JPEG", quality=quality)
    return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))


def box_of(boxes: list[tuple[str, tuple[int, int, int, int]]], label: str) -> tuple[int, int, int, int]:
    found = dict(boxes)
    assert label in found, f"no {label!r} region among {boxes}"
    return found[label]


def assert_near(box, expected, tol: int) -> None:
    assert all(abs(a - b) <= tol for a, b in zip(box, expected)), f"{box} is not within {tol} px of {expected}"


# ---------------------------------------------------------------- registration

@pytest.mark.parametrize("shape", [(683, 1024), (1024, 683), (500, 500), (320, 480), (64, 64)])
def test_registration_labels_and_boxes(shape):
    h, w = shape
    boxes = regions.registration_boxes(h, w)
    labels = [label for label, _ in boxes]
    assert len(labels) == len(set(labels))
    assert len(labels) <= 63
    for label, (t, l, b, r) in boxes:
        assert regions.LABEL_RE.match(label) and set(label) <= _REGION_CHARS
        assert 0 <= t < b <= h and 0 <= l < r <= w
        assert b - t >= regions.MIN_REGION_SIDE and r - l >= regions.MIN_REGION_SIDE
        assert (b - t, r - l) != (h, w)  # never the whole picture again


def test_registration_regions_shapes_and_rotations():
    rgb = texture(300, 450)
    out = regions.registration_regions(rgb)
    labels = [label for label, _ in out]
    assert "crop:0.90:c" in labels and "cut:b:0.90" in labels and "cut:l:0.85" in labels and "aspect:1-1" in labels
    assert "win:0.025:0.075:0.075:0.025" in labels and "win:0.025:0.025:0.025:0.025" not in labels  # = crop:0.95:c
    assert dict(out)["win:0.075:0.025:0.025:0.075"].shape[:2] == (270, 405)  # 300 - 7.5 - 22.5 rows, 450 - 33.75 - 11.25 cols
    assert "rot:p3" in labels and "rot:m3" in labels
    assert len(out) < 66
    for label, part in out:
        assert regions.LABEL_RE.match(label)
        assert part.ndim == 3 and part.shape[2] == 3 and min(part.shape[:2]) >= regions.MIN_REGION_SIDE
    crop = dict(out)["crop:0.80:tl"]
    assert crop.shape[:2] == (240, 360) and np.shares_memory(crop, rgb)  # a view: no copy of the pixels


def test_square_original_has_no_square_window():
    labels = [label for label, _ in regions.registration_boxes(500, 500)]
    assert "aspect:1-1" not in labels and "aspect:4-5" in labels


# ---------------------------------------------------------------- query: nothing to find

@pytest.mark.parametrize("seed", range(4))
def test_plain_picture_yields_no_regions(seed):
    rgb = jpeg(texture(360 + 40 * seed, 512, seed))
    assert regions.query_boxes(rgb) == []


def test_tiny_and_flat_pictures():
    assert regions.query_boxes(np.zeros((10, 10, 3), np.uint8)) == []
    assert regions.query_boxes(np.full((300, 400, 3), 200, np.uint8)) == []


# ---------------------------------------------------------------- query: borders and padding

@pytest.mark.parametrize("colour,pad", [((255, 255, 255), 24), ((0, 0, 0), 40), ((30, 90, 200), 7)])
def test_trim_solid_border(colour, pad):
    pic = texture(300, 420, 1)
    canvas = np.zeros((300 + 2 * pad, 420 + 2 * pad, 3), np.uint8)
    canvas[:] = colour
    canvas[pad:pad + 300, pad:pad + 420] = pic
    box = box_of(regions.query_boxes(jpeg(canvas)), "trim")
    assert_near(box, (pad, pad, pad + 300, pad + 420), 2)


def test_trim_letterbox_to_square():
    pic = texture(320, 480, 2)
    canvas = np.zeros((480, 480, 3), np.uint8)
    canvas[80:400] = pic
    box = box_of(regions.query_boxes(jpeg(canvas)), "trim")
    assert_near(box, (80, 0, 400, 480), 2)


def test_trim_blurred_padding():
    pic = Image.fromarray(texture(320, 480, 3))
    bg = pic.resize((720, 480)).crop((120, 0, 600, 480)).filter(ImageFilter.GaussianBlur(12))
    canvas = bg.copy()
    canvas.paste(pic, (0, 80))
    boxes = regions.query_boxes(jpeg(np.asarray(canvas)))
    box = box_of(boxes, "trim:smooth")
    assert_near(box, (80, 0, 400, 480), 3)


def test_trim_keeps_a_flat_sky_that_is_part_of_the_picture():
    pic = texture(300, 400, 4)
    rng = np.random.default_rng(4)
    skyline = 50 + np.cumsum(rng.integers(-2, 3, 400)).clip(-40, 40)  # where the land starts, per column
    rows = np.arange(300)[:, None]
    sky = rows < skyline[None, :]
    pic[sky] = (150, 190, 235)
    assert regions.query_boxes(jpeg(pic)) == []


# ---------------------------------------------------------------- query: screenshots and chats

def phone_screenshot(pic: np.ndarray, dark: bool = False) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """A feed app's screenshot: status bar, header, the picture at full width, likes and comments."""
    W, H = 540, 1170
    bg, fg = ((0, 0, 0), (240, 240, 240)) if dark else ((255, 255, 255), (20, 20, 20))
    canvas = Image.new("RGB", (W, H), bg)
    d = ImageDraw.Draw(canvas)
    font = ImageFont.load_default(size=16)
    d.text((12, 10), "9:41", fill=fg, font=font)
    d.rectangle((W - 40, 12, W - 15, 24), outline=fg)
    d.text((20, 60), "Feedapp", fill=fg, font=ImageFont.load_default(size=26))
    d.ellipse((15, 110, 55, 150), fill=(120, 160, 200))
    d.text((65, 120), "someone_42", fill=fg, font=font)
    top = 170
    p = Image.fromarray(pic).resize((W, round(pic.shape[0] * W / pic.shape[1])))
    canvas.paste(p, (0, top))
    y = top + p.height + 14
    for i in range(12):
        d.text((20, y), f"user_{i} what a nice picture lol {i * 7}", fill=fg, font=font)
        y += 26
    return np.asarray(canvas), (top, 0, top + p.height, W)


@pytest.mark.parametrize("dark", [False, True])
def test_inner_picture_in_phone_screenshot(dark):
    shot, truth = phone_screenshot(texture(320, 480, 5), dark)
    assert_near(box_of(regions.query_boxes(shot), "inner"), truth, 2)
    assert_near(box_of(regions.query_boxes(jpeg(shot, 80)), "inner"), truth, 3)


def test_inner_picture_in_chat_bubble():
    W, H = 540, 1170
    canvas = Image.new("RGB", (W, H), (229, 221, 213))
    d = ImageDraw.Draw(canvas)
    d.rectangle((0, 0, W, 115), fill=(7, 94, 84))
    font = ImageFont.load_default(size=16)
    d.rounded_rectangle((15, 140, 300, 185), 10, fill=(255, 255, 255))
    d.text((25, 152), "look at this", fill=(30, 30, 30), font=font)
    pic = Image.fromarray(texture(400, 300, 6)).resize((378, 504))
    x0, y0 = W - 15 - 378 - 8, 210
    d.rounded_rectangle((x0 - 4, y0 - 4, x0 + 378 + 4, y0 + 504 + 4), 12, fill=(220, 248, 198))
    mask = Image.new("L", pic.size, 0)
    ImageDraw.Draw(mask).rounded_rectangle((0, 0, 377, 503), 9, fill=255)
    canvas.paste(pic, (x0, y0), mask)
    d.text((x0 + 330, y0 + 480), "21:07", fill=(255, 255, 255), font=font)
    for i, y in enumerate(range(750, 1050, 60)):
        d.rounded_rectangle((15, y, 250 + 20 * i, y + 45), 10, fill=(255, 255, 255))
        d.text((25, y + 12), "no way " * (i + 1), fill=(30, 30, 30), font=font)
    box = box_of(regions.query_boxes(np.asarray(canvas)), "inner")
    assert_near(box, (y0, x0, y0 + 504, x0 + 378), 3)


# ---------------------------------------------------------------- query: collages and rotations

def test_collage_is_split_into_its_cells():
    a, b = texture(300, 420, 7), texture(300, 260, 8)
    g = 10
    canvas = np.full((300 + 2 * g, 420 + 260 + 3 * g, 3), 255, np.uint8)
    canvas[g:g + 300, g:g + 420] = a
    canvas[g:g + 300, 2 * g + 420:2 * g + 680] = b
    boxes = regions.query_boxes(jpeg(canvas))
    cells = sorted(box for label, box in boxes if label.startswith("cell:"))
    assert len(cells) == 2, boxes
    assert_near(cells[0], (g, g, g + 300, g + 420), 2)
    assert_near(cells[1], (g, 2 * g + 420, g + 300, 2 * g + 680), 2)


def test_two_by_two_collage():
    tiles = [texture(200, 260, 20 + i) for i in range(4)]
    g = 8
    canvas = np.full((2 * 200 + 3 * g, 2 * 260 + 3 * g, 3), 0, np.uint8)
    for i, tile in enumerate(tiles):
        r, c = divmod(i, 2)
        canvas[g + r * (200 + g):g + r * (200 + g) + 200, g + c * (260 + g):g + c * (260 + g) + 260] = tile
    cells = sorted(box for label, box in regions.query_boxes(jpeg(canvas)) if label.startswith("cell:"))
    assert len(cells) == 4, cells
    assert_near(cells[0], (g, g, g + 200, g + 260), 2)
    assert_near(cells[3], (2 * g + 200, 2 * g + 260, 2 * g + 400, 2 * g + 520), 2)


@pytest.mark.parametrize("degrees", [3, -3, 5])
def test_turned_picture_on_plain_canvas(degrees):
    pic = texture(320, 480, 9)
    turned = Image.fromarray(pic).rotate(degrees, Image.Resampling.BICUBIC, expand=True, fillcolor=(255, 255, 255))
    box = box_of(regions.query_boxes(jpeg(np.asarray(turned))), "trim:rot")
    # the same window the registration side cuts from the original (rot:p3 / rot:m3)
    expected = regions.rotated_window(pic, degrees).shape[:2]
    t, l, b, r = box
    assert abs((b - t) - expected[0]) <= 0.02 * expected[0] and abs((r - l) - expected[1]) <= 0.02 * expected[1]
    H, W = turned.size[1], turned.size[0]
    assert abs((t + b) / 2 - H / 2) <= 2 and abs((l + r) / 2 - W / 2) <= 2


# ---------------------------------------------------------------- contract

def test_query_region_contract():
    shot, _ = phone_screenshot(texture(320, 480, 10))
    out = regions.query_regions(shot)
    assert 0 < len(out) <= regions.MAX_QUERY_REGIONS
    h, w = shot.shape[:2]
    for label, part in out:
        assert regions.LABEL_RE.match(label) and set(label) <= _REGION_CHARS
        assert part.ndim == 3 and part.shape[2] == 3
        assert min(part.shape[:2]) >= regions.MIN_REGION_SIDE
        assert part.shape[:2] != (h, w)


def test_query_regions_are_fast():
    pictures = [jpeg(texture(384, 512, 11)), phone_screenshot(texture(320, 480, 12))[0]]
    for rgb in pictures:
        regions.query_boxes(rgb)
        start = time.perf_counter()
        for _ in range(5):
            regions.query_boxes(rgb)
        per_call = (time.perf_counter() - start) / 5
        assert per_call < 0.05, f"{per_call * 1000:.1f} ms for {rgb.shape}"  # a few ms normally; slack for load


# ---------------------------------------------------------------- never crashes


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(h=st.integers(1, 700), w=st.integers(1, 700), kind=st.sampled_from(["noise", "flat", "bands", "texture"]),
       seed=st.integers(0, 2**16))
def test_query_boxes_never_fail(h, w, kind, seed):
    """Whatever the monitor decodes, region finding returns valid boxes and never raises."""
    rng = np.random.default_rng(seed)
    if kind == "noise":
        rgb = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    elif kind == "flat":
        rgb = np.full((h, w, 3), rng.integers(0, 256, 3), np.uint8)
    elif kind == "bands":
        rgb = np.repeat(rng.integers(0, 256, (h, 1, 3), dtype=np.uint8), w, axis=1)
    else:
        rgb = texture(max(h, 2), max(w, 2), seed)[:h, :w]
    boxes = regions.query_boxes(rgb)
    assert len(boxes) <= regions.MAX_QUERY_REGIONS
    for label, (t, l, b, r) in boxes:
        assert regions.LABEL_RE.match(label)
        assert 0 <= t < b <= h and 0 <= l < r <= w
    for label, part in regions.registration_regions(rgb):
        assert part.size and regions.LABEL_RE.match(label)


# ---------------------------------------------------------------- compiled detector == numpy detector

from hashes import _region_kernels as kernels  # noqa: E402

needs_numba = pytest.mark.skipif(not kernels.HAVE_NUMBA, reason="numba not installed")


def planes_from(rgb: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(rgb.transpose(2, 0, 1)).astype(np.int16)


def palette_picture(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Lines of near-equal colours with scattered outliers: flatness and colour tests sit on their limits."""
    base = rng.integers(0, 256, (1, 1, 3)) if rng.random() < 0.5 else rng.integers(0, 256, (h, 1, 3))
    rgb = base + rng.integers(-14, 15, (h, w, 3)) * (rng.random((h, w, 1)) < rng.random())
    outliers = rng.random((h, w)) < rng.choice([0.0, 0.01, 0.02, 0.03, 0.2])
    rgb[outliers] = rng.integers(0, 256, (int(outliers.sum()), 3))
    return np.clip(rgb, 0, 255).astype(np.uint8)


@needs_numba
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(h=st.integers(2, 120), w=st.integers(2, 120), seed=st.integers(0, 2**32 - 1),
       kind=st.sampled_from(["noise", "palette", "texture"]))
def test_detector_kernels_numba_equal_numpy(h, w, seed, kind):
    """Every compiled inner loop of the detector returns exactly what its numpy reference returns."""
    rng = np.random.default_rng(seed)
    if kind == "noise":
        rgb = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    elif kind == "palette":
        rgb = palette_picture(rng, h, w)
    else:
        rgb = texture(max(h, 2), max(w, 2), seed % 1000)[:h, :w]
    p = planes_from(rgb)
    ax_np, ay_np = kernels.activity(p, numba=False)
    ax_nb, ay_nb = kernels.activity(p, numba=True)
    assert np.array_equal(ax_np, ax_nb) and np.array_equal(ay_np, ay_nb)
    # colours taken from the picture (exact hits), half-way values (medians of even counts) and random ones
    colours = np.concatenate([p[:, rng.integers(0, h, 3), rng.integers(0, w, 3)].T.astype(float),
                              rng.integers(0, 511, (2, 3)) / 2.0])
    for k in range(len(colours) + 1):
        assert np.array_equal(kernels.close_any(p, colours[:k], 12, numba=False),
                              kernels.close_any(p, colours[:k], 12, numba=True))
    for axis, act in ((0, ax_np), (1, ay_np)):
        reference = kernels.flat_lines_np(p, axis, 12, 0.98)  # every line examined, no shortcut
        assert np.array_equal(kernels.flat_lines(p, act, axis, 12, 0.98, numba=False), reference)
        assert np.array_equal(kernels.flat_lines(p, act, axis, 12, 0.98, numba=True), reference)


def test_flatness_shortcut_never_drops_a_flat_line():
    """maybe_flat may only rule out lines that cannot be flat: lines exactly at the 98% limit stay."""
    rng = np.random.default_rng(3)
    for length in (50, 64, 100, 257, 360):
        for outliers in range(0, 5):
            line = np.full((1, length, 3), 128, np.int16)
            # outliers spread out, so each one spoils two neighbouring pairs: the bound's worst case
            spots = np.linspace(1, length - 2, outliers).astype(int) if outliers else []
            line[0, spots] = rng.integers(0, 50, (len(spots), 3))
            p = np.ascontiguousarray(line.transpose(2, 0, 1))
            act, _ = kernels.activity(p, numba=False)
            flat = kernels.flat_lines_np(p, 0, 12, 0.98)
            assert not flat[0] or kernels.maybe_flat(act, 0, 12, 0.98)[0], (length, outliers)


def screenshot_and_collage_pictures() -> list[np.ndarray]:
    shots = [phone_screenshot(texture(320, 480, 30 + i), dark=bool(i % 2))[0] for i in range(2)]
    pic = texture(300, 420, 40)
    bordered = np.full((360, 480, 3), (30, 90, 200), np.uint8)
    bordered[30:330, 30:450] = pic
    collage = np.full((320, 710, 3), 255, np.uint8)
    collage[10:310, 10:430], collage[10:310, 440:700] = pic, texture(300, 260, 41)
    turned = np.asarray(Image.fromarray(pic).rotate(4, Image.Resampling.BICUBIC, expand=True, fillcolor=(0, 0, 0)))
    return [jpeg(x) for x in shots + [bordered, collage, turned, texture(400, 300, 42)]]


@needs_numba
def test_query_boxes_same_with_both_backends():
    """The compiled detector finds exactly the boxes the numpy detector finds."""
    for rgb in screenshot_and_collage_pictures():
        numpy_boxes = regions.query_boxes(rgb, backend="numpy")
        assert regions.query_boxes(rgb, backend="numba") == numpy_boxes
    assert regions.query_boxes(np.zeros((10, 10, 3), np.uint8), backend="numba") == []


def test_query_boxes_backend_choice(monkeypatch):
    with pytest.raises(ValueError, match="unknown regions backend"):
        regions.query_boxes(texture(64, 64), backend="cuda")
    monkeypatch.setenv("NCII_REGIONS_BACKEND", "numpy")
    assert regions.default_backend() == "numpy"
    kernels.warm()  # what the Docker build runs: compiles (or loads) every kernel without error


@pytest.mark.parametrize("backend", ["numpy"] + (["numba"] if kernels.HAVE_NUMBA else []))
def test_very_thin_strips_have_no_regions(backend):
    """A 32 x 24000 banner leaves no row in the detector's reduced copy: no regions, no crash."""
    rgb = np.random.default_rng(0).integers(0, 256, (32, 24000, 3), dtype=np.uint8)
    assert regions.query_boxes(rgb, backend=backend) == []
    assert regions.query_boxes(rgb.transpose(1, 0, 2), backend=backend) == []



def test_importing_hashing_loads_neither_numba_nor_scipy_ndimage():
    """`ncii hash` (the victim's side) starts fast: the detector's compiled kernels and scipy load on first use."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    code = ("import sys, hashes.compute, hashes.regions; "
            "assert not {'numba', 'scipy.ndimage', 'hashes._region_kernels_numba'} & set(sys.modules), sys.modules.keys()")
    root = Path(__file__).resolve().parents[1]
    subprocess.run([sys.executable, "-c", code], check=True, cwd=root, env={**os.environ, "PYTHONPATH": str(root)})


@needs_numba
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(h=st.integers(1, 90), w=st.integers(1, 90), f=st.integers(1, 12), seed=st.integers(0, 2**32 - 1),
       kind=st.sampled_from(["noise", "palette", "extremes"]), channels=st.sampled_from([3, 4]))
def test_detector_preparation_numba_equal_pillow(h, w, f, seed, kind, channels):
    """The compiled reduction and maps equal Pillow's Image.reduce(f) and the numpy maps, bit for bit."""
    rng = np.random.default_rng(seed)
    h, w = max(h, f), max(w, f)
    if kind == "noise":
        rgb = rng.integers(0, 256, (h, w, channels), dtype=np.uint8)
    elif kind == "palette":
        rgb = np.concatenate([palette_picture(rng, h, w), np.zeros((h, w, channels - 3), np.uint8)], axis=2)
    else:  # sums at the rounding limits
        rgb = rng.choice(np.array([0, 1, 127, 128, 254, 255], np.uint8), (h, w, channels))
    view = rgb[:, :, :3]  # four channels: a strided view, as _Reduced hands in
    reference = kernels.prepare(view, f, 6, numba=False)
    view.flags.writeable = False  # decoded pictures are read-only
    for a, b in zip(reference, kernels.prepare(view, f, 6, numba=True)):
        assert a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b)


def bordered_planes(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A picture with uniform bands of a random colour (noisy, near the tolerance) on random sides."""
    rgb = palette_picture(rng, h, w).astype(np.int16)
    colour = rng.integers(0, 256, 3)
    for side in range(4):
        k = int(rng.integers(0, max(1, (h if side < 2 else w) // 3)))
        band = colour + rng.integers(-13, 14, 3) * (rng.random() < 0.3)
        if side == 0:
            rgb[:k] = band
        elif side == 1:
            rgb[h - k:] = band
        elif side == 2:
            rgb[:, :k] = band
        else:
            rgb[:, w - k:] = band
    return planes_from(np.clip(rgb, 0, 255).astype(np.uint8))


@needs_numba
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(h=st.integers(1, 80), w=st.integers(1, 80), seed=st.integers(0, 2**32 - 1))
def test_border_colour_and_flatness_kernels_numba_equal_numpy(h, w, seed):
    """Border runs, dominant colours and the flatness shortcut: compiled == numpy, on every view the detector uses."""
    rng = np.random.default_rng(seed)
    p = bordered_planes(rng, h, w)
    for view in (p, p[:, ::-1], p[:, :, ::-1]):
        for axis in (0, 1):
            assert kernels.border_run(view, axis, 12, 0.97, 0.4, True) == regions._border_run(view, axis)
    act_x, act_y = kernels.activity(p, numba=False)
    for axis, act in ((0, act_x), (1, act_y)):
        sub = act[h // 4:, w // 5:]  # a box inside the picture, as split_cells passes
        assert np.array_equal(kernels._nb().maybe_flat_nb(sub, axis, 12, 0.98), kernels.maybe_flat(sub, axis, 12, 0.98))
    px = p.reshape(3, -1)
    keep = rng.random(px.shape[1]) < rng.random()
    for n, most, share in ((px.shape[1], 4, 0.1), (int(keep.sum()), 2, 0.25), (px.shape[1], 3, 0.02)):
        want = regions._dominant_colours(px[:, keep], n, most, share)
        got = kernels.dominant_colours(px[:, keep], n, most, share, 12)
        assert len(got) == len(want) and all(np.array_equal(a, b) for a, b in zip(got, want))


@needs_numba
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(h=st.integers(1, 120), w=st.integers(1, 120), seed=st.integers(0, 2**32 - 1), axis=st.sampled_from([0, 1]))
def test_smooth_padding_kernel_numba_equal_numpy(h, w, seed, axis):
    """The compiled smooth-padding search picks the same width as _symmetric_pad on the line means."""
    rng = np.random.default_rng(seed)
    act = rng.integers(0, int(rng.choice([3, 8, 40, 255])), (h, w)).astype(np.int16)
    n = h if axis == 1 else w
    pad = int(rng.integers(0, max(1, n // 3)))
    quiet = rng.integers(0, int(rng.choice([1, 3, 6])), (h, w)).astype(np.int16)
    if axis == 1:
        act[:pad], act[h - pad:] = quiet[:pad], quiet[h - pad:]
    else:
        act[:, :pad], act[:, w - pad:] = quiet[:, :pad], quiet[:, w - pad:]
    px = regions._Reduced(np.zeros((40, 40, 3), np.uint8), numba=True)
    view = act[:, 1:] if rng.random() < 0.5 and w > 1 else act  # strided, as the boxes pass it
    assert px._symmetric_pad(view, axis) == regions._symmetric_pad(view.mean(axis=axis))


@needs_numba
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(h=st.integers(1, 80), w=st.integers(1, 80), seed=st.integers(0, 2**32 - 1), k=st.integers(0, 4))
def test_ui_rows_kernel_numba_equal_numpy(h, w, seed, k):
    """The screenshot's UI map and UI rows: compiled == numpy (colours from the picture and half-way values)."""
    rng = np.random.default_rng(seed)
    p = bordered_planes(rng, h, w)
    act_x, _ = kernels.activity(p, numba=False)
    still_x = act_x <= 6
    colours = [p[:, rng.integers(0, h), rng.integers(0, w)].astype(float) + rng.choice([0, 0.5]) for _ in range(k)]
    for share in (0.5, 0.9):
        want = kernels.ui_rows(p, colours, 12, still_x, share, numba=False)
        got = kernels.ui_rows(p, colours, 12, still_x, share, numba=True)
        assert np.array_equal(want[0], got[0]) and np.array_equal(want[1], got[1])


@needs_numba
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(n=st.integers(0, 12), length=st.integers(0, 90), seed=st.integers(0, 2**32 - 1), k=st.integers(0, 4),
       transpose=st.booleans(), from_start=st.booleans())
def test_ui_edge_scan_numba_equal_numpy(n, length, seed, k, transpose, from_start):
    """Refining a screenshot's picture edge on full-resolution lines: compiled == numpy, on strided views."""
    rng = np.random.default_rng(seed)
    base = np.clip(palette_picture(rng, max(n, length, 1), max(n, length, 1)).astype(int), 0, 255).astype(np.uint8)
    rgb = base[:n, :length] if not transpose else base[:length, :n].transpose(1, 0, 2)
    colours = [base[rng.integers(0, base.shape[0]), rng.integers(0, base.shape[1])].astype(float)
               + rng.choice([0, 0.5]) for _ in range(k)]
    found = []
    for numba in (False, True):
        px = regions._Reduced(np.zeros((40, 40, 3), np.uint8), numba=numba)
        px._ui_colours, px._edge_colour_count = list(colours), k
        found.append(px._scan(rgb, 7, from_start, "ui"))
    assert found[0] == found[1]
