"""Takedown notices (issue 8): draft under the right law, approve by a person, send, track, escalate.

Modules: ``config`` (settings, jurisdiction profiles, notice types, the platform registry: data
files in ``data/``), ``recipients`` (registry -> RDAP -> security.txt), ``rdap``, ``securitytxt``,
``elements`` (the legal-element checks), ``render`` (Jinja2 templates in ``templates/<lang>/``),
``notices`` (drafting and the state machine), ``delivery`` (SMTP, web-form packages, .eml/PDF),
``tracking`` (re-checks, deadlines, escalation, re-uploads), ``reports``. docs/takedowns.md
describes the law behind each notice type. The software drafts; a person decides and signs.
"""
