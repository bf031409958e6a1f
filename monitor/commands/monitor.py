"""`ncii monitor run|once|send-alerts`: the monitoring service and single passes.

Exit codes: 0 success (every source polled went through); 1 some source failed (see its error,
and `ncii source list`), or some alerts could not be delivered (send-alerts); 2 usage error
(bad option or setting); 3 the database or the data key is unavailable.
"""

from __future__ import annotations

import logging
import sys
from typing import List

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from monitor.alerts import AlertSender, channels_from_settings
from monitor.commands.registry import EXIT_OK, EXIT_PARTIAL, JSON_HELP, _database, _run
from monitor.commands.sources import _source_errors
from monitor.scheduler import MonitorService
from monitor.settings import Settings

_out = Console(highlight=False, soft_wrap=True)


def _logging(level: int) -> None:
    logging.basicConfig(level=level, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("apscheduler").setLevel(max(level, logging.WARNING))
    logging.getLogger("alembic").setLevel(logging.WARNING)


def monitor_run(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Also log the scheduler's own activity."),
) -> None:
    """Run the monitor in the foreground: poll every enabled source on its schedule, deliver alerts.

    Jobs are kept in the database (table apscheduler_jobs), so a restart continues the schedule.
    Sources added, paused or removed with `ncii source` while it runs are picked up within 15 s.
    Stop it with Ctrl-C or SIGTERM: the page being processed is abandoned (never half-recorded)
    and polled again next time. Logs go to standard error and never contain pictures, hashes or
    personal data. Settings: see docs/monitoring.md (NCII_SMTP_*, NCII_WEBHOOK_*, NCII_HTTP_*).
    """
    _logging(logging.DEBUG if verbose else logging.INFO)
    if verbose:
        logging.getLogger("apscheduler").setLevel(logging.INFO)

    def body():
        settings = Settings.load()
        with _database(settings) as engine:
            service = MonitorService(engine, settings)
            service.run()
        return EXIT_OK, {}, lambda: None

    _run(False, body)


def monitor_once(
    every: bool = typer.Option(False, "--all", help="Poll every enabled source, not only those due now."),
    source: List[str] = typer.Option([], "--source", metavar="NAME",
                                     help="Poll only this source (repeatable), due or not, even if paused."),
    no_alerts: bool = typer.Option(False, "--no-alerts", help="Do not deliver pending alerts afterwards."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log progress to standard error."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """One pass: poll every source that is due (or --all, or --source NAME), deliver alerts, exit.

    For cron-style use, or to see at once what a new source finds. Exits 1 when a source failed.
    """
    _logging(logging.INFO if verbose else logging.WARNING)

    def body():
        settings = Settings.load()
        with _source_errors(), _database(settings) as engine:
            service = MonitorService(engine, settings)
            try:
                report = service.once(every=every, names=source, send_alerts=not no_alerts)
            finally:
                service.shutdown()
        data = report.to_dict()

        def human() -> None:
            if not report.sources:
                _out.print("no source is due (use --all to poll every enabled source)")
            else:
                t = Table()
                t.add_column("source", no_wrap=True)
                t.add_column("result")
                for col in ("new", "hashed", "reused", "retry", "failed", "matches"):
                    t.add_column(col, justify="right")
                for r in report.sources:
                    result = ("busy" if r.busy else "stopped" if r.interrupted else
                              "ok" if r.ok else f"FAILED: {(r.error or {}).get('code', '')}")
                    t.add_row(Text(r.source), Text(result), str(r.new), str(r.hashed), str(r.reused),
                              str(r.retry), str(r.failed), str(r.new_matches))
                _out.print(t)
                for r in report.sources:
                    if r.error and not r.busy:
                        _out.print(Text(f"{r.source}: {r.error.get('message')}", style="red"))
            a = report.alerts
            if a.channels:
                _out.print(f"alerts: {a.sent} sent, {a.failed} failed (will be retried), {a.pending} pending")
            elif a.pending:
                _out.print(f"alerts: {a.pending} pending; no alert channel is configured (NCII_SMTP_HOST/"
                           f"NCII_SMTP_TO or NCII_WEBHOOK_URL/NCII_WEBHOOK_SECRET), they are kept until one is")
        return (EXIT_OK if report.ok else EXIT_PARTIAL), data, human

    _run(as_json, body)


def monitor_send_alerts(
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Deliver pending alerts now (email and/or webhook, as configured), without polling anything."""
    _logging(logging.WARNING)

    def body():
        settings = Settings.load()
        channels = channels_from_settings(settings)
        with _database(settings) as engine:
            report = AlertSender(engine, channels, public_url=settings.public_url).send_pending(limit=10_000)

        def human() -> None:
            if not channels:
                _out.print(f"no alert channel configured; {report.pending} alert(s) pending")
            else:
                _out.print(f"{report.sent} sent, {report.failed} failed (retried later), {report.cancelled} "
                           f"cancelled (case withdrawn), {report.pending} pending")
        return (EXIT_PARTIAL if report.failed else EXIT_OK), report.to_dict(), human

    _run(as_json, body)


def register(app: typer.Typer) -> None:
    """Add `ncii monitor ...` to the CLI."""
    monitor_app = typer.Typer(help="Monitoring: run the service, do one pass, deliver alerts.", no_args_is_help=True)
    monitor_app.command("run")(monitor_run)
    monitor_app.command("once")(monitor_once)
    monitor_app.command("send-alerts")(monitor_send_alerts)
    app.add_typer(monitor_app, name="monitor")
