"""Sub-regions of a picture to hash besides the whole (docs/matching.md explains and measures them).

PDQ hashes a picture as a whole: removing 5% from each side, or adding a border, already moves
the hash by 40-100 bits, far beyond the standard match radius of 31. Two complementary sets of
regions bring such copies back within reach:

* **Registration regions** (the victim's side, ``registration_regions``): crops of the original at
  the scales and positions reposts are usually cut to, and two slightly turned copies. A repost
  cut like one of them matches that region's hash; one cut within ~1-2% of it still does.
* **Query regions** (the monitor's side, ``query_regions``): the part of a found picture that
  looks like *the* picture: borders, letterboxing and blurred padding trimmed off, the picture
  found inside a phone or chat screenshot, the upright window of a slightly turned picture, the
  cells of a collage. Their hashes are compared with the registered hashes of whole originals
  (and of crops).

Only PDQ hashes of these regions are ever stored or sent: the region functions return pixel
arrays (views of the decoded picture, or for ``rot:`` a turned copy) for ``hashes.compute`` to
hash, and nothing of them is kept.

Region labels (a-z, 0-9 and ``:._-``, at most 64 characters):

======================  ===================================================================
``crop:S:A``             registration: window of S (0-1) of each side kept at anchor A:
                         ``c`` centre, ``tl tr bl br`` corners, ``t b l r`` sides
``cut:A:S``              registration: only one side cut, S of that dimension kept at side A
``win:L:R:T:B``          registration: window with the shares L, R, T, B cut from each side (0.025 / 0.075)
``aspect:W-H``           registration: largest centred window of aspect W:H (``1-1``, ``4-5``)
``rot:p3`` ``rot:m3``    registration: rotated +-3 degrees, cut to the largest upright window
``trim``                 query: uniform (single-colour) borders and letterboxing removed
``trim:smooth``          query: smooth padding (blurred copies of the picture) removed
``inner``                query: the picture found inside a screenshot or chat (UI removed)
``inner:blob``           query: the same, found as the largest solid blob off the background
``cell:N``               query: cell N of a collage split along uniform separator lines
``dihedral:NAME``        query: (made by hashes.compute, not here) rotated/mirrored variants
======================  ===================================================================
"""

from __future__ import annotations

import itertools
import math
import os
import re

import numpy as np
from PIL import Image

from hashes import _region_kernels as _k

Box = tuple[int, int, int, int]  # top, left, bottom, right (numpy slicing order), pixels

#: Valid region labels (the hash-file vocabulary).
LABEL_RE = re.compile(r"^[a-z0-9:._-]{1,64}$")

# ---------------------------------------------------------------- registration (victim's side)

#: (scale, anchor) of the registered crops. Chosen by measurement (docs/matching.md, "The region
#: grid"): PDQ moves ~20-25 bits per 1% of the picture that an edge moves, so a crop matches a
#: registered window only when every edge is within ~2% of it. Centred crops move each edge by
#: half the removed share, off-centre ones move two edges by all of it; hence a 5% step at every
#: anchor from 5% to 20% removed, and further centred steps.
CROP_GRID: tuple[tuple[float, str], ...] = tuple(
    [(s, "c") for s in (0.95, 0.90, 0.85, 0.80, 0.75)]
    + [(s, a) for s in (0.95, 0.90, 0.85, 0.80) for a in ("tl", "tr", "bl", "br", "t", "b", "l", "r")]
)
#: One side cut off (a caption, watermark or frame removed along one edge): (side, kept share).
#: 10% and 15%: between them (and the 0.95 anchored crops) every one-side cut up to ~17% is within
#: ~2.5% of a window.
CUT_GRID: tuple[tuple[str, float], ...] = (
    ("t", 0.90), ("b", 0.90), ("l", 0.90), ("r", 0.90),
    ("t", 0.85), ("b", 0.85), ("l", 0.85), ("r", 0.85),
)
#: Crops that cut each side by its own share fall between the points of CROP_GRID. Windows that
#: cut 2.5% or 7.5% from each side independently (``win:L:R:T:B``, the share cut from the left,
#: right, top and bottom) put every edge of a crop that cuts up to 10% per side within 2.5% of a
#: window's edge. The two with all four cuts equal are CROP_GRID's centred 0.95 and 0.85 windows
#: already, so 14 are added.
FREE_CUTS: tuple[float, ...] = (0.025, 0.075)
#: Small rotations (degrees) registered as the largest upright window of the rotated original
#: (label ``rot:p3`` / ``rot:m3``): PDQ of such a window stays within ~35 bits for +-1 degree
#: around it, so with the unrotated crops they cover tilts up to about 4 degrees.
ROTATIONS: tuple[int, ...] = (3, -3)
#: Centred windows of the aspects feeds and stories crop to: (label, width / height).
ASPECTS: tuple[tuple[str, float], ...] = (("1-1", 1.0), ("4-5", 0.8))

_ANCHORS: dict[str, tuple[float, float]] = {
    "c": (0.5, 0.5), "tl": (0.0, 0.0), "tr": (1.0, 0.0), "bl": (0.0, 1.0), "br": (1.0, 1.0),
    "t": (0.5, 0.0), "b": (0.5, 1.0), "l": (0.0, 0.5), "r": (1.0, 0.5),
}
#: An aspect window is skipped when the picture is already within this share of that aspect.
_ASPECT_MIN_CHANGE = 0.08
#: Regions smaller than this (pixels, either side) are not hashed: too little left to match on.
MIN_REGION_SIDE = 32


def registration_boxes(height: int, width: int) -> list[tuple[str, Box]]:
    """(label, (top, left, bottom, right)) of every registration region of a height x width picture."""
    out: list[tuple[str, Box]] = []
    for scale, anchor in CROP_GRID:
        ax, ay = _ANCHORS[anchor]
        out.append((f"crop:{scale:.2f}:{anchor}", _window(height, width, scale, scale, ax, ay)))
    for side, keep in CUT_GRID:
        sx, sy = (keep, 1.0) if side in "lr" else (1.0, keep)
        ax = {"l": 1.0, "r": 0.0}.get(side, 0.5)  # cutting the left side keeps the right part
        ay = {"t": 1.0, "b": 0.0}.get(side, 0.5)
        out.append((f"cut:{side}:{keep:.2f}", _window(height, width, sx, sy, ax, ay)))
    for cuts in itertools.product(FREE_CUTS, repeat=4):
        if len(set(cuts)) == 1:
            continue  # a centred crop of CROP_GRID
        l, r, t, b = cuts
        box = (round(t * height), round(l * width), height - round(b * height), width - round(r * width))
        out.append((f"win:{l:.3f}:{r:.3f}:{t:.3f}:{b:.3f}", box))
    for name, aspect in ASPECTS:
        ratio = (width / height) / aspect
        if abs(math.log(ratio)) < _ASPECT_MIN_CHANGE:
            continue
        sx, sy = (1.0 / ratio, 1.0) if ratio > 1 else (1.0, ratio)
        out.append((f"aspect:{name}", _window(height, width, sx, sy, 0.5, 0.5)))
    return [(label, box) for label, box in out if _big_enough(box)]


def registration_regions(rgb: np.ndarray) -> list[tuple[str, np.ndarray]]:
    """Regions of an original that the victim's hash file carries hashes of.

    The crop windows of ``registration_boxes`` (views of `rgb`), then the slightly rotated
    copies of ``ROTATIONS`` (new arrays: rotated, then cut to the largest upright window).
    """
    rgb = np.asarray(rgb)
    h, w = rgb.shape[:2]
    out = [(label, rgb[t:b, l:r]) for label, (t, l, b, r) in registration_boxes(h, w)]
    out.extend((label, rotated_window(rgb, degrees)) for label, degrees in rotated_labels(rgb))
    return out


def rotated_labels(rgb: np.ndarray) -> list[tuple[str, int]]:
    """(label, degrees) of the turned copies an original of this size gets (none when too small)."""
    h, w = np.asarray(rgb).shape[:2]
    if min(h, w) < 2 * MIN_REGION_SIDE:
        return []
    return [(f"rot:{degrees:+d}".replace("+", "p").replace("-", "m"), degrees) for degrees in ROTATIONS]


def rotated_window(rgb: np.ndarray, degrees: float) -> np.ndarray:
    """The picture rotated by `degrees` (counter-clockwise), cut to the largest upright window of its aspect."""
    h, w = rgb.shape[:2]
    img = Image.fromarray(np.ascontiguousarray(rgb[:, :, :3]))
    turned = np.asarray(img.rotate(degrees, Image.Resampling.BICUBIC, expand=False))
    a = math.radians(abs(degrees))
    f = 1.0 / (math.cos(a) + math.sin(a) * max(w, h) / min(w, h))
    cw, ch = int(w * f), int(h * f)
    x0, y0 = (w - cw) // 2, (h - ch) // 2
    return turned[y0:y0 + ch, x0:x0 + cw]


def _window(h: int, w: int, sx: float, sy: float, ax: float, ay: float) -> Box:
    cw, ch = max(1, round(w * sx)), max(1, round(h * sy))
    x0, y0 = round((w - cw) * ax), round((h - ch) * ay)
    return y0, x0, y0 + ch, x0 + cw


def _big_enough(box: Box) -> bool:
    t, l, b, r = box
    return b - t >= MIN_REGION_SIDE and r - l >= MIN_REGION_SIDE


# ---------------------------------------------------------------- query (monitor's side)

#: Detection runs on a copy reduced (box filter, integer factor) to at most this long side;
#: boundaries are then refined on the full-resolution rows and columns around them.
DETECT_SIDE = 360
#: Most regions a found picture yields (besides the whole).
MAX_QUERY_REGIONS = 8
#: Colour tolerance (0-255, any channel) for "the same colour" on reduced pixels: JPEG noise on
#: a flat background stays well inside it, photo texture does not.
_TOL = 12
#: A pixel is "still" when no channel changes by more than this to its right or lower neighbour.
_STILL = 6
#: A row/column is a uniform border when this share of it has the border's colour.
_BORDER_SHARE = 0.97
#: Smooth padding (a blurred copy of the picture): every padding line's mean colour change along
#: the line stays below _SMOOTH_MAX, and the lines just inside the picture are at least
#: _SMOOTH_CONTRAST times as active as those just outside.
_SMOOTH_MAX = 4.0
_SMOOTH_CONTRAST = 2.0
#: A row is user interface when at least this share of it is flat and of a UI colour (a colour
#: covering much of the screenshot's outer edge: the app's background, a header bar).
_UI_SHARE = 0.5
#: Penalty of a UI row inside the picture block, in picture rows (bridges thin UI-coloured bands
#: of the picture itself, never a text bubble separated from the picture by background).
_UI_PENALTY = 3.0
#: A colour is a UI colour when this share of the still pixels on the outer edge have it.
_UI_COLOUR_SHARE = 0.1
#: Padding and UI bands thinner than this share of the dimension are ignored (JPEG edge noise).
_MIN_TRIM = 0.005
#: Least share of the first picture line inside a border that differs from the border's colour.
_BORDER_EDGE = 0.4
#: Least mean colour change between a collage separator line and the picture beside it.
_SEPARATOR_EDGE = 16
#: A frame left around a found picture (a chat bubble's rim) is trimmed when it is at most this
#: share of the dimension thick, uniform, and ends in a sharp edge.
_FRAME_MAX = 0.015
#: A region is "the whole picture" when every edge is within this share of the dimension.
_SAME_EDGE = 0.004
#: Smallest picture accepted inside a screenshot or as a collage cell (share of each dimension).
_MIN_PART = 0.15


def default_backend() -> str:
    """'numba' when numba is importable (unless NCII_REGIONS_BACKEND says otherwise), else 'numpy'."""
    name = os.environ.get("NCII_REGIONS_BACKEND", "").strip().lower()
    return name or ("numba" if _k.HAVE_NUMBA else "numpy")


def query_boxes(rgb: np.ndarray, *, backend: str | None = None) -> list[tuple[str, Box]]:
    """(label, (top, left, bottom, right)) of the candidate regions of a found picture.

    backend: "numba" (compiled inner loops) or "numpy"; both find the same boxes.
    """
    name = backend or default_backend()
    if name not in ("numba", "numpy"):
        raise ValueError(f"unknown regions backend {name!r} (expected 'numba' or 'numpy')")
    if name == "numba" and not _k.HAVE_NUMBA:
        raise ValueError("regions backend 'numba' requested but numba is not installed")
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[0] < MIN_REGION_SIDE or rgb.shape[1] < MIN_REGION_SIDE:
        return []
    h, w = rgb.shape[:2]
    if min(h, w) < math.ceil(max(h, w) / DETECT_SIDE):
        return []  # a strip so thin that the detector's reduced copy would have no rows (or columns) left
    px = _Reduced(rgb, numba=name == "numba")
    whole_small = (0, 0, px.h, px.w)
    found: list[tuple[str, Box]] = []

    # 1. uniform borders / letterbox (single colour)
    trim = px.trim_uniform(whole_small)
    if trim != whole_small:
        found.append(("trim", px.refine(trim, "uniform")))

    # 2. smooth padding (a blurred copy of the picture behind it), on the whole picture or, if
    # there is none there, inside the uniform trim
    smooth = px.trim_smooth(whole_small)
    if smooth == whole_small and trim != whole_small:
        smooth = px.trim_smooth(trim)
    if smooth not in (whole_small, trim):
        found.append(("trim:smooth", px.refine(smooth, "smooth")))

    # 2b. a picture turned by a few degrees on a plain canvas (corners filled with one colour):
    # the largest upright window inside it, as registered for the original (``rot:…``)
    turned = px.rotated_fill()
    if turned is not None:
        found.append(("trim:rot", turned))

    # 3. the picture inside a screenshot or chat: the largest block of non-UI rows, then columns
    inner = px.inner_picture()
    if inner is not None:
        inner = px.trim_uniform(inner)
        found.append(("inner", px.strip_frame(px.refine(inner, "ui"))))

    # 3b. the same, seen as the largest blob of non-background pixels (a picture in a message
    # bubble, whose light top rows can look like interface row by row)
    blob = px.blob_picture()
    if blob is not None:
        found.append(("inner:blob", px.strip_frame(px.refine(px.trim_uniform(blob), "uniform"))))

    # 4. collage cells: split along straight uniform lines spanning the picture
    for i, cell in enumerate(px.split_cells(inner if inner is not None else trim)):
        found.append((f"cell:{i}", px.refine(cell, "uniform")))

    return _dedupe(found, h, w)[:MAX_QUERY_REGIONS]


def query_regions(rgb: np.ndarray) -> list[tuple[str, np.ndarray]]:
    """Candidate regions of a found picture that the monitor hashes besides the whole (views of `rgb`)."""
    rgb = np.asarray(rgb)
    return [(label, rgb[t:b, l:r]) for label, (t, l, b, r) in query_boxes(rgb)]


# ---------------------------------------------------------------- detection

def _edge_run(flags: np.ndarray) -> int:
    """Length of the leading run of True in flags."""
    idx = np.flatnonzero(~flags)
    return int(idx[0]) if idx.size else int(flags.size)


def _close(planes: np.ndarray, colour: np.ndarray) -> np.ndarray:
    """Boolean (H, W): pixels of planes (3, H, W) within _TOL of colour (3,) in every channel.

    colour may also be (3, H, 1) or (3, 1, W) for one colour per row or per column.
    """
    c = colour.reshape(3, 1, 1) if colour.ndim == 1 else colour
    out = np.abs(planes[0] - c[0]) <= _TOL
    out &= np.abs(planes[1] - c[1]) <= _TOL
    out &= np.abs(planes[2] - c[2]) <= _TOL
    return out


class _Reduced:
    """A box-reduced planar copy of the picture (long side <= DETECT_SIDE) and its maps."""

    def __init__(self, rgb: np.ndarray, numba: bool = False) -> None:
        self.numba = numba
        self.rgb = rgb[:, :, :3] if rgb.shape[2] > 3 else rgb
        self.full_h, self.full_w = rgb.shape[:2]
        f = max(1, math.ceil(max(self.full_h, self.full_w) / DETECT_SIDE))
        # Only whole f x f blocks: reduced pixel (i, j) covers exactly full rows i*f..i*f+f-1. The
        # reduction is Pillow's Image.reduce(f) (the compiled version computes the same integers).
        self.f = f
        (self.planes, self.act_x, self.act_y,
         self.still_x, self.still_y, self.still) = _k.prepare(self.rgb, f, _STILL, numba)
        self.h, self.w = self.planes.shape[1:]
        self._ui_colours: list[np.ndarray] | None = None
        self._edge_colour_count = 0

    # -- borders and padding

    def trim_uniform(self, box: Box) -> Box:
        """Shrink box past edge rows/columns of one colour (the edge's own) ending in a sharp edge.

        The sharp edge (the first kept line differs clearly from the border colour) tells a
        border from a flat part of the picture itself, such as a clear sky along its top.
        """
        t, l, b, r = box
        if b - t < 8 or r - l < 8:
            return box
        p = self.planes[:, t:b, l:r]
        nt = self._border_run(p, 0)
        nb = self._border_run(p[:, ::-1], 0)
        if nt + nb >= (b - t) * (1 - _MIN_PART):
            return box  # (nearly) one colour throughout: a flat picture, not a border
        t, b = t + nt, b - nb
        p = self.planes[:, t:b, l:r]
        nl = self._border_run(p, 1)
        nr = self._border_run(p[:, :, ::-1], 1)
        if nl + nr >= (r - l) * (1 - _MIN_PART):
            return box
        return _ignore_thin(box, (t, l + nl, b, r - nr))

    def _border_run(self, p: np.ndarray, axis: int) -> int:
        """_border_run, compiled when the numba backend is on (the same count)."""
        n = _k.border_run(p, axis, _TOL, _BORDER_SHARE, _BORDER_EDGE, self.numba)
        return _border_run(p, axis) if n is None else n

    def trim_smooth(self, box: Box) -> Box:
        """Shrink box past smooth bands at both ends (padding filled with a blurred copy of the picture).

        Apps centre the picture on such padding, so the bands are searched in symmetric pairs:
        the cut that best separates smooth lines outside from textured lines just inside wins.
        """
        t, l, b, r = box
        if b - t < 16 or r - l < 16:
            return box
        dt = self._symmetric_pad(self.act_x[t:b, l:r], 1)
        if dt:
            t, b = t + dt, b - dt
        dl = self._symmetric_pad(self.act_y[t:b, l:r], 0)
        if dl:
            l, r = l + dl, r - dl
        return t, l, b, r

    def _symmetric_pad(self, act: np.ndarray, axis: int) -> int:
        """_symmetric_pad of act's line means (rows: axis=1), compiled when the numba backend is on."""
        if not self.numba:
            return _symmetric_pad(act.mean(axis=axis))
        n = act.shape[1 - axis]
        k, lo, hi = _pad_range(n)
        return int(_k._nb().symmetric_pad_nb(act, axis, k, lo, hi, _SMOOTH_MAX, _SMOOTH_CONTRAST))

    def rotated_fill(self) -> Box | None:
        """The upright window inside a picture turned a few degrees on a one-colour canvas (full-res box).

        The four corners of the canvas are then triangles of the fill colour whose legs give the
        angle; the picture's own size follows from the canvas size and the angle.
        """
        p, h, w = self.planes, self.h, self.w
        corners = p[:, [0, 0, -1, -1], [0, -1, 0, -1]]  # (3, 4)
        colour = np.median(corners, axis=1)
        if not _close(corners[:, None, :], colour)[0].all():
            return None
        top = _close(p[:, :1, :], colour)[0]
        bottom = _close(p[:, -1:, :], colour)[0]
        left = _close(p[:, :, :1], colour)[:, 0]
        right = _close(p[:, :, -1:], colour)[:, 0]
        legs = [  # (horizontal leg, vertical leg) of each corner triangle: tl, tr, bl, br
            (_edge_run(top), _edge_run(left)), (_edge_run(top[::-1]), _edge_run(right)),
            (_edge_run(bottom), _edge_run(left[::-1])), (_edge_run(bottom[::-1]), _edge_run(right[::-1])),
        ]
        if any(min(a, b) < 2 or a >= w - 1 or b >= h - 1 for a, b in legs):
            return None
        # Turned counter-clockwise, the top-left and bottom-right triangles are long and flat
        # (tan = vertical / horizontal), the other two tall and thin; clockwise the other way round.
        ccw = legs[0][0] > legs[0][1]
        tans = [b / a if (i in (0, 3)) == ccw else a / b for i, (a, b) in enumerate(legs)]
        if max(tans) > 0.3 or max(tans) - min(tans) > 0.05:
            return None  # not the four triangles of one small rotation
        theta = math.atan(float(np.median(tans)))
        cos, sin = math.cos(theta), math.sin(theta)
        big_h, big_w = self.full_h, self.full_w
        det = cos * cos - sin * sin
        pw = (big_w * cos - big_h * sin) / det  # the picture's own size before turning
        ph = (big_h * cos - big_w * sin) / det
        if pw < MIN_REGION_SIDE or ph < MIN_REGION_SIDE:
            return None
        f = 1.0 / (cos + sin * max(pw, ph) / min(pw, ph))
        cw, ch = int(pw * f), int(ph * f)
        x0, y0 = (big_w - cw) // 2, (big_h - ch) // 2
        return y0, x0, y0 + ch, x0 + cw

    # -- screenshots

    def ui_colours(self) -> list[np.ndarray]:
        """Colours covering much of the outer edge (still pixels only): the UI's backgrounds."""
        if self._ui_colours is None:
            p = self.planes
            edge = np.concatenate([p[:, 0, :], p[:, -1, :], p[:, :, 0], p[:, :, -1]], axis=1)  # (3, n)
            still = np.concatenate([self.still[0], self.still[-1], self.still[:, 0], self.still[:, -1]])
            self._ui_colours = self._dominant_colours(edge[:, still], edge.shape[1], 4)
            self._edge_colour_count = len(self._ui_colours)
        return self._ui_colours

    def _dominant_colours(self, px: np.ndarray, n: int, most: int, share: float = _UI_COLOUR_SHARE) -> list[np.ndarray]:
        """_dominant_colours, compiled when the numba backend is on (the same colours)."""
        if self.numba:
            return _k.dominant_colours(px, n, most, share, _TOL)
        return _dominant_colours(px, n, most, share)

    def _ui_map(self, t: int = 0, b: int | None = None) -> np.ndarray:
        """Boolean map of rows t..b: still pixels of a UI colour."""
        return _k.close_any(self.planes[:, t:b], self.ui_colours(), _TOL, self.numba)

    def inner_picture(self) -> Box | None:
        """The largest photo-like block: rows that are not UI, then columns within them."""
        if not self.ui_colours():
            return None
        ui_map, ui = _k.ui_rows(self.planes, self.ui_colours(), _TOL, self.still_x, _UI_SHARE, self.numba)
        if ui.mean() < 0.1:
            return None  # no UI bands to speak of: not a screenshot
        # Second look: flat colours common inside the UI rows (message bubbles, cards) are UI too.
        inside = self.still[ui] & ~ui_map[ui]
        more = self._dominant_colours(self.planes[:, ui][:, inside], int(inside.sum()), 2, 0.25)
        if more:
            self._ui_colours = self._ui_colours + more
            ui_map, ui = _k.ui_rows(self.planes, self._ui_colours, _TOL, self.still_x, _UI_SHARE, self.numba)
        t, b = _best_block(np.where(ui, -_UI_PENALTY, 1.0))
        if b - t < _MIN_PART * self.h or b - t < 16:
            return None
        # A screenshot has interface on both sides of the picture (status bar and header above,
        # captions or the keyboard below); a flat sky along one edge of a photo does not count.
        margin = max(2, math.ceil(_MIN_TRIM * 2 * self.h))
        if t < margin or self.h - b < margin:
            return None
        # Columns beside the picture (a chat bubble's margins) are UI over the band's full height.
        cols = (ui_map[t:b] & self.still_y[t:b]).mean(axis=0) >= 0.9
        l, r = _edge_run(cols), self.w - _edge_run(cols[::-1])
        if r - l < _MIN_PART * self.w or r - l < 16:
            return None
        return t, l, b, r

    def blob_picture(self) -> Box | None:
        """Bounding box of the largest connected blob of non-background pixels, if picture-like.

        Background is the still pixels of the edge's UI colours (not bubble colours): a picture
        in a message bubble, with the bubble's rim, is then one solid blob, apart from the text
        bubbles around it.
        """
        edge_colours = self.ui_colours()[: self._edge_colour_count]
        if not edge_colours:
            return None
        bg = _k.close_any(self.planes, edge_colours, _TOL, self.numba)
        bg &= self.still
        if bg.mean() < 0.2:
            return None  # hardly any background: not a screenshot
        from scipy import ndimage  # here, not at the top: importing it costs 0.2 s, and the victim's side never needs it

        labels, n = ndimage.label(~bg, structure=np.ones((3, 3), bool))
        if n == 0:
            return None
        sizes = np.bincount(labels.ravel())[1:]
        k = int(np.argmax(sizes)) + 1
        # bounding box of blob k alone (find_objects would box every blob, and photos have hundreds)
        mine = labels == k
        rows, cols = np.flatnonzero(mine.any(axis=1)), np.flatnonzero(mine.any(axis=0))
        t, b, l, r = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
        if b - t < _MIN_PART * self.h or r - l < _MIN_PART * self.w or b - t < 16 or r - l < 16:
            return None
        if sizes[k - 1] < 0.8 * (b - t) * (r - l):
            return None  # not a solid rectangle (text, icons, several things touching)
        if t == 0 or l == 0 or b == self.h or r == self.w:
            if (t == 0) + (l == 0) + (b == self.h) + (r == self.w) >= 3:
                return None  # the whole picture, or most of it
        return t, l, b, r

    # -- collages

    def split_cells(self, box: Box, depth: int = 0) -> list[Box]:
        """Cells of a collage: split along straight uniform lines spanning box, recursively (2 levels)."""
        t, l, b, r = box
        if depth > 1 or b - t < 32 or r - l < 32:
            return []
        p = self.planes[:, t:b, l:r]
        for axis in (0, 1):  # 0: a horizontal separator (rows); 1: a vertical one (columns)
            act_along = self.act_x[t:b, l:r] if axis == 0 else self.act_y[t:b, l:r]
            flat = _k.flat_lines(p, act_along, axis, _TOL, 0.98, self.numba)
            if not flat.any():
                continue  # no uniform line, no separator (_separator would find none)
            # mean colour change from line k to line k+1 (the activity maps hold each pixel's change)
            if axis == 0:
                step = self.act_y[t:b - 1, l:r].mean(axis=1)
            else:
                step = self.act_x[t:b, l:r - 1].mean(axis=0)
            cut = _separator(flat, step)
            if cut is None:
                continue
            s0, s1 = cut
            if axis == 0:
                parts = ((t, l, t + s0, r), (t + s1, l, b, r))
            else:
                parts = ((t, l, b, l + s0), (t, l + s1, b, r))
            cells: list[Box] = []
            for part in parts:
                if self.ui_colours() and self._ui_map(part[0], part[2])[:, part[1]:part[3]].mean() >= _UI_SHARE:
                    continue  # a band of text or UI, not a picture
                sub = self.split_cells(part, depth + 1)
                cells.extend(sub if sub else [part])
            return cells if len(cells) > 1 else []
        return []

    # -- back to full resolution

    def refine(self, box: Box, kind: str) -> Box:
        """Map a reduced box to full resolution, moving each edge to the exact first picture line.

        Each edge is searched within one reduced pixel either side of its reduced position, on
        full-resolution lines (subsampled along the line for speed).
        """
        f, h, w = self.f, self.full_h, self.full_w
        t, l, b, r = (v * f for v in box)
        if box[2] >= self.h:  # reaches the reduced copy's end: the leftover partial block belongs too
            b = h
        if box[3] >= self.w:
            r = w
        if f == 1:
            return t, l, b, r
        step = max(1, f // 2)
        rgb = self.rgb
        if box[0] > 0:
            t = self._scan(rgb[max(0, t - f):min(h, t + f), l:r:step], max(0, t - f), True, kind)
        if b < h:
            lo = max(0, b - f)
            b = self._scan(rgb[lo:min(h, b + f), l:r:step], lo, False, kind)
        if box[1] > 0:
            lo = max(0, l - f)
            l = self._scan(rgb[t:b:step, lo:min(w, l + f)].transpose(1, 0, 2), lo, True, kind)
        if r < w:
            lo = max(0, r - f)
            r = self._scan(rgb[t:b:step, lo:min(w, r + f)].transpose(1, 0, 2), lo, False, kind)
        return t, l, b, r

    def strip_frame(self, box: Box) -> Box:
        """Remove a thin uniform frame (a message bubble's rim) left around a full-resolution box."""
        t, l, b, r = box
        rgb = self.rgb
        if b - t < 32 or r - l < 32:
            return box
        step_x, step_y = max(1, (r - l) // 256), max(1, (b - t) // 256)
        m_y, m_x = max(2, math.ceil(_FRAME_MAX * (b - t))), max(2, math.ceil(_FRAME_MAX * (r - l)))
        t += _frame_run(rgb[t:t + m_y + 1, l:r:step_x])
        b -= _frame_run(rgb[b - m_y - 1:b, l:r:step_x][::-1])
        l += _frame_run(rgb[t:b:step_y, l:l + m_x + 1].transpose(1, 0, 2))
        r -= _frame_run(rgb[t:b:step_y, r - m_x - 1:r].transpose(1, 0, 2)[::-1])
        return t, l, b, r

    def _scan(self, lines: np.ndarray, lo: int, from_start: bool, kind: str) -> int:
        """Index of the first picture line among `lines` (N, L, 3) starting at index lo.

        from_start: the outside (border) is at the start of the lines, the picture after it;
        otherwise the picture comes first and the border after it.
        """
        n = lines.shape[0]
        if n == 0:
            return lo
        if kind == "ui" and self.numba:
            colours = np.asarray(self.ui_colours(), np.float64).reshape(-1, 3)
            outside = _k._nb().scan_ui_nb(lines, colours, _STILL, _TOL, _UI_SHARE)
            if from_start:
                return lo + _edge_run(outside)
            return lo + n - _edge_run(outside[::-1])
        x = np.ascontiguousarray(lines.transpose(2, 0, 1)).astype(np.int16)  # (3, N, L)
        if kind == "uniform":
            # How far each line is from the border's colour; the picture starts where that is at
            # least half the picture's level (JPEG bleeds a line or two of the picture's colours
            # into the border, which the half-way point ignores).
            edge = x[:, 0, :] if from_start else x[:, -1, :]
            dev = np.abs(x - np.median(edge, axis=1)[:, None, None]).max(axis=0).mean(axis=1)
            outside = dev < max(float(_TOL), 0.5 * float(dev.max()))
        elif kind == "smooth":
            act = np.abs(x[:, :, 1:] - x[:, :, :-1]).max(axis=0).mean(axis=1)
            outside = act < max(1.0, 0.35 * float(act.max()))
        else:  # ui
            still = np.abs(x[:, :, 1:] - x[:, :, :-1]).max(axis=0) <= _STILL
            ui = np.zeros(still.shape, bool)
            for c in self.ui_colours():
                ui |= _close(x[:, :, 1:], c)
            outside = (ui & still).mean(axis=1) >= _UI_SHARE
        if from_start:
            return lo + _edge_run(outside)
        return lo + n - _edge_run(outside[::-1])


def _frame_run(lines: np.ndarray) -> int:
    """Frame lines at the start of lines (N, L, 3): uniform, one colour, thinner than N-1, then an edge."""
    x = np.ascontiguousarray(lines.transpose(2, 0, 1)).astype(np.int16)  # (3, N, L)
    n = x.shape[1]
    colour = np.median(x[:, 0, :], axis=1)
    uniform = _close(x, colour).mean(axis=1) >= 0.9
    k = _edge_run(uniform)
    if k == 0 or k >= n - 1:
        return 0
    step = np.abs(x[:, k, :] - colour[:, None]).max(axis=0).mean()
    return k if step >= _BORDER_EDGE else 0


def _dominant_colours(px: np.ndarray, n: int, most: int, share: float = _UI_COLOUR_SHARE) -> list[np.ndarray]:
    """Up to `most` colours each covering >= share of n pixels, from pixels px (3, m)."""
    colours: list[np.ndarray] = []
    while px.shape[1] >= share * n and len(colours) < most and n > 0:
        keys = (px[0] >> 4) * 256 + (px[1] >> 4) * 16 + (px[2] >> 4)
        mode = np.bincount(keys).argmax()
        c = np.median(px[:, keys == mode], axis=1)
        near = _close(px[:, None, :], c)[0]
        if near.sum() < share * n:
            break
        colours.append(c)
        px = px[:, ~near]
    return colours


def _border_run(p: np.ndarray, axis: int) -> int:
    """Lines of the border at the start of p (3, H, W) along axis (0: rows, 1: columns).

    A border line has _BORDER_SHARE of its pixels within _TOL of the first line's colour; the
    run counts only when most of the first line after it (_BORDER_EDGE of its pixels) differs
    from that colour: a straight edge along the whole line, not a sky meeting a skyline.
    """
    first = p[:, 0, :] if axis == 0 else p[:, :, 0]
    colour = np.median(first, axis=1)
    size = p.shape[1 + axis]
    # The run is measured a growing chunk of lines at a time: most pictures have no border, and
    # then only the first few lines are ever compared with the colour.
    n, chunk = 0, 4
    while n < size:
        part = p[:, n:n + chunk, :] if axis == 0 else p[:, :, n:n + chunk]
        inside = _close(part, colour).mean(axis=1 - axis) >= _BORDER_SHARE
        run = _edge_run(inside)
        n += run
        if run < inside.size:
            break
        chunk *= 2
    if n == 0 or n >= size:
        return 0 if n == 0 else n
    differ = 0.0
    for k in range(n, min(n + 2, size)):  # the first picture line may be blended with the border
        line = p[:, k, :] if axis == 0 else p[:, :, k]
        differ = max(differ, float((np.abs(line - colour[:, None]).max(axis=0) > _TOL).mean()))
    return n if differ >= _BORDER_EDGE else 0


def _pad_range(n: int) -> tuple[int, int, int]:
    """(k, lo, hi) of _symmetric_pad for a profile of n lines: lines compared each side, least and most width."""
    k = max(2, round(0.03 * n))
    return k, max(k, math.ceil(_MIN_TRIM * n)), int(n * (1 - _MIN_PART) / 2)


def _symmetric_pad(activity: np.ndarray) -> int:
    """Width of equal smooth bands at both ends of a line-activity profile (0: none).

    For each candidate width w the lines just outside (w-k..w and the mirror) must be smooth and
    the lines just inside textured; the width with the strongest contrast wins if it is clear.
    """
    n = activity.size
    k, lo, hi = _pad_range(n)
    if hi <= lo:
        return 0
    a = activity.astype(np.float64)
    c = np.concatenate([[0.0], np.cumsum(a)])
    w = np.arange(lo, hi + 1)
    outside = (c[w] - c[w - k] + c[n - w + k] - c[n - w]) / (2 * k)
    inside = (c[w + k] - c[w] + c[n - w] - c[n - w - k]) / (2 * k)
    # every padding line must be smooth, not only those next to the cut
    pre = np.maximum.accumulate(a)
    suf = np.maximum.accumulate(a[::-1])
    pad_max = np.maximum(pre[w - 1], suf[w - 1])
    contrast = inside / (outside + 0.25)
    ok = (pad_max < _SMOOTH_MAX) & (pad_max < 0.6 * inside) & (contrast >= _SMOOTH_CONTRAST)
    if not ok.any():
        return 0
    return int(w[np.argmax(np.where(ok, contrast, -1.0))])


def _best_block(score: np.ndarray) -> tuple[int, int]:
    """(start, end) of the contiguous block with the largest total score (maximum subarray)."""
    cum = np.concatenate([[0.0], np.cumsum(score)])
    run_min = np.minimum.accumulate(cum)
    end = int(np.argmax(cum - run_min))
    start = int(np.flatnonzero(cum[: end + 1] == run_min[end])[-1])
    return start, end


def _ignore_thin(old: Box, new: Box) -> Box:
    """Undo trims thinner than _MIN_TRIM of the dimension (JPEG edge noise, one-pixel lines)."""
    t0, l0, b0, r0 = old
    t, l, b, r = new
    hh, ww = b0 - t0, r0 - l0
    if t - t0 < _MIN_TRIM * hh:
        t = t0
    if b0 - b < _MIN_TRIM * hh:
        b = b0
    if l - l0 < _MIN_TRIM * ww:
        l = l0
    if r0 - r < _MIN_TRIM * ww:
        r = r0
    return t, l, b, r


def _separator(flat: np.ndarray, step: np.ndarray) -> tuple[int, int] | None:
    """(start, end) of a thin run of uniform lines with picture on both sides, away from the edges.

    A separator is sharp: its colour differs clearly (mean change >= _SEPARATOR_EDGE) from the
    picture lines on both sides, unlike a smooth band of sky. When several qualify, the one
    nearest the middle wins. step[k] is the mean colour change from line k to line k+1.
    """
    n = flat.size
    lo, hi = int(n * _MIN_PART), int(math.ceil(n * (1 - _MIN_PART)))
    padded = np.concatenate([[False], flat, [False]])
    edges = np.flatnonzero(padded[1:] != padded[:-1])
    best: tuple[int, int] | None = None
    for i, j in zip(edges[0::2], edges[1::2]):
        i, j = int(i), int(j)
        if i < lo or j > hi or i == 0 or j == n:
            continue
        if j - i > max(2, 0.08 * n):
            continue  # too thick for a separator: a band of the picture itself, or UI
        if step[max(0, i - 3):i].max() < _SEPARATOR_EDGE or step[j - 1:j + 2].max() < _SEPARATOR_EDGE:
            continue  # no sharp edge on both sides (within a line or two of blending): part of the picture
        if best is None or abs((i + j) / 2 - n / 2) < abs(sum(best) / 2 - n / 2):
            best = (i, j)
    return best


def _dedupe(found: list[tuple[str, Box]], h: int, w: int) -> list[tuple[str, Box]]:
    """Drop regions too small, nearly the whole picture, or nearly equal to an earlier one."""
    kept: list[tuple[str, Box]] = []
    whole = (0, 0, h, w)
    for label, box in found:
        if not _big_enough(box) or (box[2] - box[0]) * (box[3] - box[1]) < 0.02 * h * w:
            continue
        if _same(box, whole, h, w) or any(_same(box, k, h, w) for _, k in kept):
            continue
        kept.append((label, box))
    return kept


def _same(a: Box, b: Box, h: int, w: int) -> bool:
    tol_y, tol_x = max(1.0, _SAME_EDGE * h), max(1.0, _SAME_EDGE * w)
    return (abs(a[0] - b[0]) <= tol_y and abs(a[2] - b[2]) <= tol_y
            and abs(a[1] - b[1]) <= tol_x and abs(a[3] - b[3]) <= tol_x)
