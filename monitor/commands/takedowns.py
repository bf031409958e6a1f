"""`ncii takedown ...`: draft, show, edit, approve, send, mark, export, escalate, list, consent,
rdap-update. Every command takes --json.

Exit codes: 0 success; 1 the command ran but something failed (a notice lacks a legal element,
a delivery failed, a transition is not allowed, nothing to report); 2 usage error (bad option,
missing organisation setting); 3 the database, the data key or the mail server is unavailable;
4 the case or notice does not exist.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, List, Optional

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from monitor import db
from monitor.commands.registry import (EXIT_NOT_FOUND, EXIT_OK, EXIT_PARTIAL, EXIT_UNAVAILABLE, EXIT_USAGE, JSON_HELP,
                                       CommandFailed,
                                       _actor, _database, _read_stdin_option, _run)
from monitor.settings import Settings
from monitor.takedowns import delivery, rdap, tracking
from monitor.takedowns import notices as N
from monitor.takedowns.config import PRIMARY_TYPES, TakedownSettings
from monitor.takedowns.recipients import RecipientFinder

_out = Console(highlight=False, soft_wrap=True)


@contextmanager
def _notice_errors() -> Iterator[None]:
    try:
        yield
    except N.NoticeNotFound as e:
        raise CommandFailed(EXIT_NOT_FOUND, e.code, str(e)) from None
    except N.ElementsMissing as e:
        raise CommandFailed(EXIT_PARTIAL, e.code, str(e), missing=e.report.missing, problems=e.report.problems) from None
    except N.NoticeError as e:
        raise CommandFailed(EXIT_PARTIAL, e.code, str(e)) from None


def _http(settings: Settings):
    from monitor.pipeline import http_client

    return http_client(settings.monitor)


def _t(value) -> str:  # noqa: ANN001
    """A time for people: minutes, UTC."""
    return value.strftime("%Y-%m-%d %H:%M UTC") if hasattr(value, "strftime") else str(value or "-")


def _print_notice(d: dict) -> None:
    _out.print(Text(f"{d['reference']} ({d['kind']}, {d['type']}, profile {d['profile']}) for case {d['case']}: "
                    f"{d['state']}"))
    r = d["recipient"] or {}
    _out.print(Text(f"to: {r.get('name')} <{r.get('email') or r.get('form_url') or 'no recipient'}> "
                    f"(found by {r.get('found_by')}); delivery: {d['delivery']}"))
    el = d["elements"] or {}
    _out.print(Text("legal elements: " + ("all present" if el.get("ok") else
                                          "MISSING " + ", ".join(el.get("missing", [])))))
    if d.get("deadline_at"):
        _out.print(Text(f"sent: {_t(d['sent_at'])}; deadline: {_t(d['deadline_at'])}" +
                        (" (OVERDUE)" if d["overdue"] else "") +
                        (f"; removed: {_t(d['removed_at'])}" if d.get("removed_at") else "")))
    for u in d["urls"]:
        _out.print(Text(f"  {u['url']}  " + (f"gone {_t(u['gone_at'])} ({u['gone_reason']})" if u["gone_at"] else
                                             (u["last_result"] or "not checked yet"))))
    if d.get("body"):
        _out.print(Text(f"\nSubject: {d['subject']}\n\n{d['body']}"))
        _out.print(Text(f"[note for the advocate, not sent] {d['advocate_note']}", style="yellow"))


def takedown_draft(
    case: str = typer.Option(..., "--case", "-c", metavar="REF", help="The case reference."),
    match: List[int] = typer.Option([], "--match", "-m", metavar="ID",
                                    help="Draft for the platform(s) holding this confirmed match (repeatable). "
                                         "Default: every confirmed match of the case, one notice per platform."),
    platform: Optional[str] = typer.Option(None, "--platform", help="Only this platform (registry name or host:NAME)."),
    notice_type: Optional[str] = typer.Option(None, "--type", help=f"One of {', '.join(PRIMARY_TYPES)} (default: "
                                                                   "the case's jurisdiction profile decides)."),
    language: Optional[str] = typer.Option(None, "--language", help="Template language (default NCII_TAKEDOWN_LANGUAGE)."),
    lookup: bool = typer.Option(True, "--lookup/--no-lookup", help="Look unknown hosts up over RDAP and security.txt."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Draft takedown notices for a case's confirmed matches: one per platform, listing every known copy there.

    Nothing is sent: a person reviews, edits and approves each draft. The organisation (NCII_ORG_*)
    signs as the victim's authorised agent unless the case records the victim's consent to be named.
    """
    def body():
        if notice_type is not None and notice_type not in PRIMARY_TYPES:
            raise CommandFailed(EXIT_USAGE, "usage", f"--type must be one of {', '.join(PRIMARY_TYPES)}")
        settings, ts = Settings.load(), TakedownSettings.load()
        ts.require_identity()
        with _notice_errors(), _database(settings) as engine:
            http = _http(settings) if lookup else None
            try:
                with db.transaction(engine) as s:
                    case_id = _case_id(s, case)
                    drafts = N.draft_for_case(s, case_id, ts, actor=_actor(), match_ids=match, platform=platform,
                                              notice_type=notice_type, language=language,
                                              finder=RecipientFinder(ts, http) if http else None)
                    data = [N.to_dict(s, d) for d in drafts]
            finally:
                if http is not None:
                    http.close()

        def human() -> None:
            for d in data:
                _print_notice(d)
                _out.print(Text(f"review: ncii takedown show {d['id']}; approve: ncii takedown approve {d['id']}"))
        return EXIT_OK, {"notices": data}, human

    _run(as_json, body)


def _case_id(session, reference: str) -> int:
    from sqlalchemy import select

    from monitor.models import Case

    ref = reference.strip().upper()
    found = session.scalar(select(Case.id).where(Case.reference == ref))
    if found is None:
        raise CommandFailed(EXIT_NOT_FOUND, "case-not-found", f"no case {ref}")
    return found


def takedown_show(notice_id: int = typer.Argument(..., metavar="ID"),
                  as_json: bool = typer.Option(False, "--json", help=JSON_HELP)) -> None:
    """Show a notice: its text, recipient, legal-element check, state, deadline and each URL's status."""
    def body():
        with _notice_errors(), _database() as engine, db.session(engine) as s:
            d = N.to_dict(s, N.get(s, notice_id), body=True)
        return EXIT_OK, {"notice": d}, lambda: _print_notice(d)

    _run(as_json, body)


def takedown_edit(
    notice_id: int = typer.Argument(..., metavar="ID"),
    body_file: Optional[Path] = typer.Option(None, "--body-file", help="New text of the notice ('-' reads standard input)."),
    subject: Optional[str] = typer.Option(None, "--subject"),
    to: Optional[str] = typer.Option(None, "--to", metavar="ADDRESS", help="Send to this email address instead."),
    form: Optional[str] = typer.Option(None, "--form", metavar="URL", help="The platform's web form."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Edit a draft (an approved notice goes back to draft); the legal elements are checked again."""
    def run_body():
        text = None
        if body_file is not None:
            text = _read_stdin_option("-", None) if str(body_file) == "-" else body_file.read_text("utf-8")
        ts = TakedownSettings.load()
        with _notice_errors(), _database() as engine, db.transaction(engine) as s:
            notice = N.get(s, notice_id)
            report = N.edit(s, notice, ts, actor=_actor(), body=text, subject=subject, to_email=to, form_url=form)
            d = N.to_dict(s, notice)
        return (EXIT_OK if report.ok else EXIT_PARTIAL), {"notice": d}, lambda: _print_notice(d)

    _run(as_json, run_body)


def takedown_approve(notice_id: int = typer.Argument(..., metavar="ID"),
                     as_json: bool = typer.Option(False, "--json", help=JSON_HELP)) -> None:
    """Approve a draft's final text: refused (exit 1) when a legal element is missing or there is no recipient."""
    def body():
        ts = TakedownSettings.load()
        with _notice_errors(), _database() as engine, db.transaction(engine) as s:
            notice = N.approve(s, N.get(s, notice_id), ts, actor=_actor())
            d = N.to_dict(s, notice)

        def human() -> None:
            _out.print(Text(f"{d['reference']} approved by {d['approved_by']}. " +
                            (f"Send it: ncii takedown send {d['id']}" if d["delivery"] == "email" else
                             f"Web form: ncii takedown export {d['id']} --package DIR, submit, then "
                             f"ncii takedown mark {d['id']} submitted --ticket T")))
        return EXIT_OK, {"notice": d}, human

    _run(as_json, body)


def takedown_send(
    notice_ids: List[int] = typer.Argument(None, metavar="[ID]...", help="Default: every approved email notice."),
    retry_uncertain: bool = typer.Option(False, "--retry-uncertain",
                                         help="Send again notices whose earlier delivery was interrupted (check "
                                              "the BCC copy first: it may have arrived)."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Email approved notices (text and PDF) over the configured SMTP server (NCII_SMTP_*), each at most once."""
    def body():
        settings, ts = Settings.load(), TakedownSettings.load()
        with _database(settings) as engine:
            report = delivery.send_approved(engine, settings.smtp, ts, notice_ids=notice_ids or None,
                                            retry_uncertain=retry_uncertain, actor=_actor())

        def human() -> None:
            _out.print(f"sent: {len(report.sent)}; failed: {len(report.failed)}; delivery uncertain: "
                       f"{len(report.uncertain)}; web forms waiting for a person: {len(report.web_form)}")
            for e in report.errors:
                _out.print(Text(e, style="red"))
        if report.failed and settings.smtp is None:
            return EXIT_UNAVAILABLE, report.to_dict(), human  # no mail server configured
        return (EXIT_PARTIAL if report.failed else EXIT_OK), report.to_dict(), human

    _run(as_json, body)


def takedown_mark(
    notice_id: int = typer.Argument(..., metavar="ID"),
    state: str = typer.Argument(..., metavar="STATE", help=f"One of {', '.join(N.MARKS)}."),
    ticket: Optional[str] = typer.Option(None, "--ticket", help="The platform's ticket or reference number."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Record what happened: submitted (through a web form), acknowledged, removed, refused."""
    def body():
        if state not in N.MARKS:
            raise CommandFailed(EXIT_USAGE, "usage", f"STATE must be one of {', '.join(N.MARKS)}")
        with _notice_errors(), _database() as engine, db.transaction(engine) as s:
            notice = N.mark(s, N.get(s, notice_id), state, actor=_actor(), ticket=ticket)
            d = N.to_dict(s, notice)
        return EXIT_OK, {"notice": d}, lambda: _out.print(Text(f"{d['reference']}: {d['state']}"))

    _run(as_json, body)


def takedown_export(
    notice_id: int = typer.Argument(..., metavar="ID"),
    eml: Optional[Path] = typer.Option(None, "--eml", help="Write the email (.eml) here."),
    pdf: Optional[Path] = typer.Option(None, "--pdf", help="Write the PDF here."),
    package: Optional[Path] = typer.Option(None, "--package", help="Write a web-form package into this folder."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Export a notice as .eml, PDF, or a web-form package (the fields to paste and the PDF)."""
    def body():
        if not (eml or pdf or package):
            raise CommandFailed(EXIT_USAGE, "usage", "give --eml FILE, --pdf FILE and/or --package DIR")
        ts = TakedownSettings.load()
        written: list[str] = []
        with _notice_errors(), _database() as engine, db.session(engine) as s:
            notice = N.get(s, notice_id)
            if eml:
                eml.write_bytes(delivery.eml_bytes(notice, ts))
                written.append(str(eml))
            if pdf:
                pdf.write_bytes(delivery.pdf_bytes(notice, ts))
                written.append(str(pdf))
            if package:
                written += [str(p) for p in delivery.write_package(s, notice, ts, package)]
        return EXIT_OK, {"written": written}, lambda: [_out.print(Text(w)) for w in written]

    _run(as_json, body)


def takedown_escalate(as_json: bool = typer.Option(False, "--json", help=JSON_HELP)) -> None:
    """One tracking pass now: re-check reported URLs, expire overdue notices and draft the next escalation
    step (for a person to approve), flag re-uploads. `ncii monitor run` does this on a schedule."""
    logging.basicConfig(level=logging.WARNING)

    def body():
        settings, ts = Settings.load(), TakedownSettings.load()
        with _database(settings) as engine:
            http = _http(settings)
            try:
                report = tracking.run(engine, http, ts, finder=RecipientFinder(ts, http), actor=_actor())
            finally:
                http.close()

        def human() -> None:
            _out.print(f"checked {report.checked} URL(s): {report.gone} gone, {report.still_there} still there, "
                       f"{report.unknown} unknown; removed: {report.removed}; partly: {report.partly_removed}; "
                       f"expired: {report.expired}; escalations drafted: {report.escalations}; "
                       f"re-uploads flagged: {report.reuploads}")
        return (EXIT_PARTIAL if report.errors else EXIT_OK), report.to_dict(), human

    _run(as_json, body)


def takedown_list(
    case: Optional[str] = typer.Option(None, "--case", "-c", metavar="REF"),
    state: Optional[str] = typer.Option(None, "--state"),
    overdue: bool = typer.Option(False, "--overdue", help="Only notices past their deadline and not removed."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """List notices, newest first."""
    def body():
        with _notice_errors(), _database() as engine, db.session(engine) as s:
            case_id = _case_id(s, case) if case else None
            data = [N.to_dict(s, n) for n in N.list_notices(s, case_id=case_id, state=state, overdue=overdue)]

        def human() -> None:
            t = Table()
            for col in ("id", "case", "kind", "type", "platform", "state", "urls", "deadline"):
                t.add_column(col)
            for d in data:
                t.add_row(str(d["id"]), d["case"], d["kind"], d["type"], Text(d["platform"]), d["state"],
                          str(len(d["urls"])), (_t(d["deadline_at"]) + (" OVERDUE" if d["overdue"] else ""))
                          if d["deadline_at"] else "-")
            _out.print(t)
        return EXIT_OK, {"notices": data}, human

    _run(as_json, body)


def takedown_consent(
    case: str = typer.Option(..., "--case", "-c", metavar="REF"),
    name: Optional[str] = typer.Option(None, "--name", help="The name to use in notices ('-' reads standard input)."),
    contact: Optional[str] = typer.Option(None, "--contact", help="The email to use in notices ('-' reads standard input)."),
    withdraw: bool = typer.Option(False, "--withdraw", help="The victim no longer wants to be named."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Record the victim's consent to have their own name (and email) in notices where the law allows it."""
    def body():
        if not withdraw and not name:
            raise CommandFailed(EXIT_USAGE, "usage", "give --name (or --withdraw)")
        n, c = _read_stdin_option(name, contact), _read_stdin_option(contact, name)
        with _notice_errors(), _database() as engine, db.transaction(engine) as s:
            row = N.record_consent(s, _case_id(s, case), consents=not withdraw, victim_name=n, victim_contact=c,
                                   actor=_actor())
            data = {"case": case.upper(), "name_in_notices": row.name_in_notices, "consented_at": row.consented_at}
        return EXIT_OK, data, lambda: _out.print(
            "consent recorded" if not withdraw else "consent withdrawn: notices name the organisation as agent")

    _run(as_json, body)


def takedown_rdap_update(as_json: bool = typer.Option(False, "--json", help=JSON_HELP)) -> None:
    """Download IANA's current RDAP bootstrap files (dns, ipv4, ipv6) into NCII_RDAP_BOOTSTRAP_DIR
    (or the shipped folder)."""
    def body():
        settings, ts = Settings.load(), TakedownSettings.load()
        http = _http(settings)
        try:
            done = rdap.update_bootstrap(http, ts.rdap_dir)
        except Exception as e:
            raise CommandFailed(EXIT_UNAVAILABLE, "unavailable", f"could not update the RDAP bootstrap files: {e}") from None
        finally:
            http.close()
        return EXIT_OK, {"folder": str(ts.rdap_dir), "files": done}, lambda: _out.print(
            f"updated {', '.join(done)} in {ts.rdap_dir}")

    _run(as_json, body)


def register(app: typer.Typer) -> None:
    """Add `ncii takedown ...` to the CLI."""
    t = typer.Typer(help="Takedown notices: draft, review, approve, send, track, escalate.", no_args_is_help=True)
    for name, fn in (("draft", takedown_draft), ("show", takedown_show), ("edit", takedown_edit),
                     ("approve", takedown_approve), ("send", takedown_send), ("mark", takedown_mark),
                     ("export", takedown_export), ("escalate", takedown_escalate), ("list", takedown_list),
                     ("consent", takedown_consent), ("rdap-update", takedown_rdap_update)):
        t.command(name)(fn)
    app.add_typer(t, name="takedown")
