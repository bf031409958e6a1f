"""Recipients: the platform registry (and an operator's file), RDAP against a local server
(IANA-style bootstrap pointing at it; abuse entities nested in the registrar), security.txt."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings as hsettings, strategies as st

from monitor.demo.site import LoopbackSite, Route
from monitor.settings import SettingsError
from monitor.takedowns import rdap, securitytxt
from monitor.takedowns.config import TakedownSettings, platform_for_host, platforms
from monitor.takedowns.recipients import RecipientFinder
from tests.takedowns.conftest import ORG

pytestmark = pytest.mark.usefixtures("loopback_only")


def jcard(fn: str, email: str | None = None) -> list:
    props = [["version", {}, "text", "4.0"], ["fn", {}, "text", fn], ["kind", {}, "text", "org"]]
    if email:
        props.append(["email", {"type": "work"}, "text", email])
    props.append(["tel", {"type": ["voice"]}, "uri", "tel:+1.5550100"])
    return ["vcard", props]


IP_ANSWER = {"objectClassName": "ip network", "handle": "NET-127", "name": "LOOPBACK-HOSTING",
             "entities": [{"objectClassName": "entity", "handle": "ORG-1", "roles": ["registrant"],
                           "vcardArray": jcard("Loopback Hosting Ltd"),
                           "entities": [{"objectClassName": "entity", "handle": "ABUSE-1", "roles": ["abuse"],
                                         "vcardArray": jcard("Abuse desk", "abuse@hosting.test")}]}]}
DOMAIN_ANSWER = {"objectClassName": "domain", "ldhName": "board.test",
                 "entities": [{"objectClassName": "entity", "roles": ["registrar"], "vcardArray": jcard("Registrar Inc"),
                               "entities": [{"roles": ["abuse"], "vcardArray": jcard("", "abuse@registrar.test")}]}]}


def bootstrap_dir(tmp_path: Path, base: str) -> Path:
    folder = tmp_path / "rdap"
    folder.mkdir()
    (folder / "dns.json").write_text(json.dumps({"services": [[["test"], [base]]]}))
    (folder / "ipv4.json").write_text(json.dumps({"services": [[["127.0.0.0/8"], [base]]]}))
    (folder / "ipv6.json").write_text(json.dumps({"services": [[["::1/128"], [base]]]}))
    return folder


def test_registry_routes_and_an_operators_file_overrides_them(tmp_path):
    assert platform_for_host("i.redd.it").key == "reddit"
    assert platform_for_host("old.reddit.com").key == platform_for_host("reddit.com").key == "reddit"
    assert platform_for_host("unknown.example") is None
    for p in platforms().values():  # never an invented address: web forms unless an email is published
        assert p.email is None or p.demo
        assert p.form_url or p.email
    own = tmp_path / "platforms.toml"
    own.write_text('[platforms.board]\nname = "Board"\nhosts = ["*.board.test"]\nemail = "legal@board.test"\n'
                   'notice_types = ["dmca"]\n')
    ts = TakedownSettings(**ORG, platforms_file=own)
    assert platform_for_host("img.board.test", ts).email == "legal@board.test"
    own.write_text('[platforms.bad]\nname = "Bad"\nhosts = ["x.test"]\n')
    with pytest.raises(SettingsError, match="email or a form_url"):
        platforms(TakedownSettings(**ORG, platforms_file=own))


def test_rdap_finds_the_networks_nested_abuse_contact_on_a_local_server(tmp_path, http):
    with LoopbackSite() as server:
        base = server.url("/rdap/")
        server.add("/rdap/ip/127.0.0.1", Route(json.dumps(IP_ANSWER).encode(), "application/rdap+json"))
        finder = RecipientFinder(TakedownSettings(**ORG, rdap_dir=bootstrap_dir(tmp_path, base)), http)
        found = finder.abuse_contact("127.0.0.1")
    assert (found.email, found.found_by) == ("abuse@hosting.test", "rdap-network")
    assert "LOOPBACK-HOSTING" in found.detail and found.name == "Abuse desk"


def test_rdap_falls_back_to_the_registrar_then_security_txt(tmp_path, http):
    with LoopbackSite() as server:
        base = server.url("/rdap/")
        server.add("/rdap/domain/board.test", Route(json.dumps(DOMAIN_ANSWER).encode(), "application/rdap+json"))
        boot = rdap.Bootstrap.load(bootstrap_dir(tmp_path, base))
        client = rdap.RdapClient(http, boot)
        name, answer = client.domain("img.board.test")
        assert name == "board.test" and rdap.abuse_contacts(answer)[0].emails == ("abuse@registrar.test",)
        # The network has no abuse entity; the host has a security.txt.
        server.add("/rdap/ip/127.0.0.1", Route(json.dumps({"handle": "NET", "entities": []}).encode(),
                                               "application/rdap+json"))
        server.add("/.well-known/security.txt", Route(b"# hi\nContact: mailto:security@site.test\n"
                                                      b"Expires: 2030-01-01T00:00:00Z\n", "text/plain"))
        finder = RecipientFinder(TakedownSettings(**ORG), http, boot, securitytxt_scheme="http",
                                 securitytxt_port=server.port)
        found = finder.abuse_contact("127.0.0.1")
    assert (found.email, found.found_by) == ("security@site.test", "security.txt")
    assert any("no abuse entity" in t for t in found.tried)


def test_bootstrap_files_are_validated_and_the_shipped_snapshot_loads():
    shipped = rdap.Bootstrap.load(TakedownSettings().rdap_dir)
    assert shipped.domain_servers("www.example.com") == ["https://rdap.verisign.com/com/v1/"]
    assert shipped.ip_servers("8.8.8.8")[0].startswith("https://rdap.arin.net/")
    with pytest.raises(rdap.RdapError):
        rdap.parse_services({"services": [["com", "x"]]})


def test_jcard_parsing_skips_junk():
    assert rdap.parse_jcard(jcard("A", "a@b.test")) == ("A", ("a@b.test",), ("+1.5550100",))
    assert rdap.parse_jcard(["vcard", [["email"], 5, ["email", {}, "text", ""], ["fn", {}, "text", ["x", "y"]]]]) \
        == ("x y", (), ())
    assert rdap.parse_jcard({"not": "a card"}) == (None, (), ())


def test_security_txt_parsing():
    signed = ("-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n\nContact: mailto:a@site.test\n"
              "Contact: https://site.test/report\n- Policy: https://site.test/policy\nUnknown: x\n"
              "Contact: ftp://nope\n-----BEGIN PGP SIGNATURE-----\nabc\n-----END PGP SIGNATURE-----\n")
    parsed = securitytxt.parse(signed)
    assert parsed.contacts == ["mailto:a@site.test", "https://site.test/report"]
    assert parsed.emails == ["a@site.test"] and parsed.fields["policy"] == ["https://site.test/policy"]


@hsettings(max_examples=200, deadline=None)
@given(st.text())
def test_security_txt_parser_never_raises(text):
    parsed = securitytxt.parse(text)
    assert all(c.lower().startswith(("mailto:", "https:", "tel:")) for c in parsed.contacts)


@hsettings(max_examples=200, deadline=None)
@given(st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=5),
                    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.sampled_from(
                        ["entities", "roles", "vcardArray", "handle", "x"]), c, max_size=4), max_leaves=30))
def test_rdap_contact_extraction_never_raises(answer):
    for c in rdap.contacts(answer):
        assert isinstance(c.emails, tuple)


def test_rdap_update_replaces_the_bootstrap_files_only_with_valid_ones(tmp_path, http):
    folder = tmp_path / "boot"
    good = {"services": [[["test"], ["https://rdap.example.test/"]]], "publication": "2026-11-01T00:00:00Z"}
    nets = {"ipv4.json": "192.0.2.0/24", "ipv6.json": "2001:db8::/32"}
    with LoopbackSite() as iana:
        for name in rdap.BOOTSTRAP_FILES:
            data = good if name == "dns.json" else {"services": [[[nets[name]], ["https://rdap.example.test/"]]]}
            iana.add(f"/rdap/{name}", Route(json.dumps(data).encode(), "application/json"))
        done = rdap.update_bootstrap(http, folder, base=iana.url("/rdap/"))
        assert set(done) == set(rdap.BOOTSTRAP_FILES)
        assert rdap.Bootstrap.load(folder).domain_servers("a.test") == ["https://rdap.example.test/"]
        iana.add("/rdap/dns.json", Route(json.dumps({"services": [[["new"], ["https://x.test/"]]]}).encode(),
                                         "application/json"))
        iana.add("/rdap/ipv6.json", Route(json.dumps({"services": [[["test"], ["https://x.test/"]]]}).encode(),
                                          "application/json"))
        with pytest.raises(rdap.RdapError, match="not an IP network"):
            rdap.update_bootstrap(http, folder, base=iana.url("/rdap/"))
    assert json.loads((folder / "dns.json").read_text())["services"] == good["services"]  # the old file stays
