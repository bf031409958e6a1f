"""`ncii user ...`: staff accounts of the web app (the first admin is created here) and API tokens.

Exit codes: 0 success; 1 the command ran but failed (the user exists already); 2 usage error
(bad user name, role, password or token name); 3 the database or the data key is unavailable;
4 no such user or token.
"""

from __future__ import annotations

import sys
from contextlib import contextmanager
from enum import Enum
from typing import Iterator

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from monitor import accounts, db
from monitor.commands.registry import (EXIT_NOT_FOUND, EXIT_OK, EXIT_PARTIAL, EXIT_USAGE, JSON_HELP, CommandFailed,
                                       _actor, _database, _run)

_out = Console(highlight=False, soft_wrap=True)


class RoleChoice(str, Enum):
    admin = "admin"
    advocate = "advocate"


@contextmanager
def _account_errors() -> Iterator[None]:
    try:
        yield
    except accounts.InvalidAccountData as e:
        raise CommandFailed(EXIT_USAGE, e.code, str(e)) from None
    except accounts.UserExists as e:
        raise CommandFailed(EXIT_PARTIAL, e.code, str(e)) from None
    except (accounts.UserNotFound, accounts.TokenNotFound) as e:
        raise CommandFailed(EXIT_NOT_FOUND, e.code, str(e)) from None


def user_add(
    username: str = typer.Argument(..., metavar="NAME", help="User name: 2-64 lower-case letters, digits, '.', '_', '-'."),
    role: RoleChoice = typer.Option(RoleChoice.advocate, "--role", help="admin (everything) or advocate (own cases)."),
    password_stdin: bool = typer.Option(False, "--password-stdin",
                                        help="Read the password from standard input instead of generating one."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Create a staff account; without --password-stdin a random password is generated and printed once."""
    def body():
        password = sys.stdin.readline().rstrip("\r\n") if password_stdin else accounts.new_password()
        with _account_errors(), _database() as engine, db.transaction(engine) as s:
            user = accounts.create_user(s, username, role.value, password, actor=_actor())
            obj = {"user": accounts.user_dict(user)}
        if not password_stdin:
            obj["password"] = password

        def human() -> None:
            _out.print(Text(f"created {user.role} {user.username}"))
            if not password_stdin:
                _out.print(Text(f"password (shown once): {password}"))
        return EXIT_OK, obj, human

    _run(as_json, body)


def user_list(as_json: bool = typer.Option(False, "--json", help=JSON_HELP)) -> None:
    """List the staff accounts."""
    def body():
        with _database() as engine, db.session(engine) as s:
            users = [accounts.user_dict(u) for u in accounts.list_users(s)]

        def human() -> None:
            table = Table("user", "role", "state", "last sign-in")
            for u in users:
                table.add_row(u["username"], u["role"], "disabled" if u["disabled"] else "active",
                              u["last_sign_in_at"] or "never")
            _out.print(table)
        return EXIT_OK, {"users": users}, human

    _run(as_json, body)


def _set_disabled(username: str, disabled: bool, as_json: bool) -> None:
    def body():
        with _account_errors(), _database() as engine, db.transaction(engine) as s:
            user, revoked = accounts.set_disabled(s, username, disabled, actor=_actor())
            obj = {"user": accounts.user_dict(user)}
        if revoked is not None:
            obj["revoked"] = revoked.to_dict()
            said = f"{user.username} disabled: {revoked.message()}"
        else:
            said = f"{user.username} enabled (tokens revoked when it was disabled stay revoked)"
        return EXIT_OK, obj, lambda: _out.print(Text(said))

    _run(as_json, body)


def user_disable(username: str = typer.Argument(..., metavar="NAME"),
                 as_json: bool = typer.Option(False, "--json", help=JSON_HELP)) -> None:
    """Disable an account: its sessions end and its API tokens are revoked."""
    _set_disabled(username, True, as_json)


def user_enable(username: str = typer.Argument(..., metavar="NAME"),
                as_json: bool = typer.Option(False, "--json", help=JSON_HELP)) -> None:
    """Re-enable an account."""
    _set_disabled(username, False, as_json)


def user_password(username: str = typer.Argument(..., metavar="NAME"),
                  password_stdin: bool = typer.Option(False, "--password-stdin",
                                                      help="Read the new password from standard input."),
                  as_json: bool = typer.Option(False, "--json", help=JSON_HELP)) -> None:
    """Set a new password (generated and printed once unless --password-stdin); every session of the
    user ends and every API token of theirs is revoked."""
    def body():
        password = sys.stdin.readline().rstrip("\r\n") if password_stdin else accounts.new_password()
        with _account_errors(), _database() as engine, db.transaction(engine) as s:
            user, revoked = accounts.set_password(s, username, password, actor=_actor())
        obj = {"user": user.username, **({} if password_stdin else {"password": password}),
               "revoked": revoked.to_dict()}

        def human() -> None:
            _out.print(Text(f"password of {user.username} changed: {revoked.message()}"))
            if not password_stdin:
                _out.print(Text(f"new password (shown once): {password}"))
        return EXIT_OK, obj, human

    _run(as_json, body)


def user_token(
    username: str = typer.Argument(..., metavar="NAME", help="Whose token."),
    name: str = typer.Option("cli", "--name", help="What the token is for (shown in lists)."),
    revoke: int = typer.Option(None, "--revoke", metavar="ID", help="Revoke the token with this id instead."),
    list_: bool = typer.Option(False, "--list", help="List the user's tokens instead."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Create an API token for a user (printed once), or --list / --revoke ID their tokens.

    Tokens do not expire; revoke those no longer used. Changing the password or disabling the
    account revokes them all."""
    from monitor.web.routes.users import token_dict

    def body():
        with _account_errors(), _database() as engine, db.transaction(engine) as s:
            user = accounts.get_user(s, username)
            if list_:
                rows = [token_dict(t) for t in accounts.list_api_tokens(s, user)]

                def show() -> None:
                    table = Table("id", "name", "created", "last used", "revoked")
                    for t in rows:
                        table.add_row(str(t["id"]), t["name"], t["created_at"], t["last_used_at"] or "never",
                                      t["revoked_at"] or "")
                    _out.print(table)
                return EXIT_OK, {"tokens": rows}, show
            if revoke is not None:
                row = token_dict(accounts.revoke_api_token(s, user, revoke, actor=_actor()))
                return EXIT_OK, {"token": row}, lambda: _out.print(Text(f"token {revoke} revoked"))
            token, row = accounts.create_api_token(s, user, name, actor=_actor())
            obj = {"token": token, **token_dict(row)}
        return EXIT_OK, obj, lambda: _out.print(Text(f"API token for {username} (shown once): {token}"))

    _run(as_json, body)


def user_purge_expired(as_json: bool = typer.Option(False, "--json", help=JSON_HELP)) -> None:
    """Delete expired sessions, lapsed preview reveals and stale sign-in throttle rows now.

    `ncii serve` and `ncii monitor run` do this every 30 minutes; running it again deletes nothing more."""
    def body():
        with _database(keys=False) as engine, db.transaction(engine) as s:  # no personal data touched
            counts = accounts.purge_expired(s)
        return EXIT_OK, {"purged": counts}, lambda: _out.print(Text(
            f"purged {counts['sessions']} expired session(s), {counts['reveals']} lapsed reveal(s), "
            f"{counts['throttle']} stale throttle row(s)"))

    _run(as_json, body)


def register(app: typer.Typer) -> None:
    """Add `ncii user ...`."""
    user_app = typer.Typer(help="Staff accounts of the web app (admin, advocate) and their API tokens.",
                           no_args_is_help=True)
    user_app.command("add")(user_add)
    user_app.command("list")(user_list)
    user_app.command("disable")(user_disable)
    user_app.command("enable")(user_enable)
    user_app.command("password")(user_password)
    user_app.command("token")(user_token)
    user_app.command("purge-expired")(user_purge_expired)
    app.add_typer(user_app, name="user")
