"""`ncii compare A B`: distances per algorithm between two images or hash files, and the verdict."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from hashes.compute import HashOptions, hash_file
from hashes.decode import sniff_format
from hashes.errors import HashingError
from hashes.hashfile import InvalidHashFile, read_hash_file
from hashes.policy import default_policy
from hashes.signals import get_signal_type
from hashes.types import HashValue
from monitor.offline import no_network

_HEAD = 64


def _load(path: Path, mode: str) -> list[tuple[str, list[HashValue]]]:
    """(label, hashes) for each picture in `path`: an image, or every image of a hash file."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(_HEAD)
    except OSError as e:
        raise typer.BadParameter(f"cannot read {path}: {e.strerror}") from None
    if sniff_format(head) is not None:
        return [(path.name, hash_file(path, HashOptions(regions=mode)).hashes)]  # type: ignore[arg-type]
    try:
        with open(path, encoding="utf-8") as fh:
            hf = read_hash_file(fh)
    except (InvalidHashFile, UnicodeDecodeError) as e:
        raise typer.BadParameter(f"{path} is neither an image nor a hash file ({e})") from None
    return [(f"{path.name}#{im.number}", im.hashes) for im in hf.images]


def compare_command(
    a: Path = typer.Argument(..., help="The registered side: an original image or a victim's hash file.", show_default=False),
    b: Path = typer.Argument(..., help="The found side: an image seen online, or a hash file.", show_default=False),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object per pair."),
) -> None:
    """Show the distance per algorithm between A and B and whether the default policy calls it a match.

    A is hashed as an original (with its registration regions), B as a found picture (with its
    candidate regions and mirrored/rotated variants). Offline. Exit code: 0 a match, 1 no match,
    2 usage error or unreadable input.
    """
    policy = default_policy()
    err = Console(stderr=True, highlight=False)
    try:
        with no_network():
            left = _load(a, "register")
            right = _load(b, "query")
    except HashingError as e:
        err.print(f"error: {e}", markup=False)
        raise typer.Exit(2)
    any_match = False
    results = []
    for la, ha in left:
        for lb, hb in right:
            decision = policy.evaluate(hb, ha)
            any_match |= decision.matched
            results.append((la, lb, decision))
    if as_json:
        for la, lb, d in results:
            print(json.dumps({"a": la, "b": lb, **d.as_dict()}))
    else:
        out = Console(highlight=False)
        for la, lb, d in results:
            table = Table(title=f"{la}  vs  {lb}", title_justify="left")
            table.add_column("algorithm")
            table.add_column("distance", justify="right")
            table.add_column("bits", justify="right")
            for alg, dist in sorted(d.distances.items()):
                table.add_row(alg, str(dist), str(get_signal_type(alg).bits))
            out.print(table)
            verdict = "[bold red]MATCH[/]" if d.matched else "[green]no match[/]"
            out.print(f"verdict: {verdict} — {d.reason}")
    raise typer.Exit(0 if any_match else 1)
