"""Safe, bounded decoding of untrusted image bytes into RGB pixels for hashing.

Everything here treats its input as hostile: files found online can be malformed, truncated or built to exhaust
memory or CPU. `decode_image` therefore only ever raises `HashingError` (subclasses in `hashes.errors`) for bad input,
checks the declared size before any pixel is decoded, and runs cheap structural scans that bound the work Pillow's
pure-Python header parsers would otherwise do on pathological files. See docs/decoding.md for the policy choices.
"""

from __future__ import annotations

import io
import os
import re
import stat
import struct
import threading
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageFile, UnidentifiedImageError

from .errors import (
    CorruptImage,
    DecompressionBomb,
    FileTooLarge,
    HashingError,
    NotAnImage,
    TooManyPixels,
    TruncatedImage,
    UnsupportedFormat,
)

__all__ = [
    "DEFAULT_LIMITS",
    "SUPPORTED_FORMATS",
    "DecodeLimits",
    "DecodedImage",
    "decode_image",
    "read_image_file",
    "sniff_format",
]


@dataclass(frozen=True)
class DecodeLimits:
    """Resource limits applied to every decode."""

    max_bytes: int = 64 * 1024 * 1024  # file size
    max_pixels: int = 100_000_000  # declared width*height of the full-size image
    min_side: int = 256  # JPEG DCT scaling: reduce while the shorter side stays >= this; 0 disables

    def __post_init__(self) -> None:
        if self.max_bytes < 0 or self.max_pixels < 1 or self.min_side < 0:
            raise ValueError(f"invalid decode limits: {self}")


DEFAULT_LIMITS = DecodeLimits()


@dataclass(frozen=True)
class DecodedImage:
    """Pixels of frame 0 of an image, ready for hashing."""

    rgb: np.ndarray  # H x W x 3 uint8, C-contiguous, EXIF orientation applied (possibly DCT-reduced)
    width: int  # full-size width after orientation (before any reduction)
    height: int
    format: str  # "jpeg", "png", "gif", "webp", "bmp", "tiff", "heif", "avif"
    reduced: bool  # True when JPEG DCT scaling was used
    frames: int  # number of frames (1 for stills); animated images are hashed on frame 0


#: The formats `decode_image` accepts; `sniff_format` can also name formats outside this set.
SUPPORTED_FORMATS = frozenset({"jpeg", "png", "gif", "webp", "bmp", "tiff", "heif", "avif"})

_PIL_FORMAT = {
    "jpeg": "JPEG",  # the JPEG opener also returns MPO (multi-picture) files, format "MPO"
    "png": "PNG",
    "gif": "GIF",
    "webp": "WEBP",
    "bmp": "BMP",
    "tiff": "TIFF",
    "heif": "HEIF",  # registered by pillow_heif, see _ensure_heif_opener
    "avif": "AVIF",  # Pillow's own plugin (libavif)
}

_DISPLAY_NAME = {
    "jpeg": "JPEG", "png": "PNG", "gif": "GIF", "webp": "WebP", "bmp": "BMP", "tiff": "TIFF", "heif": "HEIF",
    "avif": "AVIF", "psd": "Photoshop (PSD)", "ico": "Windows icon (ICO)", "cur": "Windows cursor (CUR)",
    "eps": "PostScript/EPS", "pdf": "PDF", "svg": "SVG", "jpeg2000": "JPEG 2000", "jxl": "JPEG XL",
    "qoi": "QOI", "dds": "DDS", "xcf": "GIMP XCF", "icns": "Apple icon (ICNS)", "exr": "OpenEXR",
    "hdr": "Radiance HDR", "fits": "FITS", "pnm": "Netpbm", "djvu": "DjVu", "bpg": "BPG", "wmf": "WMF",
    "emf": "EMF", "mng": "MNG", "jng": "JNG", "flif": "FLIF", "raw": "camera raw", "mp4": "MP4/QuickTime video",
    "matroska": "Matroska/WebM video", "avi": "AVI video",
}

# A declared pixel count above this many pixels per byte of file cannot be backed by the data for deflate-, LZW- or
# Huffman-coded images (deflate's 1032:1 ceiling caps a flat 1-bit PNG near 8,300; flat GIFs reach ~1,400 and flat
# JPEGs a few hundred), so such a file is lying about its size. Only codecs with unbounded compression (lossless WebP,
# AVIF, HEIF, arithmetic-coded JPEG) exceed it legitimately, and only for flat, content-free pictures.
BOMB_PIXELS_PER_BYTE = 10_000
# Below this a full decode costs at most ~64 MB in Pillow and well under a second, so the ratio is not checked.
BOMB_MIN_PIXELS = 16_000_000
# Frame counts above this are reported as this: counting stops here so that huge counts cost nothing.
FRAME_COUNT_CAP = 1000

# Bounds for the structural pre-scans. Pillow's header parsers are pure Python and step byte by byte through JPEG junk,
# chunk by chunk through PNG and block by block through GIF, so a 64 MB file of tiny segments would take tens of
# seconds there. Real files stay orders of magnitude below these numbers.
_JPEG_MAX_SEGMENTS = 4096  # marker segments before the first scan
_JPEG_MAX_JUNK = 65536  # stray bytes (and 0xFF fill bytes) between them
_JPEG_MAX_SCANS = 100  # each progressive scan re-walks every block: ~10 ms per scan at 100 MP even when nearly empty
_PNG_MAX_CHUNKS = 100_000
_GIF_MAX_BLOCKS_BEFORE_FRAME0 = 100_000
_GIF_MAX_BLOCKS = 2_000_000  # counting frames stops here
_TIFF_MAX_IFDS = FRAME_COUNT_CAP
_BMFF_MAX_BOXES = 10_000
_PROBLEM_MAX_CHARS = 200


# --------------------------------------------------------------------------------------------------------------
# Sniffing


def sniff_format(data: bytes) -> str | None:
    """Name the image format from magic bytes only (see SUPPORTED_FORMATS); None when not a recognised image."""
    head = bytes(data[:64])
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return "tiff"
    if head[:2] == b"BM" and len(head) >= 18 and struct.unpack_from("<I", head, 14)[0] in _BMP_HEADER_SIZES:
        return "bmp"
    if head[4:8] == b"ftyp":
        box_size = struct.unpack_from(">I", head, 0)[0]
        return _sniff_ftyp(bytes(data[: max(16, min(box_size, 4096))]))
    return _sniff_other(head, data)


_BMP_HEADER_SIZES = {12, 16, 40, 52, 56, 64, 108, 124}
_HEIF_BRANDS = {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs"}
_AVIF_BRANDS = {b"avif", b"avis"}
_VIDEO_BRANDS = {b"isom", b"iso2", b"iso4", b"iso5", b"iso6", b"mp41", b"mp42", b"avc1", b"qt  ", b"M4V ", b"M4VH",
                 b"M4VP", b"dash", b"mmp4", b"MSNV", b"f4v ", b"3gp4", b"3gp5", b"3gp6", b"3g2a", b"3ge6", b"3gg6"}


def _sniff_ftyp(ftyp: bytes) -> str | None:
    major = ftyp[8:12]
    compatible = {ftyp[i : i + 4] for i in range(16, len(ftyp) - 3, 4)}
    if major in _AVIF_BRANDS:
        return "avif"
    if major in _HEIF_BRANDS:
        return "heif"
    if major in (b"mif1", b"msf1", b"miaf"):
        if compatible & _HEIF_BRANDS:
            return "heif"
        if compatible & _AVIF_BRANDS:
            return "avif"
        return "heif"  # generic HEIF container; libheif decides whether it can read the codec inside
    if major in (b"crx ",):
        return "raw"
    if major in (b"jxl ",):
        return "jxl"
    if major in (b"jp2 ", b"jpx ", b"jpm "):
        return "jpeg2000"
    if major in _VIDEO_BRANDS or major.startswith(b"3g") or compatible & _VIDEO_BRANDS:
        return "mp4"
    return None


def _sniff_other(head: bytes, data: bytes) -> str | None:
    if head.startswith(b"8BPS"):
        return "psd"
    if len(head) >= 6 and head[:4] in (b"\x00\x00\x01\x00", b"\x00\x00\x02\x00") and 0 < head[4] | head[5] << 8 <= 512:
        return "ico" if head[2] == 1 else "cur"
    if head.startswith((b"%!PS", b"\xc5\xd0\xd3\xc6")):
        return "eps"
    if b"%PDF-" in bytes(data[:1024]):
        return "pdf"
    if head.startswith((b"\x00\x00\x00\x0cjP  \r\n\x87\n", b"\xff\x4f\xff\x51")):
        return "jpeg2000"
    if head.startswith((b"\xff\x0a", b"\x00\x00\x00\x0cJXL \r\n\x87\n")):
        return "jxl"
    simple = {
        b"qoif": "qoi", b"DDS ": "dds", b"gimp xcf": "xcf", b"icns": "icns", b"\x76\x2f\x31\x01": "exr",
        b"#?RADIANCE": "hdr", b"#?RGBE": "hdr", b"SIMPLE  =": "fits", b"AT&TFORM": "djvu", b"BPG\xfb": "bpg",
        b"\xd7\xcd\xc6\x9a": "wmf", b"\x8aMNG\r\n\x1a\n": "mng", b"\x8bJNG\r\n\x1a\n": "jng", b"FLIF": "flif",
        b"\x1a\x45\xdf\xa3": "matroska",
    }
    for magic, name in simple.items():
        if head.startswith(magic):
            return name
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return "avi"
    if head[:4] == b"\x01\x00\x00\x00" and head[40:44] == b" EMF":
        return "emf"
    if len(head) >= 3 and head[0:1] == b"P" and head[1:2] in b"1234567" and head[2:3] in b" \t\r\n":
        return "pnm"
    if _looks_like_svg(bytes(data[:4096])):
        return "svg"
    return None


def _looks_like_svg(start: bytes) -> bool:
    text = start.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if not text.startswith((b"<?xml", b"<svg", b"<!--", b"<!doctype svg")):
        return False
    return b"<svg" in text


def _describe_non_image(data: bytes) -> str:
    """Say what the data looks like without quoting it (error messages must not carry content)."""
    if not data:
        return "the file is empty (0 bytes)"
    head = bytes(data[:512])
    stripped = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if stripped.startswith((b"<!doctype html", b"<html", b"<head", b"<body")):
        return "the data is HTML, not an image"
    if stripped.startswith(b"<?xml") or stripped.startswith(b"<"):
        return "the data is XML or markup text, not an image"
    if stripped.startswith((b"{", b"[")):
        return "the data looks like JSON text, not an image"
    if head.startswith(b"PK\x03\x04"):
        return "the data is a ZIP archive, not an image"
    if head.startswith(b"\x1f\x8b"):
        return "the data is gzip-compressed, not an image"
    if head.startswith((b"\x7fELF", b"MZ")):
        return "the data is an executable, not an image"
    try:
        head.decode("utf-8")
        printable = sum(32 <= b < 127 or b in (9, 10, 13) for b in head) / len(head)
    except UnicodeDecodeError:
        printable = 0.0
    if printable > 0.95:
        return "the data is text, not an image"
    return f"unrecognised data ({len(data)} bytes) with no known image signature"


# --------------------------------------------------------------------------------------------------------------
# Reading files


def read_image_file(path: str | os.PathLike[str], limits: DecodeLimits = DEFAULT_LIMITS) -> bytes:
    """Read a file for decoding; FileTooLarge is raised from stat, before reading a huge file."""
    source = os.fspath(path)
    try:
        st = os.stat(source)
        if not stat.S_ISREG(st.st_mode):
            raise NotAnImage("not a regular file (a directory, device or pipe)", source)
        if st.st_size > limits.max_bytes:
            raise FileTooLarge(_too_large_problem(st.st_size, limits.max_bytes), source)
        with open(source, "rb") as f:
            # the file may have grown since stat: never read more than the limit allows
            data = f.read(limits.max_bytes + 1)
    except HashingError:
        raise
    except OSError as exc:
        raise HashingError(f"cannot read the file ({exc.strerror or type(exc).__name__})", source) from exc
    if len(data) > limits.max_bytes:
        raise FileTooLarge(f"file grew past the limit of {limits.max_bytes / 2**20:.1f} MiB while being read", source)
    return data


def _too_large_problem(size: int, limit: int) -> str:
    return f"file is {size / 2**20:.1f} MiB ({size} bytes), over the limit of {limit / 2**20:.1f} MiB"


# --------------------------------------------------------------------------------------------------------------
# Decoding


def decode_image(
    data: bytes,
    *,
    source: str = "<bytes>",
    limits: DecodeLimits = DEFAULT_LIMITS,
    reduce: bool = True,
) -> DecodedImage:
    """Decode frame 0 of an image to RGB pixels; raises only HashingError subclasses on bad input."""
    if ImageFile.LOAD_TRUNCATED_IMAGES:
        # a misconfiguration, not bad input: with it set, Pillow returns grey-filled partial images that would be hashed
        raise RuntimeError("PIL.ImageFile.LOAD_TRUNCATED_IMAGES must stay False for hashing")
    try:
        return _decode(data, limits, reduce)
    except HashingError as exc:
        raise exc.with_source(source) from exc.__cause__
    except MemoryError as exc:
        raise TooManyPixels("not enough memory to decode the image", source) from exc
    except RecursionError as exc:
        raise CorruptImage("the image structure is nested too deeply to parse", source) from exc
    except Exception as exc:  # a decoder raised something we did not anticipate: still a bad input, never a crash
        raise CorruptImage(f"the decoder failed unexpectedly ({_exc_text(exc)})", source) from exc


def _decode(data: bytes, limits: DecodeLimits, reduce: bool) -> DecodedImage:
    if not isinstance(data, bytes):
        data = bytes(data)
    if len(data) > limits.max_bytes:
        raise FileTooLarge(_too_large_problem(len(data), limits.max_bytes))
    fmt = sniff_format(data)
    if fmt is None:
        raise NotAnImage(_describe_non_image(data))
    if fmt not in SUPPORTED_FORMATS:
        supported = ", ".join(_DISPLAY_NAME[f] for f in sorted(SUPPORTED_FORMATS))
        raise UnsupportedFormat(f"{_DISPLAY_NAME.get(fmt, fmt)} files are not supported (supported: {supported})")
    name = _DISPLAY_NAME[fmt]

    scan = _SCANNERS[fmt](data)
    if scan.size is not None:
        # checked before Pillow opens the file: some plugins (WebP) allocate the canvas while opening, and Pillow's
        # own guard would warn about sizes we are about to refuse anyway
        _check_declared_size(scan.size, len(data), limits)
    if fmt == "heif":
        _ensure_heif_opener()

    im = _open(data, fmt, scan, limits)
    try:
        width, height = im.size
        if width < 1 or height < 1:
            raise CorruptImage(f"{name} header declares an empty image ({width}x{height})")
        _check_declared_size((width, height), len(data), limits)
        if fmt == "tiff":
            _check_tiff_strips(im, len(data))
        frames = scan.frames if scan.frames is not None else _pillow_frame_count(im)

        reduced = False
        if fmt == "jpeg" and reduce and limits.min_side > 0:
            reduced = draft_jpeg(im, limits.min_side)

        _load(im, name, scan)
        if reduced and min(im.size) < limits.min_side:  # not with Pillow's draft today; never hash a too-small image
            im.close()
            im = _open(data, fmt, scan, limits)
            reduced = False
            _load(im, name, scan)

        # Pillow's TIFF loader applies and removes the Orientation tag itself, so this reads 1 there
        orientation = _exif_orientation(im)
        rgb = _to_rgb_array(im, name)
    finally:
        im.close()

    rgb = _apply_orientation(rgb, orientation)
    rgb.flags.writeable = False
    if reduced:
        if orientation in (5, 6, 7, 8):
            width, height = height, width
    else:
        height, width = rgb.shape[:2]  # the decoder has the last word (GIF frames can enlarge the canvas)
    return DecodedImage(rgb=rgb, width=width, height=height, format=fmt, reduced=reduced,
                        frames=max(1, min(frames, FRAME_COUNT_CAP)))


def _check_declared_size(size: tuple[int, int], nbytes: int, limits: DecodeLimits) -> None:
    width, height = size
    pixels = width * height
    mp = pixels / 1e6
    if pixels >= BOMB_MIN_PIXELS and pixels > BOMB_PIXELS_PER_BYTE * max(nbytes, 1):
        raise DecompressionBomb(
            f"image declares {width}x{height} ({mp:.1f} megapixels) in only {nbytes} bytes "
            f"({pixels // max(nbytes, 1)} pixels per byte, over the limit of {BOMB_PIXELS_PER_BYTE}): "
            "a decompression bomb"
        )
    if pixels > limits.max_pixels:
        raise TooManyPixels(
            f"image is {width}x{height} ({mp:.1f} megapixels), "
            f"over the limit of {limits.max_pixels / 1e6:.1f} megapixels"
        )


def _open(data: bytes, fmt: str, scan: _Scan, limits: DecodeLimits) -> ImageFile.ImageFile:
    """Image.open restricted to the sniffed format, with every failure mapped to a HashingError."""
    name = _DISPLAY_NAME[fmt]
    try:
        return Image.open(io.BytesIO(data), formats=[_PIL_FORMAT[fmt]])
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        # Pillow's process-wide guard (Image.MAX_IMAGE_PIXELS) refused the header; recover the declared size to
        # report it with our own rules, then refuse anyway: we never override Pillow's global setting.
        size = _header_size_without_pillow_guard(data, fmt)
        if size is not None:
            _check_declared_size(size, len(data), limits)
        raise DecompressionBomb(
            f"{name} image exceeds Pillow's process-wide pixel limit (PIL.Image.MAX_IMAGE_PIXELS): {_exc_text(exc)}"
        ) from exc
    except UnidentifiedImageError as exc:
        # Image.open swallows the parser's exception; run the parser again to learn what is wrong
        raise _diagnose_open_failure(data, fmt, scan) from exc
    except (HashingError, MemoryError):
        raise
    except Exception as exc:
        raise _classify(exc, name, scan, stage="header") from exc


def _header_size_without_pillow_guard(data: bytes, fmt: str) -> tuple[int, int] | None:
    factory = Image.OPEN.get(_PIL_FORMAT[fmt], (None, None))[0]
    if factory is None:
        return None
    try:
        im = factory(io.BytesIO(data), "")
    except Exception:
        return None
    try:
        return im.size
    finally:
        im.close()


def _diagnose_open_failure(data: bytes, fmt: str, scan: _Scan) -> HashingError:
    name = _DISPLAY_NAME[fmt]
    factory = Image.OPEN.get(_PIL_FORMAT[fmt], (None, None))[0]
    if factory is not None:
        try:
            im = factory(io.BytesIO(data), "")
        except Exception as exc:
            cause = exc.__cause__ if isinstance(exc, SyntaxError) and exc.__cause__ is not None else exc
            return _classify(cause, name, scan, stage="header")
        im.close()
    if scan.truncated:
        return TruncatedImage(f"{name} data ends before the image header is complete")
    return CorruptImage(f"{name} header is invalid: Pillow cannot identify the image")


def _classify(exc: BaseException, name: str, scan: _Scan, stage: str) -> HashingError:
    """Map a decoder exception to an error class and a human-readable problem."""
    if isinstance(exc, HashingError):
        return exc
    text = _exc_text(exc)
    lowered = text.lower()
    if isinstance(exc, (Image.DecompressionBombError, Image.DecompressionBombWarning)):
        return DecompressionBomb(f"{name} image exceeds Pillow's pixel limit: {text}")
    if isinstance(exc, MemoryError):
        return TooManyPixels(f"not enough memory to decode the {name} image")
    if isinstance(exc, ValueError) and ("too large for pngimageplugin" in lowered or "too much memory used" in lowered):
        return DecompressionBomb(f"{name} text or metadata chunk decompresses to too much data ({text})")
    truncated_words = ("truncated", "premature end", "unexpected end", "end of file", "not enough data",
                       "end of data", "insufficient data")
    if scan.truncated or isinstance(exc, EOFError) or any(w in lowered for w in truncated_words):
        return TruncatedImage(f"{name} data ends before the image is complete ({text})")
    where = "header" if stage == "header" else "image data"
    return CorruptImage(f"{name} {where} is corrupt ({text})")


_BYTES_REPR = re.compile(r"""b(['"]).*?(?<!\\)\1""")


def _exc_text(exc: BaseException) -> str:
    """Exception type and message, with byte strings elided (they would quote file content) and length capped."""
    message = _BYTES_REPR.sub("b'...'", str(exc)).strip()
    text = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
    return text if len(text) <= _PROBLEM_MAX_CHARS else text[: _PROBLEM_MAX_CHARS - 3] + "..."


def _load(im: ImageFile.ImageFile, name: str, scan: _Scan) -> None:
    try:
        im.load()
    except (HashingError, MemoryError):
        raise
    except Exception as exc:
        raise _classify(exc, name, scan, stage="data") from exc
    if scan.frame0_truncated:
        # decoders such as Pillow's GIF reader stop quietly at the end of the data; the scan knows better
        raise TruncatedImage(f"{name} data ends inside the first frame")


_HEIF_LOCK = threading.Lock()
_heif_registered = False


def _ensure_heif_opener() -> None:
    global _heif_registered
    if _heif_registered:
        return
    with _HEIF_LOCK:
        if not _heif_registered:
            from pillow_heif import register_heif_opener

            register_heif_opener()  # no options: pillow_heif's options are process-wide
            _heif_registered = True


def draft_jpeg(im: ImageFile.ImageFile, min_side: int) -> bool:
    """Ask libjpeg for a 1/2, 1/4 or 1/8 scale decode that keeps the shorter side >= min_side."""
    width, height = im.size
    if min(width, height) < 2 * min_side:
        return False
    # draft picks the largest factor f in 1, 2, 4, 8 with f * request <= size in both dimensions, so asking for
    # min_side x min_side bounds the shorter side whichever way EXIF later rotates the picture
    request = (min_side, min_side)
    try:
        im.draft("RGB", request)
    except Exception:
        return False
    return im.size != (width, height)


def _pillow_frame_count(im: Image.Image) -> int:
    # WebP, AVIF, PNG (acTL) and HEIF know their count after opening; GIF and TIFF are counted by the scans instead
    # because Pillow's n_frames walks every frame.
    n = getattr(im, "n_frames", 1)
    return n if isinstance(n, int) and n > 0 else 1


def _exif_orientation(im: Image.Image) -> int:
    """EXIF (or XMP) orientation 1-8; 1 when absent or unreadable, so broken metadata never fails a good image."""
    try:
        value = im.getexif().get(0x0112, 1)
        value = int(value[0] if isinstance(value, tuple) else value)
    except Exception:
        return 1
    return value if 1 <= value <= 8 else 1


def _apply_orientation(rgb: np.ndarray, orientation: int) -> np.ndarray:
    """Transpose H x W x C pixels as EXIF orientation says (same result as PIL.ImageOps.exif_transpose)."""
    if orientation == 2:
        rgb = rgb[:, ::-1]
    elif orientation == 3:
        rgb = rgb[::-1, ::-1]
    elif orientation == 4:
        rgb = rgb[::-1]
    elif orientation == 5:
        rgb = rgb.transpose(1, 0, 2)
    elif orientation == 6:
        rgb = rgb.transpose(1, 0, 2)[:, ::-1]
    elif orientation == 7:
        rgb = rgb[::-1, ::-1].transpose(1, 0, 2)
    elif orientation == 8:
        rgb = rgb.transpose(1, 0, 2)[::-1]
    return np.ascontiguousarray(rgb)


# --------------------------------------------------------------------------------------------------------------
# Pixel modes


def _to_rgb_array(im: Image.Image, name: str) -> np.ndarray:
    """Convert any Pillow mode to H x W x 3 uint8; alpha is dropped (see docs/decoding.md for why)."""
    mode = im.mode
    if mode == "RGB":
        rgb = np.asarray(im)
    elif mode in ("L", "1", "I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        grey = _grey_to_8bit(im)
        rgb = np.repeat(grey[:, :, None], 3, axis=2)
    elif mode in ("RGBA", "RGBX", "CMYK", "YCbCr", "LAB", "HSV", "P", "PA", "LA"):
        # RGBA/LA/PA -> RGB keeps the stored colour and ignores alpha; CMYK uses Pillow's conversion (Adobe-inverted
        # JPEG CMYK is already un-inverted by the JPEG plugin); P uses the palette colours.
        rgb = np.asarray(im.convert("RGB"))
    elif mode in ("RGBa", "La"):
        # premultiplied alpha: un-premultiply first so that "dropping alpha" keeps the true colours
        rgb = np.asarray(im.convert("RGBA" if mode == "RGBa" else "LA").convert("RGB"))
    else:
        try:
            rgb = np.asarray(im.convert("RGB"))
        except Exception as exc:
            raise UnsupportedFormat(f"{name} pixel mode {mode} cannot be converted to RGB") from exc
    rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.size == 0:
        raise CorruptImage(f"{name} decoded to an unexpected pixel layout {rgb.shape}")
    return rgb


def _grey_to_8bit(im: Image.Image) -> np.ndarray:
    """Scale single-channel images to 0-255 (Pillow's own convert clips 16-bit values instead of scaling)."""
    mode = im.mode
    if mode == "L":
        return np.asarray(im)
    if mode == "1":
        return np.asarray(im.convert("L"))
    a = np.asarray(im)
    if mode.startswith("I;16"):
        return (a.astype(np.uint16) >> 8).astype(np.uint8)  # 16-bit samples: keep the high byte, like libpng's strip_16
    if mode == "F":
        a = a.astype(np.float64)
        finite = np.isfinite(a)
        if not finite.all():
            a = np.where(finite, a, 0.0)
        lo, hi = (float(a.min()), float(a.max())) if a.size else (0.0, 0.0)
        if lo >= 0.0 and hi <= 1.0:
            return np.rint(a * 255.0).astype(np.uint8)  # normalised floats
        if lo >= 0.0 and hi <= 255.0:
            return np.rint(a).astype(np.uint8)  # 8-bit values stored as floats
        return _stretch(a, lo, hi)
    # "I": 32-bit signed integers carry no declared range
    lo, hi = (int(a.min()), int(a.max())) if a.size else (0, 0)
    if lo >= 0 and hi <= 255:
        return a.astype(np.uint8)
    if lo >= 0 and hi <= 65535:
        return (a >> 8).astype(np.uint8)
    return _stretch(a.astype(np.float64), float(lo), float(hi))


def _stretch(a: np.ndarray, lo: float, hi: float) -> np.ndarray:
    if hi <= lo:
        return np.zeros(a.shape, dtype=np.uint8)
    return np.rint((a - lo) * (255.0 / (hi - lo))).astype(np.uint8)


# --------------------------------------------------------------------------------------------------------------
# Structural scans: cheap walks over the container that bound Pillow's work and learn what Pillow does not tell us


@dataclass
class _Scan:
    size: tuple[int, int] | None = None  # declared size, when known before Pillow opens the file
    frames: int | None = None  # frame count (capped), when the scan counted it
    truncated: bool = False  # the container ends before its structure says it should
    frame0_truncated: bool = False  # the data ends inside frame 0: never hash what the decoder made of it


_JPEG_SOF_MARKERS = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def _scan_jpeg(data: bytes) -> _Scan:
    n = len(data)
    pos = 2
    segments = junk = 0
    size: tuple[int, int] | None = None
    while True:
        if pos >= n:
            return _Scan(size=size, frames=1, truncated=True)
        if data[pos] != 0xFF:
            nxt = data.find(b"\xff", pos)
            junk += (nxt if nxt >= 0 else n) - pos
            if junk > _JPEG_MAX_JUNK:
                raise CorruptImage(f"JPEG header has over {_JPEG_MAX_JUNK} stray bytes between segments")
            if nxt < 0:
                return _Scan(size=size, frames=1, truncated=True)
            pos = nxt
            continue
        if pos + 1 >= n:
            return _Scan(size=size, frames=1, truncated=True)
        marker = data[pos + 1]
        if marker == 0xFF or marker == 0x00:  # fill byte or stuffed zero: Pillow steps over these one at a time
            junk += 1
            if junk > _JPEG_MAX_JUNK:
                raise CorruptImage(f"JPEG header has over {_JPEG_MAX_JUNK} stray bytes between segments")
            pos += 1
            continue
        pos += 2
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            continue  # standalone markers
        if marker == 0xD9:
            raise CorruptImage("JPEG ends (EOI marker) before any image data")
        if pos + 2 > n:
            return _Scan(size=size, frames=1, truncated=True)
        length = data[pos] << 8 | data[pos + 1]
        if marker == 0xDA:
            break
        if marker in _JPEG_SOF_MARKERS and size is None and pos + 7 <= n:
            height, width = struct.unpack_from(">HH", data, pos + 3)
            size = (width, height)
        pos += length
        segments += 1
        if segments > _JPEG_MAX_SEGMENTS:
            raise CorruptImage(f"JPEG header has over {_JPEG_MAX_SEGMENTS} segments before the image data")
    # Scans of the first picture: 0xFFDA and 0xFFD9 cannot occur inside entropy-coded data (0xFF is stuffed), so
    # counting them is exact up to the first EOI; data after it (MPO pictures, motion-photo video) is not counted.
    eoi, later_scans = _jpeg_markers_after(data, pos)
    scans = 1 + later_scans
    if scans > _JPEG_MAX_SCANS:
        raise CorruptImage(f"JPEG has {scans} scans, over the limit of {_JPEG_MAX_SCANS} (a denial-of-service pattern)")
    return _Scan(size=size, frames=1, truncated=eoi < 0)


def _jpeg_markers_after(data: bytes, pos: int) -> tuple[int, int]:
    """(index of the first EOI marker at or after pos or -1, SOS markers between pos and it).

    The same as ``data.find(b"\\xff\\xd9", pos)`` and ``data.count(b"\\xff\\xda", pos, eoi)`` (those two
    byte searches cost 3.6 ms on a 12-megapixel JPEG, a sixth of decoding it at reduced size). The
    compiled version (hashes._kernels_numba, one branch-free pass) is used when numba is
    installed, unless NCII_DECODE_BACKEND=numpy; both give the same answer.
    """
    kernel = _markers_kernel()
    if kernel is None:
        return _jpeg_markers_after_np(data, pos)
    if pos >= len(data) - 1:
        return -1, 0
    eoi, sos = kernel(np.frombuffer(data, np.uint8), pos)
    return int(eoi), int(sos)


def _jpeg_markers_after_np(data: bytes, pos: int) -> tuple[int, int]:
    """_jpeg_markers_after in numpy: one vectorised pass over the 0xFF bytes."""
    a = np.frombuffer(data, np.uint8)
    ff = np.flatnonzero(a[pos:-1] == 0xFF) + pos
    after = a[ff + 1]
    ends = np.flatnonzero(after == 0xD9)
    if ends.size:
        return int(ff[ends[0]]), int(np.count_nonzero(after[:ends[0]] == 0xDA))
    return -1, int(np.count_nonzero(after == 0xDA))


_markers_compiled: object = None  # the compiled kernel once loaded; False when unavailable
_markers_lock = threading.Lock()


def _markers_kernel():
    """hashes._kernels_numba.jpeg_markers_nb, imported on first use; None for the numpy version."""
    global _markers_compiled
    if os.environ.get("NCII_DECODE_BACKEND", "").strip().lower() == "numpy":
        return None
    if _markers_compiled is None:
        with _markers_lock:
            if _markers_compiled is None:
                try:
                    from hashes._kernels_numba import jpeg_markers_nb

                    _markers_compiled = jpeg_markers_nb
                except Exception:  # pragma: no cover - numba missing or broken: the numpy version
                    _markers_compiled = False
    return _markers_compiled or None


def _scan_png(data: bytes) -> _Scan:
    n = len(data)
    pos = 8
    chunks = 0
    size = None
    while pos + 8 <= n:
        length, ctype = struct.unpack_from(">I4s", data, pos)
        if chunks == 0 and ctype == b"IHDR" and length >= 8 and pos + 16 <= n:
            size = struct.unpack_from(">II", data, pos + 8)
        end = pos + 12 + length
        if end > n:
            return _Scan(size=size, truncated=ctype != b"IEND")
        if ctype == b"IEND":
            return _Scan(size=size)
        pos = end
        chunks += 1
        if chunks > _PNG_MAX_CHUNKS:
            raise CorruptImage(f"PNG has over {_PNG_MAX_CHUNKS} chunks (a denial-of-service pattern)")
    # no IEND: Pillow accepts a PNG whose IEND is missing if all image data is there, so only flag it as a hint
    return _Scan(size=size, truncated=True)


def _scan_gif(data: bytes) -> _Scan:
    """Count frames (capped) and check that frame 0 is complete; Pillow's n_frames would walk the whole file."""
    n = len(data)
    if n < 13:
        return _Scan(frames=1, truncated=True, frame0_truncated=True)
    width, height, flags = struct.unpack_from("<HHB", data, 6)
    pos = 13 + (3 << ((flags & 7) + 1) if flags & 0x80 else 0)
    frames = 0
    blocks = 0

    def skip_sub_blocks(p: int) -> int:
        nonlocal blocks
        while p < n:
            length = data[p]
            blocks += 1
            if frames == 0 and blocks > _GIF_MAX_BLOCKS_BEFORE_FRAME0:
                raise CorruptImage(f"GIF has over {_GIF_MAX_BLOCKS_BEFORE_FRAME0} data blocks before its first frame")
            if length == 0:
                return p + 1
            p += 1 + length
        return -1

    while pos < n and blocks <= _GIF_MAX_BLOCKS and frames < FRAME_COUNT_CAP:
        intro = data[pos]
        if intro == 0x3B:  # trailer
            break
        if intro == 0x21:  # extension
            pos = skip_sub_blocks(pos + 2)
        elif intro == 0x2C:  # image descriptor
            if pos + 10 > n:
                pos = -1
            else:
                local = data[pos + 9]
                pos += 10 + (3 << ((local & 7) + 1) if local & 0x80 else 0)
                pos = skip_sub_blocks(pos + 1) if pos < n else -1  # +1: LZW minimum code size
            if pos >= 0:
                frames += 1
        else:
            break  # junk where a block should start: Pillow stops here too
        if pos < 0:
            return _Scan(size=(width, height), frames=max(frames, 1), truncated=True, frame0_truncated=frames == 0)
    return _Scan(size=(width, height), frames=max(frames, 1), frame0_truncated=False)


def _scan_webp(data: bytes) -> _Scan:
    n = len(data)
    riff_size = struct.unpack_from("<I", data, 4)[0] if n >= 8 else 0
    truncated = n < 8 + riff_size or n < 30
    size = None
    if n >= 30:
        chunk = data[12:16]
        if chunk == b"VP8X":
            size = (1 + int.from_bytes(data[24:27], "little"), 1 + int.from_bytes(data[27:30], "little"))
        elif chunk == b"VP8L" and data[20] == 0x2F:
            bits = int.from_bytes(data[21:25], "little")
            size = ((bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1)
        elif chunk == b"VP8 " and data[23:26] == b"\x9d\x01\x2a":
            size = (int.from_bytes(data[26:28], "little") & 0x3FFF, int.from_bytes(data[28:30], "little") & 0x3FFF)
    return _Scan(size=size, truncated=truncated, frame0_truncated=False)


def _scan_bmp(data: bytes) -> _Scan:
    if len(data) < 26:
        return _Scan(frames=1, truncated=True)
    if struct.unpack_from("<I", data, 14)[0] == 12:  # OS/2 1.x header: unsigned 16-bit sizes
        return _Scan(size=struct.unpack_from("<HH", data, 18), frames=1)
    width, height = struct.unpack_from("<ii", data, 18)
    return _Scan(size=(abs(width), abs(height)), frames=1)  # negative height means top-down rows


def _scan_tiff(data: bytes) -> _Scan:
    """Count IFDs (pages), capped, with loop detection; Pillow's n_frames would parse every IFD's tags."""
    n = len(data)
    if n < 8:
        return _Scan(frames=1, truncated=True)
    endian = "<" if data[:2] == b"II" else ">"
    big = data[2:4] in (b"+\x00", b"\x00+")
    try:
        if big:
            offset = struct.unpack_from(endian + "Q", data, 8)[0]
            count_fmt, count_size, entry_size, next_fmt = "Q", 8, 20, "Q"
        else:
            offset = struct.unpack_from(endian + "I", data, 4)[0]
            count_fmt, count_size, entry_size, next_fmt = "H", 2, 12, "I"
    except struct.error:
        return _Scan(frames=1, truncated=True)
    seen: set[int] = set()
    frames = 0
    size = None
    while offset and offset not in seen and frames < _TIFF_MAX_IFDS:
        seen.add(offset)
        try:
            count = struct.unpack_from(endian + count_fmt, data, offset)[0]
            if frames == 0:
                size = _tiff_ifd0_size(data, endian, offset + count_size, min(count, 4096), entry_size)
            next_at = offset + count_size + count * entry_size
            offset = struct.unpack_from(endian + next_fmt, data, next_at)[0]
        except (struct.error, OverflowError):
            return _Scan(size=size, frames=max(frames, 1), truncated=frames == 0)
        frames += 1
    return _Scan(size=size, frames=max(frames, 1))


def _tiff_ifd0_size(data: bytes, endian: str, first: int, count: int, entry_size: int) -> tuple[int, int] | None:
    """ImageWidth and ImageLength of the first IFD, when stored inline as SHORT, LONG or LONG8."""
    found: dict[int, int] = {}
    value_at = 12 if entry_size == 20 else 8  # tag(2) type(2) count(4, or 8 in BigTIFF) then the value field
    for i in range(count):
        at = first + i * entry_size
        tag, kind = struct.unpack_from(endian + "HH", data, at)
        if tag in (256, 257):
            fmt = {3: "H", 4: "I", 16: "Q"}.get(kind)
            if fmt is None:
                return None
            found[tag] = struct.unpack_from(endian + fmt, data, at + value_at)[0]
            if len(found) == 2:
                return found[256], found[257]
    return None


def _scan_isobmff(data: bytes) -> _Scan:
    """Walk top-level boxes (HEIF, AVIF): a box running past the end means the file was cut short."""
    n = len(data)
    pos = boxes = 0
    while pos + 8 <= n:
        size = struct.unpack_from(">I", data, pos)[0]
        if size == 1:
            if pos + 16 > n:
                return _Scan(truncated=True)
            size = struct.unpack_from(">Q", data, pos + 8)[0]
        elif size == 0:
            return _Scan()  # box extends to the end of the file
        if size < 8:
            return _Scan()  # malformed: let the decoder say so
        pos += size
        boxes += 1
        if boxes > _BMFF_MAX_BOXES:
            raise CorruptImage(f"file has over {_BMFF_MAX_BOXES} top-level boxes (a denial-of-service pattern)")
    return _Scan(truncated=pos > n)


def _check_tiff_strips(im: Image.Image, nbytes: int) -> None:
    """Strips or tiles pointing past the end of the data mean a truncated file; libtiff would only warn."""
    try:
        tags = im.tag_v2  # type: ignore[attr-defined]
        for offsets_tag, counts_tag in ((273, 279), (324, 325)):
            offsets, counts = tags.get(offsets_tag), tags.get(counts_tag)
            if offsets is None or counts is None:
                continue
            offsets = offsets if isinstance(offsets, tuple) else (offsets,)
            counts = counts if isinstance(counts, tuple) else (counts,)
            if any(o + c > nbytes for o, c in zip(offsets, counts)):
                raise TruncatedImage("TIFF data ends before the image strips it declares")
    except HashingError:
        raise
    except Exception:
        return


_SCANNERS = {
    "jpeg": _scan_jpeg,
    "png": _scan_png,
    "gif": _scan_gif,
    "webp": _scan_webp,
    "bmp": _scan_bmp,
    "tiff": _scan_tiff,
    "heif": _scan_isobmff,
    "avif": _scan_isobmff,
}
