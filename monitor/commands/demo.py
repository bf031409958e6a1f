"""`ncii demo`: the whole flow on synthetic pictures and a local web site, with its own throw-away database."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.text import Text

from monitor.alerts import email_text
from monitor.commands.scan import print_matches
from monitor.demo.run import run_demo
from monitor.settings import Settings


def demo_command(
    directory: Optional[Path] = typer.Option(
        None, "--dir", help="Where to put the demo's pictures and database (default: a 'demo' folder in the data "
                            "folder). Wiped at the start of every run; your real database is never touched."),
    send_alerts: bool = typer.Option(
        False, "--send-alerts", help="Deliver the demo's alerts through the configured channels (NCII_SMTP_*, "
                                     "NCII_WEBHOOK_*), to check them. Without it (or with none configured) they are "
                                     "only printed (a dry-run sink)."),
    as_json: bool = typer.Option(False, "--json", help="Print the matches, the alerts and what was planted as one "
                                                       "JSON object."),
) -> None:
    """Run a complete local demo: hash, register, add two sources, poll them, show matches and alerts.

    The "internet" is a small web site the demo serves on 127.0.0.1 (this computer only) while it
    runs: an RSS feed and a gallery page. Needs no configuration and no network. Exit code 0 when
    the pass ran and nothing unrelated matched (planted copies the policy misses are listed, with
    why); 1 when a source failed or an unrelated picture matched.
    """
    base = directory or Settings.load().data_dir / "demo"
    out = Console(highlight=False)
    alerts_shown: list[dict] = []
    result = run_demo(base, say=(lambda _m: None) if as_json else (lambda m: out.print(Text(m))),
                      send_alerts=send_alerts, show_alert=alerts_shown.append)
    data = result.as_dict()
    planted_names = {p["file"] for p in result.planted}
    false_matches = [m for m in result.matches if m["file"] not in planted_names]
    failed_sources = [r for r in result.once.sources if not r.ok]
    ok = not false_matches and not failed_sources
    found_names = {m["file"] for m in result.matches}
    missed = [p for p in result.planted if p["file"] not in found_names]
    if as_json:
        print(json.dumps({"ok": ok, "missed": missed, **data}, default=str))
    else:
        out.print()
        print_matches(out, result.matches)
        for msg in alerts_shown:
            subject, body = email_text(msg)
            out.print(Text(f"--- alert (dry run; not sent) ---\nSubject: {subject}\n\n{body}"))
        out.print(f"found {data['planted_found']} of {len(result.planted)} planted copies; "
                  f"{len(false_matches)} unrelated picture(s) matched; "
                  f"{sum(r.failed for r in result.once.sources)} item(s) failed; {len(result.alerts) or data['pass']['alerts']['sent']} alert(s).")
        for p in missed:
            out.print(Text(f"not found: {p['file']} ({p['alteration']}): the default policy does not catch every "
                           "alteration yet; docs/matching.md lists what it misses and why."))
        out.print(Text("Next: an advocate reviews the other matches (blurred previews) in the web app (`ncii serve`); "
                       "no notice is drafted for a match a person has not confirmed. "
                       f"Demo files: {base}"))
    raise typer.Exit(0 if ok else 1)


def register(app: typer.Typer) -> None:
    """Add `ncii demo` to the CLI."""
    app.command("demo")(demo_command)
