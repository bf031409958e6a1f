"""Helpers shared by the benchmarks: locating shared data, timing, and the closing JSON line."""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
PHOTOS = SHARED / "photos"
CACHE = Path(os.environ.get("NCII_BENCH_CACHE", "/tmp/ncii-bench-cache"))

if str(ROOT) not in sys.path:  # run as `python benchmarks/NAME.py` from anywhere
    sys.path.insert(0, str(ROOT))


def photo_paths(limit: int | None = None) -> list[Path]:
    """The shared natural photos, in a stable order; exits with a clear message if absent."""
    if not PHOTOS.is_dir():
        sys.exit(f"benchmark needs the shared photos at {PHOTOS} (see DEVELOPERS.md)")
    paths = sorted(PHOTOS.glob("*/*.jpg"))
    return paths[:limit] if limit else paths


def machine() -> dict:
    """What the numbers were measured on."""
    return {"machine": platform.machine(), "cpus": os.cpu_count(), "python": platform.python_version(),
            "system": platform.system(), "date": time.strftime("%Y-%m-%d")}


def time_per_item(fn: Callable[[object], object], items: list, repeat: int = 3) -> float:
    """Best-of-`repeat` mean seconds per item of fn over items (best-of filters a noisy machine)."""
    runs = []
    for _ in range(repeat):
        start = time.perf_counter()
        for it in items:
            fn(it)
        runs.append((time.perf_counter() - start) / len(items))
    return min(runs)


def interleaved(fns: dict[str, Callable[[object], object]], items: list, rounds: int = 3) -> dict[str, float]:
    """Seconds per item for each fn, measured in alternating rounds so load noise hits all alike."""
    best = {name: float("inf") for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            start = time.perf_counter()
            for it in items:
                fn(it)
            best[name] = min(best[name], (time.perf_counter() - start) / len(items))
    return best


def median(xs: list[float]) -> float:
    """Median of a non-empty list."""
    return statistics.median(xs)


def print_json(figures: dict) -> None:
    """The closing line every benchmark prints: one JSON object of its figures."""
    print(json.dumps(figures, sort_keys=True))
