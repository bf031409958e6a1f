"""`ncii report takedowns`: per platform and notice type, time to removal (median, p90), share removed
within the deadline, open and overdue notices; --csv FILE, --json.

Exit codes: 0 success; 2 usage error; 3 the database or the data key is unavailable.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from monitor import db
from monitor.commands.registry import EXIT_OK, JSON_HELP, _database, _run
from monitor.takedowns import reports

_out = Console(highlight=False, soft_wrap=True)


def print_report(console: Console, rows: list[reports.Row]) -> None:
    """The report as a table."""
    t = Table(title="takedowns")
    for col in ("platform", "type", "notices", "sent", "removed", "median h", "p90 h", "within deadline", "open",
                "overdue"):
        t.add_column(col)
    for r in rows:
        share = "-" if r.within_deadline_share is None else f"{r.within_deadline_share:.0%}"
        t.add_row(Text(r.platform), r.notice_type, str(r.notices), str(r.sent), str(r.removed),
                  "-" if r.median_hours is None else f"{r.median_hours:g}",
                  "-" if r.p90_hours is None else f"{r.p90_hours:g}", share, str(r.open), str(r.overdue))
    console.print(t)


def report_takedowns(
    csv_file: Optional[Path] = typer.Option(None, "--csv", metavar="FILE", help="Also write the rows as CSV."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Takedown figures per platform and notice type (docs/takedowns.md explains each column)."""
    def body():
        with _database() as engine, db.session(engine) as s:
            rows = reports.takedown_report(s)
        if csv_file is not None:
            csv_file.write_text(reports.to_csv(rows), "utf-8")
        return EXIT_OK, {"rows": [r.to_dict() for r in rows]}, lambda: print_report(_out, rows)

    _run(as_json, body)


def register(app: typer.Typer) -> None:
    """Add `ncii report ...` to the CLI."""
    r = typer.Typer(help="Reports.", no_args_is_help=True)
    r.command("takedowns")(report_takedowns)
    app.add_typer(r, name="report")
