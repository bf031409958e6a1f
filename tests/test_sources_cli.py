"""`ncii source ...` and `ncii monitor once`: the advocate's commands for sources, end to end
through the CLI (JSON output and exit codes), against loopback sites."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from monitor.cli import app
from monitor.demo import pictures as P
from monitor.demo.site import LoopbackSite, Route, gallery_page
from tests.test_pipeline import jpeg, serve_feed

pytestmark = pytest.mark.usefixtures("loopback_only")
runner = CliRunner()


@pytest.fixture
def site():
    s = LoopbackSite()
    yield s
    s.close()


@pytest.fixture
def cli(env, monkeypatch):
    for k, v in {**env, "NCII_HTTP_ALLOW_LOOPBACK": "1", "NCII_HTTP_MIN_INTERVAL": "0", "NCII_HTTP_RETRIES": "0",
                 "NCII_HASH_WORKERS": "0",
                 "NCII_FETCH_WORKERS": "4"}.items():
        monkeypatch.setenv(k, v)
    for k in ("NCII_SMTP_HOST", "NCII_WEBHOOK_URL"):
        monkeypatch.delenv(k, raising=False)

    def run(*args: str, code: int | None = 0) -> dict:
        result = runner.invoke(app, [*args, "--json"])
        data = json.loads(result.stdout)
        if code is not None:
            assert result.exit_code == code, result.output
        return data

    return run


def test_add_list_show_pause_resume_remove(cli, site):
    feed = serve_feed(site, {"a.jpg": jpeg(1)})
    added = cli("source", "add", "auto", feed, "--every", "30m", "--jitter", "1m", "--set", "max_entries=50")
    s = added["source"]
    assert s["kind"] == "rss" and s["interval_seconds"] == 1800 and s["jitter_seconds"] == 60
    assert s["settings"]["max_entries"] == 50 and s["state"] == "new" and s["name"].endswith("-rss")
    name = s["name"]
    gallery = site.add("/g.html", Route(gallery_page("g", []), "text/html"))
    cli("source", "add", "gallery", gallery, "--name", "board-gallery", "--set", "image_selector=.gallery img",
        "--set", "max_pages=2")

    listed = cli("source", "list")["sources"]
    assert [x["name"] for x in listed] == sorted([name, "board-gallery"])
    shown = cli("source", "show", "board-gallery")["source"]
    assert shown["settings"]["image_selector"] == ".gallery img" and shown["settings"]["max_pages"] == 2

    assert cli("source", "pause", name)["source"]["state"] == "paused"
    assert cli("source", "resume", name)["source"]["state"] == "new"
    removed = cli("source", "remove", "board-gallery", "--yes")
    assert removed["name"] == "board-gallery"
    assert [x["name"] for x in cli("source", "list")["sources"]] == [name]
    kinds = {k["kind"] for k in cli("source", "kinds")["kinds"]}
    assert {"rss", "sitemap", "gallery", "folder", "warc"} <= kinds


def test_add_refuses_bad_input_with_the_reason(cli, site):
    feed = serve_feed(site, {"a.jpg": jpeg(1)})
    err = cli("source", "add", "rss", feed, "--set", "colour=blue", code=2)["error"]
    assert "colour" in err["message"] and "known settings" in err["message"]
    assert "max_entries" in cli("source", "add", "rss", feed, "--set", "max_entries=lots", code=2)["error"]["message"]
    assert "known kinds" in cli("source", "add", "telegram", feed, code=2)["error"]["message"]
    assert "at least 1m" in cli("source", "add", "rss", feed, "--every", "10s", code=2)["error"]["message"]
    assert "duration" in cli("source", "add", "rss", feed, "--every", "soon", code=2)["error"]["message"]
    assert "invalid CSS selector" in cli("source", "add", "gallery", feed, "--set", "image_selector=img[",
                                         code=2)["error"]["message"]
    cli("source", "add", "rss", feed, "--name", "one")
    assert cli("source", "add", "rss", feed, "--name", "one", code=1)["error"]["code"] == "source-exists"
    assert cli("source", "show", "nope", code=4)["error"]["code"] == "source-not-found"
    assert cli("source", "remove", "nope", "--yes", code=4)["error"]["code"] == "source-not-found"
    assert cli("source", "remove", "one", code=2)["error"]["code"] == "confirmation-needed"


def test_source_test_is_a_dry_poll(cli, site):
    feed = serve_feed(site, {"a.jpg": jpeg(1), "b.jpg": jpeg(2)})
    cli("source", "add", "rss", feed, "--name", "feed")
    dry = cli("source", "test", "feed")
    assert dry["listed"] == 2 and dry["new"] == 2 and len(dry["items"]) == 2
    assert not any(p.startswith("/img/") for p in site.hits)  # no picture fetched
    assert cli("source", "show", "feed")["source"]["candidates"] == {}  # nothing recorded
    assert cli("source", "list")["sources"][0]["last_poll_at"] is None

    site.add("/feed.xml", Route(b"gone", "text/plain", status=500))
    failed = cli("source", "test", "feed", code=3)["error"]
    assert failed["code"] == "http-status" and "HTTP 500" in failed["message"]
    site.add("/feed.xml", Route(b"<html><body>not a feed</body></html>", "text/html"))
    assert cli("source", "test", "feed", code=1)["ok"] is False


def test_monitor_once_polls_what_is_due_and_reports(cli, site, engine):
    from tests.test_pipeline import register_case

    case = register_case(engine)
    cli("source", "add", "auto", serve_feed(site, {"copy.jpg": jpeg(1, P.recompressed, 60), "x.jpg": jpeg(9)}),
        "--name", "feed")
    cli("source", "add", "rss", site.add("/down.xml", Route(b"", "text/plain", status=502)), "--name", "down")
    first = cli("monitor", "once", code=1)  # one source failed
    by_name = {r["source"]: r for r in first["sources"]}
    assert by_name["feed"]["ok"] and by_name["feed"]["new_matches"] == 1 and by_name["feed"]["hashed"] == 2
    assert by_name["feed"]["matches_found"][0]["case"] == case
    assert not by_name["down"]["ok"] and first["failed"] == 1
    assert first["alerts"]["pending"] == 1 and first["alerts"]["channels"] == []

    assert cli("monitor", "once")["polled"] == 0  # nothing due: one polled fine, the other backs off
    again = cli("monitor", "once", "--all", code=1)
    assert again["polled"] == 2 and again["new"] == 0
    only = cli("monitor", "once", "--source", "feed")
    assert only["polled"] == 1
    health = {s["name"]: s for s in cli("source", "list")["sources"]}
    assert health["down"]["state"] == "failing" and health["down"]["consecutive_failures"] == 2
    assert health["feed"]["state"] == "ok" and health["feed"]["candidates"] == {"done": 2}
    assert cli("monitor", "send-alerts")["pending"] == 1


# --- platform sources: credentials, needs-credentials, dry runs ---------------------------------------

@pytest.fixture
def mastodon():
    from tests.connectors.test_mastodon import FakeMastodon

    f = FakeMastodon(n=5)
    yield f
    f.close()


def test_platform_source_credentials_are_never_on_argv_never_shown_and_rotate(cli, mastodon, engine, tmp_path,
                                                                                monkeypatch):
    from sqlalchemy import text

    mastodon.token = "tok-first-0001"
    url = "https://mastodon.example/public/local"
    refused = cli("source", "add", "mastodon", url, "--set", "access_token=tok-first-0001", code=2)["error"]
    assert refused["code"] == "secret-on-command-line" and "tok-first" not in refused["message"]
    assert cli("source", "add", "auto", url, "--set", "access_token=tok-first-0001",
               code=2)["error"]["code"] == "secret-on-command-line"
    token = tmp_path / "token.txt"
    token.write_text("tok-first-0001\n")
    added = cli("source", "add", "mastodon", url, "--name", "masto", "--set", f"api_base={mastodon.base}",
                "--token-file", str(token))["source"]
    assert added["settings"]["access_token"] == "***" and added["settings"]["timeline"] == "local"
    shown = runner.invoke(app, ["source", "show", "masto"])
    assert "tok-first" not in shown.stdout and "***" in shown.stdout
    with engine.connect() as conn:
        raw = conn.execute(text("SELECT settings, secrets_enc FROM sources")).one()
    assert "tok-first" not in json.dumps(raw[0]) and b"tok-first" not in bytes(raw[1])

    dry = cli("source", "test", "masto")
    assert dry["listed"] == 5 and dry["items"][0]["media_url"].startswith(mastodon.base)

    # the server revokes the token: the source needs credentials and is not hammered
    mastodon.token = "tok-second-0002"
    polled = cli("monitor", "once", "--source", "masto", code=1)["sources"][0]
    assert polled["error"]["code"] == "auth-needed" and "tok-" not in json.dumps(polled)
    health = cli("source", "show", "masto")["source"]
    assert health["state"] == "needs-credentials" and "ncii source credentials masto" in health["last_error"]
    assert health["backoff_seconds"] >= 3600
    listed = runner.invoke(app, ["source", "list"])
    assert "NEEDS CREDENTIALS" in listed.stdout
    assert cli("monitor", "once")["polled"] == 0  # not due again until credentials change

    monkeypatch.setenv("MASTO_TOKEN", "tok-second-0002")
    rotated = cli("source", "credentials", "masto", "--token-env", "MASTO_TOKEN")
    assert rotated["changed"] == ["access_token"] and rotated["source"]["state"] != "needs-credentials"
    again = cli("monitor", "once")
    assert again["polled"] == 1 and again["sources"][0]["ok"]
    with engine.connect() as conn:
        details = [json.dumps(r[0]) for r in conn.execute(text("SELECT details FROM audit_log"))]
    assert any("access_token" in d for d in details) and not any("tok-" in d for d in details)

    assert cli("source", "credentials", "masto", "--secret-env", "client_secret=X", code=2)["ok"] is False
    assert cli("source", "credentials", "masto", code=2)["error"]["code"] == "usage"
    assert cli("source", "credentials", "masto", "--token-env", "UNSET_VAR_X", code=2)["error"]["code"] == \
        "empty-secret"
    assert cli("source", "credentials", "nope", "--token-env", "MASTO_TOKEN", code=4)["ok"] is False


def test_adding_platform_sources_by_the_urls_people_copy(cli):
    m = cli("source", "add", "mastodon", "https://m.example/tags/SomeTag")["source"]
    assert m["kind"] == "mastodon" and m["settings"]["target"] == "SomeTag" and m["name"] == "m.example-mastodon"
    assert m["settings"]["access_token"] == ""  # shown as not set; a stored one shows as ***
    a = cli("source", "add", "auto", "https://m.example/@someone")["source"]
    assert a["kind"] == "mastodon" and a["settings"]["timeline"] == "account"
    b = cli("source", "add", "bluesky", "https://bsky.app/profile/alice.bsky.social")["source"]
    assert b["settings"]["mode"] == "author" and b["settings"]["actor"] == "alice.bsky.social"
    s = cli("source", "add", "bluesky", "--search", "a name", "--set", "identifier=me.test")["source"]
    assert s["settings"]["mode"] == "search" and s["settings"]["query"] == "***" and "a name" not in json.dumps(s)
    w = cli("source", "add", "bluesky", "--watch-terms", "--name", "bsky-terms")["source"]
    assert w["settings"]["use_watch_terms"] is True
    r = cli("source", "add", "reddit", "https://www.reddit.com/r/pics/", "--search", "x y")["source"]
    assert r["settings"]["subreddit"] == "pics" and r["settings"]["include_new"] is True
    lem = cli("source", "add", "auto", "https://lemmy.example/c/pics")["source"]
    assert lem["kind"] == "lemmy" and lem["settings"]["community"] == "pics"
    err = cli("source", "add", "mastodon", "https://m.example/about", code=2)["error"]
    assert "tags/NAME" in err["message"]
    assert cli("source", "add", "bluesky", code=2)["error"]["code"] == "invalid-source"
    assert "not supported" in cli("source", "add", "lemmy", "https://l.example/c/x", "--watch-terms",
                                  code=2)["error"]["message"]
    kinds = {k["kind"]: k for k in cli("source", "kinds")["kinds"]}
    assert {"mastodon", "bluesky", "reddit", "lemmy"} <= set(kinds)
    assert "client_secret" in kinds["reddit"]["secret"] and all(f["help"] for f in kinds["reddit"]["settings"])
    assert "watch_terms" not in {f["name"] for f in kinds["bluesky"]["settings"]}


def test_add_help_explains_every_platform_setting():
    import dataclasses

    from connectors.registry import CONNECTORS

    out = " ".join(runner.invoke(app, ["source", "add", "--help"], env={"COLUMNS": "400"}).stdout.split())
    for kind in ("mastodon", "bluesky", "reddit", "lemmy"):
        assert kind.upper() in out
        for f in dataclasses.fields(CONNECTORS[kind].settings_class):
            if f.name != "url" and not f.metadata.get("transient"):
                assert f"{f.name}:" in out, (kind, f.name)
    for option in ("--token-file", "--token-env", "--ask-token", "--secret-file", "--search", "--watch-terms"):
        assert option in out
