"""Finding the image files a command was pointed at."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Iterator

#: Extensions looked at inside folders. Files named explicitly are always tried, whatever their
#: name: the decoder sniffs the bytes and never trusts a name.
IMAGE_EXTENSIONS = frozenset(
    ".jpg .jpeg .jpe .jfif .png .gif .webp .bmp .dib .tif .tiff .heic .heif .hif .avif".split()
)


def iter_image_paths(paths: Iterable[str | Path], *, recursive: bool) -> Iterator[Path]:
    """Yield files named directly, and image files inside named folders, in a stable order."""
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            yield from _walk(path, recursive)
        else:
            yield path  # a missing file is reported by the hasher with its name


def _walk(folder: Path, recursive: bool) -> Iterator[Path]:
    if recursive:
        for root, dirs, files in os.walk(folder):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            for name in sorted(files):
                if not name.startswith(".") and Path(name).suffix.lower() in IMAGE_EXTENSIONS:
                    yield Path(root) / name
    else:
        for entry in sorted(folder.iterdir()):
            if entry.is_file() and not entry.name.startswith(".") and entry.suffix.lower() in IMAGE_EXTENSIONS:
                yield entry
