"""`ncii source ...`: the places the monitor polls (add by URL, list, show, test, pause, remove).

Exit codes: 0 success; 1 the command ran but failed (a source with that name exists already,
the source's document could not be understood, the user declined); 2 usage error (bad option,
bad setting, unknown kind, a URL no connector recognises); 3 the database, the data key or the
source itself is unavailable (`source test`: it cannot be fetched); 4 no such source.
"""

from __future__ import annotations

import dataclasses
import sys
from contextlib import contextmanager
from typing import Iterator, List, Optional

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from connectors.errors import FetchError, SourceFormatError
from connectors.registry import CONNECTORS
from monitor import db, sources
from monitor.commands.registry import (EXIT_NOT_FOUND, EXIT_OK, EXIT_PARTIAL, EXIT_UNAVAILABLE, EXIT_USAGE, JSON_HELP,
                                       CommandFailed, _actor, _database, _run)
from monitor.drypoll import dry_poll
from monitor.settings import Settings

_out = Console(highlight=False, soft_wrap=True)
_err = Console(stderr=True, highlight=False, soft_wrap=True)

KIND_HELP = ("The connector: " + ", ".join(sorted(CONNECTORS)) + ", or 'auto' to pick the one that recognises "
             "the URL (see `ncii source kinds`).")


@contextmanager
def _source_errors() -> Iterator[None]:
    try:
        yield
    except sources.SourceNotFound as e:
        raise CommandFailed(EXIT_NOT_FOUND, e.code, str(e)) from None
    except sources.InvalidSource as e:
        raise CommandFailed(EXIT_USAGE, e.code, str(e)) from None
    except sources.SourceExists as e:
        raise CommandFailed(EXIT_PARTIAL, e.code, str(e)) from None


def _options(pairs: list[str], secret: frozenset[str] = frozenset()) -> dict[str, str]:
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key:
            raise CommandFailed(EXIT_USAGE, "usage", f"--set needs KEY=VALUE, got {pair!r}")
        if key in secret:
            raise CommandFailed(EXIT_USAGE, "secret-on-command-line",
                                f"{key} is a credential: a command-line value shows in `ps` and shell "
                                f"history; use --token-file, --token-env, --ask-token or "
                                f"--secret-file/--secret-env {key}=...")
        out[key] = value
    return out


TOKEN_FILE_HELP = ("Read the source's main credential (Mastodon/Lemmy access token, Bluesky app password, Reddit "
                   "client secret) from this file ('-' for standard input).")
TOKEN_ENV_HELP = "Read the main credential from this environment variable."
ASK_TOKEN_HELP = "Ask for the main credential (typed without echo)."
SECRET_FILE_HELP = "FIELD=PATH: read one credential setting from a file (repeatable), e.g. client_id=~/reddit-id."
SECRET_ENV_HELP = "FIELD=VAR: read one credential setting from an environment variable (repeatable)."


def _read_secret_file(path: str, what: str) -> str:
    import os
    try:
        if path == "-":
            text = sys.stdin.read()
        else:
            with open(os.path.expanduser(path), encoding="utf-8") as f:
                text = f.read(65536)
    except OSError as e:
        raise CommandFailed(EXIT_USAGE, "unreadable-secret", f"{what}: cannot read {path}: {e.strerror}") from None
    value = text.strip()
    if not value:
        raise CommandFailed(EXIT_USAGE, "empty-secret", f"{what}: {path} is empty")
    return value


def _read_secret_env(var: str, what: str) -> str:
    import os
    value = os.environ.get(var, "").strip()
    if not value:
        raise CommandFailed(EXIT_USAGE, "empty-secret", f"{what}: environment variable {var} is not set or empty")
    return value


def _credentials(kind: str, token_file: Optional[str], token_env: Optional[str], ask: bool,
                 files: list[str], envs: list[str]) -> dict[str, str]:
    """Credential settings from files, environment variables or a prompt: never from argv values."""
    with _source_errors():
        allowed = sources.secret_fields(kind)
    primary = getattr(CONNECTORS[kind].settings_class, "primary_secret", None) if kind in CONNECTORS else None
    out: dict[str, str] = {}
    if token_file or token_env or ask:
        if not primary:
            raise CommandFailed(EXIT_USAGE, "no-credentials", f"{kind} sources take no credentials")
        if sum(bool(x) for x in (token_file, token_env, ask)) > 1:
            raise CommandFailed(EXIT_USAGE, "usage", "give one of --token-file, --token-env, --ask-token")
        if token_file:
            out[primary] = _read_secret_file(token_file, "--token-file")
        elif token_env:
            out[primary] = _read_secret_env(token_env, "--token-env")
        else:
            if not sys.stdin.isatty():
                raise CommandFailed(EXIT_USAGE, "not-interactive", "--ask-token needs a terminal; use --token-file")
            out[primary] = typer.prompt(f"{primary} for this {kind} source", hide_input=True, err=True).strip()
    for opt, pairs, reader in (("--secret-file", files, _read_secret_file), ("--secret-env", envs, _read_secret_env)):
        for pair in pairs:
            key, sep, where = pair.partition("=")
            key = key.strip().replace("-", "_")
            if not sep or not key or not where:
                raise CommandFailed(EXIT_USAGE, "usage", f"{opt} needs FIELD=SOURCE, got {pair!r}")
            if key not in allowed:
                raise CommandFailed(EXIT_USAGE, "usage", f"{opt}: {key!r} is not a credential of {kind} sources "
                                                         f"({', '.join(sorted(allowed)) or 'none'})")
            out[key] = reader(where, opt)
    return out


def _ago(iso: str | None) -> str:
    return iso.replace("T", " ").replace("+00:00", "Z") if iso else "-"


def _short(iso: str | None) -> str:
    """'11-25 17:11' (month-day hour:minute, UTC): for tables."""
    return iso[5:16].replace("T", " ") if iso else "-"


def _state_text(s: sources.SourceSummary) -> Text:
    if s.state == "needs-credentials":
        return Text("NEEDS CREDENTIALS", style="bold red")
    if s.state == "failing":
        return Text(f"FAILING {s.consecutive_failures}x", style="bold red")
    if s.state == "paused":
        return Text("paused", style="yellow")
    if s.state == "new":
        return Text("new")
    return Text("ok", style="green")


# --- commands ----------------------------------------------------------------------------------------

def source_add(
    kind: str = typer.Argument(..., metavar="KIND", help=KIND_HELP),
    url: Optional[str] = typer.Argument(None, metavar="URL",
                                        help="The address as copied from a browser: a feed, a sitemap or robots.txt, "
                                             "a gallery page, a file:// folder or WARC file; https://HOST/tags/NAME, "
                                             "/@user or /public/local (mastodon); https://bsky.app/profile/HANDLE "
                                             "(bluesky; none with --search); https://www.reddit.com/r/NAME (reddit); "
                                             "https://HOST/c/NAME (lemmy)."),
    name: Optional[str] = typer.Option(None, "--name", "-n", metavar="NAME",
                                       help="A short unique name (letters, digits, '.', '_', '-'). Default: made from "
                                            "the host and the kind."),
    every: str = typer.Option("15m", "--every", "-e", metavar="DURATION",
                              help="How often to poll, e.g. 30m, 1h, 1d (at least 1m)."),
    jitter: Optional[str] = typer.Option(None, "--jitter", metavar="DURATION",
                                         help="Random extra delay up to this, so sources do not all poll at once "
                                              "(default: a tenth of --every, at most 5m)."),
    set_: List[str] = typer.Option([], "--set", "-s", metavar="KEY=VALUE",
                                   help="A connector setting (repeatable), e.g. --set page_images=true or "
                                        "--set image_selector='.gallery img'. Lists are comma-separated. "
                                        "`ncii source kinds` lists every kind's settings."),
    paused: bool = typer.Option(False, "--paused", help="Add it paused (not polled until `ncii source resume`)."),
    search: Optional[str] = typer.Option(None, "--search", metavar="TERM",
                                         help="bluesky, reddit: search for TERM (stored encrypted like a credential)."),
    watch_terms: bool = typer.Option(False, "--watch-terms",
                                     help="bluesky, reddit: also search for the watch terms of every active case "
                                          "(`ncii watch add`)."),
    token_file: Optional[str] = typer.Option(None, "--token-file", metavar="PATH", help=TOKEN_FILE_HELP),
    token_env: Optional[str] = typer.Option(None, "--token-env", metavar="VAR", help=TOKEN_ENV_HELP),
    ask_token: bool = typer.Option(False, "--ask-token", help=ASK_TOKEN_HELP),
    secret_file: List[str] = typer.Option([], "--secret-file", metavar="FIELD=PATH", help=SECRET_FILE_HELP),
    secret_env: List[str] = typer.Option([], "--secret-env", metavar="FIELD=VAR", help=SECRET_ENV_HELP),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Add a source to poll. Its settings are checked now (no network); it is polled on the next pass.

    Use `ncii source test NAME` to try it once without recording anything. Credentials (API tokens,
    app passwords, client secrets) are read from a file, an environment variable or a prompt, never
    from a command-line value, and are stored encrypted.
    """
    def body():
        nonlocal url
        with _source_errors():
            # The kind `auto` would pick: needed now to know which settings are credentials.
            effective = kind if kind != "auto" else (sources.resolve_connector(url, "auto").kind if url else kind)
            options = _options(set_, sources.secret_fields(effective) if effective != "auto" else frozenset())
            if search is not None:
                options["query"] = search
            if watch_terms:
                options["use_watch_terms"] = "true"
            if effective != "auto":
                options.update(_credentials(effective, token_file, token_env, ask_token, secret_file, secret_env))
            if not url:
                if kind == "bluesky" and (search is not None or watch_terms):
                    url = "https://bsky.app/search"
                else:
                    raise sources.InvalidSource("URL is required (only a bluesky search source takes none)")
            interval = sources.parse_duration(every, what="--every")
            if interval < sources.CLI_MIN_INTERVAL_SECONDS:
                raise sources.InvalidSource("--every must be at least 1m: polling more often is not polite to sites")
            jit = sources.parse_duration(jitter, what="--jitter") if jitter is not None else None
            with _database() as engine, db.transaction(engine) as s:
                summary = sources.add_source(s, url, kind=kind, name=name, interval=interval, jitter=jit,
                                             options=options, enabled=not paused, actor=_actor())

        def human() -> None:
            _out.print(Text(f"added source {summary.name} ({summary.kind}) polling every "
                            f"{sources.format_duration(summary.interval_seconds)}"
                            + (" (paused)" if paused else "")))
            _out.print(Text(f"try it: ncii source test {summary.name}"))
        return EXIT_OK, {"source": summary.to_dict()}, human

    _run(as_json, body)


def source_list(as_json: bool = typer.Option(False, "--json", help=JSON_HELP)) -> None:
    """List sources with their health: state (ok, FAILING with the back-off, paused), last success, next poll."""
    def body():
        with _database() as engine, db.session(engine) as s:
            items = sources.list_sources(s)

        def human() -> None:
            if not items:
                _out.print("no sources (add one with `ncii source add KIND URL`)")
                return
            t = Table(caption="times in UTC")
            t.add_column("name", no_wrap=True)
            t.add_column("kind", no_wrap=True)
            t.add_column("every", no_wrap=True)
            t.add_column("state", no_wrap=True)
            t.add_column("last success", no_wrap=True)
            t.add_column("next poll", no_wrap=True)
            t.add_column("items", justify="right")
            for i in items:
                t.add_row(Text(i.name), i.kind, sources.format_duration(i.interval_seconds), _state_text(i),
                          _short(i.last_success_at), _short(i.next_due_at) if i.enabled else "-",
                          str(sum(i.candidates.values())))
            _out.print(t)
            for i in items:
                if i.last_error:
                    _out.print(Text(f"{i.name}: {i.last_error}", style="red"))
        return EXIT_OK, {"sources": [i.to_dict() for i in items]}, human

    _run(as_json, body)


def source_show(
    name: str = typer.Argument(..., metavar="NAME", help="The source's name (see `ncii source list`)."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Show one source: settings (secrets hidden), schedule, health and what it has listed so far."""
    def body():
        with _source_errors(), _database() as engine, db.session(engine) as s:
            summary = sources.show_source(s, name)

        def human() -> None:
            t = Table(show_header=False, box=None, pad_edge=False)
            t.add_column(style="bold")
            t.add_column()
            rows = [("name", summary.name), ("kind", summary.kind), ("url", summary.url),
                    ("every", f"{sources.format_duration(summary.interval_seconds)} "
                              f"(+ up to {sources.format_duration(summary.jitter_seconds)} jitter)"),
                    ("state", _state_text(summary).plain + (f", backing off {sources.format_duration(summary.backoff_seconds)}"
                                                            if summary.backoff_seconds else "")),
                    ("added", _ago(summary.created_at)),
                    ("last poll", _ago(summary.last_poll_at)), ("last success", _ago(summary.last_success_at)),
                    ("next poll", _ago(summary.next_due_at) if summary.enabled else "paused"),
                    ("failures in a row", str(summary.consecutive_failures)),
                    ("last error", summary.last_error or "-"),
                    ("conditional requests", "yes (ETag/Last-Modified kept)" if summary.conditional else "no"),
                    ("items", ", ".join(f"{k} {v}" for k, v in sorted(summary.candidates.items())) or "none")]
            for k, v in summary.settings.items():
                rows.append((f"setting {k}", str(v)))
            for k, v in rows:
                t.add_row(k, Text(v))
            _out.print(t)
        return EXIT_OK, {"source": summary.to_dict()}, human

    _run(as_json, body)


def source_remove(
    name: str = typer.Argument(..., metavar="NAME", help="The source's name."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation (needed when not interactive "
                                                        "or with --json)."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Stop polling a source and forget what it listed. Media, sightings, matches and alerts it found stay."""
    def body():
        if not yes:
            if as_json or not sys.stdin.isatty():
                raise CommandFailed(EXIT_USAGE, "confirmation-needed", "removing needs confirmation: add --yes")
            if not typer.confirm(f"remove source {name}?", default=False, err=True):
                raise CommandFailed(EXIT_PARTIAL, "declined", "nothing changed")
        with _source_errors(), _database() as engine, db.transaction(engine) as s:
            result = sources.remove_source(s, name, actor=_actor())
        return EXIT_OK, result, lambda: _out.print(Text(
            f"removed source {name} ({result['candidates_forgotten']} listed item(s) forgotten)"))

    _run(as_json, body)


def source_credentials(
    name: str = typer.Argument(..., metavar="NAME", help="The source's name."),
    token_file: Optional[str] = typer.Option(None, "--token-file", metavar="PATH", help=TOKEN_FILE_HELP),
    token_env: Optional[str] = typer.Option(None, "--token-env", metavar="VAR", help=TOKEN_ENV_HELP),
    ask_token: bool = typer.Option(False, "--ask-token", help=ASK_TOKEN_HELP),
    secret_file: List[str] = typer.Option([], "--secret-file", metavar="FIELD=PATH", help=SECRET_FILE_HELP),
    secret_env: List[str] = typer.Option([], "--secret-env", metavar="FIELD=VAR", help=SECRET_ENV_HELP),
    clear: List[str] = typer.Option([], "--clear", metavar="FIELD", help="Remove a stored credential (repeatable)."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Add, rotate or remove a source's credentials (stored encrypted; never shown). The source is
    due at once and its failure count is reset, e.g. after "needs credentials"."""
    def body():
        with _source_errors(), _database() as engine, db.transaction(engine) as s:
            kind = sources.get_source(s, name).kind
            values = _credentials(kind, token_file, token_env, ask_token, secret_file, secret_env)
            if not values and not clear:
                raise CommandFailed(EXIT_USAGE, "usage", "give a credential (--token-file, --token-env, --ask-token, "
                                                         "--secret-file, --secret-env) or --clear FIELD")
            summary = sources.set_credentials(s, name, values, actor=_actor(),
                                              clear=[c.replace("-", "_") for c in clear])
        changed = sorted(set(values) | {c.replace("-", "_") for c in clear})
        return EXIT_OK, {"source": summary.to_dict(), "changed": changed}, lambda: _out.print(Text(
            f"source {name}: credentials updated ({', '.join(changed)}); due now"))

    _run(as_json, body)


def _set_enabled(name: str, enabled: bool, as_json: bool) -> None:
    def body():
        with _source_errors(), _database() as engine, db.transaction(engine) as s:
            summary = sources.set_enabled(s, name, enabled, actor=_actor())
        word = "resumed (due now)" if enabled else "paused"
        return EXIT_OK, {"source": summary.to_dict()}, lambda: _out.print(Text(f"source {name} {word}"))

    _run(as_json, body)


def source_pause(name: str = typer.Argument(..., metavar="NAME", help="The source's name."),
                 as_json: bool = typer.Option(False, "--json", help=JSON_HELP)) -> None:
    """Stop polling a source for now (its cursor and history are kept)."""
    _set_enabled(name, False, as_json)


def source_resume(name: str = typer.Argument(..., metavar="NAME", help="The source's name."),
                  as_json: bool = typer.Option(False, "--json", help=JSON_HELP)) -> None:
    """Poll a paused source again (it is due at once)."""
    _set_enabled(name, True, as_json)


def source_test(
    name: str = typer.Argument(..., metavar="NAME", help="The source's name."),
    limit: int = typer.Option(20, "--limit", min=0, metavar="N", help="How many of the new items to list."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Poll a source once without recording anything, and show what the monitor would fetch.

    Reads the feed/sitemap/pages as a real poll would (from the stored cursor, through the same
    safe HTTP client) but fetches no pictures and changes nothing. Exits 3 with the reason when the
    source cannot be fetched, 1 when what it serves cannot be understood.
    """
    def body():
        settings = Settings.load()
        with _source_errors(), _database(settings) as engine:
            result = dry_poll(engine, name, settings.monitor, max_items=100_000)
        e = result.error
        if isinstance(e, FetchError):
            raise CommandFailed(EXIT_UNAVAILABLE, e.code, f"source {name} cannot be polled: {e}",
                                retryable=e.retryable) from None
        if isinstance(e, SourceFormatError):
            raise CommandFailed(EXIT_PARTIAL, e.code, f"source {name} cannot be understood: {e}") from None
        if e is not None:
            raise CommandFailed(EXIT_PARTIAL, e.code, f"source {name}: {e}") from None
        listed, new, pages, notes = result.listed, result.new, result.pages, result.notes
        shown = [{"media_url": c.media_url, "page_url": c.page_url, "media_type": c.media_type.value,
                  "posted_at": c.posted_at.isoformat() if c.posted_at else None} for c in new[:limit]]
        obj = {"source": name, "pages": pages, "listed": listed, "new": len(new), "already_seen": listed - len(new),
               "items": shown, "notes": notes[:50]}

        def human() -> None:
            _out.print(Text(f"source {name}: {listed} item(s) listed in {pages} page(s); {len(new)} new would be "
                            f"fetched, {listed - len(new)} already seen. Nothing was recorded."))
            for item in shown:
                _out.print(Text(f"  {item['media_type']:7} {item['media_url']}"))
            if len(new) > len(shown):
                _out.print(f"  ... and {len(new) - len(shown)} more")
            for note in notes[:10]:
                _err.print(Text(f"note: {note}"))
        return EXIT_OK, obj, human

    _run(as_json, body)


def _describe(field: dataclasses.Field) -> str:
    hint = field.type if isinstance(field.type, str) else getattr(field.type, "__name__", str(field.type))
    default = field.default if field.default is not dataclasses.MISSING else (
        field.default_factory() if field.default_factory is not dataclasses.MISSING else None)  # type: ignore[misc]
    if isinstance(default, tuple):
        default = ",".join(map(str, default))
    return f"{field.name} ({hint}; default {default!r})"


def source_kinds(as_json: bool = typer.Option(False, "--json", help=JSON_HELP)) -> None:
    """List the connector kinds and every setting each one takes (for --set)."""
    def body():
        kinds = []
        for kind, c in sorted(CONNECTORS.items()):
            fields = [f for f in dataclasses.fields(c.settings_class)
                      if f.name != "url" and not f.metadata.get("transient")]
            notes = getattr(c.settings_class, "HELP", {})
            kinds.append({"kind": kind, "title": c.title,
                          "settings": [{"name": f.name, "type": str(f.type), "default": _describe(f),
                                        "help": notes.get(f.name, "")} for f in fields],
                          "secret": sorted(c.settings_class.secret_fields)})

        def human() -> None:
            for k in kinds:
                _out.print(Text(f"{k['kind']}: {k['title']}", style="bold"))
                for f in k["settings"]:
                    secret = " [credential: --token-file/--secret-file]" if f["name"] in k["secret"] else ""
                    _out.print(Text(f"  --set {f['default']}{secret}" + (f": {f['help']}" if f["help"] else "")))
        return EXIT_OK, {"kinds": kinds}, human

    _run(as_json, body)


def _platform_epilog() -> str:
    """Every platform connector's settings, for `ncii source add --help`."""
    lines = ["Platform settings (--set KEY=VALUE; credentials only through --token-*/--secret-*; "
             "`ncii source kinds` lists the other kinds):"]
    from connectors.platform import PlatformSettings
    common = PlatformSettings.HELP
    lines.append("ALL PLATFORMS. " + "; ".join(f"{k}: {v}" for k, v in common.items()) + ".")
    for kind in ("mastodon", "bluesky", "reddit", "lemmy"):
        c = CONNECTORS.get(kind)
        if c is None:
            continue
        notes = getattr(c.settings_class, "HELP", {})
        parts = [f"{k}: {v}" for k, v in notes.items() if common.get(k) != v]
        lines.append(f"{kind.upper()}. " + "; ".join(parts) + ".")
    lines.append("Examples: ncii source add mastodon https://HOST/tags/NAME; ncii source add bluesky "
                 "https://bsky.app/profile/HANDLE; ncii source add bluesky --search TERM --set identifier=HANDLE "
                 "--token-file app-password.txt; ncii source add reddit https://www.reddit.com/r/NAME --set "
                 "username=ME --secret-file client_id=id.txt --token-file secret.txt; ncii source add lemmy "
                 "https://HOST/c/NAME.")
    return "\n\n".join(lines)


def register(app: typer.Typer) -> None:
    """Add `ncii source ...` to the CLI."""
    source_app = typer.Typer(help="Sources the monitor polls: add by URL, list with health, show, test, pause, "
                                  "resume, remove.", no_args_is_help=True)
    source_app.command("add", epilog=_platform_epilog())(source_add)
    source_app.command("credentials")(source_credentials)
    source_app.command("list")(source_list)
    source_app.command("show")(source_show)
    source_app.command("test")(source_test)
    source_app.command("pause")(source_pause)
    source_app.command("resume")(source_resume)
    source_app.command("remove")(source_remove)
    source_app.command("kinds")(source_kinds)
    app.add_typer(source_app, name="source")
