"""Rendering notices from the plain Jinja2 templates in ``templates/<language>/<type>.txt``.

An organisation copies the folder (NCII_TAKEDOWN_TEMPLATES) and rewords or translates it without
touching code; a file it does not have falls back to the shipped one of the same language, then
to English. The first line of a template is ``Subject: ...``; the rest is the body. Comments
(``{# ... #}``) hold the note for the advocate and are never rendered.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2

from monitor.takedowns.config import TEMPLATES_DIR


class TemplateProblem(Exception):
    """A template is missing or does not render; names the template and the problem."""


def environment(language: str, templates_dir: Path | None = None) -> jinja2.Environment:
    """The template environment for a language (organisation folder, shipped folder, English)."""
    folders = []
    if templates_dir is not None:
        folders.append(templates_dir / language)
    folders += [TEMPLATES_DIR / language, TEMPLATES_DIR / "en"]
    return jinja2.Environment(loader=jinja2.FileSystemLoader([str(f) for f in folders]),
                              undefined=jinja2.StrictUndefined, autoescape=False, keep_trailing_newline=True)


def languages(templates_dir: Path | None = None) -> list[str]:
    """The languages with templates (shipped and the organisation's)."""
    found = {p.name for p in TEMPLATES_DIR.iterdir() if p.is_dir()}
    if templates_dir is not None and templates_dir.is_dir():
        found |= {p.name for p in templates_dir.iterdir() if p.is_dir()}
    return sorted(found)


def render(notice_type: str, context: dict[str, Any], *, language: str = "en",
           templates_dir: Path | None = None) -> tuple[str, str]:
    """(subject, body) of a notice type's template rendered with `context`."""
    env = environment(language, templates_dir)
    name = f"{notice_type}.txt"
    try:
        text = env.get_template(name).render(**context)
    except jinja2.TemplateNotFound:
        raise TemplateProblem(f"no template {name} for language {language!r}") from None
    except jinja2.UndefinedError as e:
        raise TemplateProblem(f"template {language}/{name}: {e.message}") from None
    except jinja2.TemplateSyntaxError as e:
        raise TemplateProblem(f"template {language}/{name} line {e.lineno}: {e.message}") from None
    first, _, rest = text.partition("\n")
    if not first.startswith("Subject:"):
        raise TemplateProblem(f"template {language}/{name}: the first line must be 'Subject: ...'")
    return first[len("Subject:"):].strip(), rest.lstrip("\n")
