"""security.txt (RFC 9116): the last hint for whom to tell about content on an unknown host.

``parse`` reads the fields (a PGP cleartext signature is unwrapped, comments and unknown fields
are kept out), ``fetch`` reads /.well-known/security.txt (then /security.txt) through the safe
HTTP client. Contact URIs are mailto:, https: or tel: (RFC 9116 section 2.5.3).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from connectors.errors import FetchError
from connectors.http import HttpClient

MAX_BYTES = 64 * 1024
#: The fields RFC 9116 defines (section 2.5), lower-case.
FIELDS = ("acknowledgments", "canonical", "contact", "encryption", "expires", "hiring", "policy",
          "preferred-languages", "csaf")


@dataclass
class SecurityTxt:
    """The fields of a security.txt file (each a list: most may repeat)."""

    fields: dict[str, list[str]] = field(default_factory=dict)

    @property
    def contacts(self) -> list[str]:
        """The Contact URIs, in the file's order (its preference)."""
        return self.fields.get("contact", [])

    @property
    def emails(self) -> list[str]:
        """The contact email addresses."""
        return [c[len("mailto:"):] for c in self.contacts if c.lower().startswith("mailto:") and "@" in c]

    @property
    def expires(self) -> str | None:
        values = self.fields.get("expires")
        return values[0] if values else None


def _unwrap_signed(text: str) -> str:
    if "-----BEGIN PGP SIGNED MESSAGE-----" not in text:
        return text
    body = text.split("-----BEGIN PGP SIGNED MESSAGE-----", 1)[1]
    body = body.split("-----BEGIN PGP SIGNATURE-----", 1)[0]
    lines = body.splitlines()
    # Armor headers ("Hash: SHA256") end at the first empty line.
    while lines and lines[0].strip():
        lines.pop(0)
    # Dash-escaped lines (RFC 4880 section 7.1).
    return "\n".join(line[2:] if line.startswith("- ") else line for line in lines)


def parse(text: str) -> SecurityTxt:
    """Parse the text of a security.txt file; never raises on bad lines (they are skipped)."""
    out = SecurityTxt()
    for raw in _unwrap_signed(text).splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or ":" not in line:
            continue
        name, _, value = line.partition(":")
        name, value = name.strip().lower(), value.strip()
        if name not in FIELDS or not value or any(c.isspace() for c in name):
            continue
        if name == "contact" and not value.lower().startswith(("mailto:", "https:", "tel:")):
            continue
        out.fields.setdefault(name, []).append(value)
    return out


def fetch(http: HttpClient, host: str, *, scheme: str = "https", port: int | None = None) -> SecurityTxt | None:
    """The host's security.txt, or None when it has none (or it cannot be fetched)."""
    authority = host if port is None else f"{host}:{port}"
    for path in ("/.well-known/security.txt", "/security.txt"):
        try:
            response = http.get(f"{scheme}://{authority}{path}", check_robots=False, max_bytes=MAX_BYTES,
                                truncate=True)
        except FetchError:
            continue
        if response.status == 200 and "text/plain" in response.content_type:
            found = parse(response.content.decode("utf-8", "replace"))
            if found.contacts:
                return found
    return None
