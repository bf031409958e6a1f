"""Synthetic, abstract demo pictures (coloured fields and shapes; never people) and altered copies.

They stand in for a victim's photos in the demo and in tests: detailed enough for PDQ to give
high-quality hashes, different enough from each other never to match.
"""

from __future__ import annotations

import io
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageOps


def picture(seed: int, size: tuple[int, int] = (800, 600)) -> Image.Image:
    """A deterministic abstract picture: smooth colour fields, shapes and fine grain (a new copy each call)."""
    return _picture(seed, tuple(size)).copy()


@lru_cache(maxsize=64)
def _picture(seed: int, size: tuple[int, int]) -> Image.Image:
    rng = np.random.default_rng(seed)
    w, h = size
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    rgb = np.zeros((h, w, 3), np.float32)
    for c in range(3):
        field = np.zeros((h, w), np.float32)
        for _ in range(6):
            fx, fy = rng.uniform(0.5, 6, 2) * 2 * np.pi / np.array([w, h])
            phase = rng.uniform(0, 2 * np.pi)
            field += rng.uniform(0.3, 1.0) * np.sin(fx * x + fy * y + phase)
        rgb[..., c] = 128 + 45 * field / 3
    img = Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(img)
    for _ in range(int(rng.integers(8, 16))):
        x0, y0 = rng.integers(0, w), rng.integers(0, h)
        rw, rh = rng.integers(w // 12, w // 3), rng.integers(h // 12, h // 3)
        colour = tuple(int(v) for v in rng.integers(0, 256, 3))
        box = [int(x0 - rw), int(y0 - rh), int(x0 + rw), int(y0 + rh)]
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)(box, fill=colour)
    img = img.filter(ImageFilter.GaussianBlur(2))
    grain = rng.integers(-8, 9, (h, w, 3), dtype=np.int16)
    return Image.fromarray(np.clip(np.asarray(img, np.int16) + grain, 0, 255).astype(np.uint8))


def jpeg_bytes(img: Image.Image, quality: int = 88) -> bytes:
    """The picture as JPEG bytes."""
    buf = io.BytesIO()
    img.convert("RGB").save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def png_bytes(img: Image.Image) -> bytes:
    """The picture as PNG bytes."""
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def recompressed(img: Image.Image) -> Image.Image:
    """Downscaled to 60% and saved at JPEG quality 50, as a repost would be."""
    small = img.resize((img.width * 3 // 5, img.height * 3 // 5), Image.Resampling.BILINEAR)
    return Image.open(io.BytesIO(jpeg_bytes(small, 50))).convert("RGB")


def mirrored(img: Image.Image) -> Image.Image:
    """Flipped left to right."""
    return ImageOps.mirror(img)


def cropped(img: Image.Image, fraction: float = 0.12) -> Image.Image:
    """`fraction` of each dimension cut away, off-centre (more from the left and top)."""
    dx, dy = int(img.width * fraction), int(img.height * fraction)
    return img.crop((dx * 2 // 3, dy * 2 // 3, img.width - dx // 3, img.height - dy // 3))


def captioned(img: Image.Image, text: str = "look who it is") -> Image.Image:
    """A caption bar drawn across the lower part of the picture."""
    out = img.copy()
    draw = ImageDraw.Draw(out)
    bar = (0, out.height * 4 // 5, out.width, out.height * 4 // 5 + out.height // 10)
    draw.rectangle(bar, fill=(0, 0, 0))
    draw.text((bar[0] + 12, bar[1] + 8), text, fill=(255, 255, 255))
    return out


def phone_screenshot(img: Image.Image) -> Image.Image:
    """The picture shown inside a phone app: status bar, header text above, comments below."""
    canvas = Image.new("RGB", (540, 1170), (250, 250, 250))
    draw = ImageDraw.Draw(canvas)
    draw.rectangle((0, 0, 540, 40), fill=(20, 20, 20))
    draw.text((16, 12), "9:41", fill=(255, 255, 255))
    draw.text((16, 70), "someaccount  ·  2h", fill=(30, 30, 30))
    pic = img.resize((540, 540 * img.height // img.width), Image.Resampling.BILINEAR)
    top = 120
    canvas.paste(pic, (0, top))
    y = top + pic.height + 20
    for line in ("1,204 likes", "someaccount you know who this is", "View all 88 comments"):
        draw.text((16, y), line, fill=(40, 40, 40))
        y += 28
    return canvas
