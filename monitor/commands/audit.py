"""`ncii audit verify`: check the audit log's hash chain.

Exit codes: 0 the chain is intact; 1 it is broken (the first bad entry is named); 3 the database is
unavailable.
"""

from __future__ import annotations

import typer
from rich.console import Console
from rich.text import Text

from monitor import audit, db
from monitor.commands.registry import EXIT_OK, EXIT_PARTIAL, JSON_HELP, _database, _run

_out = Console(highlight=False, soft_wrap=True)


def audit_verify(as_json: bool = typer.Option(False, "--json", help=JSON_HELP)) -> None:
    """Recompute the audit log's hash chain; exit 1 and name the first entry that does not fit."""
    def body():
        with _database(keys=False) as engine, db.session(engine) as s:
            report = audit.verify_chain(s)
        obj = {"intact": report.ok, "checked": report.checked, "first_bad_id": report.first_bad_id,
               "problem": report.problem}

        def human() -> None:
            if report.ok:
                _out.print(Text(f"audit log intact: {report.checked} entries verified"))
            else:
                _out.print(Text(f"AUDIT LOG BROKEN at entry {report.first_bad_id}: {report.problem} "
                                f"({report.checked} entries before it verified)"))
        return (EXIT_OK if report.ok else EXIT_PARTIAL), obj, human

    _run(as_json, body)


def register(app: typer.Typer) -> None:
    """Add `ncii audit ...`."""
    audit_app = typer.Typer(help="The append-only, hash-chained audit log.", no_args_is_help=True)
    audit_app.command("verify")(audit_verify)
    app.add_typer(audit_app, name="audit")
