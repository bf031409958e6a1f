"""How much of a picture can be rebuilt from the PDQ hashes in a hash file? (docs/matching.md, Privacy)

    python benchmarks/_inversion.py [PHOTO ...] [--save DIR]

An attacker who holds a victim's hash file knows the region vocabulary (which windows were
hashed) and how PDQ works: each PDQ is the signs, relative to their median, of 256 low-frequency
DCT coefficients of a 64x64 grey reduction of the window. Every coefficient is a linear function
of the picture's grey levels, so the hashes are 1-bit measurements of the picture, and a picture
agreeing with them can be searched for (projected gradient on the violated signs, with a
smoothness prior), at 64 px on the short side: more detail than that PDQ never sees.

For each photo this prints the correlation between the rebuilt picture and the true grey picture
at the same 64-px size, for the whole-picture PDQ alone, for the 11-12 centred/cut/aspect
windows, and for everything a hash file carries. Images are written only with --save (keep them
out of the repository). Defaults to a few shared photos.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np
from _common import photo_paths  # noqa: F401  (puts the project root on sys.path)
from PIL import Image

from hashes import pdq, regions  # noqa: E402
from hashes.decode import decode_image  # noqa: E402

SIDE = 64  # canvas short side: PDQ reduces every window to 64x64 before its DCT
_DCT = np.array([[math.sqrt(2 / 64) * math.cos(math.pi / 128 * (i + 1) * (2 * j + 1)) for j in range(64)]
                 for i in range(16)])


def _area_resize(n_out: int, n_in: int) -> np.ndarray:
    """(n_out, n_in) matrix of an area-averaging resize (close to PDQ's box filters)."""
    m = np.zeros((n_out, n_in))
    for o in range(n_out):
        a, b = o * n_in / n_out, (o + 1) * n_in / n_out
        for k in range(int(a), min(n_in, math.ceil(b))):
            m[o, k] = max(0.0, min(b, k + 1) - max(a, k))
        m[o] /= m[o].sum()
    return m


def measurements(rgb: np.ndarray) -> tuple[list[str], list[np.ndarray], list[tuple], tuple[int, int]]:
    """Labels, true sign bits (16x16) and linear operators of every hashed window of a picture."""
    h, w = rgb.shape[:2]
    ch, cw = (SIDE, round(SIDE * w / h)) if h <= w else (round(SIDE * h / w), SIDE)
    windows = [("full", (0, 0, h, w))] + regions.registration_boxes(h, w)
    labels, bits, ops = [], [], []
    for label, (t, l, b, r) in windows:
        value, _ = pdq.pdq_from_rgb(rgb[t:b, l:r])
        # hex_to_bits puts coefficient (i, j) at index 255 - (16 i + j)
        bits.append(pdq.hex_to_bits(value)[::-1].reshape(16, 16).astype(float))
        t0, l0 = round(t / h * ch), round(l / w * cw)
        b0, r0 = max(t0 + 2, round(b / h * ch)), max(l0 + 2, round(r / w * cw))
        ops.append((t0, b0, l0, r0, _DCT @ _area_resize(64, b0 - t0), _DCT @ _area_resize(64, r0 - l0)))
        labels.append(label)
    return labels, bits, ops, (ch, cw)


def rebuild(bits: list[np.ndarray], ops: list[tuple], shape: tuple[int, int], use: list[int], iters: int = 400) -> np.ndarray:
    """A grey picture whose windows' DCT signs agree with `bits` as far as possible."""
    x = np.zeros(shape)
    for i in use:  # back-projection start
        t0, b0, l0, r0, ay, ax = ops[i]
        x[t0:b0, l0:r0] += ay.T @ (2 * bits[i] - 1) @ ax
    x /= np.abs(x).max() + 1e-9
    for _ in range(iters):
        g = np.zeros(shape)
        for i in use:
            t0, b0, l0, r0, ay, ax = ops[i]
            c = ay @ x[t0:b0, l0:r0] @ ax.T
            s = 2 * bits[i] - 1
            wrong = (s * (c - np.median(c)) < 0.01) * s
            g[t0:b0, l0:r0] += ay.T @ wrong @ ax
        lap = np.zeros(shape)
        lap[1:-1, 1:-1] = 4 * x[1:-1, 1:-1] - x[:-2, 1:-1] - x[2:, 1:-1] - x[1:-1, :-2] - x[1:-1, 2:]
        x += 0.5 * g / len(use) - 0.05 * lap
        x -= x.mean()
        x /= np.abs(x).max() + 1e-9
    return x


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a - a.mean(), b - b.mean()
    return float((a * b).sum() / math.sqrt((a * a).sum() * (b * b).sum()))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("photos", nargs="*", type=Path)
    ap.add_argument("--save", type=Path, help="write truth/rebuilt PNGs here (not into the repository)")
    args = ap.parse_args()
    paths = args.photos or [p for p in photo_paths() if p.name in
                            ("img_012_SRF_2.jpg", "img_004_SRF_2.jpg", "img_008_SRF_2.jpg", "img_050_SRF_2.jpg")]
    print(f"{'photo':28s} {'whole (1)':>10s} {'centre/cut/aspect':>18s} {'hash file (all)':>16s}")
    for path in paths:
        rgb = decode_image(path.read_bytes(), source=str(path)).rgb
        labels, bits, ops, shape = measurements(rgb)
        truth = np.asarray(Image.fromarray(pdq.luma_from_rgb(rgb)).resize(shape[::-1], Image.Resampling.BOX), float)
        sets = {
            "whole": [0],
            "centre": [i for i, lab in enumerate(labels)
                       if lab == "full" or lab.endswith(":c") or lab.startswith(("cut", "aspect"))],
            "all": list(range(len(labels))),
        }
        scores = {}
        for name, use in sets.items():
            x = rebuild(bits, ops, shape, use)
            scores[name] = (len(use), correlation(x, truth))
            if args.save:
                args.save.mkdir(parents=True, exist_ok=True)
                img = ((x - x.min()) / (np.ptp(x) + 1e-9) * 255).astype(np.uint8)
                Image.fromarray(img).save(args.save / f"{path.parent.name}_{path.stem}_{name}.png")
        if args.save:
            Image.fromarray(truth.astype(np.uint8)).save(args.save / f"{path.parent.name}_{path.stem}_truth.png")
        print(f"{path.parent.name + '/' + path.name:28s} "
              + " ".join(f"{f'{c:.2f} ({n})':>{wd}s}" for (n, c), wd in zip(scores.values(), (10, 18, 16))))


if __name__ == "__main__":
    sys.exit(main())
