"""SSRF protection: which URLs and addresses the monitor may connect to.

URLs found in posts, feeds and pages are attacker-controlled. Before every connection (the first
request and every redirect hop) the HTTP layer calls :meth:`NetPolicy.vet`, which

1. refuses anything but ``http``/``https``, URLs with user:password, and hosts that are empty,
   malformed or reserved names (``localhost``, ``*.localhost``, ``*.local``, ``*.internal``,
   ``*.home.arpa``, ``metadata.google.internal`` ...);
2. resolves the host name once (through an injectable resolver) and refuses it unless EVERY
   address is public (see :func:`address_problem` for the exact table);
3. returns a :class:`VettedURL` carrying the checked addresses, to which the HTTP layer then
   connects directly (the connection is pinned; no second DNS lookup can rebind it).

Nothing here opens a socket. Loopback and other non-public addresses can be allowed explicitly
(``allow_hosts``, ``allow_loopback``) for tests, demos and deliberate internal deployments; both
are off by default. Cloud metadata addresses stay refused unless the exact address is listed.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass, field
from typing import Callable, Iterable
from urllib.parse import urlsplit

import idna

from .errors import Blocked

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str], Iterable[str]]
"""A resolver maps a host name to the IP address strings it resolves to (empty: not found)."""

ALLOWED_SCHEMES = frozenset({"http", "https"})

# Cloud instance metadata services (AWS/GCP/Azure/OpenStack/Oracle/DigitalOcean use
# 169.254.169.254; AWS IPv6 fd00:ec2::254; Alibaba 100.100.100.200; AWS ECS 169.254.170.2).
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a)
    for a in ("169.254.169.254", "169.254.170.2", "fd00:ec2::254", "100.100.100.200")
)
METADATA_HOSTNAMES = frozenset(
    {
        "metadata.google.internal",
        "metadata.goog",
        "metadata",
        "instance-data",
        "instance-data.ec2.internal",
        "metadata.azure.internal",
    }
)
# Names that never denote a public host (RFC 6761 / 6762 / 8375, ICANN's .internal).
LOOPBACK_NAMES = ("localhost",)
PRIVATE_NAME_SUFFIXES = (".localhost", ".local", ".internal", ".home.arpa", ".localdomain")

_V4 = ipaddress.ip_network
_DENIED_V4: tuple[tuple[ipaddress.IPv4Network, str], ...] = (
    (_V4("0.0.0.0/8"), "an unspecified ('this network') address"),
    (_V4("10.0.0.0/8"), "a private (RFC 1918) address"),
    (_V4("100.64.0.0/10"), "a carrier-grade NAT (RFC 6598) address"),
    (_V4("127.0.0.0/8"), "a loopback address"),
    (_V4("169.254.0.0/16"), "a link-local address"),
    (_V4("172.16.0.0/12"), "a private (RFC 1918) address"),
    (_V4("192.0.0.0/24"), "an IETF protocol assignment address"),
    (_V4("192.0.2.0/24"), "a documentation address"),
    (_V4("192.88.99.0/24"), "a 6to4 relay anycast address"),
    (_V4("192.168.0.0/16"), "a private (RFC 1918) address"),
    (_V4("198.18.0.0/15"), "a benchmarking address"),
    (_V4("198.51.100.0/24"), "a documentation address"),
    (_V4("203.0.113.0/24"), "a documentation address"),
    (_V4("224.0.0.0/4"), "a multicast address"),
    (_V4("240.0.0.0/4"), "a reserved address"),
)
_DENIED_V6: tuple[tuple[ipaddress.IPv6Network, str], ...] = (
    (ipaddress.IPv6Network("::/128"), "the unspecified address"),
    (ipaddress.IPv6Network("::1/128"), "a loopback address"),
    (ipaddress.IPv6Network("::/96"), "a deprecated IPv4-compatible address"),
    (ipaddress.IPv6Network("64:ff9b:1::/48"), "a local-use NAT64 address"),
    (ipaddress.IPv6Network("100::/64"), "a discard-only address"),
    (ipaddress.IPv6Network("2001::/23"), "an IETF protocol assignment (incl. Teredo) address"),
    (ipaddress.IPv6Network("2001:db8::/32"), "a documentation address"),
    (ipaddress.IPv6Network("3fff::/20"), "a documentation address"),
    (ipaddress.IPv6Network("5f00::/16"), "an SRv6 SID address"),
    (ipaddress.IPv6Network("fc00::/7"), "a unique-local (private) address"),
    (ipaddress.IPv6Network("fe80::/10"), "a link-local address"),
    (ipaddress.IPv6Network("fec0::/10"), "a deprecated site-local address"),
    (ipaddress.IPv6Network("ff00::/8"), "a multicast address"),
)
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_6TO4 = ipaddress.IPv6Network("2002::/16")


def embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for: IPv4-mapped (``::ffff:a.b.c.d``), NAT64
    (``64:ff9b::a.b.c.d``) or 6to4 (``2002:AABB:CCDD::``); None otherwise."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip.sixtofour is not None:
        return ip.sixtofour
    return None


def address_problem(ip: IPAddress) -> str | None:
    """Why connecting to ``ip`` is refused by default, or None when it is a public address."""
    if ip in METADATA_ADDRESSES:
        return "a cloud metadata service address"
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.scope_id:
            return "a scoped IPv6 address"
        inner = embedded_ipv4(ip)
        if inner is not None:
            problem = address_problem(inner)
            return f"an IPv6 form of {problem}" if problem else None
        table: tuple = _DENIED_V6
    else:
        table = _DENIED_V4
    for network, problem in table:
        if ip in network:
            return problem
    if not ip.is_global:
        return "not a globally routable address"
    return None


def system_resolver(host: str) -> list[str]:
    """Resolve with the operating system (getaddrinfo), TCP addresses only, in its order."""
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        return []
    out: list[str] = []
    for _family, _type, _proto, _canon, sockaddr in infos:
        addr = str(sockaddr[0])
        if addr not in out:
            out.append(addr)
    return out


@dataclass(frozen=True)
class VettedURL:
    """A URL that passed the guard, with the addresses it may be connected to."""

    url: str
    scheme: str
    host: str  # lower-case host name or IP literal, without brackets
    port: int
    addresses: tuple[IPAddress, ...]

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.scheme == "https" else 80
        return host if self.port == default else f"{host}:{self.port}"


def _parse_allow(entries: Iterable[str]) -> tuple[frozenset[str], tuple]:
    names: set[str] = set()
    networks: list = []
    for entry in entries:
        text = str(entry).strip().lower().strip("[]")
        if not text:
            continue
        try:
            networks.append(ipaddress.ip_network(text, strict=False))
        except ValueError:
            names.add(text.rstrip("."))
    return frozenset(names), tuple(networks)


@dataclass(frozen=True)
class NetPolicy:
    """Where connections may go.

    ``allow_hosts``: host names, IP addresses or CIDR networks that may be non-public (exact
    host-name match; an address entry allows that address whatever name resolved to it).
    ``allow_loopback``: allow 127.0.0.0/8, ::1 and ``localhost``.
    ``resolver``: host name -> addresses; defaults to the operating system's.
    """

    allow_hosts: frozenset[str] = frozenset()
    allow_loopback: bool = False
    resolver: Resolver | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "allow_hosts", frozenset(self.allow_hosts))
        names, networks = _parse_allow(self.allow_hosts)
        object.__setattr__(self, "_allowed_names", names)
        object.__setattr__(self, "_allowed_networks", networks)

    # -- checks -------------------------------------------------------------------------------

    def _address_allowed(self, ip: IPAddress, host_allowed: bool) -> str | None:
        """None when ``ip`` may be connected to, else the reason it may not."""
        for network in self._allowed_networks:  # type: ignore[attr-defined]
            if ip.version == network.version and ip in network:
                return None
        problem = address_problem(ip)
        if problem is None:
            return None
        if ip in METADATA_ADDRESSES:
            return problem  # only an exact address entry (checked above) allows these
        check = ip
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            check = ip.ipv4_mapped
        if self.allow_loopback and check.is_loopback:
            return None
        if host_allowed:
            return None
        return problem

    def vet(self, url: str) -> VettedURL:
        """Check ``url`` and resolve its host; raise :class:`Blocked` naming the reason."""
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as exc:
            raise Blocked(url, f"malformed URL ({exc})") from None
        scheme = parts.scheme.lower()
        if scheme not in ALLOWED_SCHEMES:
            shown = f"{scheme}:" if scheme else "no scheme"
            raise Blocked(url, f"scheme {shown} is not allowed (only http and https)")
        if parts.username is not None or parts.password is not None or "@" in parts.netloc:
            raise Blocked(url, "URLs with credentials (user@host) are not allowed")
        host = (parts.hostname or "").strip().lower()
        if not host:
            raise Blocked(url, "no host name")
        if not host.isascii():
            try:
                host = idna.encode(host, uts46=True).decode("ascii")
            except (idna.IDNAError, UnicodeError, ValueError):
                raise Blocked(url, "malformed international host name") from None
        if any(c in host for c in " \t\r\n\\%"):
            raise Blocked(url, "malformed host name")
        if port is None:
            port = 443 if scheme == "https" else 80
        if not 0 < port < 65536:
            raise Blocked(url, f"port {port} is out of range")

        literal: IPAddress | None
        try:
            literal = ipaddress.ip_address(host)
        except ValueError:
            literal = None

        if literal is not None:
            problem = self._address_allowed(literal, host_allowed=False)
            if problem:
                raise Blocked(url, f"{host} is {problem}")
            return VettedURL(url, scheme, host, port, (literal,))

        name = host.rstrip(".")
        if not name or len(name) > 253:
            raise Blocked(url, "malformed host name")
        host_allowed = name in self._allowed_names  # type: ignore[attr-defined]
        if not host_allowed:
            if name in METADATA_HOSTNAMES:
                raise Blocked(url, f"{name} is a cloud metadata service name")
            # Numeric forms that some resolvers accept as IPv4 (0x7f.1, 2130706433, 127.1).
            if all(part.isdigit() or part.startswith("0x") for part in name.split(".")):
                raise Blocked(url, f"{name} is an unusual numeric host form")
            if name in LOOPBACK_NAMES or name.endswith(".localhost"):
                if not self.allow_loopback:
                    raise Blocked(url, f"{name} is a loopback name")
            elif name.endswith(PRIVATE_NAME_SUFFIXES) or "." not in name:
                raise Blocked(url, f"{name} is not a public host name")

        resolver = self.resolver or system_resolver
        raw = list(resolver(name))
        if not raw:
            raise Blocked(url, f"{name} does not resolve to any address")
        addresses: list[IPAddress] = []
        for text in raw:
            try:
                ip = ipaddress.ip_address(str(text))
            except ValueError:
                raise Blocked(url, f"{name} resolved to an invalid address {text!r}") from None
            problem = self._address_allowed(ip, host_allowed)
            if problem:
                raise Blocked(url, f"{name} resolves to {ip}, {problem}")
            if ip not in addresses:
                addresses.append(ip)
        return VettedURL(url, scheme, name, port, tuple(addresses))


def is_public_url(url: str, policy: NetPolicy | None = None) -> bool:
    """True when ``url`` passes the guard (resolves the host name)."""
    try:
        (policy or NetPolicy()).vet(url)
    except Blocked:
        return False
    return True
