"""The legal elements each notice type must contain, checked on the final text (after any edit).

Every element is a check on text: the data elements (signature, URLs, contact, notifier, the law,
the original notice's reference) are looked for literally, the statements by their key phrases per
language (``templates/<lang>/elements.toml``). A notice whose final text misses an element cannot
be approved; the result names each missing element.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from monitor.takedowns.config import TEMPLATES_DIR, notice_types

#: What each element means, for messages and docs/takedowns.md.
DESCRIPTIONS = {
    "signature": "a physical or electronic signature (/s/ name) of the depicted person or of a person authorised to act for them",
    "identification": "identification of the content with information reasonably sufficient to locate it (every reported URL)",
    "good_faith": "a statement of good-faith belief that the depiction was published without the consent of the person depicted",
    "contact": "contact information of the person making the request (email)",
    "contact_address": "a postal address of the complaining party",
    "identical_copies": "a request to remove known identical copies",
    "work": "identification of the copyrighted work claimed to be infringed",
    "good_faith_dmca": "a statement of good faith belief that the use is not authorized by the copyright owner, its agent, or the law",
    "accuracy_perjury": "a statement that the notice is accurate and, under penalty of perjury, that the signatory is authorized to act for the owner",
    "explanation": "a sufficiently substantiated explanation of why the content is illegal",
    "notifier": "the name of the individual or entity submitting the notice",
    "bona_fide": "a statement of bona fide belief that the notice is accurate and complete",
    "non_consent": "a statement that the images were published without the consent of the person depicted",
    "authority": "who is asking: the person depicted, or an agent authorised by them",
    "legal_basis": "the law relied on (the jurisdiction profile's law)",
    "reference": "the reference of the earlier notice this one follows up",
}


@dataclass(frozen=True)
class ElementContext:
    """What the data elements are checked against (from the notice as drafted)."""

    signer: str
    email: str
    notifier: str
    urls: tuple[str, ...]
    address: str | None = None
    law: str | None = None
    reference: str | None = None


@dataclass
class ElementReport:
    """The result of a check: which elements were checked and which are missing, with why."""

    checked: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    problems: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.missing

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "checked": self.checked, "missing": self.missing, "problems": self.problems}

    def message(self) -> str:
        """One line naming every missing element and why."""
        return "; ".join(f"{m}: {self.problems.get(m, DESCRIPTIONS.get(m, ''))}" for m in self.missing)


def normalise(text: str) -> str:
    """Lower case, one space for any run of whitespace, straight quotes: what phrases are compared on."""
    text = text.replace("\u2019", "'").replace("\u2018", "'").replace("\u201c", '"').replace("\u201d", '"')
    return re.sub(r"\s+", " ", text).strip().lower()


@lru_cache(maxsize=16)
def _phrases(folder: str) -> dict[str, list[list[str]]]:
    path = Path(folder) / "elements.toml"
    if not path.is_file():
        path = TEMPLATES_DIR / "en" / "elements.toml"
    data = tomllib.loads(path.read_text("utf-8"))
    return {k: [[normalise(p) for p in group] for group in v] for k, v in data.items()}


def phrases(language: str, templates_dir: Path | None = None) -> dict[str, list[list[str]]]:
    """The element phrases for a language (the organisation's folder first, then the shipped one)."""
    for base in (templates_dir, TEMPLATES_DIR):
        if base is not None and (base / language / "elements.toml").is_file():
            return _phrases(str(base / language))
    return _phrases(str(TEMPLATES_DIR / "en"))


def required_elements(notice_type: str) -> tuple[str, ...]:
    """The elements a notice type requires."""
    return notice_types()[notice_type].elements


def check(text: str, notice_type: str, ctx: ElementContext, *, language: str = "en",
          templates_dir: Path | None = None, extra: tuple[str, ...] = ()) -> ElementReport:
    """Check `text` for every element `notice_type` requires (and `extra` ones)."""
    flat = normalise(text)
    table = phrases(language, templates_dir)
    report = ElementReport()
    for element in required_elements(notice_type) + tuple(e for e in extra if e not in required_elements(notice_type)):
        report.checked.append(element)
        problem = _check_one(element, text, flat, ctx, table)
        if problem is not None:
            report.missing.append(element)
            report.problems[element] = problem
    return report


def _check_one(element: str, raw: str, flat: str, ctx: ElementContext,
               table: dict[str, list[list[str]]]) -> str | None:
    if element == "signature":
        return None if f"/s/ {ctx.signer}" in raw else f"no electronic signature '/s/ {ctx.signer}'"
    if element == "identification":
        if not ctx.urls:
            return "the notice lists no URL"
        absent = [u for u in ctx.urls if u not in raw]
        return None if not absent else f"{len(absent)} of {len(ctx.urls)} reported URL(s) missing from the text"
    if element == "contact":
        return None if ctx.email and ctx.email in raw else "no contact email"
    if element == "contact_address":
        if not ctx.address:
            return "no postal address configured (NCII_ORG_ADDRESS)"
        return None if normalise(ctx.address) in flat else "the postal address is missing from the text"
    if element == "notifier":
        return None if ctx.notifier and ctx.notifier in raw else "the notifier's name is missing"
    if element == "legal_basis":
        return None if ctx.law and normalise(ctx.law) in flat else "the law relied on is not named"
    if element == "reference":
        return None if ctx.reference and ctx.reference in raw else "the earlier notice's reference is missing"
    groups = table.get(element)
    if not groups:
        return f"no phrases defined for element {element!r} in this language"
    if any(all(p in flat for p in group) for group in groups):
        return None
    return "statement missing (" + " / ".join(" + ".join(repr(p) for p in g) for g in groups) + ")"
