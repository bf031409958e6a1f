"""`ncii db ...`, `ncii case ...` and `ncii register`: the advocate's registry commands.

Exit codes: 0 success; 1 the command ran but input failed (some hashes rejected, an unreadable
hash file, a withdrawn or closed case, or the user declined a confirmation); 2 usage error
(bad option, malformed reference or country code); 3 the database or the data key is unavailable
(cannot connect, schema newer than this program, key file missing/unsafe/wrong);
4 the case does not exist.
"""

from __future__ import annotations

import getpass
import json
import os
import sys
from contextlib import contextmanager
from enum import Enum
from pathlib import Path
from typing import Any, Iterator, NoReturn, Optional

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError

from hashes.hashfile import InvalidHashFile, read_hash_file
from monitor import db, registry
from monitor.crypto import CryptoError
from monitor.keyfile import KeyFileError
from monitor.settings import Settings, SettingsError

EXIT_OK, EXIT_PARTIAL, EXIT_USAGE, EXIT_UNAVAILABLE, EXIT_NOT_FOUND = 0, 1, 2, 3, 4

_out = Console(highlight=False, soft_wrap=True)
_err = Console(stderr=True, highlight=False, soft_wrap=True)

JSON_HELP = "Print one JSON object on standard output instead of text (errors too, with \"ok\": false)."


class StatusChoice(str, Enum):
    active = "active"
    withdrawn = "withdrawn"
    closed = "closed"


class CommandFailed(Exception):
    """An error already turned into an exit code and a message."""

    def __init__(self, exit_code: int, code: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.exit_code, self.code, self.message, self.extra = exit_code, code, message, extra


def _actor() -> str:
    """Who is acting, for the audit log: NCII_ACTOR, else the operating-system user."""
    explicit = os.environ.get("NCII_ACTOR", "").strip()
    if explicit:
        return explicit[:128]
    try:
        return f"cli:{getpass.getuser()}"[:128]
    except Exception:  # no user name (containers): still record that it came from the CLI
        return "cli"


@contextmanager
def _errors() -> Iterator[None]:
    """Translate the exceptions of the layers below into exit codes and clear messages."""
    try:
        yield
    except CommandFailed:
        raise
    except KeyFileError as e:
        raise CommandFailed(EXIT_UNAVAILABLE, "key-unavailable", str(e)) from None
    except SettingsError as e:
        raise CommandFailed(EXIT_USAGE, "bad-setting", str(e)) from None
    except (db.DatabaseUnavailable, db.SchemaTooNew) as e:
        raise CommandFailed(EXIT_UNAVAILABLE, "database-unavailable", str(e)) from None
    except CryptoError as e:
        raise CommandFailed(EXIT_UNAVAILABLE, "key-mismatch", str(e)) from None
    except registry.CaseNotFound as e:
        raise CommandFailed(EXIT_NOT_FOUND, e.code, str(e)) from None
    except (registry.InvalidCaseReference, registry.InvalidCaseData) as e:
        raise CommandFailed(EXIT_USAGE, e.code, str(e)) from None
    except registry.RegistryError as e:
        raise CommandFailed(EXIT_PARTIAL, e.code, str(e)) from None
    except DBAPIError as e:
        # Connection lost mid-command, or the server refused: nothing was committed.
        reason = str(e.orig).strip().splitlines()[0] if e.orig is not None else type(e).__name__
        raise CommandFailed(EXIT_UNAVAILABLE, "database-error", f"database error, nothing was changed: {reason}") from None


def _run(as_json: bool, body: Any) -> NoReturn:
    """Run `body()` -> (exit code, JSON object, human printer); print either form; exit."""
    try:
        with _errors():
            code, obj, human = body()
    except CommandFailed as e:
        if as_json:
            print(json.dumps({"ok": False, "error": {"code": e.code, "message": e.message, **e.extra}}))
        else:
            _err.print(Text(f"error: {e.message}"))
        raise typer.Exit(e.exit_code) from None
    if as_json:
        print(json.dumps({"ok": True, **obj}, default=str))
    else:
        human()
    raise typer.Exit(code)


@contextmanager
def _database(settings: Settings | None = None, *, keys: bool = True, upgrade: bool = True) -> Iterator[Engine]:
    """The configured database, upgraded; its connections are closed when the command ends."""
    engine = db.open_database(settings or Settings.load(), keys=keys, upgrade_schema=upgrade)
    try:
        yield engine
    finally:
        engine.dispose()


# --- ncii db ---------------------------------------------------------------------------------------

def db_upgrade(as_json: bool = typer.Option(False, "--json", help=JSON_HELP)) -> None:
    """Create the database or upgrade its schema to this version (other commands do this too).

    The database is NCII_DATABASE_URL, or the SQLite file ncii.db in NCII_DATA_DIR (default: the per-user data folder). Also creates the data key file (ncii.key, mode 0600) on first use: back it up with the database.
    """
    def body():
        with _database(upgrade=False) as engine:
            before, after = db.upgrade(engine)
        head = db.head_revision()
        obj = {"before": before, "after": after, "head": head}

        def human() -> None:
            if before == after:
                _out.print(f"database schema is up to date (revision {after})")
            else:
                _out.print(f"database schema upgraded from {before or 'empty'} to {after}")
        return EXIT_OK, obj, human

    _run(as_json, body)


def db_current(as_json: bool = typer.Option(False, "--json", help=JSON_HELP)) -> None:
    """Show the database's schema revision and the newest one this program knows (changes nothing)."""
    def body():
        with _database(keys=False, upgrade=False) as engine:
            current, head = db.current_revision(engine), db.head_revision()
        obj = {"current": current, "head": head, "up_to_date": current == head,
               "database": Settings.load().display_url}

        def human() -> None:
            _out.print(Text(f"database: {obj['database']}"))
            _out.print(f"schema revision: {current or 'none (empty database)'}; newest known: {head}")
            if current != head:
                _out.print("run `ncii db upgrade` (any other ncii command also upgrades it)")
        return EXIT_OK, obj, human

    _run(as_json, body)


# --- ncii case -------------------------------------------------------------------------------------

def _read_stdin_option(value: Optional[str], other: Optional[str]) -> Optional[str]:
    if value != "-":
        return value
    if other == "-":
        raise CommandFailed(EXIT_USAGE, "usage", "only one of --label and --contact can be read from standard input")
    return sys.stdin.read().strip() or None


def case_create(
    jurisdiction: Optional[str] = typer.Option(
        None, "--jurisdiction", "-j", metavar="CC",
        help="Country whose law applies, as an ISO 3166-1 alpha-2 code (e.g. GB, US, DE). Optional."),
    minor: bool = typer.Option(
        False, "--minor", help="The images show a person under 18: such cases are handled as child sexual abuse "
                               "material (different reporting duties and partners)."),
    label: Optional[str] = typer.Option(
        None, "--label", metavar="TEXT",
        help="A short note for the advocate to recognise the case (stored encrypted). Avoid full names. "
             "Command lines can end up in shell history: pass '-' to read it from standard input."),
    contact: Optional[str] = typer.Option(
        None, "--contact", metavar="TEXT",
        help="How to reach the victim (stored encrypted). Pass '-' to read it from standard input."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Open a case; prints its reference and its secret (the secret is shown only this once).

    Give the secret to the victim: with it they can check or withdraw their case later. Only a slow one-way hash of it is stored, so it cannot be shown again or recovered.
    """
    def body():
        lab = _read_stdin_option(label, contact)
        con = _read_stdin_option(contact, label)
        with _database() as engine, db.transaction(engine) as s:
            new = registry.create_case(s, jurisdiction=jurisdiction, involves_minor=minor, label=lab,
                                       contact=con, actor=_actor())
        warning = ("Store the secret safely and give it only to the victim. It is shown this once: only a "
                   "one-way hash is kept, so it cannot be recovered.")
        obj = {"reference": new.reference, "secret": new.secret, "warning": warning}

        def human() -> None:
            _out.print(f"case reference: {new.reference}")
            _out.print(f"case secret:    {new.secret}")
            _err.print(Text(f"warning: {warning}", style="bold yellow"))
        return EXIT_OK, obj, human

    _run(as_json, body)


def case_show(
    reference: str = typer.Argument(..., metavar="REF", help="The case reference, e.g. NC-7K2M-Q9XD (any case, dashes optional)."),
    reveal: bool = typer.Option(
        False, "--reveal", help="Also show the label and contact details (decrypted; the access is audited)."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Show a case: status, jurisdiction, hash counts per algorithm, matches per review status."""
    def body():
        with _database() as engine, db.transaction(engine, write=reveal) as s:
            summary = registry.show_case(s, reference, actor=_actor(), personal_data=reveal)
        obj = {"case": summary.to_dict()}
        return EXIT_OK, obj, lambda: _print_case(summary, reveal)

    _run(as_json, body)


def _print_case(c: registry.CaseSummary, reveal: bool) -> None:
    t = Table(show_header=False, box=None, pad_edge=False)
    t.add_column(style="bold")
    t.add_column()
    rows: list[tuple[str, str]] = [
        ("reference", c.reference), ("status", c.status), ("jurisdiction", c.jurisdiction or "-"),
        ("involves a minor", "yes" if c.involves_minor else "no"),
        ("hashes matched", str(c.hashes_active) if c.status == "active" else f"0 (case {c.status})"),
        ("hashes stored", f"{c.hashes_active} active, {c.hashes_flagged} flagged low-quality, "
                          f"{c.hashes_withdrawn} withdrawn"),
        ("by algorithm", ", ".join(f"{a} {n}" for a, n in sorted(c.algorithms.items())) or "-"),
        ("images", str(c.images)), ("submissions", str(c.submissions)),
        ("matches", ", ".join(f"{k} {v}" for k, v in sorted(c.matches.items())) or "none"),
        ("created", c.created_at), ("updated", c.updated_at),
    ]
    if c.purged_at:
        rows.append(("purged", c.purged_at))
    if reveal:
        rows += [("label", c.label or "-"), ("contact", c.contact or "-")]
    for k, v in rows:
        t.add_row(k, Text(v))  # Text: user data is never interpreted as markup
    _out.print(t)


def case_list(
    status: Optional[StatusChoice] = typer.Option(None, "--status", help="Only cases with this status."),
    labels: bool = typer.Option(False, "--labels", help="Also show each case's label (decrypted; the access is audited)."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """List cases, oldest first, with their status and hash counts."""
    def body():
        with _database() as engine, db.transaction(engine, write=labels) as s:
            cases = registry.list_cases(s, status=status.value if status else None, labels=labels, actor=_actor())
        obj = {"cases": [c.to_dict() for c in cases]}

        def human() -> None:
            if not cases:
                _out.print("no cases")
                return
            t = Table()
            t.add_column("reference", no_wrap=True)  # never cut: it is what people copy
            for col in ("status", "country", "minor", "hashes", "images", "matches", "created"):
                t.add_column(col)
            if labels:
                t.add_column("label")
            for c in cases:
                row = [c.reference, c.status, c.jurisdiction or "-", "yes" if c.involves_minor else "no",
                       str(c.hashes_active), str(c.images), str(sum(c.matches.values())), c.created_at[:10]]
                if labels:
                    row.append(c.label or "-")
                t.add_row(*(Text(v) for v in row))
            _out.print(t)
        return EXIT_OK, obj, human

    _run(as_json, body)


def case_withdraw(
    reference: str = typer.Argument(..., metavar="REF", help="The case reference, e.g. NC-7K2M-Q9XD."),
    purge: bool = typer.Option(
        False, "--purge", help="Also delete the case's hashes and erase its label and contact details, for good. "
                               "The case reference, its status and the audit log remain."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation (needed when not interactive or with --json)."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Withdraw a case: its hashes stop matching immediately; with --purge they are deleted.

    Withdrawing is what a victim asks for when they no longer want monitoring. It cannot be undone (a new case can be opened instead). Running it again on a withdrawn case changes nothing, except that --purge then deletes what is left.
    """
    def body():
        if not yes:
            if as_json or not sys.stdin.isatty():
                raise CommandFailed(EXIT_USAGE, "confirmation-needed",
                                    "withdrawing needs confirmation: add --yes (no prompt is possible here)")
            what = "withdraw and PURGE (delete its hashes and personal data for good)" if purge else "withdraw"
            if not typer.confirm(f"{what} case {reference}?", default=False, err=True):
                raise CommandFailed(EXIT_PARTIAL, "declined", "nothing changed")
        with _database() as engine, db.transaction(engine) as s:
            result = registry.withdraw_case(s, reference, purge=purge, actor=_actor())

        def human() -> None:
            if result.already_withdrawn and not result.hashes_deleted:
                _out.print(f"case {result.reference} was already withdrawn; nothing changed")
            else:
                _out.print(f"case {result.reference} withdrawn: {result.hashes_withdrawn} hash(es) stopped matching")
            if result.hashes_deleted or (purge and result.purged):
                _out.print(f"purged: {result.hashes_deleted} hash(es) deleted, label and contact erased")
        return EXIT_OK, result.to_dict(), human

    _run(as_json, body)


# --- ncii register ---------------------------------------------------------------------------------

def register_command(
    hash_file: str = typer.Argument(..., metavar="FILE", help="The hash file from `ncii hash` (JSON Lines), or an "
                                                              "HMA 'pdq <hex>' file; '-' reads standard input."),
    case: str = typer.Option(..., "--case", "-c", metavar="REF", help="The case to register the hashes to."),
    keep_low_quality: bool = typer.Option(
        False, "--keep-low-quality",
        help="Store PDQ hashes below the quality threshold too, flagged and never matched (by default they are "
             "rejected and listed, and the command exits 1)."),
    min_quality: Optional[int] = typer.Option(
        None, "--min-quality", min=0, max=100, metavar="N",
        help="PDQ quality threshold, 0-100 (default: NCII_PDQ_MIN_QUALITY or 50, the value Meta and HMA use)."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Register a victim's hash file to a case. Registering the same file again adds nothing.

    The whole file is checked first: any malformed line (bad JSON, unknown algorithm, wrong hex length) stops the command with the line number, and nothing is registered. File names in the hash file are never stored.

    Exit codes: 0 all registered (or already present); 1 some hashes rejected (listed with the reason), the file is invalid, or the case is withdrawn/closed; 2 usage; 3 database or key unavailable; 4 no such case.
    """
    def body():
        parsed = _read_hash_file(hash_file)
        settings = Settings.load()
        threshold = settings.pdq_min_quality if min_quality is None else min_quality
        with _database(settings) as engine, db.transaction(engine) as s:
            summary = registry.register_hash_file(s, case, parsed, actor=_actor(), min_pdq_quality=threshold,
                                                  keep_low_quality=keep_low_quality)
        return (EXIT_PARTIAL if summary.partial else EXIT_OK), summary.to_dict(), lambda: _print_registration(summary)

    _run(as_json, body)


def _read_hash_file(name: str):  # -> HashFile
    try:
        if name == "-":
            return read_hash_file(sys.stdin)
        path = Path(name)
        with path.open("r", encoding="utf-8") as f:
            return read_hash_file(f)
    except InvalidHashFile as e:
        where = "standard input" if name == "-" else name
        raise CommandFailed(EXIT_PARTIAL, "invalid-hash-file", f"{where}: {e} (nothing was registered)",
                            line=e.line) from None
    except UnicodeDecodeError:
        raise CommandFailed(EXIT_PARTIAL, "invalid-hash-file", f"{name}: not a UTF-8 text file, so not a hash file") from None
    except OSError as e:
        raise CommandFailed(EXIT_USAGE, "cannot-read", f"cannot read {name}: {e.strerror}") from None


def _print_registration(s: registry.RegistrationSummary) -> None:
    _out.print(f"case {s.reference}: {s.images} image(s) in the file; {s.added} hash(es) added, "
               f"{s.duplicates} already registered, {len(s.rejected)} rejected"
               + (f", {s.flagged} kept but flagged low-quality (not matched)" if s.flagged else ""))
    if s.names_ignored:
        _out.print(f"note: {s.names_ignored} file name(s) in the hash file were not stored")
    if s.rejected:
        t = Table(title="rejected hashes")
        for col in ("image", "algorithm", "region", "reason"):
            t.add_column(col)
        shown = s.rejected[:50]
        for r in shown:
            t.add_row(str(r.image), Text(r.algorithm), Text(r.region), Text(r.reason))
        _err.print(t)
        if len(s.rejected) > len(shown):
            _err.print(f"... and {len(s.rejected) - len(shown)} more (use --json for the full list)")


def register(app: typer.Typer) -> None:
    """Add `ncii db`, `ncii case` and `ncii register` to the CLI."""
    db_app = typer.Typer(help="The database: create or upgrade its schema, show its revision.",
                         no_args_is_help=True)
    db_app.command("upgrade")(db_upgrade)
    db_app.command("current")(db_current)
    app.add_typer(db_app, name="db")

    case_app = typer.Typer(help="Cases: open one (reference + secret), show, list, withdraw.",
                           no_args_is_help=True)
    case_app.command("create")(case_create)
    case_app.command("show")(case_show)
    case_app.command("list")(case_list)
    case_app.command("withdraw")(case_withdraw)
    app.add_typer(case_app, name="case")

    app.command("register")(register_command)
