"""Decoding: every format and pixel mode, orientation, animation, DCT reduction, and every limit and error."""

from __future__ import annotations

import io
import struct
import subprocess
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFile, ImageOps

from hashes import decode as decode_mod
from hashes.decode import (
    DEFAULT_LIMITS,
    FRAME_COUNT_CAP,
    SUPPORTED_FORMATS,
    DecodedImage,
    DecodeLimits,
    decode_image,
    read_image_file,
    sniff_format,
)
from hashes.errors import (
    CorruptImage,
    DecompressionBomb,
    FileTooLarge,
    HashingError,
    NotAnImage,
    TooManyPixels,
    TruncatedImage,
    UnsupportedFormat,
)

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
PDQ_REFERENCE = SHARED / "pdq-reference"

PIL_NAME = {"jpeg": "JPEG", "png": "PNG", "gif": "GIF", "webp": "WEBP", "bmp": "BMP", "tiff": "TIFF",
            "heif": "HEIF", "avif": "AVIF"}
LOSSLESS = {"png", "bmp", "tiff", "gif"}


def encode(im: Image.Image, fmt: str, **kwargs) -> bytes:
    if fmt == "heif":
        from pillow_heif import register_heif_opener

        register_heif_opener()
    buf = io.BytesIO()
    im.save(buf, PIL_NAME.get(fmt, fmt), **kwargs)
    return buf.getvalue()


def pattern(width: int = 64, height: int = 48) -> Image.Image:
    """A synthetic picture with no symmetry: each quadrant a different colour, plus a gradient."""
    y, x = np.mgrid[0:height, 0:width]
    a = np.zeros((height, width, 3), np.uint8)
    a[..., 0] = np.where(x < width // 2, 230, 20)
    a[..., 1] = np.where(y < height // 2, 220, 30)
    a[..., 2] = (x * 255 // max(width - 1, 1)).astype(np.uint8)
    return Image.fromarray(a)


def chunk(ctype: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + ctype + payload + struct.pack(">I", zlib.crc32(ctype + payload))


def png_bytes(width: int, height: int, idat: bytes | None = None, extra: bytes = b"") -> bytes:
    ihdr = chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
    if idat is None:
        idat = zlib.compress(b"\0" * (1 + 3 * width) * height)
    return b"\x89PNG\r\n\x1a\n" + ihdr + extra + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def assert_valid(result: DecodedImage) -> None:
    assert isinstance(result, DecodedImage)
    assert result.rgb.dtype == np.uint8
    assert result.rgb.ndim == 3 and result.rgb.shape[2] == 3
    assert result.rgb.flags.c_contiguous
    assert not result.rgb.flags.writeable
    assert result.format in SUPPORTED_FORMATS


def expect_error(cls: type[HashingError], data: bytes, words: tuple[str, ...] = (), **kwargs) -> HashingError:
    with pytest.raises(cls) as info:
        decode_image(data, source="upload/evidence-17.bin", **kwargs)
    err = info.value
    assert type(err) is cls, f"{type(err).__name__}: {err}"
    assert err.source == "upload/evidence-17.bin"
    assert err.problem and str(err) == f"upload/evidence-17.bin: {err.problem}"
    for word in words:
        assert word in err.problem.lower(), err.problem
    return err


# --------------------------------------------------------------------------------------------------------------
# Formats


@pytest.mark.parametrize("fmt", sorted(SUPPORTED_FORMATS))
def test_every_format_decodes(fmt: str) -> None:
    src = pattern(64, 48)
    if fmt == "gif":
        src = src.convert("P").convert("RGB")  # the palette the GIF will store
    data = encode(src, fmt)
    assert sniff_format(data) == fmt
    result = decode_image(data, source=f"x.{fmt}")
    assert_valid(result)
    assert result.format == fmt
    assert (result.width, result.height) == (64, 48)
    assert result.rgb.shape == (48, 64, 3)
    assert result.frames == 1 and not result.reduced
    if fmt in LOSSLESS:
        assert np.array_equal(result.rgb, np.asarray(src))
    else:
        assert np.abs(result.rgb.astype(int) - np.asarray(src).astype(int)).mean() < 20


def test_lossless_webp_is_exact() -> None:
    src = pattern(40, 30)
    assert np.array_equal(decode_image(encode(src, "webp", lossless=True)).rgb, np.asarray(src))


def test_sniff_format_uses_magic_only() -> None:
    assert sniff_format(b"") is None
    assert sniff_format(b"hello world") is None
    assert sniff_format(b"<!doctype html><html><body>hi</body></html>") is None
    assert sniff_format(b"%PDF-1.7\n...") == "pdf"
    assert sniff_format(b"%!PS-Adobe-3.0 EPSF-3.0\n") == "eps"
    assert sniff_format(b"8BPS\x00\x01" + b"\0" * 40) == "psd"
    assert sniff_format(b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg"/>') == "svg"
    assert sniff_format(b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2") == "mp4"
    assert sniff_format(b"\x00\x00\x00\x1cftypmif1\x00\x00\x00\x00mif1avifmiaf") == "avif"
    assert sniff_format(b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic") == "heif"
    assert sniff_format(b"BM" + b"\0" * 60) is None  # "BM" alone is not enough


# --------------------------------------------------------------------------------------------------------------
# Pixel modes


def test_greyscale_and_bilevel() -> None:
    grey = Image.fromarray(np.arange(256, dtype=np.uint8).reshape(16, 16))
    for fmt in ("png", "bmp", "tiff", "gif"):
        rgb = decode_image(encode(grey, fmt)).rgb
        assert np.array_equal(rgb[..., 0], np.asarray(grey)) and np.array_equal(rgb[..., 0], rgb[..., 2]), fmt
    bilevel = Image.fromarray(np.array([[0, 255, 0, 255]] * 4, np.uint8)).convert("1")
    for fmt in ("png", "bmp", "tiff"):
        rgb = decode_image(encode(bilevel, fmt)).rgb
        assert rgb[0, :, 0].tolist() == [0, 255, 0, 255], fmt


SIXTEEN_BIT = np.array([[0, 255, 256, 1000, 0x1234, 0x8000, 0xFFFF, 30000]], np.uint16)
SCALED = (SIXTEEN_BIT >> 8).astype(np.uint8)[0].tolist()  # [0, 0, 1, 3, 18, 128, 255, 117]


@pytest.mark.parametrize("mode,fmt", [("I;16", "png"), ("I;16", "tiff"), ("I;16B", "tiff")])
def test_16_bit_grey_is_scaled_not_clipped(mode: str, fmt: str) -> None:
    dtype = ">u2" if mode == "I;16B" else "<u2"
    im = Image.frombytes(mode, (8, 1), SIXTEEN_BIT.astype(dtype).tobytes())
    data = encode(im, fmt)
    assert Image.open(io.BytesIO(data)).mode == mode
    rgb = decode_image(data).rgb
    assert rgb[0, :, 0].tolist() == SCALED  # Pillow's convert("L") would give 255 for everything above 255
    assert np.array_equal(rgb[..., 0], rgb[..., 1])


def test_32_bit_integer_and_float_grey() -> None:
    wide = Image.fromarray(SIXTEEN_BIT.astype(np.int32))
    assert decode_image(encode(wide, "tiff")).rgb[0, :, 0].tolist() == SCALED
    small = Image.fromarray(np.array([[0, 7, 128, 255]], np.int32))  # 8-bit values in a 32-bit container: kept
    assert decode_image(encode(small, "tiff")).rgb[0, :, 0].tolist() == [0, 7, 128, 255]
    signed = Image.fromarray(np.array([[-1000, 0, 1000]], np.int32))  # no natural range: stretched
    assert decode_image(encode(signed, "tiff")).rgb[0, :, 0].tolist() == [0, 128, 255]
    unit = Image.fromarray(np.array([[0.0, 0.25, 0.5, 1.0]], np.float32))
    assert decode_image(encode(unit, "tiff")).rgb[0, :, 0].tolist() == [0, 64, 128, 255]


def test_palette_images_use_palette_colours() -> None:
    pal = Image.new("P", (4, 2))
    pal.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255] + [0] * 759)
    pal.putdata([0, 1, 2, 1, 2, 0, 0, 1])
    want = [[255, 0, 0], [0, 255, 0], [0, 0, 255], [0, 255, 0]]
    for fmt in ("png", "gif", "bmp", "tiff"):
        assert decode_image(encode(pal, fmt)).rgb[0].tolist() == want, fmt
    # transparency: the stored palette colour is kept (alpha is dropped, see docs/decoding.md)
    for fmt in ("png", "gif"):
        assert decode_image(encode(pal, fmt, transparency=1)).rgb[0].tolist() == want, fmt


def test_alpha_is_dropped() -> None:
    a = np.zeros((4, 4, 4), np.uint8)
    a[..., :3] = (10, 200, 30)
    a[:, :2, 3] = 0  # fully transparent half keeps its stored colour
    a[:, 2:, 3] = 128
    rgba = Image.fromarray(a)
    for fmt in ("png", "tiff", "webp"):
        kwargs = {"lossless": True, "exact": True} if fmt == "webp" else {}
        rgb = decode_image(encode(rgba, fmt, **kwargs)).rgb
        assert np.array_equal(rgb, a[..., :3]), fmt
    la = Image.fromarray(np.dstack([np.full((4, 4), 77, np.uint8), np.zeros((4, 4), np.uint8)]), "LA")
    assert decode_image(encode(la, "png")).rgb[0, 0].tolist() == [77, 77, 77]


def test_cmyk() -> None:
    red = Image.new("CMYK", (32, 16), (0, 255, 255, 0))
    data = encode(red, "jpeg", quality=95)
    assert b"Adobe" in data  # Pillow writes Adobe-inverted CMYK; the JPEG plugin un-inverts it
    assert np.abs(decode_image(data).rgb.astype(int) - [255, 0, 0]).max() <= 3
    assert decode_image(encode(red, "tiff")).rgb[0, 0].tolist() == [255, 0, 0]
    cmyk = Image.new("CMYK", (8, 8), (10, 20, 30, 40))
    assert decode_image(encode(cmyk, "tiff")).rgb[0, 0].tolist() == list(cmyk.convert("RGB").getpixel((0, 0)))


def test_other_colour_spaces() -> None:
    src = Image.new("RGB", (8, 8), (200, 100, 50))
    for mode in ("LAB", "YCbCr"):
        rgb = decode_image(encode(src.convert(mode), "tiff")).rgb
        assert np.abs(rgb[0, 0].astype(int) - [200, 100, 50]).max() <= 3, mode
    # HSV cannot be stored in an allowed format; the conversion is still covered
    hsv = decode_mod._to_rgb_array(src.convert("HSV"), "test")
    assert np.abs(hsv[0, 0].astype(int) - [200, 100, 50]).max() <= 3
    premultiplied = Image.new("RGBA", (2, 2), (200, 100, 50, 128)).convert("RGBa")
    assert np.abs(decode_mod._to_rgb_array(premultiplied, "test")[0, 0].astype(int) - [200, 100, 50]).max() <= 2


@pytest.mark.skipif(not (PDQ_REFERENCE / "images/misc-images/modes").is_dir(),
                    reason="shared PDQ reference data absent")
def test_reference_mode_images_hash_like_the_original() -> None:
    pdqhash = pytest.importorskip("pdqhash")
    modes = PDQ_REFERENCE / "images/misc-images/modes"
    ref, _ = pdqhash.compute(decode_image(read_image_file(modes / "original.jpg"), reduce=False).rgb)
    for path in sorted(modes.iterdir()):
        if path.suffix == ".md":
            continue
        bits, _ = pdqhash.compute(decode_image(read_image_file(path), source=str(path), reduce=False).rgb)
        assert (bits != ref).sum() <= 8, path.name


@pytest.mark.skipif(not (PDQ_REFERENCE / "expected.csv").is_file(), reason="shared PDQ reference data absent")
def test_c_png_matches_reference_as_documented() -> None:
    pdqhash = pytest.importorskip("pdqhash")
    path = PDQ_REFERENCE / "images/misc-images/c.png"
    rows = dict(line.split(",")[:2] for line in (PDQ_REFERENCE / "expected.csv").read_text().splitlines()[1:])
    ref = np.unpackbits(np.frombuffer(bytes.fromhex(rows["images/misc-images/c.png"]), np.uint8))
    result = decode_image(read_image_file(path))
    assert np.array_equal(result.rgb, np.asarray(Image.open(path).convert("RGB")))
    bits, _ = pdqhash.compute(result.rgb)
    assert min((bits != ref).sum(), (bits != ref[::-1]).sum()) <= 10  # docs/decoding.md: 10 bits, decoder differences


# --------------------------------------------------------------------------------------------------------------
# Orientation

TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


@pytest.mark.parametrize("fmt", ["jpeg", "png", "webp", "tiff", "avif", "heif"])
def test_exif_orientation_1_to_8(fmt: str) -> None:
    src = pattern(60, 40)
    for orientation in range(1, 9):
        exif = Image.Exif()
        exif[0x0112] = orientation
        kwargs = {"exif": exif if fmt == "tiff" else exif.tobytes()}
        if fmt == "jpeg":
            kwargs["quality"] = 95
        if fmt == "webp":
            kwargs["lossless"] = True
        data = encode(src, fmt, **kwargs)
        result = decode_image(data, source=f"o{orientation}.{fmt}")
        want = np.asarray(src.transpose(TRANSPOSE[orientation]) if orientation > 1 else src)
        assert result.rgb.shape == want.shape, (fmt, orientation)
        assert (result.width, result.height) == (want.shape[1], want.shape[0])
        assert np.abs(result.rgb.astype(int) - want.astype(int)).mean() < 12, (fmt, orientation)


def test_broken_exif_does_not_fail_a_good_image() -> None:
    src = pattern(32, 24)
    good = encode(src, "jpeg", quality=95)
    broken_exif_blocks = (
        b"Exif\x00\x00" + b"\xff" * 30,
        b"Exif\x00\x00II*\x00\xff\xff\xff\x7f",  # IFD offset far past the end
        b"Exif\x00\x00MM\x00*\x00\x00\x00\x08\xff\xff",  # 65535 entries that are not there
    )
    for junk in broken_exif_blocks:
        data = good[:2] + b"\xff\xe1" + struct.pack(">H", len(junk) + 2) + junk + good[2:]
        result = decode_image(data)
        assert result.rgb.shape == (24, 32, 3)
    for bad_value in (0, 9, 65535):
        exif = Image.Exif()
        exif[0x0112] = bad_value
        assert decode_image(encode(src, "jpeg", exif=exif.tobytes())).rgb.shape == (24, 32, 3)


@pytest.mark.skipif(not (PDQ_REFERENCE / "images/reg-test-input/exif-rotn").is_dir(),
                    reason="shared exif-rotn reference images absent")
def test_reference_exif_rotation_images() -> None:
    folder = PDQ_REFERENCE / "images/reg-test-input/exif-rotn"
    for orientation in (1, 3, 6, 8):
        path = folder / f"exif-rotn-{orientation}.jpg"
        data = read_image_file(path)
        result = decode_image(data, reduce=False)
        want = np.asarray(ImageOps.exif_transpose(Image.open(path)).convert("RGB"))
        assert np.array_equal(result.rgb, want)
        portrait = orientation in (6, 8)
        assert (result.width < result.height) == portrait
        reduced = decode_image(data)
        assert reduced.reduced and (reduced.width, reduced.height) == (result.width, result.height)
        assert (reduced.rgb.shape[1] < reduced.rgb.shape[0]) == portrait


# --------------------------------------------------------------------------------------------------------------
# Animation


def frames_of(colours: list[tuple[int, int, int]], size=(16, 12)) -> list[Image.Image]:
    return [Image.new("RGB", size, c) for c in colours]


@pytest.mark.parametrize("fmt", ["gif", "webp", "png", "avif"])
def test_animation_gives_frame_0_and_frame_count(fmt: str) -> None:
    frames = frames_of([(250, 10, 10), (10, 250, 10), (10, 10, 250)])
    kwargs = {"lossless": True} if fmt == "webp" else {}
    data = encode(frames[0], fmt, save_all=True, append_images=frames[1:], duration=100, **kwargs)
    result = decode_image(data)
    assert result.frames == 3
    assert np.abs(result.rgb.astype(int) - [250, 10, 10]).max() <= 12


def test_multi_picture_jpeg_gives_first_picture() -> None:
    first, second = frames_of([(250, 10, 10), (10, 10, 250)], size=(32, 24))
    data = encode(first, "MPO", save_all=True, append_images=[second])
    assert Image.open(io.BytesIO(data)).format == "MPO"
    result = decode_image(data)
    assert result.format == "jpeg" and result.frames == 1
    assert np.abs(result.rgb.astype(int) - [250, 10, 10]).max() <= 12


def test_multipage_tiff_counts_pages() -> None:
    pages = frames_of([(250, 10, 10), (10, 250, 10)])
    result = decode_image(encode(pages[0], "tiff", save_all=True, append_images=pages[1:]))
    assert result.frames == 2 and result.rgb[0, 0].tolist() == [250, 10, 10]


def test_frame_count_is_capped() -> None:
    frames = [Image.new("P", (2, 2), i % 2) for i in range(FRAME_COUNT_CAP + 200)]
    data = encode(frames[0], "gif", save_all=True, append_images=frames[1:], duration=10, optimize=False)
    assert decode_image(data).frames == FRAME_COUNT_CAP


# --------------------------------------------------------------------------------------------------------------
# JPEG DCT reduction


def flat_jpeg(width: int, height: int, **kwargs) -> bytes:
    return encode(Image.new("L", (width, height), 128), "jpeg", **kwargs)


@pytest.mark.parametrize("size", [(2000, 1500), (1500, 2000), (1024, 1024), (1023, 513), (4100, 520), (600, 600)])
@pytest.mark.parametrize("min_side", [128, 256, 512])
def test_jpeg_reduction_keeps_shorter_side(size: tuple[int, int], min_side: int) -> None:
    data = flat_jpeg(*size)
    result = decode_image(data, limits=DecodeLimits(min_side=min_side))
    height, width = result.rgb.shape[:2]
    short = min(size)
    assert (result.width, result.height) == size
    assert min(width, height) >= min(min_side, short)
    assert result.reduced == (min(width, height) < short)
    # the reduction is maximal: the next DCT scale could not guarantee min_side (draft rounds down)
    scale = round(short / min(width, height))
    assert scale in (1, 2, 4, 8)
    if scale < 8:
        assert short < 2 * scale * min_side


def test_reduction_can_be_disabled() -> None:
    data = flat_jpeg(2000, 1500)
    assert decode_image(data, reduce=False).rgb.shape == (1500, 2000, 3)
    assert decode_image(data, limits=DecodeLimits(min_side=0)).rgb.shape == (1500, 2000, 3)
    assert decode_image(data).reduced


def test_reduction_with_rotation_reports_full_size() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6
    data = encode(Image.new("RGB", (2000, 1000), (9, 9, 9)), "jpeg", exif=exif.tobytes())
    result = decode_image(data)
    assert result.reduced
    assert (result.width, result.height) == (1000, 2000)
    assert result.rgb.shape == (1000, 500, 3)  # 1/2 scale: 1/4 would make the shorter side 250


def test_non_jpeg_is_never_reduced() -> None:
    data = encode(Image.new("L", (1200, 900), 5), "png")
    result = decode_image(data)
    assert result.rgb.shape == (900, 1200, 3) and not result.reduced


# --------------------------------------------------------------------------------------------------------------
# Limits and errors


def test_read_image_file(tmp_path: Path) -> None:
    path = tmp_path / "ok.png"
    path.write_bytes(encode(pattern(), "png"))
    assert decode_image(read_image_file(path), source=str(path)).format == "png"
    big = tmp_path / "huge.jpg"
    with open(big, "wb") as f:  # sparse: 1 GiB on stat, nothing on disk; reading it would be slow
        f.truncate(2**30)
    with pytest.raises(FileTooLarge) as info:
        read_image_file(big)
    assert info.value.source == str(big) and "over the limit of 64.0 mib" in info.value.problem.lower()
    with pytest.raises(FileTooLarge):
        read_image_file(path, DecodeLimits(max_bytes=100))
    with pytest.raises(NotAnImage):
        read_image_file(tmp_path)
    with pytest.raises(HashingError) as missing:
        read_image_file(tmp_path / "missing.jpg")
    assert "cannot read" in missing.value.problem and missing.value.source.endswith("missing.jpg")


def test_file_too_large_in_memory() -> None:
    expect_error(FileTooLarge, b"\xff\xd8\xff" + b"\0" * 2000, ("over the limit",), limits=DecodeLimits(max_bytes=1000))


def test_too_many_pixels() -> None:
    data = encode(Image.new("L", (2000, 1000)), "png")
    err = expect_error(TooManyPixels, data, limits=DecodeLimits(max_pixels=10**6))
    assert err.problem == "image is 2000x1000 (2.0 megapixels), over the limit of 1.0 megapixels"
    # the documented example, with the default limit and a file large enough not to look like a bomb
    header = struct.pack("<IiiHHIIiiII", 40, 30000, 20000, 1, 24, 0, 0, 0, 0, 0, 0)
    bmp = b"BM" + struct.pack("<IHHI", 0, 0, 0, 54) + header
    err = expect_error(TooManyPixels, bmp + b"\0" * 100_000)
    assert err.problem == "image is 30000x20000 (600.0 megapixels), over the limit of 100.0 megapixels"


def test_decompression_bombs() -> None:
    words = ("decompression bomb",)
    expect_error(DecompressionBomb, png_bytes(50000, 50000, idat=zlib.compress(b"\0" * 1000)), words)
    gif = b"GIF89a" + struct.pack("<HHBBB", 65535, 65535, 0, 0, 0) + b"\x2c" + struct.pack("<HHHHB", 0, 0, 1, 1, 0)
    expect_error(DecompressionBomb, gif + b"\x02\x02\x44\x01\x00\x3b", words)
    vp8x = b"VP8X" + struct.pack("<I", 10) + b"\0" * 4 + (16383).to_bytes(3, "little") * 2
    expect_error(DecompressionBomb, b"RIFF" + struct.pack("<I", 4 + len(vp8x)) + b"WEBP" + vp8x, words)
    jpeg = bytearray(flat_jpeg(16, 16))
    sof = jpeg.index(b"\xff\xc0")
    jpeg[sof + 5 : sof + 9] = struct.pack(">HH", 60000, 60000)
    expect_error(DecompressionBomb, bytes(jpeg), words)
    # PNG text-chunk bomb: Pillow's MAX_TEXT_CHUNK stops it
    ztxt = chunk(b"zTXt", b"comment\0\0" + zlib.compress(b"a" * 20_000_000, 9))
    expect_error(DecompressionBomb, png_bytes(8, 8, extra=ztxt), ("decompresses to too much data",))


def test_truncated_images() -> None:
    src = pattern(64, 48)
    for fmt in ("jpeg", "png", "gif", "webp", "bmp", "tiff", "avif", "heif"):
        data = encode(src.convert("P") if fmt == "gif" else src, fmt)
        for cut in (len(data) // 2, len(data) * 3 // 4):
            with pytest.raises(TruncatedImage) as info:
                decode_image(data[:cut], source=f"cut.{fmt}")
            assert info.value.source == f"cut.{fmt}" and info.value.problem, fmt
    jpeg = encode(src, "jpeg")
    expect_error(TruncatedImage, jpeg[:-2], ("ends before",))  # only the EOI marker missing
    expect_error(TruncatedImage, encode(src, "png")[:-30], ("ends before",))
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def test_load_truncated_images_flag_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    with pytest.raises(RuntimeError):
        decode_image(encode(pattern(), "png"))


def test_corrupt_images() -> None:
    png = bytearray(encode(pattern(), "png"))
    png[29] ^= 0xFF  # IHDR CRC
    expect_error(CorruptImage, bytes(png))
    jpeg = encode(pattern(), "jpeg")
    expect_error(CorruptImage, jpeg[:2] + b"\xff\x02\x00\x04\x00\x00" + jpeg[2:], ("jpeg",))  # reserved marker
    expect_error(CorruptImage, b"\xff\xd8\xff\xe0" + b"\0" * 100_000, ("stray bytes",))  # Pillow would walk it bytewise
    expect_error(CorruptImage, b"\xff\xd8" + b"\xff\xfe\x00\x02" * 10_000, ("segments",))
    png_chunks = png_bytes(4, 4, extra=chunk(b"abCd", b"") * (decode_mod._PNG_MAX_CHUNKS + 1))
    expect_error(CorruptImage, png_chunks, ("chunks",))


def test_too_many_jpeg_scans() -> None:
    data = encode(pattern(64, 48), "jpeg", progressive=True)
    sos = data.index(b"\xff\xda")
    eoi = data.rindex(b"\xff\xd9")
    last = data[data.rindex(b"\xff\xda"):eoi]
    many = data[:eoi] + last * decode_mod._JPEG_MAX_SCANS + data[eoi:]
    assert sos > 0
    expect_error(CorruptImage, many, ("scans",))


def test_unsupported_formats_are_refused_without_opening(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*args, **kwargs):
        raise AssertionError("an external program was started")

    monkeypatch.setattr(subprocess, "Popen", boom)
    monkeypatch.setattr(subprocess, "check_call", boom)
    from PIL import EpsImagePlugin

    monkeypatch.setattr(EpsImagePlugin.EpsImageFile, "_open", boom)
    eps = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nnewpath 0 0 moveto 10 10 lineto stroke\n%%EOF\n"
    dos_eps = b"\xc5\xd0\xd3\xc6" + struct.pack("<II", 30, len(eps)) + b"\0" * 18 + eps
    svg = b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>'
    samples = {
        "eps": eps,
        "dos-eps": dos_eps,
        "pdf": encode(pattern(), "PDF"),
        "svg": svg,
        "ico": encode(pattern(32, 32), "ICO"),
        "psd": b"8BPS\x00\x01" + b"\0" * 6 + struct.pack(">HIIHH", 3, 10, 10, 8, 3),
        "jpeg2000": encode(pattern(), "JPEG2000"),
        "mp4": b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2" + b"\0" * 64,
    }
    for name, data in samples.items():
        err = expect_error(UnsupportedFormat, data, ("not supported",))
        assert "jpeg" in err.problem.lower(), name  # the message lists what is supported


def test_not_images() -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("a.txt", "hello")
    samples = {
        "empty": (b"", "empty"),
        "text": (b"just some words in a text file\n" * 10, "text"),
        "html": (b"<!DOCTYPE html><html><head><title>x</title></head><body><img src=a.jpg></body></html>", "html"),
        "zip": (buf.getvalue(), "zip"),
        "random": (np.random.default_rng(7).integers(0, 256, 4096, dtype=np.uint8).tobytes(), "unrecognised"),
    }
    for name, (data, word) in samples.items():
        expect_error(NotAnImage, data, (word,))


def test_error_messages_do_not_quote_file_content() -> None:
    secret = b"SECRETPAYLOAD"
    data = encode(pattern(), "png")
    data = data[:33] + chunk(b"tEXt", b"k\0" + secret) + b"\x00\x00\x00\x05" + secret[:4] + b"\x00"
    with pytest.raises(HashingError) as info:
        decode_image(data)
    assert "SECRET" not in str(info.value) and "\\x" not in str(info.value)


def test_globals_are_left_alone() -> None:
    before = (Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES)
    decode_image(encode(pattern(), "png"))
    with pytest.raises(DecompressionBomb):
        decode_image(png_bytes(50000, 50000, idat=b"x"))
    assert (Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES) == before


def test_default_limits() -> None:
    assert DEFAULT_LIMITS == DecodeLimits(max_bytes=64 * 1024 * 1024, max_pixels=100_000_000, min_side=256)
    with pytest.raises(ValueError):
        DecodeLimits(max_pixels=0)


def test_jpeg_marker_search_compiled_equals_numpy():
    """The scan-count guard's compiled byte search gives exactly what the numpy one gives."""
    from hashes.decode import _jpeg_markers_after, _jpeg_markers_after_np

    rng = np.random.default_rng(7)
    alphabet = np.array([0xFF, 0xD9, 0xDA, 0x00, 0x12], np.uint8)
    for t in range(3000):
        n = int(rng.integers(0, 200_000 if t % 100 == 0 else 300))
        p = [0.3, 0.01, 0.05, 0.3, 0.34] if t % 2 else None
        data = bytes(rng.choice(alphabet, n, p=p))
        pos = int(rng.integers(0, n + 2))
        assert _jpeg_markers_after(data, pos) == _jpeg_markers_after_np(data, pos), (data, pos)
    # Long runs with a few markers at word (8-byte) and block (4 KB) edges, pairs split across
    # them, and a misaligned start: the compiled search reads words and flags blocks.
    for t in range(400):
        n = int(rng.integers(8_000, 40_000))
        a = rng.choice(np.array([0xFF, 0x00, 0x12, 0xD0], np.uint8), n, p=[0.02, 0.5, 0.46, 0.02])
        for _ in range(int(rng.integers(0, 6))):
            edge = int(rng.choice([8 * int(rng.integers(1, n // 8)), 4096 * int(rng.integers(1, max(2, n // 4096)))]))
            at = min(n - 2, max(0, edge + int(rng.integers(-2, 2))))
            a[at], a[at + 1] = 0xFF, int(rng.choice([0xD9, 0xDA, 0xDA]))
        data = a.tobytes()[int(rng.integers(0, 8)):]
        pos = int(rng.integers(0, len(data) + 2))
        assert _jpeg_markers_after(data, pos) == _jpeg_markers_after_np(data, pos), (t, pos)
    photo = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (600, 800, 3), dtype=np.uint8)).save(photo, "JPEG", quality=95, progressive=True)
    data = photo.getvalue() + photo.getvalue()  # a second picture after the first EOI is not counted
    for pos in (2, 200, len(data) // 2, len(data) - 2, len(data) - 1, len(data)):
        assert _jpeg_markers_after(data, pos) == _jpeg_markers_after_np(data, pos)
