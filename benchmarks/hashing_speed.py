"""Hashing speed per core: our default hash set versus the naive baselines and the floor.

    python benchmarks/hashing_speed.py [--quick]

Three kinds of input: 12-megapixel camera JPEGs (made from the shared photos: upscaled to
4000x3000 with fine noise so they compress like real photos), typical web images (~1000 px JPEGs),
and 12-megapixel phone photos in HEIC (4032x3024), which have no reduced decode.

* ours       hashes.compute.hash_bytes in the monitor's mode (query regions + dihedral PDQ, pHash,
             dHash, MD5, SHA-256) and in the victim's mode (registration regions)
* floor      read the file, MD5 + SHA-256 of its bytes, and decode it at the same reduced size
             (JPEG DCT scaling): the work no hasher can skip
* naive      imagehash.phash on a full decode; pdqhash on a full decode
* HEIC only: the victim's mode with the registration windows hashed at full size, as before
             2026-11-25 (`DecodeLimits(min_side=0)`: for HEIC that changes nothing else)

Everything runs in this one process (one core), interleaved round by round so that load on the
machine hits every contender alike. Last line: a JSON object of the figures.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import sys
from pathlib import Path

import numpy as np
from _common import CACHE, interleaved, machine, photo_paths, print_json  # noqa: E402
from PIL import Image

from hashes.compute import HashOptions, hash_bytes  # noqa: E402
from hashes.decode import DEFAULT_LIMITS, DecodeLimits, draft_jpeg  # noqa: E402


def make_camera_jpegs(count: int) -> list[Path]:
    """12 MP JPEGs (4000x3000, fine noise, quality 92), cached between runs."""
    out = CACHE / "camera12mp"
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    rng = np.random.default_rng(12)
    for src in photo_paths()[::max(1, 199 // count)][:count]:
        dst = out / (src.stem + "_12mp.jpg")
        if not dst.exists():
            im = Image.open(src).convert("RGB").resize((4000, 3000), Image.Resampling.BICUBIC)
            arr = np.asarray(im).astype(np.int16) + rng.integers(-5, 6, (3000, 4000, 3), dtype=np.int16)
            Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8)).save(dst, "JPEG", quality=92)
        paths.append(dst)
    return paths


def make_web_jpegs(count: int) -> list[Path]:
    """~1000-px JPEGs at quality 85, as sites serve them (from the 1024-px Sun-Hays photos)."""
    out = CACHE / "web1000"
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for src in [p for p in photo_paths() if p.parent.name == "sunhays80"][:count]:
        dst = out / (src.stem + "_web.jpg")
        if not dst.exists():
            Image.open(src).convert("RGB").save(dst, "JPEG", quality=85)
        paths.append(dst)
    return paths


def make_heic_photos(count: int) -> list[Path]:
    """12 MP phone photos as HEIC (4032x3024, quality 85), cached between runs (encoding is slow)."""
    import pillow_heif

    pillow_heif.register_heif_opener()
    # libheif decodes with several threads by default; one, so that every contender is per core.
    pillow_heif.options.DECODE_THREADS = 1
    out = CACHE / "heic12mp"
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    rng = np.random.default_rng(13)
    for src in photo_paths()[5::max(1, 199 // count)][:count]:
        dst = out / (src.stem + "_12mp.heic")
        if not dst.exists():
            im = Image.open(src).convert("RGB").resize((4032, 3024), Image.Resampling.BICUBIC)
            arr = np.asarray(im).astype(np.int16) + rng.integers(-4, 5, (3024, 4032, 3), dtype=np.int16)
            Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8)).save(dst, "HEIF", quality=85)
        paths.append(dst)
    return paths


def floor(path: Path) -> None:
    data = path.read_bytes()
    hashlib.md5(data, usedforsecurity=False).digest()
    hashlib.sha256(data).digest()
    im = Image.open(io.BytesIO(data))
    draft_jpeg(im, DEFAULT_LIMITS.min_side)  # the same DCT scaling our decoder asks for
    im.load()


QUERY = HashOptions(regions="query")
REGISTER = HashOptions(regions="register")
REGISTER_FULL_WINDOWS = HashOptions(regions="register", limits=DecodeLimits(min_side=0))


def ours_query(path: Path) -> None:
    hash_bytes(path.read_bytes(), source=str(path), options=QUERY)


def ours_register(path: Path) -> None:
    hash_bytes(path.read_bytes(), source=str(path), options=REGISTER)


def register_full_windows(path: Path) -> None:
    hash_bytes(path.read_bytes(), source=str(path), options=REGISTER_FULL_WINDOWS)


def naive_phash(path: Path) -> None:
    import imagehash
    imagehash.phash(Image.open(path))


def naive_pdq(path: Path) -> None:
    import pdqhash
    pdqhash.compute(np.asarray(Image.open(path).convert("RGB")))


def run(kind: str, paths: list[Path], rounds: int) -> dict:
    fns = {"floor": floor, "ours_query": ours_query, "ours_register": ours_register,
           "naive_phash": naive_phash, "naive_pdq": naive_pdq}
    if kind.startswith("phone_heic"):
        fns["register_full_windows"] = register_full_windows
    for fn in fns.values():  # warm caches and imports
        fn(paths[0])
    t = interleaved(fns, paths, rounds=rounds)
    ms = {k: v * 1000 for k, v in t.items()}
    return {
        "kind": kind, "images": len(paths),
        "ms": {k: round(v, 2) for k, v in ms.items()},
        "ours_vs_floor": round(ms["ours_query"] / ms["floor"], 3),
        "register_vs_floor": round(ms["ours_register"] / ms["floor"], 3),
        "speedup_vs_naive_phash": round(ms["naive_phash"] / ms["ours_query"], 2),
        "speedup_vs_naive_pdq": round(ms["naive_pdq"] / ms["ours_query"], 2),
        "images_per_s": round(1000 / ms["ours_query"], 1),
        **({"register_speedup_vs_full_windows": round(ms["register_full_windows"] / ms["ours_register"], 2)}
           if "register_full_windows" in ms else {}),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer images and rounds (about a minute)")
    args = ap.parse_args()
    n_cam, n_web, n_heic, rounds = (4, 12, 2, 2) if args.quick else (12, 40, 4, 3)
    results = [run("camera_12mp", make_camera_jpegs(n_cam), rounds), run("web_1000px", make_web_jpegs(n_web), rounds),
               run("phone_heic_12mp", make_heic_photos(n_heic), rounds)]
    print(f"{'input':<12} {'n':>3} {'floor':>8} {'ours(query)':>12} {'ours(reg)':>10} {'naive pHash':>12} {'naive PDQ':>10}  "
          f"{'ours/floor':>10} {'vs pHash':>9} {'vs PDQ':>7}")
    for r in results:
        m = r["ms"]
        print(f"{r['kind']:<12} {r['images']:>3} {m['floor']:>6.1f}ms {m['ours_query']:>10.1f}ms {m['ours_register']:>8.1f}ms "
              f"{m['naive_phash']:>10.1f}ms {m['naive_pdq']:>8.1f}ms  {r['ours_vs_floor']:>9.3f}x "
              f"{r['speedup_vs_naive_phash']:>8.1f}x {r['speedup_vs_naive_pdq']:>6.1f}x")
    for r in results:
        if "register_speedup_vs_full_windows" in r:
            print(f"{r['kind']}: victim's mode {r['ms']['ours_register']:.0f} ms, with the windows at full size "
                  f"{r['ms']['register_full_windows']:.0f} ms ({r['register_speedup_vs_full_windows']:.1f}x)")
    print("targets: ours/floor <= 1.15, >= 5x faster than each naive baseline (per core)")
    print_json({"benchmark": "hashing_speed", "quick": args.quick, **machine(),
                **{r["kind"]: r for r in results}})


if __name__ == "__main__":
    sys.exit(main())
