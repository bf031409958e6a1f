"""The imagehash family (pHash, dHash, wHash, colour hash, crop-resistant hash) as hex strings.

Each function takes a Pillow image and returns what ``imagehash`` returns for that image, as
lower-case hex. The caller (``hashes.compute``) hands in a reduced picture (pHash and dHash get a
grey copy box-reduced to about 128 px, since they resample to 32x32 and 9x8 anyway; wHash and the
colour hash a 128-px thumbnail), which is what keeps them cheap. Our values therefore equal
imagehash's on that reduced picture, and differ by a few bits at most from imagehash run on a
full-size decode.
"""

from __future__ import annotations

import imagehash
import numpy as np
from PIL import Image

#: Side of the thumbnail the slow hashes (wHash, colour hash) are computed on. Both summarise
#: coarse structure (an 8x8 wavelet band, colour fractions), so a 128-px thumbnail gives the
#: same value as the full picture in almost every case at a fraction of the cost.
THUMBNAIL_SIDE = 128


def _hex(h: imagehash.ImageHash) -> str:
    return str(h)


def _bits_hex(bits: np.ndarray) -> str:
    # imagehash's hex form: the bits in row order, the first one most significant.
    return np.packbits(bits.ravel()).tobytes().hex()


def phash(image: Image.Image) -> str:
    """64-bit imagehash pHash (DCT of a 32x32 grey resample).

    imagehash.phash's steps, without its per-call wrapping (ImageHash object, a Python loop per
    bit to print it): equal to ``str(imagehash.phash(image))``, tested on random and real pictures.
    """
    import scipy.fftpack

    pixels = np.asarray(_grey(image).resize((32, 32), Image.Resampling.LANCZOS))
    dct = scipy.fftpack.dct(scipy.fftpack.dct(pixels, axis=0), axis=1)
    low = dct[:8, :8]
    return _bits_hex(low > np.median(low))


def dhash(image: Image.Image) -> str:
    """64-bit imagehash dHash (signs of horizontal gradients of a 9x8 grey resample); equal to
    ``str(imagehash.dhash(image))``."""
    pixels = np.asarray(_grey(image).resize((9, 8), Image.Resampling.LANCZOS))
    return _bits_hex(pixels[:, 1:] > pixels[:, :-1])


def _grey(image: Image.Image) -> Image.Image:
    # convert("L") copies even an "L" picture; resize() makes its own copy anyway.
    return image if image.mode == "L" else image.convert("L")


def whash(image: Image.Image) -> str:
    """64-bit imagehash wHash (Haar wavelet), computed on a 64x64 grey resample."""
    return _hex(imagehash.whash(image, image_scale=64))


def colorhash(image: Image.Image) -> str:
    """42-bit imagehash colour hash (fractions of black, grey and 12 hue/saturation bins)."""
    return _hex(imagehash.colorhash(image, binbits=3))


def crop_resistant(image: Image.Image, *, max_segments: int = 32) -> list[str]:
    """imagehash's crop-resistant hash: one 64-bit dHash per segmented region of the picture.

    Slow (segmentation runs in Python): not part of the default set. Segment order follows
    imagehash (largest first); at most `max_segments` are kept so a hash file stays small.
    """
    multi = imagehash.crop_resistant_hash(image, imagehash.dhash, limit_segments=max_segments)
    return [str(h) for h in multi.segment_hashes]


def thumbnail(image: Image.Image, side: int = THUMBNAIL_SIDE) -> Image.Image:
    """A copy no larger than side x side (aspect kept), made with a fast box reduction."""
    w, h = image.size
    factor = max(1, min(w, h) // side)
    small = image.reduce(factor) if factor > 1 else image
    if max(small.size) > side:
        small = small.copy()
        small.thumbnail((side, side), Image.Resampling.BILINEAR)
    return small


def grey_array(image: Image.Image) -> np.ndarray:
    """The picture as a 2-D uint8 array of Pillow's 'L' conversion."""
    return np.asarray(image.convert("L"))
