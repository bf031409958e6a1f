"""`ncii scan PATH...`: hash files and folders, match them against the registry, record the results."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

from monitor.commands.registry import EXIT_OK, EXIT_PARTIAL, JSON_HELP, _actor, _database, _run
from monitor.files import iter_image_paths
from monitor.matching import Matcher
from monitor.scan import scan_files


def print_matches(console: Console, matches: list[dict]) -> None:
    """The matches table shown by `ncii scan` and `ncii demo`."""
    table = Table(title="matches (awaiting review by a person)", title_justify="left")
    for col in ("file", "case", "algorithm", "distance", "evidence", "new"):
        table.add_column(col, justify="right" if col == "distance" else "left")
    for r in matches:
        evidence = f"{r['rule']}: {r['query_region']} ~ {r['registered_region']}"
        table.add_row(Text(r["file"]), r["case"], r["algorithm"], f"{r['distance']}/{r['max_distance']}",
                      evidence, "new" if r["new"] else "seen before")
    console.print(table)


def scan_command(
    paths: list[Path] = typer.Argument(..., help="Image files and folders to scan.", show_default=False),
    recursive: bool = typer.Option(False, "--recursive", "-r", help="Also scan images in sub-folders."),
    jobs: int = typer.Option(None, "--jobs", "-j", min=1, help="Hashing worker processes (default: one per core)."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Hash images, match them against every active case, and record media and matches.

    Recording is idempotent: scanning the same file again adds no second match. Each match is
    listed with the file, the case reference, the algorithm, the distance and the evidence.
    Matches await review by a person; nothing is sent anywhere. Exit code: 0 all files scanned
    (whether or not anything matched), 1 some files could not be hashed, 3 database unavailable.
    """
    err = Console(stderr=True, highlight=False)

    def body():
        files = list(iter_image_paths(paths, recursive=recursive))
        with _database() as engine:
            matcher = Matcher(engine)
            progress = Progress(TextColumn("scanning"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                                console=err, transient=True, disable=as_json or not err.is_terminal or len(files) < 2)
            task = progress.add_task("scan", total=len(files))

            def on_item(path, error) -> None:
                if error is not None and not as_json:
                    progress.console.print(f"error: {path}: {error.problem}", markup=False)
                progress.advance(task)

            try:
                with progress:
                    report = scan_files(engine, matcher, files, actor=_actor(), jobs=jobs, on_item=on_item)
            finally:
                matcher.close()

        def human() -> None:
            out = Console(highlight=False)
            if report.matches:
                print_matches(out, report.matches)
            out.print(f"scanned {report.scanned} file(s), {len(report.failures)} failed; "
                      f"{len(report.matches)} match(es), {report.new_matches} new")
        return (EXIT_PARTIAL if report.failures else EXIT_OK), report.as_dict(), human

    _run(as_json, body)


def register(app: typer.Typer) -> None:
    """Add `ncii scan` to the CLI."""
    app.command("scan")(scan_command)
