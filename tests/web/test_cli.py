"""`ncii user`, `ncii audit verify` and `ncii serve` (a real process on loopback)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
from sqlalchemy import text
from typer.testing import CliRunner

from monitor.cli import app
from tests.helpers import free_port as _free_port

REPO = Path(__file__).resolve().parents[2]


def _run(env, monkeypatch, *args, input=None):
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    return CliRunner().invoke(app, list(args), input=input)


def test_user_commands(env, monkeypatch, engine):
    r = _run(env, monkeypatch, "user", "add", "Root", "--role", "admin", "--json")
    assert r.exit_code == 0, r.output
    created = json.loads(r.output)
    assert created["user"]["username"] == "root" and len(created["password"]) >= 16
    assert _run(env, monkeypatch, "user", "add", "root").exit_code == 1  # exists
    assert _run(env, monkeypatch, "user", "add", "x y").exit_code == 2  # bad name
    r = _run(env, monkeypatch, "user", "add", "ann", "--password-stdin", input="too short\n")
    assert r.exit_code == 2 and "password" in r.output
    r = _run(env, monkeypatch, "user", "add", "ann", "--password-stdin", "--json", input="a long enough password\n")
    assert r.exit_code == 0 and "password" not in json.loads(r.output)
    r = _run(env, monkeypatch, "user", "token", "ann", "--name", "script", "--json")
    token = json.loads(r.output)
    assert token["token"].startswith("ncii_")
    listed = json.loads(_run(env, monkeypatch, "user", "token", "ann", "--list", "--json").output)["tokens"]
    assert [t["name"] for t in listed] == ["script"] and "token" not in listed[0]
    assert _run(env, monkeypatch, "user", "token", "ann", "--revoke", str(token["id"])).exit_code == 0
    assert _run(env, monkeypatch, "user", "disable", "ann").exit_code == 0
    users = json.loads(_run(env, monkeypatch, "user", "list", "--json").output)["users"]
    assert [(u["username"], u["disabled"]) for u in users] == [("ann", True), ("root", False)]
    assert _run(env, monkeypatch, "user", "disable", "nobody").exit_code == 4


def test_audit_verify_reports_a_broken_chain(env, monkeypatch, engine, backend):
    assert _run(env, monkeypatch, "user", "add", "root", "--role", "admin").exit_code == 0
    assert _run(env, monkeypatch, "user", "add", "ann").exit_code == 0
    r = _run(env, monkeypatch, "audit", "verify", "--json")
    assert r.exit_code == 0 and json.loads(r.output)["checked"] == 2
    with engine.begin() as conn:  # an attacker with database access, triggers off
        if backend == "postgresql":
            conn.execute(text("ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only"))
        else:
            conn.execute(text("DROP TRIGGER audit_log_no_update"))
        conn.execute(text("UPDATE audit_log SET actor = 'someone else' WHERE id = 1"))
    r = _run(env, monkeypatch, "audit", "verify", "--json")
    assert r.exit_code == 1
    out = json.loads(r.output)
    assert out["intact"] is False and out["first_bad_id"] == 1


def test_serve_without_configuration_serves_the_demo_and_stops_cleanly(tmp_path, loopback_sitecustomize):
    """The README's first command: a working app with the demo, demo accounts printed once."""
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("NCII_")}
    env.update(NCII_DATA_DIR=str(tmp_path / "data"), PYTHONPATH=f"{loopback_sitecustomize}{os.pathsep}{REPO}",
               NCII_HASH_WORKERS="1")
    proc = subprocess.Popen([sys.executable, "-m", "monitor.cli", "serve", "--port", str(port)], env=env, cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output = []
    try:
        deadline = time.monotonic() + 180
        password = None
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            output.append(line)
            found = re.search(r"sign in as demo-advocate with password (\S+)", line)
            if found:
                password = found.group(1)
            if "Uvicorn running" in line:
                break
        assert password and proc.poll() is None, "".join(output)
        base = f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=base, follow_redirects=True) as c:
            login = c.get("/login")
            token = re.search(r'name="csrf_token" value="([^"]+)"', login.text).group(1)
            r = c.post("/login", data={"username": "demo-advocate", "password": password, "csrf_token": token})
            assert r.status_code == 200 and "Dashboard" in r.text
            matches = c.get("/api/matches", headers={"X-CSRF-Token": token}).json()["matches"]
            assert len(matches) >= 3
            preview = c.get(f"/matches/{matches[0]['id']}/preview")
            assert preview.status_code == 200 and preview.headers["content-type"] == "image/jpeg"
    finally:
        proc.send_signal(signal.SIGTERM)  # what `docker stop` sends; Ctrl-C takes the same path
        try:
            rest, _ = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            rest, _ = proc.communicate()
    text_out = "".join(output) + rest
    assert proc.returncode == 0, text_out
    assert "NETWORK VIOLATION" not in text_out


def test_the_demo_is_served_only_when_nothing_is_set_up(tmp_path, monkeypatch):
    from monitor import db, registry
    from monitor.demo.serve import wants_demo
    from monitor.settings import Settings

    monkeypatch.delenv("NCII_DATABASE_URL", raising=False)
    settings = Settings.load({"NCII_DATA_DIR": str(tmp_path)})
    assert wants_demo(settings, {})  # no database yet
    engine = db.open_database(settings)
    assert wants_demo(settings, {})  # an empty one
    with db.transaction(engine) as s:
        registry.create_case(s, actor="test")
    engine.dispose()
    assert not wants_demo(settings, {})  # someone's cases: never hide them behind the demo
    assert not wants_demo(settings, {"NCII_DATABASE_URL": "postgresql://x@127.0.0.1/y"})
