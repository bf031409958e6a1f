"""Takedown settings (the organisation acting as agent), jurisdiction profiles, notice types and
the platform registry, loaded from the data files shipped in ``data/`` (and an operator's own
platform file).

| variable | meaning | default |
|---|---|---|
| NCII_ORG_NAME | the organisation that sends notices as the victim's authorised agent | not set (drafting refuses) |
| NCII_ORG_EMAIL | its contact email (printed in every notice; replies go there) | not set (drafting refuses) |
| NCII_ORG_ADDRESS | its postal address (DMCA notices need one) | not set |
| NCII_ORG_PHONE | its telephone number | not set |
| NCII_ORG_SIGNATORY | the name of the person who signs notices for it | not set (drafting refuses) |
| NCII_TAKEDOWN_FROM | sender address of notice emails | NCII_ORG_EMAIL |
| NCII_TAKEDOWN_BCC | a copy of every sent notice goes here | NCII_ORG_EMAIL |
| NCII_TAKEDOWN_LANGUAGE | default template language (a folder under the templates) | en |
| NCII_TAKEDOWN_TEMPLATES | a folder of the organisation's own templates (same layout; missing files fall back) | not set |
| NCII_TAKEDOWN_PLATFORMS_FILE | an operator's platform registry (TOML, same format), merged over the shipped one | not set |
| NCII_RDAP_BOOTSTRAP_DIR | where the IANA RDAP bootstrap files are (`ncii takedown rdap-update` writes there) | the shipped snapshot |
| NCII_TAKEDOWN_RECHECK_MINUTES | how often the monitor re-checks reported URLs | 60 |
| NCII_PDF_FONT | a TrueType font for PDF copies (non-Latin text) | DejaVu Sans when installed |
"""

from __future__ import annotations

import fnmatch
import tomllib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping

import os

from monitor.settings import SettingsError

DATA_DIR = Path(__file__).parent / "data"
TEMPLATES_DIR = Path(__file__).parent / "templates"
DEFAULT_RDAP_DIR = DATA_DIR / "rdap"
_FONT_CANDIDATES = ("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf", "/usr/share/fonts/TTF/DejaVuSans.ttf",
                    "/usr/share/fonts/dejavu/DejaVuSans.ttf")


def _email_ok(address: str) -> bool:
    return "@" in address and not any(c.isspace() or c in "<>,;" for c in address)


@dataclass(frozen=True)
class TakedownSettings:
    """The organisation's identity in notices and where the takedown data lives."""

    org_name: str | None = None
    org_email: str | None = None
    org_address: str | None = None
    org_phone: str | None = None
    signatory: str | None = None
    sender: str | None = None
    bcc: str | None = None
    language: str = "en"
    templates_dir: Path | None = None
    platforms_file: Path | None = None
    rdap_dir: Path = DEFAULT_RDAP_DIR
    recheck_minutes: int = 60
    pdf_font: Path | None = None

    @classmethod
    def load(cls, env: Mapping[str, str] | None = None) -> "TakedownSettings":
        """Read the NCII_ORG_* and NCII_TAKEDOWN_* variables."""
        env = os.environ if env is None else env

        def get(name: str) -> str | None:
            return (env.get(name) or "").strip() or None

        for name in ("NCII_ORG_EMAIL", "NCII_TAKEDOWN_FROM", "NCII_TAKEDOWN_BCC"):
            if get(name) and not _email_ok(get(name) or ""):
                raise SettingsError(f"{name} is not an email address")
        minutes = get("NCII_TAKEDOWN_RECHECK_MINUTES") or "60"
        if not minutes.isdigit() or not 1 <= int(minutes) <= 7 * 24 * 60:
            raise SettingsError("NCII_TAKEDOWN_RECHECK_MINUTES must be a whole number of minutes from 1 to 10080")
        font = get("NCII_PDF_FONT")
        if font is None:
            font = next((f for f in _FONT_CANDIDATES if Path(f).is_file()), None)
        paths = {n: (Path(get(n)).expanduser() if get(n) else None)  # type: ignore[arg-type]
                 for n in ("NCII_TAKEDOWN_TEMPLATES", "NCII_TAKEDOWN_PLATFORMS_FILE", "NCII_RDAP_BOOTSTRAP_DIR")}
        if paths["NCII_TAKEDOWN_PLATFORMS_FILE"] and not paths["NCII_TAKEDOWN_PLATFORMS_FILE"].is_file():
            raise SettingsError("NCII_TAKEDOWN_PLATFORMS_FILE does not name a readable file")
        return cls(org_name=get("NCII_ORG_NAME"), org_email=get("NCII_ORG_EMAIL"), org_address=get("NCII_ORG_ADDRESS"),
                   org_phone=get("NCII_ORG_PHONE"), signatory=get("NCII_ORG_SIGNATORY"),
                   sender=get("NCII_TAKEDOWN_FROM") or get("NCII_ORG_EMAIL"),
                   bcc=get("NCII_TAKEDOWN_BCC") or get("NCII_ORG_EMAIL"),
                   language=get("NCII_TAKEDOWN_LANGUAGE") or "en",
                   templates_dir=paths["NCII_TAKEDOWN_TEMPLATES"], platforms_file=paths["NCII_TAKEDOWN_PLATFORMS_FILE"],
                   rdap_dir=paths["NCII_RDAP_BOOTSTRAP_DIR"] or DEFAULT_RDAP_DIR, recheck_minutes=int(minutes),
                   pdf_font=Path(font) if font else None)

    def require_identity(self) -> None:
        """Refuse to draft when the organisation that signs is not configured."""
        missing = [n for n, v in (("NCII_ORG_NAME", self.org_name), ("NCII_ORG_EMAIL", self.org_email),
                                  ("NCII_ORG_SIGNATORY", self.signatory)) if not v]
        if missing:
            raise SettingsError(f"set {', '.join(missing)}: notices are signed by the organisation acting as the "
                                "victim's authorised agent (docs/takedowns.md)")


# --- jurisdiction profiles and notice types ----------------------------------------------------------

@dataclass(frozen=True)
class Profile:
    """A jurisdiction profile: law, notice types, deadline and regulator, each with its source."""

    code: str
    name: str
    countries: tuple[str, ...]
    law: str
    law_statement: str
    notice_types: tuple[str, ...]
    deadline_hours: int
    statutory: bool
    deadline_source: str
    regulator: dict[str, str]
    sources: tuple[str, ...]
    receipt: str | None = None


@dataclass(frozen=True)
class NoticeType:
    """A notice type: its legal basis, the elements it must contain, its statutory deadline."""

    code: str
    title: str
    citation: str
    elements: tuple[str, ...]
    profile: str | None = None
    deadline_hours: int | None = None
    may_name_victim: bool = False


@lru_cache(maxsize=1)
def _jurisdictions() -> dict[str, Any]:
    return tomllib.loads((DATA_DIR / "jurisdictions.toml").read_text("utf-8"))


def profiles() -> dict[str, Profile]:
    """Every jurisdiction profile by code."""
    out = {}
    for code, p in _jurisdictions()["profiles"].items():
        out[code] = Profile(code=code, name=p["name"], countries=tuple(p["countries"]), law=p["law"],
                            law_statement=p["law_statement"], notice_types=tuple(p["notice_types"]),
                            deadline_hours=int(p["deadline_hours"]), statutory=bool(p["statutory"]),
                            deadline_source=p["deadline_source"], regulator=dict(p["regulator"]),
                            sources=tuple(p["sources"]), receipt=p.get("receipt"))
    return out


def profile_for(jurisdiction: str | None) -> Profile:
    """The profile a case's jurisdiction (ISO alpha-2) picks; the default when unset or unknown."""
    all_ = profiles()
    code = (jurisdiction or "").upper()
    if code in all_:
        return all_[code]
    for p in all_.values():
        if code and code in p.countries:
            return p
    return all_[_jurisdictions()["default"]]


@lru_cache(maxsize=1)
def notice_types() -> dict[str, NoticeType]:
    """Every notice type by code."""
    data = tomllib.loads((DATA_DIR / "notice_types.toml").read_text("utf-8"))
    return {code: NoticeType(code=code, title=t["title"], citation=t["citation"], elements=tuple(t["elements"]),
                             profile=t.get("profile"), deadline_hours=t.get("deadline_hours"),
                             may_name_victim=bool(t.get("may_name_victim", False)))
            for code, t in data["types"].items()}


#: The types a person drafts for a platform (the others are escalation steps the tracker drafts).
PRIMARY_TYPES = ("take_it_down", "dmca", "dsa_art16", "search_delisting", "tos_report")


# --- the platform registry -----------------------------------------------------------------------------

@dataclass(frozen=True)
class Platform:
    """One platform's reporting routes."""

    key: str
    name: str
    hosts: tuple[str, ...]
    email: str | None = None
    form_url: str | None = None
    dmca_agent: str | None = None
    notice_types: tuple[str, ...] = ("tos_report",)
    deadline_hours: int | None = None
    checked: str | None = None
    demo: bool = False
    source_file: str = "shipped"

    def matches(self, host: str) -> bool:
        """Whether `host` is one of this platform's (patterns: "*.example.com" covers example.com)."""
        host = host.lower().rstrip(".")
        for pattern in self.hosts:
            pattern = pattern.lower()
            if host == pattern or fnmatch.fnmatchcase(host, pattern):
                return True
            if pattern.startswith("*.") and host == pattern[2:]:
                return True
        return False


def _platforms_from(path: Path, label: str) -> dict[str, Platform]:
    try:
        data = tomllib.loads(path.read_text("utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise SettingsError(f"platform registry {path}: cannot read it ({e})") from None
    out = {}
    known_types = set(notice_types())
    for key, p in (data.get("platforms") or {}).items():
        if not isinstance(p, dict) or not p.get("hosts") or not p.get("name"):
            raise SettingsError(f"platform registry {path}: [platforms.{key}] needs name and hosts")
        if not p.get("email") and not p.get("form_url"):
            raise SettingsError(f"platform registry {path}: [platforms.{key}] needs an email or a form_url")
        if p.get("email") and not _email_ok(p["email"]):
            raise SettingsError(f"platform registry {path}: [platforms.{key}] email is not an email address")
        types = tuple(p.get("notice_types") or ("tos_report",))
        unknown = [t for t in types if t not in known_types]
        if unknown:
            raise SettingsError(f"platform registry {path}: [platforms.{key}] unknown notice type(s) {unknown}")
        out[key] = Platform(key=key, name=p["name"], hosts=tuple(p["hosts"]), email=p.get("email"),
                            form_url=p.get("form_url"), dmca_agent=p.get("dmca_agent"), notice_types=types,
                            deadline_hours=p.get("deadline_hours"), checked=p.get("checked"),
                            demo=bool(p.get("demo", False)), source_file=label)
    return out


def platforms(settings: TakedownSettings | None = None) -> dict[str, Platform]:
    """The shipped registry with the operator's file merged over it."""
    out = _platforms_from(DATA_DIR / "platforms.toml", "shipped")
    if settings is not None and settings.platforms_file is not None:
        out.update(_platforms_from(settings.platforms_file, str(settings.platforms_file)))
    return out


def platform_for_host(host: str, settings: TakedownSettings | None = None) -> Platform | None:
    """The registered platform serving `host`, or None. Operator entries are tried first."""
    entries = list(platforms(settings).values())
    entries.sort(key=lambda p: p.source_file == "shipped")
    return next((p for p in entries if p.matches(host)), None)
