"""`ncii hash` (the victim's offline hasher) and `ncii compare`."""

from __future__ import annotations

import json
import sys
from contextlib import nullcontext
from enum import Enum
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from hashes.batch import hash_paths
from hashes.pool import DEFAULT_TIMEOUT
from hashes.compute import DEFAULT_ALGORITHMS, OPTIONAL_ALGORITHMS, HashOptions
from hashes.errors import HashingError
from hashes.hashfile import HashFileWriter, make_header
from monitor import __version__
from monitor.files import iter_image_paths
from monitor.offline import no_network


class ExportFormat(str, Enum):
    jsonl = "jsonl"
    csv = "csv"
    hma = "hma"
    stopncii = "stopncii"


def _parse_algorithms(text: Optional[str]) -> tuple[str, ...]:
    if not text:
        return DEFAULT_ALGORITHMS
    names = tuple(dict.fromkeys(a.strip().lower() for a in text.split(",") if a.strip()))
    known = set(DEFAULT_ALGORITHMS) | set(OPTIONAL_ALGORITHMS)
    bad = [a for a in names if a not in known]
    if bad:
        raise typer.BadParameter(f"unknown algorithm(s): {', '.join(bad)}; choose from {', '.join(sorted(known))}")
    return names


def _offline_worker() -> None:
    # Runs in each hashing worker process, so the guarantee holds there too.
    no_network().__enter__()


def hash_command(
    paths: list[Path] = typer.Argument(..., help="Image files and folders to hash.", show_default=False),
    recursive: bool = typer.Option(False, "--recursive", "-r", help="Also hash images in sub-folders."),
    output: str = typer.Option("-", "--output", "-o", help="Write the hash file here ('-' = standard output)."),
    fmt: ExportFormat = typer.Option(ExportFormat.jsonl, "--format", "-f", help="jsonl: this project's hash file (docs/hash-file.md); csv: one hash per row; hma: 'pdq <hex>' lines that HMA banks and python-threatexchange load; stopncii: the PDQ list in the shape StopNCII exchanges with partner platforms."),
    keep_names: bool = typer.Option(False, "--keep-names", help="Record each file's name in the hash file. Off by default: names can identify a person."),
    algorithms: Optional[str] = typer.Option(None, "--algorithms", "-a", help=f"Comma-separated algorithms (default: {','.join(DEFAULT_ALGORITHMS)}; also available: {','.join(OPTIONAL_ALGORITHMS)})."),
    no_regions: bool = typer.Option(False, "--no-regions", help="Hash whole pictures only (crops of them will then not be found)."),
    jobs: Optional[int] = typer.Option(None, "--jobs", "-j", min=1, help="Worker processes (default: one per core)."),
    timeout: float = typer.Option(DEFAULT_TIMEOUT, "--timeout", min=0, help="Seconds one image may take before it is reported as failed and the batch goes on (0: no limit)."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON summary on standard output (needs -o FILE)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar or summary (errors are still printed)."),
) -> None:
    """Hash images on this computer, offline, into a hash file to register with an advocate.

    Nothing is uploaded, copied or logged: the network is switched off for this command, and the
    hash file holds only hashes (no pictures, thumbnails or file names unless --keep-names).
    Exit code: 0 all hashed, 1 some files failed, 2 usage error.
    """
    algs = _parse_algorithms(algorithms)
    if as_json and output == "-":
        raise typer.BadParameter("--json prints a summary on standard output, so the hash file needs -o FILE", param_hint="--json")
    options = HashOptions(algorithms=algs, regions="none" if no_regions else "register")
    err = Console(stderr=True, highlight=False)
    files = list(iter_image_paths(paths, recursive=recursive))
    if not files:
        err.print("ncii hash: no image files found in the given paths")
        raise typer.Exit(1)
    header = make_header(algs, options.regions, f"ncii {__version__}")
    hashed, failures = 0, []
    out_cm = nullcontext(sys.stdout) if output == "-" else _atomic_writer(Path(output))
    show_progress = not quiet and not as_json and err.is_terminal and len(files) > 1
    with no_network(), out_cm as stream:
        writer = HashFileWriter(stream, fmt.value, header)
        progress = Progress(TextColumn("hashing"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                            console=err, transient=True, disable=not show_progress)
        with progress:
            task = progress.add_task("hash", total=len(files))
            for path, result in hash_paths(files, options, jobs=jobs, initializer=_offline_worker,
                                               timeout=timeout or None):
                if isinstance(result, HashingError):
                    failures.append({"file": str(path), "error": result.code, "problem": result.problem})
                    err.print(f"error: {path}: {result.problem}", markup=False)
                else:
                    hashed += 1
                    writer.write(result, path.name if keep_names else None)
                progress.advance(task)
        writer.close()
    summary = {"hashed": hashed, "failed": len(failures), "errors": failures,
               "output": None if output == "-" else output, "format": fmt.value}
    if as_json:
        print(json.dumps(summary))
    elif not quiet:
        where = "standard output" if output == "-" else output
        err.print(f"hashed {hashed} image(s), {len(failures)} failed; wrote {where} ({fmt.value})", markup=False)
    raise typer.Exit(1 if failures else 0)


class _atomic_writer:
    """Write to FILE.tmp and rename on success, so an interrupted run never leaves half a hash file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.tmp = path.with_name(path.name + ".tmp")

    def __enter__(self):
        try:
            self.fh = open(self.tmp, "w", encoding="utf-8", newline="\n")
        except OSError as e:
            raise typer.BadParameter(f"cannot write {self.path}: {e.strerror}", param_hint="--output") from None
        return self.fh

    def __exit__(self, exc_type, exc, tb) -> None:
        self.fh.close()
        if exc_type is None or issubclass(exc_type, typer.Exit):
            self.tmp.replace(self.path)
        else:
            self.tmp.unlink(missing_ok=True)


def register(app: typer.Typer) -> None:
    """Add the hashing commands to the CLI."""
    app.command("hash")(hash_command)
    from monitor.commands.compare import compare_command

    app.command("compare")(compare_command)
