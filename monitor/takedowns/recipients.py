"""Who receives a notice, found in this order and recorded with how it was found:

1. the platform registry (data/platforms.toml, extended by the operator's file): the platform's
   notice email or web form;
2. RDAP: the abuse contact of the network the host's address is in, then the abuse contact of
   the domain's registrar (entities with the "abuse" role);
3. security.txt (RFC 9116) of the host: a last hint.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from connectors.errors import ConnectorError
from connectors.http import HttpClient
from monitor.takedowns import rdap, securitytxt
from monitor.takedowns.config import Platform, TakedownSettings, platform_for_host


@dataclass
class Recipient:
    """Where a notice goes: an email address or a web form, and how that was found."""

    name: str
    email: str | None = None
    form_url: str | None = None
    found_by: str = "none"  # registry | rdap-network | rdap-registrar | security.txt | profile | none
    detail: str = ""
    tried: list[str] = field(default_factory=list)

    @property
    def delivery(self) -> str:
        """email when there is an address, else web_form."""
        return "email" if self.email else "web_form"

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "email": self.email, "form_url": self.form_url, "found_by": self.found_by,
                "detail": self.detail, "tried": self.tried}


def from_platform(platform: Platform) -> Recipient:
    """The registry's route for a platform."""
    return Recipient(name=platform.name, email=platform.email, form_url=platform.form_url, found_by="registry",
                     detail=f"platform registry entry {platform.key!r} ({platform.source_file})")


def host_of(url: str) -> str:
    """The lower-case host of a URL ('' when it has none)."""
    try:
        return (urlsplit(url).hostname or "").lower()
    except ValueError:
        return ""


class RecipientFinder:
    """Registry, then RDAP, then security.txt; network look-ups through the safe HTTP client."""

    def __init__(self, settings: TakedownSettings, http: HttpClient | None = None,
                 bootstrap: rdap.Bootstrap | None = None, *, securitytxt_scheme: str = "https",
                 securitytxt_port: int | None = None) -> None:
        self.settings = settings
        self.http = http
        self._bootstrap = bootstrap
        self.securitytxt_scheme, self.securitytxt_port = securitytxt_scheme, securitytxt_port

    def bootstrap(self) -> rdap.Bootstrap:
        if self._bootstrap is None:
            self._bootstrap = rdap.Bootstrap.load(self.settings.rdap_dir)
        return self._bootstrap

    def find(self, host: str) -> Recipient:
        """The recipient of a first notice about content on `host`."""
        platform = platform_for_host(host, self.settings)
        if platform is not None:
            return from_platform(platform)
        found = self.abuse_contact(host)
        found.tried.insert(0, "registry: no entry")
        return found

    def abuse_contact(self, host: str) -> Recipient:
        """The host's abuse contact (escalation step 2): RDAP network, RDAP registrar, security.txt."""
        tried: list[str] = []
        if self.http is None:
            return Recipient(name=host, found_by="none", detail="no network look-up made (offline)", tried=["offline"])
        client = rdap.RdapClient(self.http, self.bootstrap())
        for address in self._addresses(host, tried):
            try:
                answer = client.ip(address)
            except rdap.RdapError as e:
                tried.append(f"rdap ip {address}: {e}")
                continue
            abuse = rdap.abuse_contacts(answer)
            if abuse:
                network = answer.get("name") or answer.get("handle") or address
                return Recipient(name=abuse[0].name or f"abuse contact of {network}", email=abuse[0].emails[0],
                                 found_by="rdap-network", detail=f"RDAP abuse entity of network {network}",
                                 tried=tried)
            tried.append(f"rdap ip {address}: no abuse entity with an email")
        if not _is_ip(host):
            try:
                domain, answer = client.domain(host)
                abuse = rdap.abuse_contacts(answer)
                if abuse:
                    return Recipient(name=abuse[0].name or f"registrar of {domain}", email=abuse[0].emails[0],
                                     found_by="rdap-registrar",
                                     detail=f"RDAP abuse entity for domain {domain} (registrar)", tried=tried)
                tried.append(f"rdap domain {domain}: no abuse entity with an email")
            except rdap.RdapError as e:
                tried.append(f"rdap domain: {e}")
        try:
            found = securitytxt.fetch(self.http, host, scheme=self.securitytxt_scheme, port=self.securitytxt_port)
        except ConnectorError as e:
            found = None
            tried.append(f"security.txt: {e}")
        if found is not None and found.emails:
            return Recipient(name=f"security contact of {host}", email=found.emails[0], found_by="security.txt",
                             detail="Contact field of the host's security.txt (RFC 9116): a hint, not an abuse desk",
                             tried=tried)
        if found is not None:
            web = next((c for c in found.contacts if c.lower().startswith("https:")), None)
            if web:
                return Recipient(name=f"security contact of {host}", form_url=web, found_by="security.txt",
                                 detail="Contact field of the host's security.txt (RFC 9116)", tried=tried)
        tried.append("security.txt: none")
        return Recipient(name=host, found_by="none", detail="no recipient found: set one by hand", tried=tried)

    def _addresses(self, host: str, tried: list[str]) -> list[str]:
        if _is_ip(host):
            return [host]
        try:
            vetted = self.http.policy.vet(f"http://{host}/")  # type: ignore[union-attr]
        except ConnectorError as e:
            tried.append(f"address of {host}: {e}")
            return []
        return [str(a) for a in vetted.addresses[:2]]


def _is_ip(host: str) -> bool:
    import ipaddress

    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return False
