"""`ncii demo`: the README's main-job command. A local site on 127.0.0.1 (an RSS feed and a gallery
page), two sources, one monitor pass through the real pipeline, the matches and the alerts."""

from __future__ import annotations

import json
import re

import pytest
from typer.testing import CliRunner

from monitor.cli import app

pytestmark = pytest.mark.usefixtures("loopback_only")
runner = CliRunner()


def test_demo_finds_the_planted_copies_through_the_monitor(tmp_path, monkeypatch):
    monkeypatch.setenv("NCII_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("NCII_HASH_WORKERS", "0")  # hash in this process: no worker start-up in the test
    for k in ("NCII_SMTP_HOST", "NCII_WEBHOOK_URL", "NCII_DATABASE_URL", "NCII_SECRET_KEY"):
        monkeypatch.delenv(k, raising=False)
    result = runner.invoke(app, ["demo", "--json", "--dir", str(tmp_path / "demo")])
    data = json.loads(result.stdout)
    assert result.exit_code == (0 if data["ok"] else 1)
    found = {m["file"] for m in data["matches"]}
    assert not any(name.startswith("unrelated") for name in found)  # no false positive, ever
    assert data["planted_found"] >= 4
    assert {s["name"] for s in data["sources"]} == {"demo-feed", "demo-gallery"}
    assert data["site"].startswith("http://127.0.0.1:")
    polled = data["pass"]["sources"]
    assert len(polled) == 2 and all(r["ok"] for r in polled)
    assert data["pass"]["hashed"] == 17  # 5 copies + 12 unrelated; the repeated copy is not hashed again
    new_matches = [m for m in data["matches"] if m["new"]]
    assert len(data["alerts"]) == len(new_matches) == data["pass"]["new_matches"]
    assert data["alert_delivery"] == ["dry-run"]
    for alert in data["alerts"]:
        assert alert["case"] == data["case"] and alert["review_url"].startswith("http://127.0.0.1:8000/review/")
        assert not re.search(r"\b[0-9a-f]{16,}\b", json.dumps(alert))  # no hash values
    assert not (tmp_path / "demo" / "found-online").exists()  # no folder stands in for the internet now



def test_demo_prints_the_matches_and_the_alerts_it_would_send(tmp_path, monkeypatch):
    monkeypatch.setenv("NCII_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("NCII_HASH_WORKERS", "0")
    for k in ("NCII_SMTP_HOST", "NCII_WEBHOOK_URL", "NCII_DATABASE_URL", "NCII_SECRET_KEY"):
        monkeypatch.delenv(k, raising=False)
    result = runner.invoke(app, ["demo", "--dir", str(tmp_path / "demo")])
    out = result.stdout
    assert "5. One monitor pass" in out and "source demo-feed (rss)" in out
    assert "matches (awaiting review by a person)" in out
    assert "alert (dry run; not sent)" in out and "Subject: [ncii] possible copy found for case NC-" in out


def test_demo_sends_a_take_it_down_notice_and_records_the_removal(tmp_path, monkeypatch):
    monkeypatch.setenv("NCII_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("NCII_HASH_WORKERS", "0")
    for k in ("NCII_SMTP_HOST", "NCII_WEBHOOK_URL", "NCII_DATABASE_URL", "NCII_SECRET_KEY"):
        monkeypatch.delenv(k, raising=False)
    data = json.loads(runner.invoke(app, ["demo", "--json", "--dir", str(tmp_path / "demo")]).stdout)
    t = data["takedown"]
    assert t["notice"]["type"] == "take_it_down" and t["notice"]["elements"]["ok"]
    assert [m["to"] for m in t["received"]] == [["takedowns@demo-board.test"]]
    assert t["received"][0]["message_id"] == t["notice"]["message_id"] and t["received"][0]["attachments"]
    assert t["notice"]["state"] == "removed" and t["notice"]["removed_at"] and t["sighting_gone_at"]
    assert all(u["gone_reason"] == "gone-404" for u in t["notice"]["urls"])
    [row] = t["report"]
    assert (row["platform"], row["sent"], row["removed"], row["within_deadline_share"]) == ("demo-board", 1, 1, 1.0)
