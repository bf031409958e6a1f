"""Every template renders every legal element under every jurisdiction profile (checked element by
element), and a notice missing an element cannot be approved."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from monitor import db
from monitor.models import AuditEntry, NoticeState
from monitor.takedowns import elements as E
from monitor.takedowns import notices as N
from monitor.takedowns.config import TakedownSettings, notice_types, profile_for, profiles
from monitor.takedowns.render import render
from tests.takedowns.conftest import ORG, T0, add_copy, make_case, picture_bytes

URLS = [("https://cdn.example.net/a.jpg", "https://board.example.net/post/1"),
        ("https://cdn.example.net/b.jpg", "https://board.example.net/post/2")]
ALL_TYPES = tuple(notice_types())


def _context(ntype: str, profile_code: str, named: bool) -> tuple[dict, E.ElementContext]:
    profile = profiles()[profile_code]
    requester = {"victim_named": named, "signer": "Jo Victim" if named else "Alex Advocate",
                 "notifier": "Jo Victim" if named else "Helpline Example", "email": "notices@helpline.example",
                 "address": ORG["org_address"], "phone": ORG["org_phone"], "org_name": ORG["org_name"]}
    ctx = {"ref": "TD-000007", "date": "2026-06-01", "platform": {"name": "Example Board"}, "host": "board.example.net",
           "urls": [{"url": u, "page_url": p} for u, p in URLS], "requester": requester, "profile": profile,
           "law": notice_types()[ntype], "deadline_hours": 48, "recipient_name": "Example Hosting abuse desk",
           "parent": {"reference": "TD-000003", "subject": "earlier", "deadline_hours": 48, "sent_date": "2026-05-01"},
           "host_contacted": True, "reupload": False}
    ectx = E.ElementContext(signer=requester["signer"], email=requester["email"], notifier=requester["notifier"],
                            urls=tuple(u for u, _ in URLS), address=ORG["org_address"], law=profile.law,
                            reference="TD-000003")
    return ctx, ectx


@pytest.mark.parametrize("profile_code", sorted(profiles()))
@pytest.mark.parametrize("ntype", ALL_TYPES)
@pytest.mark.parametrize("named", [False, True])
def test_each_template_renders_every_element_under_each_profile(ntype, profile_code, named):
    ctx, ectx = _context(ntype, profile_code, named)
    subject, body = render(ntype, ctx)
    assert subject and "TD-000007" in subject
    report = E.check(body, ntype, ectx)
    assert report.checked == list(notice_types()[ntype].elements)
    for element in notice_types()[ntype].elements:  # element by element
        assert element not in report.missing, f"{ntype}/{profile_code}: {element}: {report.problems.get(element)}"
    assert "FOR THE ADVOCATE" not in body  # the advocate's note is a template comment, never sent
    assert "{{" not in body and "{%" not in body
    for url, _ in URLS:
        assert url in body


@pytest.mark.parametrize("ntype", ALL_TYPES)
def test_removing_any_one_element_is_detected_and_named(ntype):
    ctx, ectx = _context(ntype, "US", False)
    _, body = render(ntype, ctx)
    table = E.phrases("en")
    for element in notice_types()[ntype].elements:
        if element == "signature":
            damaged = body.replace("/s/ ", "")
        elif element == "identification":
            damaged = body.replace(URLS[1][0], "")
        elif element == "contact":
            damaged = body.replace(ectx.email, "(see above)")
        elif element == "contact_address":
            damaged = body.replace(ORG["org_address"], "")
        elif element == "notifier":
            damaged = body.replace(ectx.notifier, "someone")
        elif element == "legal_basis":
            damaged = body.replace(ectx.law, "the law")
        elif element == "reference":
            damaged = body.replace("TD-000003", "an earlier notice")
        else:
            damaged = body
            for group in table[element]:
                for phrase in group:
                    damaged = re.sub(re.escape(phrase).replace(r"\ ", r"\s+"), "", damaged, flags=re.I)
        report = E.check(damaged, ntype, ectx)
        assert element in report.missing, f"{ntype}: removing {element} went unnoticed"
        assert element in report.message()


def test_every_profile_cites_its_sources_and_members_map_to_their_profile():
    for p in profiles().values():
        assert p.law and p.regulator["name"] and p.regulator["url"].startswith("http")
        assert p.deadline_hours > 0 and p.deadline_source
        assert all(t in notice_types() for t in p.notice_types)
        if p.code != "INTL":
            assert p.sources and all(s.startswith("http") for s in p.sources)
    assert profile_for("DE").code == profile_for("FR").code == "EU"
    assert profile_for("GB").code == "UK" and profile_for("au").code == "AU" and profile_for("CA").code == "CA"
    assert profile_for(None).code == profile_for("ZZ").code == "INTL"
    assert profiles()["US"].regulator["name"] == "Federal Trade Commission"
    assert profiles()["AU"].regulator["name"] == "eSafety Commissioner"
    assert profiles()["UK"].regulator["name"] == "Ofcom"


def test_a_notice_missing_an_element_cannot_be_approved(engine, tsettings):
    case = make_case(engine, "US")
    add_copy(engine, case, picture_bytes(5), URLS[:1])
    with db.transaction(engine) as s:
        [notice] = N.draft_for_case(s, case.case_id, tsettings, actor="test:advocate", now=T0)
        nid = notice.id
        assert notice.notice_type == "take_it_down" and notice.profile == "US" and notice.deadline_hours == 48
        assert notice.elements["ok"], notice.elements
        body = notice.body
    with db.transaction(engine) as s:
        notice = N.get(s, nid)
        # The advocate deletes the good-faith statement while editing.
        N.edit(s, notice, tsettings, actor="test:advocate",
               body=body.replace("good faith belief", "belief"), to_email="takedowns@board.example")
    with db.transaction(engine) as s:
        notice = N.get(s, nid)
        with pytest.raises(N.ElementsMissing) as err:
            N.approve(s, notice, tsettings, actor="test:advocate")
        assert "good_faith" in str(err.value) and err.value.report.missing == ["good_faith"]
    with db.session(engine) as s:
        assert N.get(s, nid).state == NoticeState.DRAFT.value
    with db.transaction(engine) as s:
        notice = N.get(s, nid)
        N.edit(s, notice, tsettings, actor="test:advocate", body=body)
        N.approve(s, notice, tsettings, actor="test:approver", now=T0)
    with db.session(engine) as s:
        notice = N.get(s, nid)
        assert notice.state == "approved" and notice.approved_by == "test:approver" and notice.message_id
        actions = list(s.scalars(select(AuditEntry.action).where(AuditEntry.case_id == case.case_id)))
        assert {"takedown.draft", "takedown.edit", "takedown.approved"} <= set(actions)
        for d in s.scalars(select(AuditEntry.details).where(AuditEntry.action.like("takedown.%"))):
            assert "http" not in str(d) and "Alex" not in str(d)  # no URLs or names in the audit log


def test_the_victim_is_named_only_with_recorded_consent(engine, tsettings):
    case = make_case(engine, "US")
    add_copy(engine, case, picture_bytes(6), URLS[:1])
    with db.transaction(engine) as s:
        [agent] = N.draft_for_case(s, case.case_id, tsettings, actor="t", now=T0)
        assert not agent.uses_victim_identity and "Jo Victim" not in agent.body
        assert "authorised agent" in agent.body and "/s/ Alex Advocate" in agent.body
        N.record_consent(s, case.case_id, consents=True, victim_name="Jo Victim", victim_contact="jo@example.org",
                         actor="t")
        [named] = N.draft_for_case(s, case.case_id, tsettings, actor="t", now=T0)
        assert named.uses_victim_identity and "/s/ Jo Victim" in named.body and named.elements["ok"]
        # A DSA notice never names the victim (the organisation is the notifier), consent or not.
        [dsa] = N.draft_for_case(s, case.case_id, tsettings, actor="t", notice_type="dsa_art16", now=T0)
        assert dsa.profile == "EU" and not dsa.uses_victim_identity and "Jo Victim" not in dsa.body
        # Consent withdrawn: the named draft can no longer be approved (its signer is not the agent).
        N.record_consent(s, case.case_id, consents=False, actor="t")
        named.recipient = {"email": "takedowns@board.example", "found_by": "advocate"}
        with pytest.raises(N.ElementsMissing):
            N.approve(s, named, tsettings, actor="t")


def test_drafting_refuses_unconfirmed_matches_minors_and_a_missing_organisation(engine, tsettings):
    case = make_case(engine, "US")
    pending = add_copy(engine, case, picture_bytes(7), URLS[:1], confirmed=False)
    with db.transaction(engine) as s:
        with pytest.raises(N.NoticeError, match="confirm"):
            N.draft_for_case(s, case.case_id, tsettings, actor="t", match_ids=[pending])
        with pytest.raises(N.NothingToReport):
            N.draft_for_case(s, case.case_id, tsettings, actor="t")
    # A case involving a minor never goes through this flow (hotlines instead); no picture of a
    # minor is involved here: the flag alone decides.
    minor = make_case(engine, "US")
    add_copy(engine, minor, picture_bytes(17), [("https://cdn.example.net/m.jpg", None)])
    with db.transaction(engine) as s:
        from monitor.models import Case
        s.get(Case, minor.case_id).involves_minor = True
    with db.transaction(engine) as s:
        with pytest.raises(N.NoticeError, match="minor"):
            N.draft_for_case(s, minor.case_id, tsettings, actor="t")
    with pytest.raises(Exception, match="NCII_ORG_NAME"):
        TakedownSettings().require_identity()


def test_one_notice_per_platform_lists_every_known_copy_there(engine, tsettings):
    case = make_case(engine, "GB")
    add_copy(engine, case, picture_bytes(8), URLS)  # two sightings of one picture on one board
    add_copy(engine, case, picture_bytes(9), [("https://cdn.example.net/c.jpg", "https://board.example.net/post/3")])
    add_copy(engine, case, picture_bytes(10), [("https://i.redd.it/xyz.jpg", "https://www.reddit.com/r/x/1")])
    with db.transaction(engine) as s:
        drafts = N.draft_for_case(s, case.case_id, tsettings, actor="t", now=T0)
        by_platform = {d.platform: d for d in drafts}
        assert set(by_platform) == {"host:board.example.net", "reddit"}
        board = by_platform["host:board.example.net"]
        assert all(u in board.body for u in ("a.jpg", "b.jpg", "c.jpg"))
        assert board.profile == "UK" and board.notice_type == "tos_report"
        assert board.recipient["found_by"] == "none"  # no registry entry and no network look-up here
        reddit = by_platform["reddit"]
        assert reddit.recipient["found_by"] == "registry" and reddit.delivery == "web_form"
        assert reddit.recipient["form_url"].startswith("https://")


def test_an_organisation_rewords_a_template_without_touching_code(engine, tmp_path):
    import shutil

    from monitor.takedowns.config import TEMPLATES_DIR

    own = tmp_path / "templates"
    shutil.copytree(TEMPLATES_DIR / "en", own / "xx")
    t = own / "xx" / "tos_report.txt"
    t.write_text(t.read_text().replace("We report intimate images", "Our helpline reports intimate images"))
    # The translator rewords a statement and its phrase together.
    t.write_text(t.read_text().replace("without the consent", "sans the consent"))
    (own / "xx" / "elements.toml").write_text((own / "xx" / "elements.toml").read_text().replace(
        'non_consent = [["without the consent"], ["without consent"]]', 'non_consent = [["sans the consent"]]'))
    ts = TakedownSettings(**ORG, templates_dir=own, language="xx")
    case = make_case(engine, "GB")
    add_copy(engine, case, picture_bytes(15), URLS[:1])
    with db.transaction(engine) as s:
        [notice] = N.draft_for_case(s, case.case_id, ts, actor="t", now=T0)
        assert notice.language == "xx" and "Our helpline reports" in notice.body
        assert notice.elements["ok"], notice.elements
        # The shipped English phrase is not what this language checks for.
        report = N.edit(s, notice, ts, actor="t", body=notice.body.replace("sans the consent", "without the consent"))
        assert report.missing == ["non_consent"]


@pytest.mark.parametrize("jurisdiction, profile, ntype", [
    ("US", "US", "take_it_down"), ("FR", "EU", "dsa_art16"), ("GB", "UK", "tos_report"),
    ("AU", "AU", "tos_report"), ("CA", "CA", "tos_report"), (None, "INTL", "tos_report")])
def test_the_cases_jurisdiction_picks_the_profile_and_its_default_notice(engine, tsettings, jurisdiction, profile,
                                                                         ntype):
    case = make_case(engine, jurisdiction)
    add_copy(engine, case, picture_bytes(16), URLS[:1])
    with db.transaction(engine) as s:
        [notice] = N.draft_for_case(s, case.case_id, tsettings, actor="t", now=T0)
        assert (notice.profile, notice.notice_type) == (profile, ntype)
        assert notice.elements["ok"], notice.elements
        assert notice.deadline_hours == profiles()[profile].deadline_hours


def test_pdf_copies_keep_non_latin_text_with_a_unicode_font(engine, tsettings):
    from pathlib import Path

    from monitor.takedowns import delivery
    from monitor.takedowns.config import _FONT_CANDIDATES

    font = next((Path(f) for f in _FONT_CANDIDATES if Path(f).is_file()), None)
    if font is None:
        pytest.skip("no DejaVu Sans on this machine (the PDF falls back to Latin-1)")
    case = make_case(engine, "US")
    add_copy(engine, case, picture_bytes(18), URLS[:1])
    with db.transaction(engine) as s:
        N.record_consent(s, case.case_id, consents=True, victim_name="Зоя Ĳsbrand", actor="t")
        [notice] = N.draft_for_case(s, case.case_id, tsettings, actor="t", now=T0)
        assert "/s/ Зоя Ĳsbrand" in notice.body
        import dataclasses
        pdf = delivery.pdf_bytes(notice, dataclasses.replace(tsettings, pdf_font=font))
        latin = delivery.pdf_bytes(notice, tsettings)
    assert pdf.startswith(b"%PDF") and b"DejaVu" in pdf and latin.startswith(b"%PDF")
