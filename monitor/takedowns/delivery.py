"""Delivering approved notices: email over SMTP (text plus a PDF copy), or a package for a web form
that a person submits by hand; and .eml / PDF exports of any notice.

Sending never happens twice. The Message-ID is fixed at approval; before the SMTP transaction
``send_started_at`` is committed (the claim, taken only when it is still NULL, so two processes
never both send); after the server accepts the message the notice becomes ``sent`` in the next
transaction. A process that dies between the two leaves a notice with ``send_started_at`` and no
``sent_at``: it is never sent again automatically ("delivery uncertain"); a person checks the
mailbox (the BCC copy) and records it with ``ncii takedown mark ID sent``, or sends it again with
``ncii takedown send ID --retry-uncertain``. When the server refuses the message outright
(connection refused, recipients or sender refused, a 5xx reply to the data) nothing was
delivered, so the claim is released and the next run tries again.
"""

from __future__ import annotations

import datetime as dt
import json
import smtplib
import ssl
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from typing import Any, Callable, Sequence

from sqlalchemy import select, update
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from monitor import db
from monitor.alerts import smtp_connect
from monitor.models import Case, CaseStatus, NoticeState, TakedownNotice, TakedownNoticeUrl, utcnow
from monitor.settings import SmtpSettings
from monitor.takedowns.config import TakedownSettings
from monitor.takedowns.notices import ADVOCATE_NOTE, NoticeError, reference, transition


class DeliveryProblem(NoticeError):
    code = "delivery-failed"


# --- the message ---------------------------------------------------------------------------------------

def pdf_bytes(notice: TakedownNotice, settings: TakedownSettings) -> bytes:
    """The notice as a PDF (subject and text), with a Unicode font when one is available."""
    from fpdf import FPDF

    pdf = FPDF(format="A4")
    pdf.set_auto_page_break(True, margin=15)
    pdf.set_title(notice.subject)
    pdf.set_creator("ncii-monitor")
    pdf.add_page()
    text, subject = notice.body, notice.subject
    if settings.pdf_font is not None and settings.pdf_font.is_file():
        pdf.add_font("notice", "", str(settings.pdf_font))
        family = "notice"
    else:  # core fonts are Latin-1 only
        family = "Helvetica"
        text = text.encode("latin-1", "replace").decode("latin-1")
        subject = subject.encode("latin-1", "replace").decode("latin-1")
    pdf.set_font(family, size=12)
    pdf.multi_cell(0, 6, subject, new_x="LMARGIN", new_y="NEXT")
    pdf.ln(4)
    pdf.set_font(family, size=10)
    pdf.multi_cell(0, 5, text, new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())


def email_message(notice: TakedownNotice, settings: TakedownSettings, sender: str | None = None) -> EmailMessage:
    """The email of a notice: the text, the PDF attached, its fixed Message-ID."""
    r = notice.recipient or {}
    mail = EmailMessage()
    mail["From"] = sender or settings.sender or settings.org_email or "ncii-monitor@localhost"
    mail["To"] = r.get("email") or "undisclosed-recipients:;"
    if settings.org_email:
        mail["Reply-To"] = settings.org_email
    mail["Subject"] = notice.subject
    mail["Date"] = format_datetime(notice.sent_at or notice.approved_at or utcnow())
    if notice.message_id:
        mail["Message-ID"] = notice.message_id
    mail["X-NCII-Notice"] = reference(notice.id)
    mail.set_content(notice.body)
    mail.add_attachment(pdf_bytes(notice, settings), maintype="application", subtype="pdf",
                        filename=f"{reference(notice.id)}.pdf")
    return mail


def eml_bytes(notice: TakedownNotice, settings: TakedownSettings) -> bytes:
    """The notice as an .eml file (what would be or was sent)."""
    return bytes(email_message(notice, settings))


# --- sending -------------------------------------------------------------------------------------------

@dataclass
class SendReport:
    """What one send run did."""

    sent: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    uncertain: list[int] = field(default_factory=list)  # claimed earlier, never confirmed: a person checks
    cancelled: list[int] = field(default_factory=list)  # the case was withdrawn or closed: back to draft, not sent
    web_form: list[int] = field(default_factory=list)  # approved, waiting for a person to submit them
    errors: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"sent": self.sent, "failed": self.failed, "uncertain": self.uncertain, "web_form": self.web_form,
                "cancelled": self.cancelled, "errors": self.errors}


class _Refused(Exception):
    """The server refused the message: nothing was delivered."""


def _deliver(smtp: SmtpSettings, mail: EmailMessage, recipients: list[str], context: ssl.SSLContext | None) -> None:
    try:
        client = smtp_connect(smtp, context)
    except (OSError, smtplib.SMTPException, ssl.SSLError) as e:
        raise _Refused(f"cannot reach or log in to {smtp.host}:{smtp.port} ({type(e).__name__})") from None
    with client:
        try:
            client.send_message(mail, to_addrs=recipients)
        except smtplib.SMTPRecipientsRefused:
            raise _Refused("the server refused the recipient") from None
        except smtplib.SMTPSenderRefused as e:
            raise _Refused(f"the server refused the sender (SMTP {e.smtp_code})") from None
        except smtplib.SMTPDataError as e:
            if 500 <= e.smtp_code < 600:
                raise _Refused(f"the server refused the message (SMTP {e.smtp_code})") from None
            raise


def send_approved(engine: Engine, smtp: SmtpSettings | None, settings: TakedownSettings, *,
                  notice_ids: Sequence[int] | None = None, retry_uncertain: bool = False,
                  ssl_context: ssl.SSLContext | None = None, actor: str = "system",
                  now: Callable[[], dt.datetime] = utcnow,
                  _after_accept: Callable[[int], None] | None = None) -> SendReport:
    """Send every approved email notice (or those listed) once; see the module's doc for the guarantees."""
    report = SendReport()
    with db.session(engine) as s:
        q = (select(TakedownNotice.id, TakedownNotice.delivery, TakedownNotice.send_started_at, Case.status)
             .join(Case, Case.id == TakedownNotice.case_id)
             .where(TakedownNotice.state == NoticeState.APPROVED.value).order_by(TakedownNotice.id))
        if notice_ids:
            q = q.where(TakedownNotice.id.in_(list(notice_ids)))
        rows = list(s.execute(q))
    for notice_id, delivery, started, case_status in rows:
        if case_status != CaseStatus.ACTIVE.value and started is None:
            # Withdrawn or closed after approval: never sent; back to draft for a person to see why.
            with db.transaction(engine) as s:
                n = s.get(TakedownNotice, notice_id)
                if n.state == NoticeState.APPROVED.value and n.send_started_at is None:
                    transition(s, n, NoticeState.DRAFT, actor=actor, now=now(), reason="case-not-active")
                    n.last_error = f"not sent: the case is {case_status}"
            report.cancelled.append(notice_id)
            continue
        if delivery != "email":
            report.web_form.append(notice_id)
            continue
        if started is not None and not retry_uncertain:
            report.uncertain.append(notice_id)
            continue
        if smtp is None:
            report.failed.append(notice_id)
            report.errors.append(f"{reference(notice_id)}: no SMTP server configured (NCII_SMTP_HOST)")
            continue
        with db.transaction(engine) as s:
            claim = update(TakedownNotice).where(TakedownNotice.id == notice_id,
                                                 TakedownNotice.state == NoticeState.APPROVED.value)
            claim = claim.where(TakedownNotice.send_started_at == started) if started is not None else \
                claim.where(TakedownNotice.send_started_at.is_(None))
            got = s.execute(claim.values(send_started_at=now()).execution_options(synchronize_session=False)).rowcount
        if got != 1:
            continue  # another process took it
        with db.session(engine) as s:
            notice = s.get(TakedownNotice, notice_id)
            mail = email_message(notice, settings, smtp.sender if not settings.sender else settings.sender)
            to = [notice.recipient.get("email")] + ([settings.bcc] if settings.bcc else [])
        try:
            _deliver(smtp, mail, [t for t in to if t], ssl_context)
        except _Refused as e:
            with db.transaction(engine) as s:
                n = s.get(TakedownNotice, notice_id)
                n.send_started_at, n.last_error = None, str(e)[:300]
            report.failed.append(notice_id)
            report.errors.append(f"{reference(notice_id)}: {e}")
            continue
        except Exception as e:  # the connection broke mid-message: it may have been delivered
            with db.transaction(engine) as s:
                n = s.get(TakedownNotice, notice_id)
                n.last_error = f"delivery uncertain: {type(e).__name__}; check the copy before sending again"[:300]
            report.uncertain.append(notice_id)
            continue
        if _after_accept is not None:
            _after_accept(notice_id)  # tests: a crash right here must not lead to a second send
        with db.transaction(engine) as s:
            n = s.get(TakedownNotice, notice_id)
            n.last_error = None
            transition(s, n, NoticeState.SENT, actor=actor, now=now(), by="email")
        report.sent.append(notice_id)
    return report


# --- web forms and exports -----------------------------------------------------------------------------

def form_fields(session: Session, notice: TakedownNotice) -> dict[str, Any]:
    """The fields a person pastes into the platform's web form."""
    urls = session.scalars(select(TakedownNoticeUrl).where(TakedownNoticeUrl.notice_id == notice.id)
                           .order_by(TakedownNoticeUrl.id)).all()
    r = notice.recipient or {}
    return {"form_url": r.get("form_url"), "recipient": r.get("name"), "subject": notice.subject,
            "urls": [u.url for u in urls], "pages": [u.page_url for u in urls if u.page_url],
            "description": notice.body, "reference": reference(notice.id)}


def write_package(session: Session, notice: TakedownNotice, settings: TakedownSettings, folder: Path) -> list[Path]:
    """A web-form package in `folder`: the fields to paste (text and JSON), the notice as text and PDF."""
    folder.mkdir(parents=True, exist_ok=True)
    fields = form_fields(session, notice)
    ref = reference(notice.id)
    lines = [f"Web form: {fields['form_url'] or '(none recorded: find the platform reporting page)'}", "",
             f"Subject / title:\n{fields['subject']}", "", "URL(s) of the content, one per line:",
             *fields["urls"], ""]
    if fields["pages"]:
        lines += ["Page(s) showing it:", *fields["pages"], ""]
    lines += ["Description (paste the notice text):", fields["description"], "",
              f"After submitting, record it: ncii takedown mark {notice.id} submitted --ticket <the platform's "
              f"reference>", "", f"Note for the advocate: {ADVOCATE_NOTE}"]
    written = []
    for name, data in ((f"{ref}-fields.txt", "\n".join(lines) + "\n"),
                       (f"{ref}-fields.json", json.dumps(fields, indent=2, ensure_ascii=False) + "\n"),
                       (f"{ref}.txt", f"Subject: {notice.subject}\n\n{notice.body}")):
        path = folder / name
        path.write_text(data, "utf-8")
        written.append(path)
    pdf = folder / f"{ref}.pdf"
    pdf.write_bytes(pdf_bytes(notice, settings))
    written.append(pdf)
    return written
