"""HTTPS through a pinned connection: the socket goes to the vetted address while TLS SNI and
certificate verification use the real host name."""

from __future__ import annotations

import datetime as dt
import ssl

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from connectors.errors import ConnectionFailed
from connectors.http import HttpClient, HttpSettings

from .conftest import FakeResolver, Reply, Site


def _cert(name: str, issuer_key, issuer_name, key, *, ca: bool, sans: list[str]):
    now = dt.datetime.now(dt.timezone.utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if sans:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(s) for s in sans]), critical=False
        )
    return builder.sign(issuer_key, hashes.SHA256())


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pki")
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test CA")])
    ca = _cert("test CA", ca_key, ca_name, ca_key, ca=True, sans=[])
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = _cert("site.test", ca_key, ca_name, key, ca=False, sans=["site.test"])
    (folder / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    (folder / "leaf.pem").write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    (folder / "leaf.key").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    return folder


@pytest.fixture
def tls_site(pki):
    s = Site()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(pki / "leaf.pem", pki / "leaf.key")
    seen_sni: list[str | None] = []
    context.sni_callback = lambda sock, name, ctx: seen_sni.append(name)
    s.server.socket = context.wrap_socket(s.server.socket, server_side=True)
    s.seen_sni = seen_sni
    try:
        yield s
    finally:
        s.close()


def _client(pki, table):
    return HttpClient(
        HttpSettings(allow_hosts={"127.0.0.1"}, min_interval=0, respect_robots=False,
                     verify=str(pki / "ca.pem"), retries=0),
        resolver=FakeResolver(table),
    )


def test_https_pinned_with_sni_and_hostname_verification(tls_site, pki, png):
    tls_site.add("/a.png", Reply(body=png))
    client = _client(pki, {"site.test": ["127.0.0.1"]})
    response = client.get_image(f"https://site.test:{tls_site.port}/a.png")
    assert response.content == png
    assert tls_site.seen_sni == ["site.test"]
    assert tls_site.log[-1].headers["Host"] == f"site.test:{tls_site.port}"
    client.close()


def test_https_certificate_for_another_name_is_refused(tls_site, pki, png):
    tls_site.add("/a.png", Reply(body=png))
    client = _client(pki, {"other.test": ["127.0.0.1"]})
    with pytest.raises(ConnectionFailed, match="TLS error") as info:
        client.get(f"https://other.test:{tls_site.port}/a.png")
    assert not info.value.retryable
    assert tls_site.log == []
    client.close()


def test_https_unknown_ca_is_refused(tls_site, png):
    tls_site.add("/a.png", Reply(body=png))
    client = HttpClient(HttpSettings(allow_hosts={"127.0.0.1"}, min_interval=0, retries=0,
                                     respect_robots=False),
                        resolver=FakeResolver({"site.test": ["127.0.0.1"]}))
    with pytest.raises(ConnectionFailed, match="TLS error"):
        client.get(f"https://site.test:{tls_site.port}/a.png")
    client.close()
