"""Deterministic transforms a reposted picture goes through, for benchmarks/robustness.py.

Every transform takes the original as an RGB uint8 array plus a seeded ``numpy.random.Generator``
and returns the bytes of the file a platform would serve (JPEG, PNG or WebP), so that the
benchmark hashes it exactly as the monitor would: decode, then hash. Nothing here is used by the
hashing code itself.

Pictures drawn on top (text, emoji) use only Pillow's built-in font and plain shapes, so the
benchmark needs no font files or other assets.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Callable

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageFont, ImageOps

Transform = Callable[[np.ndarray, np.random.Generator], bytes]


@dataclass(frozen=True)
class Spec:
    """One named transform: its group (a row of the summary) and whether --quick keeps it."""

    name: str
    group: str
    fn: Transform
    quick: bool = True


# ---------------------------------------------------------------- encoding helpers

def encode(img: Image.Image | np.ndarray, fmt: str = "jpeg", quality: int = 90) -> bytes:
    """The file bytes of a picture saved as a platform would (JPEG 4:2:0, WebP lossy, PNG)."""
    if isinstance(img, np.ndarray):
        img = Image.fromarray(img)
    img = img.convert("RGB")
    buf = io.BytesIO()
    if fmt == "jpeg":
        img.save(buf, "JPEG", quality=quality, subsampling=2 if quality < 90 else 0)
    elif fmt == "webp":
        img.save(buf, "WEBP", quality=quality, method=4)
    elif fmt == "png":
        img.save(buf, "PNG", compress_level=1)
    else:
        raise ValueError(fmt)
    return buf.getvalue()


def decode(data: bytes) -> np.ndarray:
    """RGB array of encoded bytes (for chaining transforms)."""
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def _img(rgb: np.ndarray) -> Image.Image:
    return Image.fromarray(rgb).convert("RGB")


def _resize_long(img: Image.Image, long_side: int) -> Image.Image:
    w, h = img.size
    s = long_side / max(w, h)
    return img.resize((max(1, round(w * s)), max(1, round(h * s))), Image.Resampling.LANCZOS)


def _fit_width(img: Image.Image, width: int) -> Image.Image:
    w, h = img.size
    return img.resize((width, max(1, round(h * width / w))), Image.Resampling.BILINEAR)


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=max(6, int(size)))


_WORDS = ("so", "this", "is", "what", "she", "looks", "like", "lol", "omg", "new", "pic", "dm", "me", "for",
          "more", "guess", "who", "found", "this", "haha", "wow", "real", "yes", "no", "send", "link", "share")


def _sentence(rng: np.random.Generator, words: int) -> str:
    return " ".join(rng.choice(_WORDS, size=words))


# ---------------------------------------------------------------- geometric

def resize(long_side: int, fmt: str = "jpeg", quality: int = 90) -> Transform:
    def fn(rgb: np.ndarray, rng: np.random.Generator) -> bytes:
        return encode(_resize_long(_img(rgb), long_side), fmt, quality)
    return fn


def scale(factor: float) -> Transform:
    def fn(rgb: np.ndarray, rng: np.random.Generator) -> bytes:
        img = _img(rgb)
        w, h = img.size
        return encode(img.resize((round(w * factor), round(h * factor)), Image.Resampling.BICUBIC), "jpeg", 90)
    return fn


def recompress(fmt: str, quality: int) -> Transform:
    def fn(rgb: np.ndarray, rng: np.random.Generator) -> bytes:
        return encode(rgb, fmt, quality)
    return fn


#: Where a crop keeps the picture: (x, y) of the kept window, 0 = left/top, 1 = right/bottom.
ANCHORS: dict[str, tuple[float, float]] = {
    "c": (0.5, 0.5), "tl": (0.0, 0.0), "tr": (1.0, 0.0), "bl": (0.0, 1.0), "br": (1.0, 1.0),
    "t": (0.5, 0.0), "b": (0.5, 1.0), "l": (0.0, 0.5), "r": (1.0, 0.5),
}


def crop_box(w: int, h: int, fraction: float, anchor: str) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) of the window that removes `fraction` of each dimension."""
    ax, ay = ANCHORS[anchor]
    cw, ch = round(w * (1 - fraction)), round(h * (1 - fraction))
    x0, y0 = round((w - cw) * ax), round((h - ch) * ay)
    return x0, y0, x0 + cw, y0 + ch


def crop(fraction: float, anchor: str | None = None, quality: int = 90) -> Transform:
    """Remove `fraction` of each dimension keeping `anchor`; anchor None = an off-centre anchor per photo."""
    off_centre = [a for a in ANCHORS if a != "c"]

    def fn(rgb: np.ndarray, rng: np.random.Generator) -> bytes:
        a = anchor if anchor is not None else off_centre[int(rng.integers(len(off_centre)))]
        img = _img(rgb)
        return encode(img.crop(crop_box(*img.size, fraction, a)), "jpeg", quality)
    return fn


def cut(fraction: float, side: str | None = None) -> Transform:
    """Remove a strip of `fraction` along one side only (side None: a side per photo)."""
    def fn(rgb: np.ndarray, rng: np.random.Generator) -> bytes:
        sd = side if side is not None else "tblr"[int(rng.integers(4))]
        img = _img(rgb)
        w, h = img.size
        box = {"t": (0, round(h * fraction), w, h), "b": (0, 0, w, h - round(h * fraction)),
               "l": (round(w * fraction), 0, w, h), "r": (0, 0, w - round(w * fraction), h)}[sd]
        return encode(img.crop(box), "jpeg", 90)
    return fn


def crop_random(max_fraction: float) -> Transform:
    """Each side loses its own random share (0..max_fraction) of the dimension: an off-grid crop."""
    def fn(rgb: np.ndarray, rng: np.random.Generator) -> bytes:
        img = _img(rgb)
        w, h = img.size
        l, r, t, b = rng.uniform(0, max_fraction, 4)
        return encode(img.crop((round(l * w), round(t * h), round(w - r * w), round(h - b * h))), "jpeg", 90)
    return fn


def crop_aspect(aspect: float) -> Transform:
    """Centred crop to width/height = aspect (a square for Instagram, 4:5 portrait...)."""
    def fn(rgb: np.ndarray, rng: np.random.Generator) -> bytes:
        img = _img(rgb)
        w, h = img.size
        if w / h > aspect:
            cw, ch = round(h * aspect), h
        else:
            cw, ch = w, round(w / aspect)
        x0, y0 = (w - cw) // 2, (h - ch) // 2
        return encode(img.crop((x0, y0, x0 + cw, y0 + ch)), "jpeg", 90)
    return fn


def mirror() -> Transform:
    def fn(rgb: np.ndarray, rng: np.random.Generator) -> bytes:
        return encode(rgb[:, ::-1], "jpeg", 90)
    return fn


def rotate90(k: int) -> Transform:
    def fn(rgb: np.ndarray, rng: np.random.Generator) -> bytes:
        return encode(np.rot90(rgb, k), "jpeg", 90)
    return fn


def rotate_small(degrees: float, crop_corners: bool) -> Transform:
    """Rotate by a few degrees (sign chosen per photo); either fill the corners white or crop them off."""
    def fn(rgb: np.ndarray, rng: np.random.Generator) -> bytes:
        angle = degrees if rng.random() < 0.5 else -degrees
        img = _img(rgb)
        w, h = img.size
        if not crop_corners:
            out = img.rotate(angle, Image.Resampling.BICUBIC, expand=True, fillcolor=(255, 255, 255))
        else:
            out = img.rotate(angle, Image.Resampling.BICUBIC, expand=False)
            # largest axis-aligned rectangle inside the rotated picture, same aspect
            a = np.radians(abs(angle))
            f = 1.0 / (np.cos(a) + np.sin(a) * max(w, h) / min(w, h))
            cw, ch = int(w * f), int(h * f)
            x0, y0 = (w - cw) // 2, (h - ch) // 2
            out = out.crop((x0, y0, x0 + cw, y0 + ch))
        return encode(out, "jpeg", 90)
    return fn


# ---------------------------------------------------------------- borders and padding

def border(fraction: float, colour: tuple[int, int, int]) -> Transform:
    """A solid frame `fraction` of the shorter side wide on every side."""
    def fn(rgb: np.ndarray, rng: np.random.Generator) -> bytes:
        img = _img(rgb)
        pad = max(1, round(min(img.size) * fraction))
        return encode(ImageOps.expand(img, pad, fill=colour), "jpeg", 90)
    return fn


def _canvas_fit(img: Image.Image, aspect: float, background: Image.Image | tuple[int, int, int]) -> Image.Image:
    """The picture fitted (scaled down, centred) into a canvas of width/height = aspect."""
    w, h = img.size
    if w / h > aspect:  # wider than the canvas: bands above and below
        cw, ch = w, round(w / aspect)
    else:
        cw, ch = round(h * aspect), h
    if isinstance(background, tuple):
        canvas = Image.new("RGB", (cw, ch), background)
    else:
        canvas = background.resize((cw, ch))
    canvas.paste(img, ((cw - w) // 2, (ch - h) // 2))
    return canvas


def letterbox(aspect: float, colour: tuple[int, int, int], long_side: int = 1080) -> Transform:
    """Padding to a fixed aspect (1:1 square, 9:16 story) with a solid colour, then scaled to long_side."""
    def fn(rgb: np.ndarray, rng: np.random.Generator) -> bytes:
        canvas = _canvas_fit(_img(rgb), aspect, colour)
        return encode(_resize_long(canvas, min(long_side, max(canvas.size))), "jpeg", 85)
    return fn


def blur_pad(aspect: float, long_side: int = 1080) -> Transform:
    """Padding filled with an enlarged, heavily blurred copy of the picture (what social apps do)."""
    def fn(rgb: np.ndarray, rng: np.random.Generator) -> bytes:
        img = _img(rgb)
        w, h = img.size
        if w / h > aspect:
            cw, ch = w, round(w / aspect)
        else:
            cw, ch = round(h * aspect), h
        # cover the canvas with the picture scaled up, blur it hard, darken a little
        s = max(cw / w, ch / h)
        bg = img.resize((round(w * s), round(h * s)), Image.Resampling.BILINEAR)
        left, top = (bg.width - cw) // 2, (bg.height - ch) // 2
        bg = bg.crop((left, top, left + cw, top + ch)).filter(ImageFilter.GaussianBlur(max(cw, ch) / 40))
        bg = ImageEnhance.Brightness(bg).enhance(0.8)
        canvas = _canvas_fit(img, aspect, bg)
        return encode(_resize_long(canvas, min(long_side, max(canvas.size))), "jpeg", 85)
    return fn


# ---------------------------------------------------------------- screenshots

def _status_bar(draw: ImageDraw.ImageDraw, width: int, height: int, fg: tuple[int, int, int], u: float) -> None:
    draw.text((round(24 * u), round(height * 0.25)), "9:41", fill=fg, font=_font(22 * u))
    x = width - round(24 * u)
    draw.rectangle((x - round(40 * u), round(height * 0.3), x, round(height * 0.7)), outline=fg, width=max(1, round(2 * u)))
    draw.rectangle((x - round(38 * u), round(height * 0.35), x - round(12 * u), round(height * 0.65)), fill=fg)
    for i in range(4):  # signal bars
        bx = x - round((70 + 10 * (3 - i)) * u)
        draw.rectangle((bx, round(height * (0.65 - 0.08 * i)), bx + round(6 * u), round(height * 0.7)), fill=fg)


def phone_screenshot(dark: bool = False, fmt: str = "png", quality: int = 90, scale_to: float = 0.5,
                     app_bar: bool = False) -> Transform:
    """The picture in a social app's feed on a 1080x2340 phone, screenshot, scaled by `scale_to`.

    Status bar, an app header (name, avatar, a post header with a user name), the picture scaled to
    the screen's width, action icons, a like count, a caption and comments below; optionally a
    coloured app bar. Text is Pillow's default font.
    """
    def fn(rgb: np.ndarray, rng: np.random.Generator) -> bytes:
        W, H = 1080, 2340
        u = 1.0
        bg = (0, 0, 0) if dark else (255, 255, 255)
        fg = (245, 245, 245) if dark else (20, 20, 20)
        grey = (150, 150, 150)
        canvas = Image.new("RGB", (W, H), bg)
        d = ImageDraw.Draw(canvas)
        y = 0
        bar_h = 90
        if app_bar:
            d.rectangle((0, 0, W, bar_h + 130), fill=(18, 140, 126))
            _status_bar(d, W, bar_h, (255, 255, 255), u)
            d.text((40, bar_h + 35), "Photos", fill=(255, 255, 255), font=_font(48))
        else:
            _status_bar(d, W, bar_h, fg, u)
            d.text((40, bar_h + 35), "Instapix", fill=fg, font=_font(52))
            for i in range(3):
                cx = W - 60 - i * 90
                d.ellipse((cx - 28, bar_h + 40, cx + 28, bar_h + 96), outline=fg, width=4)
        y = bar_h + 130
        # post header: avatar + name + "..."
        y += 20
        av = (int(rng.integers(60, 220)), int(rng.integers(60, 220)), int(rng.integers(60, 220)))
        d.ellipse((30, y, 110, y + 80), fill=av)
        d.text((130, y + 12), f"user_{int(rng.integers(100, 9999))}", fill=fg, font=_font(34))
        d.text((130, y + 50), "Somewhere", fill=grey, font=_font(26))
        d.text((W - 80, y + 15), "...", fill=fg, font=_font(44))
        y += 100
        pic = _fit_width(_img(rgb), W)
        if pic.height > H - y - 300:  # very tall pictures: crop to 4:5 as feeds do
            pic = pic.crop((0, 0, W, round(W * 1.25)))
        canvas.paste(pic, (0, y))
        y += pic.height + 25
        # action icons
        for i, x in enumerate((40, 130, 220)):
            if i == 0:
                d.ellipse((x, y, x + 30, y + 30), outline=fg, width=4)
                d.ellipse((x + 22, y, x + 52, y + 30), outline=fg, width=4)
            else:
                d.rectangle((x, y, x + 50, y + 45), outline=fg, width=4)
        d.polygon([(W - 80, y), (W - 40, y), (W - 40, y + 50), (W - 60, y + 35), (W - 80, y + 50)], outline=fg)
        y += 80
        d.text((40, y), f"{int(rng.integers(12, 9000))} likes", fill=fg, font=_font(32))
        y += 50
        while y < H - 150:
            d.text((40, y), f"user_{int(rng.integers(10, 999))} " + _sentence(rng, int(rng.integers(3, 9))),
                   fill=fg if rng.random() < 0.5 else grey, font=_font(30))
            y += 48
        # bottom navigation bar
        d.line((0, H - 140, W, H - 140), fill=grey, width=2)
        for i in range(5):
            cx = 108 + i * 216
            d.rectangle((cx - 28, H - 100, cx + 28, H - 44), outline=fg, width=4)
        out = canvas.resize((round(W * scale_to), round(H * scale_to)), Image.Resampling.LANCZOS)
        return encode(out, fmt, quality)
    return fn


def chat_screenshot(fmt: str = "png", quality: int = 90, scale_to: float = 0.5) -> Transform:
    """The picture as a message in a chat: a rounded bubble with a margin, a timestamp drawn over its corner."""
    def fn(rgb: np.ndarray, rng: np.random.Generator) -> bytes:
        W, H = 1080, 2340
        bg = (229, 221, 213)
        bubble = (220, 248, 198)
        canvas = Image.new("RGB", (W, H), bg)
        d = ImageDraw.Draw(canvas)
        d.rectangle((0, 0, W, 230), fill=(7, 94, 84))
        _status_bar(d, W, 90, (255, 255, 255), 1.0)
        d.ellipse((90, 110, 190, 210), fill=(200, 200, 200))
        d.text((210, 130), "Alex", fill=(255, 255, 255), font=_font(44))
        y = 270
        # earlier text messages
        for _ in range(int(rng.integers(1, 3))):
            txt = _sentence(rng, int(rng.integers(3, 7)))
            tw = min(W - 300, 30 + 18 * len(txt))
            left = bool(rng.random() < 0.5)
            x0 = 30 if left else W - 30 - tw
            d.rounded_rectangle((x0, y, x0 + tw, y + 90), 20, fill=(255, 255, 255) if left else bubble)
            d.text((x0 + 20, y + 25), txt, fill=(30, 30, 30), font=_font(32))
            y += 120
        # the picture message: 70% of the screen width
        pw = round(W * 0.7)
        pic = _fit_width(_img(rgb), pw)
        if pic.height > 1100:
            pic = pic.crop((0, 0, pw, 1100))
        margin = 8
        x0 = W - 30 - pw - 2 * margin
        d.rounded_rectangle((x0, y, x0 + pw + 2 * margin, y + pic.height + 2 * margin), 24, fill=bubble)
        mask = Image.new("L", pic.size, 0)
        ImageDraw.Draw(mask).rounded_rectangle((0, 0, pic.width - 1, pic.height - 1), 18, fill=255)
        canvas.paste(pic, (x0 + margin, y + margin), mask)
        # timestamp drawn over the picture's bottom-right corner, as chat apps do
        tx, ty = x0 + margin + pw - 110, y + margin + pic.height - 44
        d.text((tx, ty), "21:07", fill=(255, 255, 255), font=_font(28))
        y += pic.height + 2 * margin + 30
        while y < H - 250:
            txt = _sentence(rng, int(rng.integers(2, 8)))
            tw = min(W - 300, 30 + 18 * len(txt))
            d.rounded_rectangle((30, y, 30 + tw, y + 90), 20, fill=(255, 255, 255))
            d.text((50, y + 25), txt, fill=(30, 30, 30), font=_font(32))
            y += 120
        # message input bar
        d.rounded_rectangle((20, H - 150, W - 140, H - 50), 50, fill=(255, 255, 255))
        d.ellipse((W - 125, H - 150, W - 25, H - 50), fill=(7, 94, 84))
        out = canvas.resize((round(W * scale_to), round(H * scale_to)), Image.Resampling.LANCZOS)
        return encode(out, fmt, quality)
    return fn


def collage(rgb_other: Callable[[np.random.Generator], np.ndarray]) -> Transform:
    """The picture beside another picture, 2 cells with a white gutter (a before/after collage)."""
    def fn(rgb: np.ndarray, rng: np.random.Generator) -> bytes:
        a = _img(rgb)
        b = _img(rgb_other(rng))
        h = 400
        a = a.resize((round(a.width * h / a.height), h), Image.Resampling.BILINEAR)
        b = b.resize((round(b.width * h / b.height), h), Image.Resampling.BILINEAR)
        gap = 12
        canvas = Image.new("RGB", (a.width + b.width + 3 * gap, h + 2 * gap), (255, 255, 255))
        first_left = bool(rng.random() < 0.5)
        canvas.paste(a if first_left else b, (gap, gap))
        canvas.paste(b if first_left else a, (2 * gap + (a if first_left else b).width, gap))
        return encode(canvas, "jpeg", 88)
    return fn


# ---------------------------------------------------------------- colour and filters

def grayscale() -> Transform:
    def fn(rgb: np.ndarray, rng: np.random.Generator) -> bytes:
        return encode(_img(rgb).convert("L").convert("RGB"), "jpeg", 90)
    return fn


def enhance(kind: str, factor: float) -> Transform:
    cls = {"brightness": ImageEnhance.Brightness, "contrast": ImageEnhance.Contrast,
           "saturation": ImageEnhance.Color, "sharpness": ImageEnhance.Sharpness}[kind]

    def fn(rgb: np.ndarray, rng: np.random.Generator) -> bytes:
        return encode(cls(_img(rgb)).enhance(factor), "jpeg", 90)
    return fn


def filter_warm() -> Transform:
    """An Instagram-like filter: warmer, faded blacks, a vignette."""
    def fn(rgb: np.ndarray, rng: np.random.Generator) -> bytes:
        x = rgb.astype(np.float32)
        x = x * np.array([1.08, 1.0, 0.88], np.float32) + np.array([12, 6, 0], np.float32)
        x = 30 + x * (225 / 255)
        h, w = rgb.shape[:2]
        yy, xx = np.mgrid[0:h, 0:w]
        r = np.hypot((xx - w / 2) / (w / 2), (yy - h / 2) / (h / 2))
        x *= (1 - 0.25 * np.clip(r - 0.5, 0, None) ** 2)[..., None]
        return encode(np.clip(x, 0, 255).astype(np.uint8), "jpeg", 90)
    return fn


def blur(radius: float) -> Transform:
    def fn(rgb: np.ndarray, rng: np.random.Generator) -> bytes:
        return encode(_img(rgb).filter(ImageFilter.GaussianBlur(radius)), "jpeg", 90)
    return fn


def noise(sigma: float) -> Transform:
    def fn(rgb: np.ndarray, rng: np.random.Generator) -> bytes:
        x = rgb.astype(np.float32) + rng.normal(0, sigma, rgb.shape).astype(np.float32)
        return encode(np.clip(x, 0, 255).astype(np.uint8), "jpeg", 90)
    return fn


# ---------------------------------------------------------------- overlays

def _outlined_text(d: ImageDraw.ImageDraw, xy: tuple[int, int], text: str, size: int,
                   fill: tuple = (255, 255, 255), outline: tuple = (0, 0, 0)) -> None:
    d.text(xy, text, font=_font(size), fill=fill, stroke_width=max(1, size // 12), stroke_fill=outline)


def caption(position: str = "bottom") -> Transform:
    """Meme-style caption: one or two lines of large white text with a black outline across the picture."""
    def fn(rgb: np.ndarray, rng: np.random.Generator) -> bytes:
        img = _img(rgb)
        d = ImageDraw.Draw(img)
        w, h = img.size
        size = max(10, round(h * 0.08))
        lines = [_sentence(rng, int(rng.integers(3, 6))).upper() for _ in range(int(rng.integers(1, 3)))]
        pos = position if position != "random" else ("top" if rng.random() < 0.5 else "bottom")
        for i, line in enumerate(lines):
            font = _font(size)
            tw = d.textlength(line, font=font)
            while tw > w * 0.95 and size > 10:
                size = int(size * 0.9)
                font = _font(size)
                tw = d.textlength(line, font=font)
            y = round(h * 0.04) + i * round(size * 1.2) if pos == "top" else h - round(h * 0.04) - (len(lines) - i) * round(size * 1.2)
            _outlined_text(d, (round((w - tw) / 2), y), line, size)
        return encode(img, "jpeg", 88)
    return fn


def caption_bar() -> Transform:
    """A story-style caption: a translucent black band across the middle third with white text."""
    def fn(rgb: np.ndarray, rng: np.random.Generator) -> bytes:
        img = _img(rgb).convert("RGBA")
        w, h = img.size
        layer = Image.new("RGBA", img.size, (0, 0, 0, 0))
        d = ImageDraw.Draw(layer)
        y = round(h * rng.uniform(0.55, 0.75))
        bh = round(h * 0.1)
        d.rectangle((0, y, w, y + bh), fill=(0, 0, 0, 150))
        text = _sentence(rng, int(rng.integers(3, 6)))
        font = _font(round(bh * 0.55))
        tw = d.textlength(text, font=font)
        d.text((round((w - tw) / 2), y + round(bh * 0.2)), text, font=font, fill=(255, 255, 255, 255))
        return encode(Image.alpha_composite(img, layer), "jpeg", 88)
    return fn


def watermark() -> Transform:
    """A semi-transparent site name in a corner and a faint repeated diagonal mark."""
    def fn(rgb: np.ndarray, rng: np.random.Generator) -> bytes:
        img = _img(rgb).convert("RGBA")
        w, h = img.size
        layer = Image.new("RGBA", img.size, (0, 0, 0, 0))
        d = ImageDraw.Draw(layer)
        size = max(10, round(h * 0.06))
        d.text((round(w * 0.03), round(h - size * 1.5)), "leakzone.example", font=_font(size), fill=(255, 255, 255, 170))
        tile = Image.new("RGBA", (w, h), (0, 0, 0, 0))
        td = ImageDraw.Draw(tile)
        for yy in range(0, h, max(20, h // 5)):
            td.text((round(w * 0.1), yy), "@leakzone   @leakzone", font=_font(size), fill=(255, 255, 255, 60))
        tile = tile.rotate(30, expand=False)
        out = Image.alpha_composite(Image.alpha_composite(img, tile), layer)
        return encode(out, "jpeg", 88)
    return fn


def emoji(count: int, size_fraction: float) -> Transform:
    """`count` emoji-like stickers (filled circles with eyes/mouth, hearts, stars) over the picture."""
    def fn(rgb: np.ndarray, rng: np.random.Generator) -> bytes:
        img = _img(rgb)
        d = ImageDraw.Draw(img)
        w, h = img.size
        s = round(min(w, h) * size_fraction)
        for _ in range(count):
            x = int(rng.integers(0, max(1, w - s)))
            y = int(rng.integers(0, max(1, h - s)))
            kind = int(rng.integers(3))
            if kind == 0:  # smiley
                d.ellipse((x, y, x + s, y + s), fill=(255, 204, 51), outline=(200, 140, 0), width=max(1, s // 20))
                e = s // 8
                d.ellipse((x + s * 0.3 - e, y + s * 0.35 - e, x + s * 0.3 + e, y + s * 0.35 + e), fill=(60, 40, 20))
                d.ellipse((x + s * 0.7 - e, y + s * 0.35 - e, x + s * 0.7 + e, y + s * 0.35 + e), fill=(60, 40, 20))
                d.arc((x + s * 0.25, y + s * 0.4, x + s * 0.75, y + s * 0.8), 20, 160, fill=(60, 40, 20), width=max(1, s // 14))
            elif kind == 1:  # heart
                r = s / 4
                d.ellipse((x, y, x + 2 * r, y + 2 * r), fill=(230, 30, 60))
                d.ellipse((x + 2 * r, y, x + 4 * r, y + 2 * r), fill=(230, 30, 60))
                d.polygon([(x, y + r * 1.2), (x + 4 * r, y + r * 1.2), (x + 2 * r, y + s)], fill=(230, 30, 60))
            else:  # star
                cx, cy = x + s / 2, y + s / 2
                pts = []
                for k in range(10):
                    rad = s / 2 if k % 2 == 0 else s / 5
                    a = np.pi / 2 + k * np.pi / 5
                    pts.append((cx + rad * np.cos(a), cy - rad * np.sin(a)))
                d.polygon(pts, fill=(255, 215, 0), outline=(180, 120, 0))
        return encode(img, "jpeg", 88)
    return fn


def censor_bar() -> Transform:
    """A solid black bar over a band of the picture (a 'censored' repost)."""
    def fn(rgb: np.ndarray, rng: np.random.Generator) -> bytes:
        img = _img(rgb)
        w, h = img.size
        d = ImageDraw.Draw(img)
        y = round(h * rng.uniform(0.3, 0.6))
        d.rectangle((round(w * 0.2), y, round(w * 0.8), y + round(h * 0.08)), fill=(0, 0, 0))
        return encode(img, "jpeg", 88)
    return fn


# ---------------------------------------------------------------- combinations

def chain(*steps: Transform) -> Transform:
    """Apply transforms in turn (each step's output decoded as the next one's input)."""
    def fn(rgb: np.ndarray, rng: np.random.Generator) -> bytes:
        data = b""
        cur = rgb
        for step in steps:
            data = step(cur, rng)
            cur = decode(data)
        return data
    return fn


def catalogue(other_picture: Callable[[np.random.Generator], np.ndarray]) -> list[Spec]:
    """Every transform the benchmark runs; quick=False ones are left out by --quick."""
    S = Spec
    specs = [
        # resize and recompression
        S("resize_320", "resize", resize(320)),
        S("resize_640", "resize", resize(640), quick=False),
        S("scale_0.7", "resize", scale(0.7), quick=False),
        S("upscale_1.5", "resize", scale(1.5), quick=False),
        S("jpeg_30", "recompress", recompress("jpeg", 30)),
        S("jpeg_50", "recompress", recompress("jpeg", 50), quick=False),
        S("jpeg_70", "recompress", recompress("jpeg", 70), quick=False),
        S("jpeg_90", "recompress", recompress("jpeg", 90), quick=False),
        S("webp_30", "recompress", recompress("webp", 30)),
        S("webp_60", "recompress", recompress("webp", 60), quick=False),
        S("webp_90", "recompress", recompress("webp", 90), quick=False),
        # colour
        S("grayscale", "colour", grayscale()),
        S("brightness_1.3", "colour", enhance("brightness", 1.3)),
        S("brightness_0.7", "colour", enhance("brightness", 0.7), quick=False),
        S("contrast_1.4", "colour", enhance("contrast", 1.4), quick=False),
        S("contrast_0.6", "colour", enhance("contrast", 0.6), quick=False),
        S("saturation_1.8", "colour", enhance("saturation", 1.8), quick=False),
        S("saturation_0.3", "colour", enhance("saturation", 0.3), quick=False),
        S("filter_warm", "colour", filter_warm()),
        S("blur_1.5", "blur/noise", blur(1.5)),
        S("blur_3", "blur/noise", blur(3.0), quick=False),
        S("noise_8", "blur/noise", noise(8.0), quick=False),
        # crops: the same share of each dimension, centred and off-centre (anchor per photo)
        S("crop_5_c", "crop<=10%", crop(0.05, "c"), quick=False),
        S("crop_5_off", "crop<=10%", crop(0.05)),
        S("crop_10_c", "crop<=10%", crop(0.10, "c")),
        S("crop_10_off", "crop<=10%", crop(0.10)),
        S("crop_15_c", "crop15-20%", crop(0.15, "c"), quick=False),
        S("crop_15_off", "crop15-20%", crop(0.15)),
        S("crop_20_c", "crop15-20%", crop(0.20, "c")),
        S("crop_20_off", "crop15-20%", crop(0.20)),
        S("crop_25_c", "crop25%", crop(0.25, "c"), quick=False),
        S("crop_25_off", "crop25%", crop(0.25)),
        S("cut_bottom_10", "crop-side", cut(0.10, "b")),
        S("cut_side_15", "crop-side", cut(0.15), quick=False),
        S("cut_side_5", "crop-side", cut(0.05), quick=False),
        S("crop_random_10", "crop-offgrid", crop_random(0.10)),
        S("crop_random_20", "crop-offgrid", crop_random(0.20), quick=False),
        S("crop_square", "crop-aspect", crop_aspect(1.0)),
        S("crop_4x5", "crop-aspect", crop_aspect(0.8), quick=False),
        # borders and padding
        S("border_white_5", "border/pad", border(0.05, (255, 255, 255))),
        S("border_black_12", "border/pad", border(0.12, (0, 0, 0)), quick=False),
        S("letterbox_1x1_black", "border/pad", letterbox(1.0, (0, 0, 0))),
        S("letterbox_9x16_white", "border/pad", letterbox(9 / 16, (255, 255, 255)), quick=False),
        S("blurpad_1x1", "border/pad", blur_pad(1.0)),
        S("blurpad_9x16", "border/pad", blur_pad(9 / 16), quick=False),
        # screenshots
        S("screenshot_png", "screenshot", phone_screenshot()),
        S("screenshot_dark_jpeg", "screenshot", phone_screenshot(dark=True, fmt="jpeg", quality=80), quick=False),
        S("screenshot_appbar_jpeg", "screenshot", phone_screenshot(fmt="jpeg", quality=75, scale_to=0.4, app_bar=True)),
        S("chat_png", "screenshot", chat_screenshot()),
        S("chat_jpeg", "screenshot", chat_screenshot(fmt="jpeg", quality=80, scale_to=0.45), quick=False),
        S("collage_2", "collage", collage(other_picture)),
        # dihedral and rotation
        S("mirror", "mirror/rotate", mirror()),
        S("rotate_90", "mirror/rotate", rotate90(1)),
        S("rotate_180", "mirror/rotate", rotate90(2), quick=False),
        S("rotate_270", "mirror/rotate", rotate90(3), quick=False),
        S("rotate_3_fill", "small-rotation", rotate_small(3, crop_corners=False)),
        S("rotate_3_crop", "small-rotation", rotate_small(3, crop_corners=True)),
        S("rotate_5_crop", "small-rotation", rotate_small(5, crop_corners=True), quick=False),
        S("rotate_2_crop", "small-rotation", rotate_small(2, crop_corners=True), quick=False),
        # overlays
        S("caption_bottom", "overlay", caption("bottom")),
        S("caption_top", "overlay", caption("top"), quick=False),
        S("caption_bar", "overlay", caption_bar(), quick=False),
        S("watermark", "overlay", watermark()),
        S("emoji_3_small", "overlay", emoji(3, 0.12)),
        S("emoji_5_large", "overlay", emoji(5, 0.2), quick=False),
        S("censor_bar", "overlay", censor_bar(), quick=False),
        # combinations
        S("crop10_jpeg50", "combined", chain(crop(0.10), recompress("jpeg", 50))),
        S("mirror_crop10", "combined", chain(mirror(), crop(0.10), recompress("jpeg", 80)), quick=False),
        S("screenshot_jpeg60", "combined", chain(phone_screenshot(), resize(720, "jpeg", 60))),
        S("mirror_caption_resize", "combined", chain(mirror(), caption("random"), resize(480))),
        S("border_resize_webp", "combined", chain(border(0.06, (255, 255, 255)), resize(400, "webp", 60)), quick=False),
        S("crop15_emoji_jpeg60", "combined", chain(crop(0.15), emoji(2, 0.12), recompress("jpeg", 60)), quick=False),
        S("filter_crop10_resize", "combined", chain(filter_warm(), crop(0.10, "c"), resize(480)), quick=False),
    ]
    return specs
