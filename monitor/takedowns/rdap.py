"""RDAP (RFC 9083) look-ups of a host's abuse contacts: its IP network's and its domain registrar's.

Where to ask comes from IANA's bootstrap files (RFC 9224: dns.json, ipv4.json, ipv6.json), shipped
as a snapshot in ``data/rdap/`` and refreshed with ``ncii takedown rdap-update``; NCII_RDAP_BOOTSTRAP_DIR
points at another copy (the tests point it at a server on loopback). Answers are read for
entities with the "abuse" role, at any depth (registrars nest their abuse contact inside the
registrar entity), and their jCard (RFC 7095) emails, telephone numbers and names.
Every request goes through the safe HTTP client (SSRF guard, size cap, timeouts).
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from connectors.errors import FetchError
from connectors.http import HttpClient

IANA_BOOTSTRAP = "https://data.iana.org/rdap/"
BOOTSTRAP_FILES = ("dns.json", "ipv4.json", "ipv6.json")
MAX_RDAP_BYTES = 1024 * 1024


class RdapError(Exception):
    """A look-up could not be made (no server for it, or a malformed answer); names what and why."""


@dataclass(frozen=True)
class Contact:
    """One contact found in an RDAP answer."""

    roles: tuple[str, ...]
    name: str | None = None
    emails: tuple[str, ...] = ()
    phones: tuple[str, ...] = ()
    handle: str | None = None


@dataclass
class Bootstrap:
    """The IANA service registries: TLD -> base URLs, network -> base URLs."""

    domains: dict[str, list[str]] = field(default_factory=dict)
    networks: list[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, list[str]]] = field(default_factory=list)

    @classmethod
    def load(cls, folder: Path) -> "Bootstrap":
        """Read dns.json, ipv4.json and ipv6.json from `folder`."""
        out = cls()
        for name in BOOTSTRAP_FILES:
            path = folder / name
            try:
                data = json.loads(path.read_text("utf-8"))
            except (OSError, ValueError) as e:
                raise RdapError(f"RDAP bootstrap file {path} is unreadable: {e}") from None
            for entries, urls in parse_services(data, name):
                if name == "dns.json":
                    for tld in entries:
                        out.domains[tld.lower().strip(".")] = urls
                else:
                    out.networks.extend((net, urls) for net in _networks(entries, name))
        out.networks.sort(key=lambda n: n[0].prefixlen, reverse=True)  # most specific first
        return out

    def domain_servers(self, domain: str) -> list[str]:
        """Base URLs for a domain (longest matching TLD label sequence)."""
        labels = domain.lower().strip(".").split(".")
        for i in range(len(labels)):
            suffix = ".".join(labels[i:])
            if suffix in self.domains:
                return self.domains[suffix]
        return []

    def ip_servers(self, ip: str) -> list[str]:
        """Base URLs for an IP address (most specific network first)."""
        addr = ipaddress.ip_address(ip)
        for net, urls in self.networks:
            if addr.version == net.version and addr in net:
                return urls
        return []


def parse_services(data: Any, name: str = "bootstrap") -> list[tuple[list[str], list[str]]]:
    """The (entries, base URLs) pairs of a bootstrap file, https URLs first; refuses malformed files."""
    if not isinstance(data, dict) or not isinstance(data.get("services"), list):
        raise RdapError(f"{name}: not an RDAP bootstrap file (no services list)")
    out = []
    for service in data["services"]:
        if (not isinstance(service, list) or len(service) < 2 or not all(isinstance(x, list) for x in service[:2])
                or not all(isinstance(s, str) for s in service[0] + service[1])):
            raise RdapError(f"{name}: malformed service entry")
        urls = sorted(service[1], key=lambda u: not u.startswith("https:"))
        out.append(([e for e in service[0]], [u if u.endswith("/") else u + "/" for u in urls]))
    return out


def _networks(entries: list[str], name: str) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    try:
        return [ipaddress.ip_network(e, strict=False) for e in entries]
    except ValueError:
        raise RdapError(f"{name}: an entry is not an IP network") from None


# --- answers -------------------------------------------------------------------------------------------

def parse_jcard(vcard: Any) -> tuple[str | None, tuple[str, ...], tuple[str, ...]]:
    """(formatted name, emails, phones) of a jCard ["vcard", [[name, params, type, value], ...]]."""
    if not isinstance(vcard, list) or len(vcard) != 2 or vcard[0] != "vcard" or not isinstance(vcard[1], list):
        return None, (), ()
    name, emails, phones = None, [], []
    for prop in vcard[1]:
        if not isinstance(prop, list) or len(prop) < 4 or not isinstance(prop[0], str):
            continue
        key, value = prop[0].lower(), prop[3]
        if isinstance(value, list):  # structured values: take the text parts
            value = " ".join(str(v) for v in value if isinstance(v, str) and v)
        if not isinstance(value, str) or not value.strip():
            continue
        value = value.strip()
        if key == "fn" and name is None:
            name = value
        elif key == "email":
            emails.append(value.removeprefix("mailto:"))
        elif key == "tel":
            phones.append(value.removeprefix("tel:"))
    return name, tuple(dict.fromkeys(emails)), tuple(dict.fromkeys(phones))


def contacts(answer: Any, *, _depth: int = 0) -> list[Contact]:
    """Every entity of an RDAP answer, nested entities included (depth-first, bounded)."""
    out: list[Contact] = []
    if not isinstance(answer, dict) or _depth > 8:
        return out
    entities = answer.get("entities")
    for entity in entities if isinstance(entities, list) else []:
        if not isinstance(entity, dict):
            continue
        roles_ = entity.get("roles")
        roles = tuple(r.lower() for r in roles_ if isinstance(r, str)) if isinstance(roles_, list) else ()
        name, emails, phones = parse_jcard(entity.get("vcardArray"))
        handle = entity.get("handle") if isinstance(entity.get("handle"), str) else None
        out.append(Contact(roles=roles, name=name, emails=emails, phones=phones, handle=handle))
        out.extend(contacts(entity, _depth=_depth + 1))
    return out


def abuse_contacts(answer: Any) -> list[Contact]:
    """The entities with the "abuse" role that give an email address."""
    return [c for c in contacts(answer) if "abuse" in c.roles and c.emails]


# --- look-ups ------------------------------------------------------------------------------------------

class RdapClient:
    """Asks the right RDAP server through the safe HTTP client."""

    def __init__(self, http: HttpClient, bootstrap: Bootstrap) -> None:
        self.http = http
        self.bootstrap = bootstrap

    def _get(self, bases: Iterable[str], path: str) -> Any:
        last: Exception | None = None
        for base in bases:
            try:
                response = self.http.get(base + path, headers={"Accept": "application/rdap+json"},
                                         check_robots=False, max_bytes=MAX_RDAP_BYTES)
                return response.json()
            except FetchError as e:
                last = e
            except ValueError:
                last = RdapError(f"{base + path}: the answer is not JSON")
        if last is None:
            raise RdapError(f"no RDAP server known for {path}")
        raise RdapError(str(last))

    def ip(self, address: str) -> Any:
        """The RDAP answer for the network holding `address`."""
        return self._get(self.bootstrap.ip_servers(address), f"ip/{address}")

    def domain(self, host: str) -> tuple[str, Any]:
        """(registered domain, answer): tries the host's parents from the shortest registrable name up."""
        labels = host.lower().strip(".").split(".")
        servers = self.bootstrap.domain_servers(host)
        if not servers:
            raise RdapError(f"no RDAP server known for the domain of {host}")
        errors = []
        for n in range(2, len(labels) + 1):
            name = ".".join(labels[-n:])
            try:
                return name, self._get(servers, f"domain/{name}")
            except RdapError as e:
                errors.append(str(e))
        raise RdapError(errors[-1] if errors else f"no RDAP answer for {host}")


def update_bootstrap(http: HttpClient, folder: Path, base: str = IANA_BOOTSTRAP) -> dict[str, str]:
    """Download IANA's current bootstrap files into `folder`; all three are checked before any replaces the old one."""
    folder.mkdir(parents=True, exist_ok=True)
    fetched = {}
    for name in BOOTSTRAP_FILES:
        response = http.get(base + name, check_robots=False, max_bytes=5 * 1024 * 1024)
        try:
            data = response.json()
        except ValueError:
            raise RdapError(f"{name}: not JSON") from None
        services = parse_services(data, name)
        if name != "dns.json":
            for entries, _urls in services:
                _networks(entries, name)
        fetched[name] = data
    done = {}
    for name, data in fetched.items():
        tmp = folder / (name + ".tmp")
        tmp.write_text(json.dumps(data, indent=1), "utf-8")
        tmp.replace(folder / name)
        done[name] = str(data.get("publication", ""))
    return done
