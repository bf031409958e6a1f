"""`ncii keys ...`: rotate the data key that encrypts personal data at rest.

Exit codes: 0 success; 1 the command ran but the job is not done (values left under old keys or
undecryptable, a key still in use, keys kept in NCII_SECRET_KEY so the file cannot be changed);
2 usage error; 3 the database or the key file is unavailable.
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from typing import Iterator

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

from monitor import keyrotation
from monitor.commands.registry import EXIT_OK, EXIT_PARTIAL, JSON_HELP, CommandFailed, _actor, _database, _run
from monitor.crypto import keyring_for
from monitor.settings import Settings

_out = Console(highlight=False, soft_wrap=True)
_err = Console(stderr=True, highlight=False, soft_wrap=True)

PROCEDURE = """\
Rotate the data key that encrypts personal data at rest. In this order:

\b
1. ncii keys add: adds key N+1 to the key file; it encrypts new values
   once every ncii process (serve, monitor) has been restarted
2. ncii keys rotate: re-encrypts all values under older keys (resumable)
3. ncii keys status: checks that no value is left under the old key
4. ncii keys retire OLD: removes the old key (refused while in use)
5. back up the key file with the database; keep the old key file as
   long as you keep database backups made before the rotation

With NCII_SECRET_KEY instead of a key file, `keys add` prints a new
key to put first in it ("2:NEW,1:OLD"); remove the old entry yourself.
"""


@contextmanager
def _key_errors() -> Iterator[None]:
    try:
        yield
    except keyrotation.KeyStillInUse as e:
        raise CommandFailed(EXIT_PARTIAL, e.code, str(e), columns=e.columns) from None
    except keyrotation.KeysFromEnvironment as e:
        extra = {"new_key": e.new_key} if e.new_key else {}
        raise CommandFailed(EXIT_PARTIAL, e.code, str(e), **extra) from None
    except keyrotation.KeyRotationError as e:
        raise CommandFailed(EXIT_PARTIAL, e.code, str(e)) from None


def _key_name(key_id: int) -> str:
    return "malformed" if key_id == keyrotation.MALFORMED else str(key_id)


def keys_status(as_json: bool = typer.Option(False, "--json", help=JSON_HELP)) -> None:
    """How many encrypted values each key id holds, per column (reads headers only, decrypts nothing).

    Exit 1 when some values are under a key id the key ring lacks, or are malformed.
    """
    def body():
        settings = Settings.load()
        ids, source = keyrotation.configured_key_ids(settings)
        with _database(settings, keys=False) as engine:
            usage = keyrotation.key_usage(engine)
        current = max(ids) if ids else None
        by_key = usage.by_key()
        unreadable = {k: n for k, n in by_key.items() if k not in ids}
        obj = {"keys": ids, "current": current, "source": source, "total": usage.total(),
               "by_key": {_key_name(k): n for k, n in by_key.items()},
               "columns": {p: {_key_name(k): n for k, n in c.items()} for p, c in usage.columns.items()},
               "not_current": usage.not_under(current) if current is not None else usage.total(),
               "unreadable": sum(unreadable.values())}
        obj["complete"] = obj["not_current"] == 0

        def human() -> None:
            _out.print(Text(f"keys {', '.join(map(str, ids)) or '(none yet)'} from {source}; "
                            f"current (encrypts new values): {current if current is not None else '-'}"))
            table = Table("column", *[f"key {_key_name(k)}" for k in by_key])
            for purpose, counts in usage.columns.items():
                table.add_row(purpose, *[str(counts.get(k, 0)) for k in by_key])
            _out.print(table)
            if unreadable:
                _out.print(Text(f"{obj['unreadable']} values are under key ids this key ring lacks, or malformed: "
                                "they cannot be read with these keys"))
            elif obj["not_current"]:
                _out.print(Text(f"{obj['not_current']} values are under older keys: run `ncii keys rotate`"))
            else:
                old = [k for k in ids if k != current]
                _out.print(Text(f"all {obj['total']} values are under key {current}"
                                + (f": key {', '.join(map(str, old))} can be retired" if old else "")))
        return (EXIT_PARTIAL if unreadable else EXIT_OK), obj, human

    _run(as_json, body)


def keys_add(as_json: bool = typer.Option(False, "--json", help=JSON_HELP)) -> None:
    """Add a new key (the next id) to the key file; restart every ncii process afterwards.

    The new key encrypts values written from then on; older keys still decrypt. With
    NCII_SECRET_KEY set nothing is written: the new key is printed once for you to add there.
    """
    def body():
        settings = Settings.load()
        try:
            with _key_errors():
                added = keyrotation.add_key(settings)
        except CommandFailed as e:
            if e.code == keyrotation.KeysFromEnvironment.code:
                _from_environment(e, as_json)
            raise
        obj = {"key_id": added.key_id, "key_file": str(added.key_file)}

        def human() -> None:
            _out.print(Text(f"added key {added.key_id} to {added.key_file}"))
            _out.print(Text("next: restart every ncii process (serve, monitor), then run `ncii keys rotate`"))
        return EXIT_OK, obj, human

    _run(as_json, body)


def _from_environment(e: CommandFailed, as_json: bool) -> None:
    # The key is printed once, on standard output like `ncii user add` prints a password.
    new_key = e.extra["new_key"]
    if as_json:
        print(json.dumps({"ok": False, "error": {"code": e.code, "message": e.message}, "new_key": new_key}))
    else:
        _err.print(Text(f"error: {e.message}"))
        _out.print(Text(f"new key (shown once): {new_key}"))
    raise typer.Exit(EXIT_PARTIAL)


def keys_rotate(
    batch_size: int = typer.Option(keyrotation.DEFAULT_BATCH_SIZE, "--batch-size", min=1, max=100_000,
                                   help="Values re-encrypted per transaction (each batch is committed)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Re-encrypt every value still under an older key with the current key.

    Safe to interrupt and to run again: committed batches stay done, the next run continues. Run it
    after `ncii keys add` and restarting every ncii process. Exit 1 if values are left over.
    """
    def body():
        with _database() as engine:
            current = keyring_for(engine.dialect).current_id
            todo = keyrotation.key_usage(engine).not_under(current)
            show = not quiet and not as_json and _err.is_terminal and todo > 0
            progress = Progress(TextColumn(f"re-encrypting under key {current}"), BarColumn(), MofNCompleteColumn(),
                                TimeRemainingColumn(), console=_err, transient=True, disable=not show)
            with progress:
                task = progress.add_task("rotate", total=todo)
                report = keyrotation.reencrypt(engine, actor=_actor(), batch_size=batch_size,
                                               on_batch=lambda b: progress.advance(task, b.processed))
        obj = report.to_dict()

        def human() -> None:
            _out.print(Text(f"re-encrypted {report.reencrypted} values under key {report.key_id}"))
            for purpose, n in report.columns.items():
                _out.print(Text(f"  {purpose}: {n}"))
            if report.changed:
                _out.print(Text(f"{report.changed} values changed while rotating and were left as written"))
            if report.failed:
                where = ", ".join(f"{n} in {p}" for p, n in report.failed_columns.items())
                _out.print(Text(f"{report.failed} values could not be decrypted with these keys ({where}): "
                                "see `ncii keys status`"))
            if report.complete:
                _out.print(Text(f"every value is under key {report.key_id}: check with `ncii keys status`, "
                                "then `ncii keys retire OLD_ID`"))
            else:
                _out.print(Text(f"{report.remaining} values are still under other keys"))
        return (EXIT_OK if report.complete else EXIT_PARTIAL), obj, human

    _run(as_json, body)


def keys_retire(
    key_id: int = typer.Argument(..., metavar="ID", min=1, max=keyrotation.MAX_KEY_ID,
                                 help="The old key id to remove from the key file."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Remove an old key from the key file; refused while any value is still encrypted under it.

    Back up the new key file afterwards, and keep the previous one as long as you keep database
    backups made before the rotation (they need the old key).
    """
    def body():
        settings = Settings.load()
        with _key_errors(), _database(settings) as engine:
            path = keyrotation.retire_key(settings, engine, key_id, actor=_actor())
        obj = {"key_id": key_id, "key_file": str(path)}

        def human() -> None:
            _out.print(Text(f"retired key {key_id} from {path}"))
            _out.print(Text("back up the key file now (with the database)"))
        return EXIT_OK, obj, human

    _run(as_json, body)


def register(app: typer.Typer) -> None:
    """Add `ncii keys ...`."""
    keys_app = typer.Typer(help=PROCEDURE, no_args_is_help=True)
    keys_app.command("status")(keys_status)
    keys_app.command("add")(keys_add)
    keys_app.command("rotate")(keys_rotate)
    keys_app.command("retire")(keys_retire)
    app.add_typer(keys_app, name="keys")
