"""Property tests: on any input, decode_image returns a valid image or raises a HashingError naming the source."""

from __future__ import annotations

import io
import os
import struct
import zlib

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from hashes.decode import SUPPORTED_FORMATS, DecodedImage, decode_image
from hashes.errors import HashingError

SOURCE = "fuzz/input.bin"
# Generous per-example deadline: the point is "never hangs", not speed on a shared 2-core machine.
# DECODE_FUZZ_EXAMPLES raises the example count for a longer campaign (the default keeps the file under ~30 s).
FUZZ = settings(
    deadline=5000,
    max_examples=int(os.environ.get("DECODE_FUZZ_EXAMPLES", "120")),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def _encode(im: Image.Image, fmt: str, **kwargs) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **kwargs)
    return buf.getvalue()


def _seeds() -> dict[str, bytes]:
    from pillow_heif import register_heif_opener

    register_heif_opener()
    rng = np.random.default_rng(3)
    rgb = Image.fromarray(rng.integers(0, 256, (24, 32, 3), dtype=np.uint8))
    frames = [Image.new("RGB", (16, 12), c) for c in ((255, 0, 0), (0, 255, 0))]
    exif = Image.Exif()
    exif[0x0112] = 6
    return {
        "jpeg": _encode(rgb, "JPEG", quality=80, exif=exif.tobytes()),
        "jpeg-progressive": _encode(rgb, "JPEG", progressive=True),
        "jpeg-cmyk": _encode(rgb.convert("CMYK"), "JPEG"),
        "png": _encode(rgb, "PNG"),
        "png-16": _encode(Image.fromarray(rng.integers(0, 65536, (12, 16), dtype=np.uint16)), "PNG"),
        "png-palette": _encode(rgb.convert("P"), "PNG", transparency=0),
        "apng": _encode(frames[0], "PNG", save_all=True, append_images=frames[1:]),
        "gif": _encode(frames[0], "GIF", save_all=True, append_images=frames[1:]),
        "webp": _encode(rgb, "WEBP"),
        "webp-lossless": _encode(rgb.convert("RGBA"), "WEBP", lossless=True),
        "bmp": _encode(rgb, "BMP"),
        "tiff": _encode(rgb, "TIFF", compression="tiff_lzw"),
        "tiff-2pages": _encode(frames[0], "TIFF", save_all=True, append_images=frames[1:]),
        "avif": _encode(rgb, "AVIF"),
        "heif": _encode(rgb, "HEIF"),
    }


SEEDS = _seeds()
seed_names = st.sampled_from(sorted(SEEDS))


def check(data: bytes) -> None:
    try:
        result = decode_image(data, source=SOURCE)
    except HashingError as err:
        assert err.source == SOURCE
        assert isinstance(err.problem, str) and err.problem.strip()
        assert str(err).startswith(SOURCE + ": ") and len(str(err)) > len(SOURCE) + 2
        return
    assert isinstance(result, DecodedImage)
    assert result.rgb.dtype == np.uint8 and result.rgb.ndim == 3 and result.rgb.shape[2] == 3
    assert result.rgb.size > 0 and result.rgb.flags.c_contiguous
    assert result.width > 0 and result.height > 0 and result.frames >= 1
    assert result.format in SUPPORTED_FORMATS


@FUZZ
@given(st.binary(max_size=2048))
def test_random_bytes(data: bytes) -> None:
    check(data)


MAGICS = [b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF89a", b"RIFF\x00\x01\x00\x00WEBPVP8X", b"II*\x00", b"MM\x00*",
          b"BM\x00\x00\x00\x00\x00\x00\x00\x00\x36\x00\x00\x00\x28\x00\x00\x00", b"\x00\x00\x00\x18ftypheic",
          b"\x00\x00\x00\x18ftypavif", b"%!PS", b"8BPS", b"<svg"]


@FUZZ
@given(st.sampled_from(MAGICS), st.binary(max_size=1024))
def test_random_bytes_behind_a_valid_signature(magic: bytes, rest: bytes) -> None:
    check(magic + rest)


@FUZZ
@given(seed_names, st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), min_size=1, max_size=16))
def test_flipped_bytes(name: str, flips: list[tuple[int, int]]) -> None:
    data = bytearray(SEEDS[name])
    for pos, value in flips:
        data[pos % len(data)] = value
    check(bytes(data))


@FUZZ
@given(seed_names, st.lists(st.tuples(st.integers(0, 127), st.integers(0, 255)), min_size=1, max_size=6))
def test_flipped_header_bytes(name: str, flips: list[tuple[int, int]]) -> None:
    data = bytearray(SEEDS[name])
    for pos, value in flips:
        data[pos % len(data)] = value
    check(bytes(data))


@FUZZ
@given(seed_names, st.floats(0.0, 1.0))
def test_truncated(name: str, fraction: float) -> None:
    data = SEEDS[name]
    check(data[: int(len(data) * fraction)])


@FUZZ
@given(seed_names, st.integers(0, 10**6), st.binary(min_size=1, max_size=256))
def test_inserted_chunk(name: str, pos: int, junk: bytes) -> None:
    data = SEEDS[name]
    pos %= len(data)
    check(data[:pos] + junk + data[pos:])


def _png_chunk(ctype: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + ctype + payload + struct.pack(">I", zlib.crc32(ctype + payload))


dimension = st.one_of(st.integers(0, 64), st.integers(0, 70000), st.integers(0, 2**32 - 1))


@FUZZ
@given(dimension, dimension, st.sampled_from([1, 2, 4, 8, 16, 3, 0]), st.sampled_from([0, 2, 3, 4, 6, 1]),
       st.one_of(st.binary(max_size=256), st.binary(max_size=2048).map(zlib.compress)))
def test_png_header_with_random_size(width: int, height: int, depth: int, colour: int, idat: bytes) -> None:
    ihdr = _png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0))
    check(b"\x89PNG\r\n\x1a\n" + ihdr + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b""))


@FUZZ
@given(st.sampled_from(["jpeg", "jpeg-progressive", "jpeg-cmyk"]), st.integers(0, 65535), st.integers(0, 65535))
def test_jpeg_frame_header_with_random_size(name: str, height: int, width: int) -> None:
    data = bytearray(SEEDS[name])
    for marker in (b"\xff\xc0", b"\xff\xc2"):
        at = data.find(marker)
        if at >= 0:
            data[at + 5 : at + 9] = struct.pack(">HH", height, width)
    check(bytes(data))


@FUZZ
@given(st.integers(0, 65535), st.integers(0, 65535), st.integers(0, 65535), st.integers(0, 65535))
def test_gif_and_webp_headers_with_random_size(sw: int, sh: int, fw: int, fh: int) -> None:
    gif = bytearray(SEEDS["gif"])
    gif[6:10] = struct.pack("<HH", sw, sh)
    at = gif.find(b"\x2c", 13)
    if at >= 0:
        gif[at + 5 : at + 9] = struct.pack("<HH", fw, fh)
    check(bytes(gif))
    canvas = sw.to_bytes(3, "little") + sh.to_bytes(3, "little")
    vp8x = b"VP8X" + struct.pack("<I", 10) + b"\x00" * 4 + canvas
    check(b"RIFF" + struct.pack("<I", 4 + len(vp8x)) + b"WEBP" + vp8x + SEEDS["webp"][12:])
