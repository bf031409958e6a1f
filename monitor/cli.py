"""The `ncii` command: one Typer app; each group of commands lives in monitor/commands/.

Exit codes: 0 success; 1 the command ran but some input failed (or, for commands that say so,
a match was found); 2 usage error (bad flags or arguments; Typer's default); 3 a needed
resource is unavailable (database, network source).
"""

from __future__ import annotations

import importlib

import typer

app = typer.Typer(
    name="ncii",
    help="Find and take down non-consensual intimate images: hash locally, register, monitor, review.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

#: Modules under monitor/commands/ that add commands; each has `register(app)`.
COMMAND_MODULES = ("hashing", "registry", "scan", "demo", "sources", "monitor",
                   "watch", "accounts", "audit", "serve", "takedowns", "reports", "keys")


def _load_commands() -> None:
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f"monitor.commands.{name}")
        except ModuleNotFoundError as e:
            if e.name == f"monitor.commands.{name}":
                continue  # a command group not written yet
            raise
        module.register(app)


_load_commands()


def main() -> None:
    """Entry point of the `ncii` console script."""
    app()


if __name__ == "__main__":
    main()
