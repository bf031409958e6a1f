"""`ncii takedown draft|show|edit|approve|send|mark|export|list|escalate` and `ncii report takedowns`,
each with --json, against a real SMTP server and a loopback site."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from monitor.cli import app
from monitor.demo.site import LoopbackSite, Route
from tests.takedowns.conftest import add_copy, make_case, picture_bytes

pytestmark = pytest.mark.usefixtures("loopback_only")
runner = CliRunner()


def _env(env, smtp=None):
    out = dict(env, NCII_ORG_NAME="Helpline Example", NCII_ORG_EMAIL="notices@helpline.example",
               NCII_ORG_SIGNATORY="Alex Advocate", NCII_ORG_ADDRESS="1 Example Street", NCII_HTTP_ALLOW_LOOPBACK="1",
               NCII_HTTP_MIN_INTERVAL="0", NCII_HTTP_RETRIES="0")
    if smtp is not None:
        out.update(NCII_SMTP_HOST="127.0.0.1", NCII_SMTP_PORT=str(smtp.port), NCII_SMTP_SECURITY="none",
                   NCII_SMTP_TO="advocate@helpline.example", NCII_SMTP_FROM="notices@helpline.example")
    return out


def ncii(args, env):
    result = runner.invoke(app, [*args, "--json"], env=env)
    return result.exit_code, json.loads(result.stdout)


def test_the_whole_flow_on_the_command_line(engine, env, smtp_server, tmp_path):
    box, smtp = smtp_server
    e = _env(env, smtp)
    case = make_case(engine, "US")
    with LoopbackSite() as site:
        site.add("/img/1.jpg", Route(picture_bytes(51), "image/jpeg"))
        add_copy(engine, case, picture_bytes(51), [(site.url("/img/1.jpg"), site.url("/post/1"))])
        code, out = ncii(["takedown", "draft", "--case", case.reference], e)
        assert code == 0, out
        [notice] = out["notices"]
        nid = notice["id"]
        assert notice["state"] == "draft" and notice["type"] == "take_it_down" and notice["elements"]["ok"]
        code, shown = ncii(["takedown", "show", str(nid)], e)
        assert code == 0 and site.url("/img/1.jpg") in shown["notice"]["body"] and shown["notice"]["advocate_note"]
        # Sending a draft does nothing: approval first.
        code, sent = ncii(["takedown", "send"], e)
        assert code == 0 and sent["sent"] == [] and box.messages == []
        # An edit that drops the signature cannot be approved; the error names the element.
        body = tmp_path / "body.txt"
        body.write_text(shown["notice"]["body"].replace("/s/ Alex Advocate", "Alex"))
        code, _ = ncii(["takedown", "edit", str(nid), "--body-file", str(body)], e)
        assert code == 1
        code, refused = ncii(["takedown", "approve", str(nid)], e)
        assert code == 1 and refused["error"]["code"] == "elements-missing" and refused["error"]["missing"] == ["signature"]
        body.write_text(shown["notice"]["body"])
        assert ncii(["takedown", "edit", str(nid), "--body-file", str(body)], e)[0] == 0
        code, approved = ncii(["takedown", "approve", str(nid)], e)
        assert code == 0 and approved["notice"]["state"] == "approved"
        code, sent = ncii(["takedown", "send"], e)
        assert code == 0 and sent["sent"] == [nid] and len(box.messages) == 1
        for flag, name in (("--eml", "n.eml"), ("--pdf", "n.pdf")):
            assert ncii(["takedown", "export", str(nid), flag, str(tmp_path / name)], e)[0] == 0
        assert (tmp_path / "n.pdf").read_bytes().startswith(b"%PDF")
        assert b"Message-ID" in (tmp_path / "n.eml").read_bytes()
        code, listed = ncii(["takedown", "list", "--case", case.reference], e)
        assert [n["id"] for n in listed["notices"]] == [nid]
        del site.routes["/img/1.jpg"]
        code, tracked = ncii(["takedown", "escalate"], e)
        assert code == 0 and tracked["removed"] == [nid]
    code, rep = ncii(["report", "takedowns", "--csv", str(tmp_path / "r.csv")], e)
    assert code == 0 and rep["rows"][0]["removed"] == 1 and rep["rows"][0]["platform"] == "demo-board"
    assert (tmp_path / "r.csv").read_text().startswith("platform,")


def test_web_form_notices_are_packaged_and_marked_submitted(engine, env, tmp_path):
    e = _env(env)
    case = make_case(engine, "DE")
    add_copy(engine, case, picture_bytes(52), [("https://i.redd.it/abc.jpg", "https://www.reddit.com/r/x/2")])
    code, out = ncii(["takedown", "draft", "--case", case.reference, "--no-lookup"], e)
    [notice] = out["notices"]
    assert notice["type"] == "dsa_art16" and notice["delivery"] == "web_form" and notice["profile"] == "EU"
    nid = str(notice["id"])
    assert ncii(["takedown", "approve", nid], e)[0] == 0
    code, exported = ncii(["takedown", "export", nid, "--package", str(tmp_path / "pkg")], e)
    assert code == 0 and any(p.endswith(".pdf") for p in exported["written"])
    fields = json.loads(next((tmp_path / "pkg").glob("*-fields.json")).read_text())
    assert fields["urls"] == ["https://i.redd.it/abc.jpg"] and fields["form_url"].startswith("https://")
    code, marked = ncii(["takedown", "mark", nid, "submitted", "--ticket", "RD-42"], e)
    assert code == 0 and marked["notice"]["state"] == "sent" and marked["notice"]["ticket"] == "RD-42"
    code, bad = ncii(["takedown", "mark", nid, "flying"], e)
    assert code == 2
    code, missing = ncii(["takedown", "show", "999"], e)
    assert code == 4 and missing["ok"] is False


def test_drafting_without_the_organisation_settings_is_a_usage_error(engine, env):
    case = make_case(engine, "US")
    code, out = ncii(["takedown", "draft", "--case", case.reference], env)
    assert code == 2 and "NCII_ORG_NAME" in out["error"]["message"]


def test_usage_errors_and_a_missing_mail_server(engine, env):
    e = _env(env)
    case = make_case(engine, "US")
    code, out = ncii(["takedown", "draft", "--case", case.reference, "--type", "carrier-pigeon"], e)
    assert code == 2 and "--type" in out["error"]["message"]
    with LoopbackSite() as site:
        site.add("/img/9.jpg", Route(picture_bytes(53), "image/jpeg"))
        add_copy(engine, case, picture_bytes(53), [(site.url("/img/9.jpg"), None)])
        [notice] = ncii(["takedown", "draft", "--case", case.reference], e)[1]["notices"]
    assert ncii(["takedown", "approve", str(notice["id"])], e)[0] == 0
    code, out = ncii(["takedown", "send"], e)  # no NCII_SMTP_HOST
    assert code == 3 and out["failed"] == [notice["id"]] and "NCII_SMTP_HOST" in out["errors"][0]
    code, out = ncii(["takedown", "show", str(notice["id"])], e)
    assert out["notice"]["state"] == "approved"  # kept for the next run, not lost
