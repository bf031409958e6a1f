"""`ncii db`, `ncii case`, `ncii register` through the CLI runner, on SQLite and PostgreSQL."""

from __future__ import annotations

import ast
import json
import os
import re
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from monitor.commands import registry as registry_commands

PDQ_A = "d8f8f0cee0f4a84f0637022a078f67f0b36e2ed596621e1d33e6339c4e9c9b22"
HEADER = '{"format":"ncii-hashes","version":1,"created":"2026-01-01","generator":"test"}\n'


def _app() -> typer.Typer:
    # The same settings as monitor.cli's app, with only these commands: the test does not depend
    # on other command groups being importable.
    app = typer.Typer(name="ncii", no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
    registry_commands.register(app)
    return app


APP = _app()


@pytest.fixture
def ncii(env):
    """Run `ncii ARGS...` against this test's database; returns the click Result."""
    runner = CliRunner()

    def run(*args: str, input: str | None = None, extra_env: dict[str, str] | None = None):
        return runner.invoke(APP, list(args), env={**env, **(extra_env or {})}, input=input, catch_exceptions=False)

    return run


def _json(result) -> dict:
    return json.loads(result.stdout)


@pytest.fixture
def ref(ncii) -> str:
    result = ncii("case", "create", "--jurisdiction", "fr", "--json")
    assert result.exit_code == 0, result.output
    return _json(result)["reference"]


def _hash_file(tmp_path: Path, body: str, name: str = "hashes.jsonl") -> str:
    path = tmp_path / name
    path.write_text(body, encoding="utf-8")
    return str(path)


def _image(n: int, value: str = PDQ_A, quality: int = 90) -> str:
    return f'{{"image":{n},"hashes":[{{"alg":"pdq","hash":"{value}","quality":{quality}}}]}}\n'


def test_the_commands_are_wired_into_the_ncii_app():
    tree = ast.parse(Path("monitor/cli.py").read_text(encoding="utf-8"))
    modules = next(ast.literal_eval(node.value) for node in ast.walk(tree)
                   if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "COMMAND_MODULES")
    assert "registry" in modules


@pytest.mark.parametrize("command", [["db", "upgrade"], ["db", "current"], ["case", "create"], ["case", "show"],
                                     ["case", "list"], ["case", "withdraw"], ["register"]])
def test_every_command_explains_every_option(command):
    result = CliRunner().invoke(APP, [*command, "--help"], terminal_width=200)
    assert result.exit_code == 0
    assert "--json" in result.stdout and "JSON" in result.stdout
    # Every option line carries a description (Typer prints options without help bare).
    click_cmd = typer.main.get_command(APP)
    for name in command:
        click_cmd = click_cmd.commands[name]
    for param in click_cmd.params:
        assert getattr(param, "help", None), f"{' '.join(command)}: {param.name} has no help"


def test_db_upgrade_and_current(ncii):
    result = ncii("db", "upgrade", "--json")
    assert result.exit_code == 0, result.output
    obj = _json(result)
    assert obj["ok"] and obj["after"] == obj["head"]
    current = _json(ncii("db", "current", "--json"))
    assert current["up_to_date"] and current["current"] == obj["head"]
    assert "up to date" in ncii("db", "upgrade").stdout


def test_case_create_prints_the_secret_once_with_a_warning(ncii):
    result = ncii("case", "create", "--label", "-", "--minor", input="Label from stdin\n")
    assert result.exit_code == 0, result.output
    ref = re.search(r"case reference: (NC-\S+)", result.stdout).group(1)
    secret = re.search(r"case secret:\s+(\S+)", result.stdout).group(1)
    assert "shown this once" in result.stderr
    shown = ncii("case", "show", ref, "--reveal")
    listed = ncii("case", "list", "--labels", "--json")
    assert shown.exit_code == 0 and "Label from stdin" in shown.stdout and "yes" in shown.stdout
    for out in (shown.stdout, listed.stdout, ncii("case", "show", ref, "--json").stdout):
        assert secret not in out  # never shown again


def test_register_summary_and_rerun(ncii, ref, tmp_path):
    path = _hash_file(tmp_path, HEADER + _image(1) + _image(2, "f" * 64))
    first = ncii("register", "--case", ref, path, "--json")
    assert first.exit_code == 0, first.output
    assert _json(first)["added"] == 2 and _json(first)["duplicates"] == 0
    again = ncii("register", "-c", ref.lower(), path)
    assert again.exit_code == 0
    assert "0 hash(es) added, 2 already registered" in again.stdout
    show = _json(ncii("case", "show", ref, "--json"))["case"]
    assert show["hashes_active"] == 2 and show["submissions"] == 2


def test_rejected_low_quality_hashes_exit_1_and_are_listed(ncii, ref, tmp_path):
    path = _hash_file(tmp_path, HEADER + _image(1) + _image(2, "f" * 64, quality=12))
    result = ncii("register", "--case", ref, path)
    assert result.exit_code == 1
    assert "1 rejected" in result.stdout and "quality 12 is below 50" in result.stderr
    kept = ncii("register", "--case", ref, path, "--keep-low-quality", "--json")
    assert kept.exit_code == 0 and _json(kept)["flagged"] == 1
    assert ncii("register", "--case", ref, path, "--min-quality", "101").exit_code == 2


@pytest.mark.parametrize("body, line, words", [
    (HEADER + _image(1) + '{"image":2,"hashes":[{"alg":"pdq","hash":"abc"}]}\n', 3, "64 hex digits"),
    (HEADER + '{"image":1,"hashes":[{"alg":"sha1","hash":"ab"}]}\n', 2, "unknown algorithm"),
    ('{"format":"something-else","version":1}\n' + _image(1), 1, "header"),
    (HEADER + "not json\n", 2, "not valid JSON"),
])
def test_invalid_hash_files_name_the_line_and_register_nothing(ncii, ref, tmp_path, body, line, words):
    path = _hash_file(tmp_path, body)
    result = ncii("register", "--case", ref, path, "--json")
    assert result.exit_code == 1
    error = _json(result)["error"]
    assert error["code"] == "invalid-hash-file" and error["line"] == line and words in error["message"]
    human = ncii("register", "--case", ref, path)
    assert f"line {line}" in human.stderr and "nothing was registered" in human.stderr
    assert _json(ncii("case", "show", ref, "--json"))["case"]["submissions"] == 0


def test_register_reads_standard_input(ncii, ref):
    result = ncii("register", "--case", ref, "-", "--json", input=f"pdq {PDQ_A}\n")
    assert result.exit_code == 0 and _json(result)["added"] == 1


def test_not_found_usage_and_refusal_exit_codes(ncii, ref, tmp_path):
    path = _hash_file(tmp_path, HEADER + _image(1))
    assert ncii("case", "show", "NC-2222-2222").exit_code == 4
    missing = ncii("register", "--case", "NC-2222-2222", path, "--json")
    assert missing.exit_code == 4 and _json(missing)["error"]["code"] == "case-not-found"
    assert ncii("case", "show", "NC-????").exit_code == 2
    assert ncii("case", "create", "--jurisdiction", "UK").exit_code == 2
    assert ncii("register", "--case", ref, str(tmp_path / "absent.jsonl")).exit_code == 2
    assert ncii("case", "withdraw", ref, "--yes").exit_code == 0
    refused = ncii("register", "--case", ref, path, "--json")
    assert refused.exit_code == 1 and _json(refused)["error"]["code"] == "case-withdrawn"


def test_withdraw_needs_confirmation_then_purges(ncii, ref, tmp_path):
    ncii("register", "--case", ref, _hash_file(tmp_path, HEADER + _image(1)))
    assert ncii("case", "withdraw", ref, "--json").exit_code == 2  # no prompt possible: needs --yes
    done = ncii("case", "withdraw", ref, "--yes", "--json")
    assert done.exit_code == 0 and _json(done)["hashes_withdrawn"] == 1
    purged = ncii("case", "withdraw", ref, "--purge", "--yes")
    assert purged.exit_code == 0 and "1 hash(es) deleted" in purged.stdout
    show = _json(ncii("case", "show", ref, "--json"))["case"]
    assert show["status"] == "withdrawn" and show["purged_at"] and show["hashes_withdrawn"] == 0


def test_case_list_json_and_table(ncii, ref):
    listed = _json(ncii("case", "list", "--json"))["cases"]
    assert [c["reference"] for c in listed] == [ref] and listed[0]["jurisdiction"] == "FR"
    assert "label" in listed[0] and listed[0]["label"] is None
    table = ncii("case", "list")
    assert table.exit_code == 0 and ref in table.stdout
    assert _json(ncii("case", "list", "--status", "withdrawn", "--json"))["cases"] == []


def test_database_unavailable_exits_3(ncii):
    result = ncii("case", "list", "--json",
                  extra_env={"NCII_DATABASE_URL": "postgresql://postgres:pw@127.0.0.1:1/none"})
    assert result.exit_code == 3
    error = _json(result)["error"]
    assert error["code"] == "database-unavailable" and "pw@" not in error["message"]


def test_a_world_readable_key_file_is_refused(ncii, data_dir, settings):
    assert ncii("case", "list").exit_code == 0  # creates the key file
    key_file = settings.key_file
    assert oct(os.stat(key_file).st_mode & 0o777) == "0o600"
    os.chmod(key_file, 0o644)
    result = ncii("case", "list")
    assert result.exit_code == 3 and "chmod 600" in result.stderr
