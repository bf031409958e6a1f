"""`ncii watch ...`: a case's watch terms (names, user names, handles) for search-capable sources.

Terms are personal data: stored encrypted, shown only by `ncii watch list` (audited), never
logged or put in alerts. Exit codes: 0 ok; 1 the case is not active (withdrawn or closed);
2 usage (empty or too long term, bad kind); 3 database or key unavailable; 4 no such case or term.
"""

from __future__ import annotations

import sys
from contextlib import contextmanager
from typing import Iterator, List, Optional

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from monitor import db, watchterms
from monitor.commands.registry import (EXIT_NOT_FOUND, EXIT_OK, EXIT_USAGE, JSON_HELP, CommandFailed, _actor,
                                       _database, _run)

_out = Console(highlight=False, soft_wrap=True)


@contextmanager
def _watch_errors() -> Iterator[None]:
    try:
        yield
    except watchterms.WatchTermNotFound as e:
        raise CommandFailed(EXIT_NOT_FOUND, e.code, str(e)) from None
    except watchterms.WatchTermError as e:
        raise CommandFailed(EXIT_USAGE, e.code, str(e)) from None


def _terms_from(terms: list[str], file: Optional[str]) -> list[str]:
    out = list(terms)
    if file:
        try:
            text = sys.stdin.read() if file == "-" else open(file, encoding="utf-8").read(1_000_000)
        except OSError as e:
            raise CommandFailed(EXIT_USAGE, "unreadable-file", f"--file: cannot read {file}: {e.strerror}") from None
        out.extend(line for line in text.splitlines() if line.strip())
    if not out:
        raise CommandFailed(EXIT_USAGE, "usage", "give TERM arguments or --file PATH (one term per line)")
    return out


def watch_add(
    reference: str = typer.Argument(..., metavar="CASE", help="The case reference, e.g. NC-7K2M-Q9XD."),
    terms: List[str] = typer.Argument(None, metavar="TERM...",
                                      help="Names, user names or handles to search for. Prefer --file: "
                                           "arguments show in `ps` and shell history."),
    file: Optional[str] = typer.Option(None, "--file", "-f", metavar="PATH",
                                       help="Read terms from this file, one per line ('-' for standard input)."),
    kind: str = typer.Option("name", "--kind", metavar="KIND", help="name, username or handle."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Add watch terms to an active case. Search-capable sources added with --watch-terms use them
    (Bluesky search, Reddit search); matches record only the case, never the term."""
    def body():
        items = _terms_from(terms or [], file)
        with _watch_errors(), _database() as engine, db.transaction(engine) as s:
            added = watchterms.add_terms(s, reference, items, kind=kind, actor=_actor())
        skipped = len(items) - len(added)
        obj = {"added": [{"id": t.id, "kind": t.kind} for t in added], "skipped_duplicates": skipped}
        return EXIT_OK, obj, lambda: _out.print(Text(
            f"added {len(added)} watch term(s) (ids {', '.join(str(t.id) for t in added) or '-'})"
            + (f"; {skipped} already there" if skipped else "")))

    _run(as_json, body)


def watch_list(
    reference: str = typer.Argument(..., metavar="CASE", help="The case reference."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Show a case's watch terms (decrypted; the access is audited)."""
    def body():
        with _watch_errors(), _database() as engine, db.transaction(engine) as s:
            items = watchterms.list_terms(s, reference, actor=_actor())

        def human() -> None:
            if not items:
                _out.print("no watch terms (add some with `ncii watch add CASE --file terms.txt`)")
                return
            t = Table()
            for col in ("id", "kind", "term", "added", "by"):
                t.add_column(col)
            for i in items:
                t.add_row(str(i.id), i.kind, Text(i.term), i.created_at[:16].replace("T", " "), Text(i.created_by))
            _out.print(t)
        return EXIT_OK, {"terms": [i.to_dict() for i in items]}, human

    _run(as_json, body)


def watch_remove(
    reference: str = typer.Argument(..., metavar="CASE", help="The case reference."),
    term_id: int = typer.Argument(..., metavar="TERM_ID", help="The term's id (see `ncii watch list`)."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Delete one watch term of a case (it is no longer searched for)."""
    def body():
        with _watch_errors(), _database() as engine, db.transaction(engine) as s:
            watchterms.remove_term(s, reference, term_id, actor=_actor())
        return EXIT_OK, {"removed": term_id}, lambda: _out.print(f"removed watch term {term_id}")

    _run(as_json, body)


def register(app: typer.Typer) -> None:
    """Add `ncii watch ...` to the CLI."""
    watch_app = typer.Typer(help="Watch terms of a case (names, user names, handles) for search-capable sources.",
                            no_args_is_help=True)
    watch_app.command("add")(watch_add)
    watch_app.command("list")(watch_list)
    watch_app.command("remove")(watch_remove)
    app.add_typer(watch_app, name="watch")
