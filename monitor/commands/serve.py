"""`ncii serve`: the web app and the monitor's scheduler in one process.

On the embedded default with nothing set up (no NCII_DATABASE_URL, no staff account yet) it
serves the demo: the scripted demo's data in its own folder, its loopback site kept up so previews
work, and two demo accounts whose random passwords are printed once. Ctrl-C (or SIGTERM) stops
the web server and then the scheduler cleanly.

Exit codes: 0 stopped cleanly; 2 usage error; 3 the database or the port is unavailable.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import signal
import socket
import threading
from typing import Iterator, Optional

import typer
from rich.console import Console
from rich.text import Text

from monitor.commands.registry import EXIT_UNAVAILABLE, CommandFailed, _errors
from monitor.settings import Settings

PREVIEW_MIN_INTERVAL = 0.2  # seconds between two preview fetches from one host
_out = Console(highlight=False, soft_wrap=True)
_err = Console(stderr=True, highlight=False, soft_wrap=True)


def _port_free(host: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def _server_class():  # noqa: ANN202
    import uvicorn

    class Server(uvicorn.Server):
        """uvicorn re-raises the signal that stopped it once it has shut down; SIGTERM's default
        action would then kill the process before the scheduler is shut down. Ctrl-C or SIGTERM
        here means: stop serving, then return, so the caller shuts everything else down."""

        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            if threading.current_thread() is not threading.main_thread():
                yield
                return
            original = {sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
            try:
                yield
            finally:
                for sig, handler in original.items():
                    signal.signal(sig, handler)

    return Server


def serve_command(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on (0.0.0.0 in a container)."),
    port: int = typer.Option(8000, "--port", min=1, max=65535, help="Port to listen on."),
    demo: Optional[bool] = typer.Option(None, "--demo/--no-demo",
                                        help="Serve the demo (default: only when nothing is set up)."),
    scheduler: bool = typer.Option(True, "--scheduler/--no-scheduler",
                                   help="Also poll the sources on their schedules (default: yes)."),
    access_log: bool = typer.Option(False, "--access-log/--no-access-log",
                                    help="Log every request's path (off by default: paths hold case references)."),
) -> None:
    """Run the web app (review, cases, sources, self-service, API) and the monitor's scheduler."""
    import uvicorn

    from monitor import accounts, db
    from monitor.demo import serve as demo_serve
    from monitor.pipeline import http_client
    from monitor.scheduler import MonitorService
    from monitor.web import create_app

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for quiet in ("alembic", "apscheduler"):
        logging.getLogger(quiet).setLevel(logging.WARNING)
    try:
        with _errors():
            settings = Settings.load()
            if not _port_free(host, port):
                raise CommandFailed(EXIT_UNAVAILABLE, "port-in-use", f"cannot listen on {host}:{port}: the address "
                                                                     "is in use (choose another with --port)")
            use_demo = demo_serve.wants_demo(settings) if demo is None else demo
            site = None
            if use_demo:
                base = settings.data_dir / "demo-serve"
                _out.print(Text(f"Nothing is set up yet: serving the demo (its own database in {base})."))
                prepared = demo_serve.prepare(base, say=lambda m: _out.print(Text(m)))
                settings, site = prepared.settings, prepared.site
            engine = db.open_database(settings)
    except CommandFailed as e:
        _err.print(Text(f"error: {e.message}"))
        raise typer.Exit(e.exit_code) from None
    # Previews are fetched while a person waits: a shorter per-host interval than polling's.
    http = http_client(dataclasses.replace(settings.monitor, http_min_interval=min(
        settings.monitor.http_min_interval, PREVIEW_MIN_INTERVAL)))
    app = create_app(engine, settings, http_client=http)
    _Server = _server_class()
    service = None
    try:
        if scheduler:
            # The monitor's scheduler also purges expired sessions and reveals (monitor.scheduler).
            service = MonitorService(engine, settings)
            service.start()
        shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
        url = f"http://{shown if ':' not in shown else f'[{shown}]'}:{port}/"
        _out.print(Text(f"\nThe web app: {url}  (Ctrl-C stops it)"))
        if use_demo:
            _out.print(Text(f"Demo: {prepared.pending} match(es) of case {prepared.case_reference} await review in the app."))
            for name, password in prepared.passwords.items():
                _out.print(Text(f"  sign in as {name} with password {password}  (shown once)"))
            if prepared.case_secret:
                _out.print(Text(f"  victim self-service: {url}self-service with reference {prepared.case_reference} "
                                f"and secret {prepared.case_secret}"))
        else:
            with db.session(engine) as s:
                if accounts.count_users(s) == 0:
                    _out.print(Text("No staff account yet: create the first admin with "
                                    "`ncii user add NAME --role admin`."))
        _Server(uvicorn.Config(app, host=host, port=port, log_level="info", proxy_headers=True,
                               server_header=False, access_log=access_log)).run()
    finally:
        if service is not None:
            service.shutdown()
        http.close()
        if site is not None:
            site.close()
        engine.dispose()


def register(app: typer.Typer) -> None:
    """Add `ncii serve`."""
    app.command("serve")(serve_command)
