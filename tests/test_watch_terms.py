"""Watch terms: per case, encrypted at rest, never logged, never in alerts or audit details,
shown only through `ncii watch list` (audited); a withdrawn case's terms are no longer searched.
End to end: a Bluesky search source with --watch-terms finds a planted altered copy posted
beside a victim's handle, and the match records the case, never the term."""

from __future__ import annotations

import json
import logging

import pytest
from sqlalchemy import select, text
from typer.testing import CliRunner

from connectors.base import SearchTerm
from connectors.bluesky import _SESSIONS
from monitor import db, registry, sources, watchterms
from monitor.cli import app
from monitor.models import Alert, AuditEntry, SourceCandidate
from tests.connectors.test_bluesky import FakeBluesky, post
from tests.test_pipeline import add_source, jpeg, make_pipeline, register_case

pytestmark = pytest.mark.usefixtures("loopback_only")
runner = CliRunner()
TERM = "Jane Q. Example"
HANDLE = "@jq-example.test"


def new_case(engine) -> str:
    with db.transaction(engine) as s:
        return registry.create_case(s, actor="test").reference


def test_add_list_remove_and_encryption_at_rest(engine):
    ref = new_case(engine)
    with db.transaction(engine) as s:
        added = watchterms.add_terms(s, ref, [TERM, f"  {TERM.upper()} ", HANDLE], actor="test")
    assert [t.term for t in added] == [TERM, HANDLE]  # the case-insensitive duplicate is skipped
    with db.transaction(engine) as s:
        listed = watchterms.list_terms(s, ref, actor="test")
    assert [(t.id, t.term) for t in listed] == [(a.id, a.term) for a in added]
    with engine.connect() as conn:
        raw = b"".join(bytes(r[0]) for r in conn.execute(text("SELECT term_enc FROM watch_terms")))
        audit_rows = [json.dumps(r[0]) for r in conn.execute(text("SELECT details FROM audit_log"))]
    assert TERM.encode() not in raw and b"jq-example" not in raw
    assert not any("Jane" in d or "jq-example" in d for d in audit_rows)
    with db.session(engine) as s:
        actions = [a.action for a in s.scalars(select(AuditEntry).order_by(AuditEntry.id))]
    assert "watch.terms_added" in actions and "watch.terms_viewed" in actions
    with db.transaction(engine) as s:
        watchterms.remove_term(s, ref, added[0].id, actor="test")
    with db.transaction(engine) as s:
        assert [t.term for t in watchterms.list_terms(s, ref, actor="test")] == [HANDLE]
        with pytest.raises(watchterms.WatchTermNotFound):
            watchterms.remove_term(s, ref, added[0].id, actor="test")


@pytest.mark.parametrize("bad, problem", [("", "empty"), ("x" * 201, "longer than 200"),
                                          ("a\x00b", "control characters")])
def test_bad_terms_name_the_problem_not_the_term(engine, bad, problem):
    ref = new_case(engine)
    with db.transaction(engine) as s, pytest.raises(watchterms.WatchTermError) as info:
        watchterms.add_terms(s, ref, [bad], actor="test")
    assert problem in str(info.value) and (not bad or bad not in str(info.value))


def test_only_active_cases_terms_are_searched(engine):
    active, withdrawn = new_case(engine), new_case(engine)
    with db.transaction(engine) as s:
        watchterms.add_terms(s, active, [TERM], actor="test")
        watchterms.add_terms(s, withdrawn, [HANDLE], actor="test")
    with db.transaction(engine) as s:
        registry.withdraw_case(s, withdrawn, actor="test")
    with db.session(engine) as s:
        terms = watchterms.active_terms_for_search(s)
    assert [t.term for t in terms] == [TERM] and all(isinstance(t, SearchTerm) for t in terms)
    assert TERM not in repr(terms)
    with db.transaction(engine) as s, pytest.raises(registry.CaseWithdrawn):
        watchterms.add_terms(s, withdrawn, ["more"], actor="test")


@pytest.fixture
def bluesky():
    _SESSIONS._tokens.clear()
    f = FakeBluesky(n=4)
    yield f
    f.close()
    _SESSIONS._tokens.clear()


def test_search_by_watch_terms_finds_a_planted_copy_and_keeps_terms_out_of_everything(
        engine, bluesky, caplog):
    caplog.set_level(logging.DEBUG)
    ref = register_case(engine, seeds=(1,))
    other = new_case(engine)
    with db.transaction(engine) as s:
        [term] = watchterms.add_terms(s, ref, [HANDLE], kind="handle", actor="test")
        watchterms.add_terms(s, other, ["someone else"], actor="test")
    for n in (1, 2, 3, 4):
        bluesky.server.files[f"/full/{n}.jpg"] = jpeg(100 + n)
    bluesky.posts[9] = post(9, bluesky.base)
    from monitor.demo import pictures as P
    bluesky.server.files["/full/9.jpg"] = jpeg(1, P.captioned, 70)
    bluesky.search_hits = {HANDLE: [2, 9], "someone else": [3]}
    sid = add_source(engine, "https://bsky.app/search", kind="bluesky", mode="search", use_watch_terms="true",
                     api_base=bluesky.base, pds_base=bluesky.base, identifier="alice.test",
                     app_password="app-pass-1")
    with db.session(engine) as s:
        _, conn_settings = sources.connector_settings(s, s.get(sources.Source, sid))
    assert {t.term for t in conn_settings.watch_terms} == {HANDLE, "someone else"}
    pipeline = make_pipeline(engine)
    try:
        report = pipeline.poll(sid)
        assert report.ok, report.error
        assert [m["url"] for m in report.match_list] == [f"{bluesky.base}/full/9.jpg"]
        assert report.match_list[0]["case"] == ref
        # the candidate records the case it was searched for, as an id only
        with db.session(engine) as s:
            rows = {r.media_url: r.candidate for r in s.scalars(select(SourceCandidate))}
            alerts = [a.payload for a in s.scalars(select(Alert))]
            source = s.get(sources.Source, sid)
            cursor, settings_json = source.cursor, source.settings
        case_id = rows[f"{bluesky.base}/full/9.jpg"]["extra"]["case_id"]
        with db.session(engine) as s:
            assert s.scalar(select(registry.Case.reference).where(registry.Case.id == case_id)) == ref
        everything = json.dumps([rows, alerts, cursor, settings_json, report.to_dict()], default=str)
        assert "jq-example" not in everything and "someone else" not in everything
        assert f"t{term.id}" in cursor
        # the term went to the API (that is its purpose), and nowhere into the logs
        assert any(r.query.get("q") == HANDLE for r in bluesky.server.requests)
        assert "jq-example" not in caplog.text
        # a failing search names the URL with the term hidden
        bluesky.script = [__import__("tests.connectors.platforms", fromlist=["Reply"]).Reply(
            400, {"error": "InvalidRequest"})] * 4
        failed = pipeline.poll(sid)
        assert not failed.ok and "jq-example" not in json.dumps(failed.to_dict())
        with db.session(engine) as s:
            assert "jq-example" not in (s.get(sources.Source, sid).last_error or "")
    finally:
        pipeline.close()


def test_watch_cli(engine, env, monkeypatch, tmp_path):
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    ref = new_case(engine)

    def run(*args, code=0):
        result = runner.invoke(app, [*args, "--json"])
        assert result.exit_code == code, result.output
        return json.loads(result.stdout)

    terms = tmp_path / "terms.txt"
    terms.write_text(f"{TERM}\n\n{HANDLE}\n")
    added = run("watch", "add", ref, "--file", str(terms), "--kind", "handle")
    assert len(added["added"]) == 2 and TERM not in json.dumps(added)
    assert run("watch", "add", ref, TERM)["skipped_duplicates"] == 1
    listed = run("watch", "list", ref)["terms"]
    assert [t["term"] for t in listed] == [TERM, HANDLE] and listed[0]["kind"] == "handle"
    run("watch", "remove", ref, str(listed[0]["id"]))
    assert [t["term"] for t in run("watch", "list", ref)["terms"]] == [HANDLE]
    assert run("watch", "remove", ref, "999999", code=4)["error"]["code"] == "watch-term-not-found"
    assert run("watch", "list", "NC-0000-0000", code=2)["error"]["code"] == "invalid-reference"
    bad = run("watch", "add", ref, "--kind", "nickname", "x", code=2)
    assert "kind must be one of" in bad["error"]["message"]
    assert run("watch", "add", ref, code=2)["error"]["code"] == "usage"
    with db.transaction(engine) as s:
        registry.withdraw_case(s, ref, actor="test")
    assert run("watch", "add", ref, "late", code=1)["ok"] is False
    assert "watch" in runner.invoke(app, ["--help"]).stdout
