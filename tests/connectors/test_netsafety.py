"""The SSRF guard, checked without any connection (resolver hook only)."""

from __future__ import annotations

import ipaddress

import pytest

from connectors.errors import Blocked
from connectors.netsafety import NetPolicy, address_problem, embedded_ipv4

from .conftest import FakeResolver


@pytest.fixture
def policy(resolver):
    return NetPolicy(resolver=resolver)


@pytest.mark.parametrize(
    "url, reason",
    [
        ("file:///etc/passwd", "scheme file:"),
        ("gopher://127.0.0.1:70/_x", "scheme gopher:"),
        ("ftp://public.test/x.jpg", "scheme ftp:"),
        ("javascript:alert(1)", "scheme javascript:"),
        ("data:image/png;base64,AAAA", "scheme data:"),
        ("//public.test/x", "no scheme"),
        ("http://user:pw@public.test/", "credentials"),
        ("http://user@public.test/", "credentials"),
        ("http:///nohost", "no host"),
        ("http://localhost/", "loopback name"),
        ("http://foo.localhost/", "loopback name"),
        ("http://printer.local/", "not a public host name"),
        ("http://db.internal/", "not a public host name"),
        ("http://intranet/", "not a public host name"),
        ("http://metadata.google.internal/computeMetadata/v1/", "metadata service name"),
        ("http://127.0.0.1/", "loopback"),
        ("http://127.8.9.10/", "loopback"),
        ("http://[::1]/", "loopback"),
        ("http://10.1.2.3/", "private"),
        ("http://172.31.255.255/", "private"),
        ("http://192.168.0.10/", "private"),
        ("http://100.64.1.1/", "carrier-grade NAT"),
        ("http://169.254.1.1/", "link-local"),
        ("http://169.254.169.254/latest/meta-data/", "metadata"),
        ("http://[fd00:ec2::254]/", "metadata"),
        ("http://[fd12:3456::1]/", "unique-local"),
        ("http://[fe80::1]/", "link-local"),
        ("http://[ff02::1]/", "multicast"),
        ("http://224.0.0.251/", "multicast"),
        ("http://0.0.0.0/", "unspecified"),
        ("http://[::]/", "unspecified"),
        ("http://240.0.0.1/", "reserved"),
        ("http://255.255.255.255/", "reserved"),
        ("http://[::ffff:127.0.0.1]/", "IPv6 form of a loopback"),
        ("http://[::ffff:169.254.169.254]/", "metadata"),
        ("http://[64:ff9b::10.0.0.1]/", "IPv6 form of a private"),
        ("http://[2002:a9fe:a9fe::1]/", "IPv6 form of a cloud metadata"),
        ("http://[2001:db8::1]/", "documentation"),
        ("http://0x7f.1/", "numeric host form"),
        ("http://2130706433/", "numeric host form"),
        ("http://evil.test/", "10.0.0.1, a private"),
        ("http://private172.test/", "private"),
        ("http://private192.test/", "private"),
        ("http://cgnat.test/", "carrier-grade NAT"),
        ("http://linklocal.test/", "link-local"),
        ("http://metadata.test/", "169.254.169.254, a cloud metadata"),
        ("http://ec2v6.test/", "metadata"),
        ("http://ula.test/", "unique-local"),
        ("http://v6linklocal.test/", "link-local"),
        ("http://v6loop.test/", "loopback"),
        ("http://mapped.test/", "IPv6 form of a private"),
        ("http://nat64.test/", "IPv6 form of a private"),
        ("http://sixtofour.test/", "IPv6 form of a private"),
        ("http://multicast.test/", "multicast"),
        ("http://unspecified.test/", "unspecified"),
        ("http://reserved.test/", "reserved"),
        ("http://nxdomain.test/", "does not resolve"),
        ("http://public.test:0/", "out of range"),
    ],
)
def test_refused(policy, url, reason):
    with pytest.raises(Blocked) as info:
        policy.vet(url)
    assert reason in str(info.value)
    assert str(info.value).startswith(url)


def test_public_host_is_vetted_with_its_addresses(policy, resolver):
    vetted = policy.vet("https://Public.TEST/a/b?c=d")
    assert vetted.host == "public.test"
    assert vetted.port == 443
    assert [str(a) for a in vetted.addresses] == ["93.184.216.34"]
    assert vetted.host_header == "public.test"
    assert resolver.calls == ["public.test"]


def test_loopback_needs_an_explicit_allow(resolver):
    with pytest.raises(Blocked):
        NetPolicy(resolver=resolver).vet("http://127.0.0.1:8000/")
    exact = NetPolicy(allow_hosts=frozenset({"127.0.0.1"}), resolver=resolver)
    assert exact.vet("http://127.0.0.1:8000/").port == 8000
    assert exact.vet("http://site.test:8000/").addresses == (ipaddress.ip_address("127.0.0.1"),)
    with pytest.raises(Blocked, match="127.0.0.2 is a loopback"):
        exact.vet("http://127.0.0.2:8000/")
    with pytest.raises(Blocked, match="loopback2.test resolves to 127.0.0.2"):
        exact.vet("http://loopback2.test:8000/")
    loop = NetPolicy(allow_loopback=True, resolver=resolver)
    assert loop.vet("http://127.0.0.2/").host == "127.0.0.2"
    assert loop.vet("http://[::1]/").host == "::1"
    with pytest.raises(Blocked):
        loop.vet("http://10.0.0.1/")


def test_every_resolved_address_must_be_allowed(resolver):
    policy = NetPolicy(allow_hosts=frozenset({"127.0.0.1"}), resolver=resolver)
    with pytest.raises(Blocked, match="mixed.test resolves to 10.0.0.1, a private"):
        policy.vet("http://mixed.test/")


def test_allow_hosts_by_name_and_network(resolver):
    policy = NetPolicy(allow_hosts=frozenset({"evil.test", "192.168.0.0/16"}), resolver=resolver)
    assert policy.vet("http://evil.test/").host == "evil.test"
    assert policy.vet("http://private192.test/").host == "private192.test"
    with pytest.raises(Blocked):
        policy.vet("http://private172.test/")


def test_metadata_needs_the_exact_address():
    resolver = FakeResolver({"meta.corp": ["169.254.169.254"]})
    by_name = NetPolicy(allow_hosts=frozenset({"meta.corp"}), resolver=resolver)
    with pytest.raises(Blocked, match="metadata"):
        by_name.vet("http://meta.corp/")
    wide = NetPolicy(allow_hosts=frozenset({"169.254.0.0/16"}), resolver=resolver)
    assert wide.vet("http://meta.corp/")  # an explicit network entry is an explicit decision


def test_resolver_answers_are_validated():
    policy = NetPolicy(resolver=FakeResolver({"bad.test": ["not-an-ip"]}))
    with pytest.raises(Blocked, match="invalid address"):
        policy.vet("http://bad.test/")


def test_international_names_are_converted():
    resolver = FakeResolver({"xn--bcher-kva.test": ["93.184.216.34"]})
    vetted = NetPolicy(resolver=resolver).vet("http://bücher.test/")
    assert vetted.host == "xn--bcher-kva.test"


def test_address_table():
    assert address_problem(ipaddress.ip_address("93.184.216.34")) is None
    assert address_problem(ipaddress.ip_address("2606:4700::1111")) is None
    assert address_problem(ipaddress.ip_address("198.18.0.1"))  # benchmarking
    assert address_problem(ipaddress.ip_address("100.100.100.200")) == \
        "a cloud metadata service address"
    v4 = ipaddress.ip_address("1.2.3.4")
    assert embedded_ipv4(ipaddress.ip_address("::ffff:1.2.3.4")) == v4
    assert embedded_ipv4(ipaddress.ip_address("64:ff9b::102:304")) == v4
    assert embedded_ipv4(ipaddress.ip_address("2002:102:304::")) == v4
    # an IPv6 form of a public IPv4 address is public
    assert address_problem(ipaddress.ip_address("::ffff:93.184.216.34")) is None
