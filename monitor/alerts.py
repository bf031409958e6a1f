"""Alerts: a transactional outbox and the sender that delivers it by email and/or webhook.

``enqueue`` adds one outbox row per NEW match, in the transaction that records the match, so a
match and its alert commit together or not at all. ``AlertSender.send_pending`` delivers the
pending rows afterwards:

* each row is first *claimed* (``claimed_until``), so two monitor processes never deliver one
  alert at the same time;
* each channel (email, webhook) is marked delivered in its own transaction right after it
  succeeded, so a failing webhook never causes a second email;
* a failed delivery is retried with exponential back-off (capped at an hour), forever: an alert
  is never dropped; ``last_error`` says why (channel and problem, never content);
* if the process dies between a successful delivery and its mark, that channel gets the alert
  again after the claim expires (at-least-once). Receivers de-duplicate on the idempotency key
  ``ncii-alert-<id>`` (the webhook's ``Idempotency-Key`` header and body field, the email's
  ``Message-ID``).
* an alert whose case was withdrawn or closed before delivery is cancelled, never sent.

What an alert carries: the case reference, the page where the picture was found, the source,
the evidence (algorithm, distance, limit, rule, regions) and a review link under
``NCII_PUBLIC_URL``. Never image bytes, never hash values, never a victim's personal data.

Webhook signature: ``X-NCII-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>.<body>">`` with
the shared secret, and ``X-NCII-Timestamp: <unix seconds>``; receivers recompute it over the
raw body and refuse old timestamps (``verify_signature``), which stops replays.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import logging
import smtplib
import ssl
import threading
import time
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Any, Callable, Protocol, Sequence

import requests
from sqlalchemy import select, update
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from monitor import db
from monitor.models import Alert, AlertStatus, Case, CaseStatus, Source, utcnow
from monitor.settings import Settings, SmtpSettings, WebhookSettings

log = logging.getLogger(__name__)

ALERT_TYPE = "ncii.match"
ALERT_VERSION = 1
SIGNATURE_HEADER = "X-NCII-Signature"
TIMESTAMP_HEADER = "X-NCII-Timestamp"
#: Seconds a receiver should accept between our timestamp and its clock.
SIGNATURE_TOLERANCE = 300
RETRY_BASE_SECONDS = 60
RETRY_MAX_SECONDS = 3600
CLAIM_SECONDS = 300


# --- writing the outbox ----------------------------------------------------------------------------

def enqueue(session: Session, recorded: Any, *, page_url: str | None, source: Source | None) -> Alert:
    """Add the alert for a newly recorded match (monitor.scan.RecordedMatch) to the transaction."""
    found = recorded.found
    ev = found.evidence
    payload = {
        "case": found.case_reference,
        "match_id": recorded.match_id,
        "page_url": page_url,
        "source": source.name if source is not None else None,
        "evidence": {"algorithm": ev.algorithm, "distance": ev.distance, "max_distance": ev.max_distance,
                     "rule": ev.rule, "query_region": ev.query_region, "registered_region": ev.registered_region},
        "found_at": utcnow().isoformat(timespec="seconds"),
    }
    alert = Alert(kind="match", match_id=recorded.match_id, case_id=found.case_id,
                  source_id=source.id if source is not None else None, payload=payload,
                  status=AlertStatus.PENDING.value, attempts=0, delivered={}, created_at=utcnow())
    session.add(alert)
    return alert


def idempotency_key(alert_id: int) -> str:
    """The key a receiver de-duplicates on (the same for every delivery of one alert)."""
    return f"ncii-alert-{alert_id}"


def message(alert: Alert, public_url: str) -> dict[str, Any]:
    """The alert as delivered: the webhook's JSON body, and what the email says."""
    p = alert.payload or {}
    return {
        "type": ALERT_TYPE,
        "version": ALERT_VERSION,
        "alert_id": alert.id,
        "idempotency_key": idempotency_key(alert.id),
        "created_at": alert.created_at.isoformat(timespec="seconds") if alert.created_at else None,
        "case": p.get("case"),
        "match_id": alert.match_id,
        "page_url": p.get("page_url"),
        "source": p.get("source"),
        "evidence": p.get("evidence", {}),
        "review_url": f"{public_url.rstrip('/')}/review/matches/{alert.match_id}",
    }


def email_text(msg: dict[str, Any]) -> tuple[str, str]:
    """(subject, plain-text body) of an alert email."""
    ev = msg.get("evidence") or {}
    subject = f"[ncii] possible copy found for case {msg.get('case')}"
    lines = [
        f"A picture that may be a copy of an image registered under case {msg.get('case')} was found.",
        "",
        f"Where:     {msg.get('page_url') or '(no page: see the review page)'}",
        f"Source:    {msg.get('source') or '-'}",
        f"Evidence:  {ev.get('algorithm')} distance {ev.get('distance')} (at most {ev.get('max_distance')}), "
        f"rule {ev.get('rule')}, region {ev.get('query_region')} ~ {ev.get('registered_region')}",
        f"Review:    {msg.get('review_url')}",
        "",
        "A person must review this match before anything else happens. This message contains no image",
        "and no hash values; the review page shows a blurred preview.",
        "",
        f"Alert {msg.get('alert_id')} ({msg.get('idempotency_key')})",
    ]
    return subject, "\n".join(lines) + "\n"


# --- signatures ------------------------------------------------------------------------------------

def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The X-NCII-Signature value: sha256=<hex HMAC-SHA256 of b"<timestamp>." + body>."""
    mac = hmac.new(secret.encode("utf-8"), timestamp.encode("ascii") + b"." + body, hashlib.sha256)
    return f"sha256={mac.hexdigest()}"


def verify_signature(secret: str, body: bytes, signature: str | None, timestamp: str | None, *,
                     tolerance: int = SIGNATURE_TOLERANCE, now: float | None = None) -> bool:
    """What a webhook receiver does: check the signature over the raw body and the timestamp's age."""
    if not signature or not timestamp or not timestamp.isdigit():
        return False
    if abs((time.time() if now is None else now) - int(timestamp)) > tolerance:
        return False  # too old (a replay) or from a clock far off
    return hmac.compare_digest(sign(secret, timestamp, body), signature)


def webhook_body(msg: dict[str, Any]) -> bytes:
    """The exact bytes POSTed (and signed)."""
    return json.dumps(msg, sort_keys=True, separators=(",", ":")).encode("utf-8")


# --- channels --------------------------------------------------------------------------------------

class DeliveryError(Exception):
    """A channel could not deliver; the message names the channel and the problem, never content."""


class Channel(Protocol):
    name: str

    def send(self, msg: dict[str, Any]) -> None:
        """Deliver or raise DeliveryError."""


def smtp_connect(s: SmtpSettings, context: ssl.SSLContext | None = None) -> smtplib.SMTP:
    """A connected SMTP client (TLS or STARTTLS and login as configured); raises smtplib/OS errors.
    Also used by the takedown notices (monitor/takedowns/delivery.py)."""
    domain = s.sender.rpartition("@")[2] or "localhost"
    # The EHLO name is given: otherwise smtplib looks up this machine's own name in DNS.
    helo = domain if domain != "localhost" else "localhost.localdomain"
    context = context or ssl.create_default_context()
    if s.security == "tls":
        client: smtplib.SMTP = smtplib.SMTP_SSL(s.host, s.port, local_hostname=helo, timeout=s.timeout, context=context)
    else:
        client = smtplib.SMTP(s.host, s.port, local_hostname=helo, timeout=s.timeout)
    try:
        if s.security == "starttls":
            client.starttls(context=context)
        if s.username:
            client.login(s.username, s.password or "")
    except BaseException:
        client.close()
        raise
    return client


class EmailChannel:
    """Plain-text email over SMTP (STARTTLS, implicit TLS or none; optional login)."""

    name = "email"

    def __init__(self, settings: SmtpSettings, ssl_context: ssl.SSLContext | None = None) -> None:
        self.settings = settings
        self.ssl_context = ssl_context

    def _context(self) -> ssl.SSLContext:
        return self.ssl_context or ssl.create_default_context()

    def send(self, msg: dict[str, Any]) -> None:
        s = self.settings
        subject, body = email_text(msg)
        mail = EmailMessage()
        mail["From"] = s.sender
        mail["To"] = ", ".join(s.recipients)
        mail["Subject"] = subject
        mail["Date"] = format_datetime(dt.datetime.now(dt.timezone.utc))
        domain = s.sender.rpartition("@")[2] or "localhost"
        # The same Message-ID for every delivery of one alert: mail clients fold duplicates.
        mail["Message-ID"] = f"<{msg.get('idempotency_key')}@{domain}>"
        mail["X-NCII-Alert-Id"] = str(msg.get("alert_id"))
        mail.set_content(body)
        try:
            with smtp_connect(s, self._context()) as client:
                client.send_message(mail)
        except smtplib.SMTPRecipientsRefused:
            raise DeliveryError("email: the server refused the recipients") from None
        except smtplib.SMTPResponseException as e:
            raise DeliveryError(f"email: SMTP {e.smtp_code}") from None
        except smtplib.SMTPException as e:
            raise DeliveryError(f"email: {type(e).__name__}") from None
        except (OSError, ssl.SSLError) as e:
            raise DeliveryError(f"email: cannot reach {s.host}:{s.port} ({type(e).__name__})") from None


class WebhookChannel:
    """A signed JSON POST (no redirects followed, no proxies from the environment)."""

    name = "webhook"

    def __init__(self, settings: WebhookSettings) -> None:
        self.settings = settings
        self._session = requests.Session()
        self._session.trust_env = False

    def send(self, msg: dict[str, Any]) -> None:
        body = webhook_body(msg)
        timestamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "ncii-monitor",
            TIMESTAMP_HEADER: timestamp,
            SIGNATURE_HEADER: sign(self.settings.secret, timestamp, body),
            "X-NCII-Alert-Id": str(msg.get("alert_id")),
            "Idempotency-Key": str(msg.get("idempotency_key")),
        }
        try:
            r = self._session.post(self.settings.url, data=body, headers=headers, timeout=self.settings.timeout,
                                   allow_redirects=False)
        except requests.RequestException as e:  # the URL may hold a token: never in the message
            raise DeliveryError(f"webhook: {type(e).__name__}") from None
        if not 200 <= r.status_code < 300:
            raise DeliveryError(f"webhook: HTTP {r.status_code}")

    def close(self) -> None:
        self._session.close()


class DryRunChannel:
    """Delivers nowhere: keeps (and optionally prints) what would have been sent. For the demo."""

    name = "dry-run"

    def __init__(self, printer: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.sent: list[dict[str, Any]] = []
        self.printer = printer
        self._lock = threading.Lock()

    def send(self, msg: dict[str, Any]) -> None:
        with self._lock:
            self.sent.append(msg)
        if self.printer is not None:
            self.printer(msg)


def channels_from_settings(settings: Settings) -> list[Channel]:
    """The channels NCII_SMTP_* and NCII_WEBHOOK_* configure (possibly none)."""
    out: list[Channel] = []
    if settings.smtp is not None:
        out.append(EmailChannel(settings.smtp))
    if settings.webhook is not None:
        out.append(WebhookChannel(settings.webhook))
    return out


# --- delivering ------------------------------------------------------------------------------------

@dataclass
class SendReport:
    """What one send_pending call did."""

    sent: int = 0
    failed: int = 0  # attempts that left the alert pending (it will be retried)
    cancelled: int = 0
    pending: int = 0  # still pending afterwards (all of them, due or not)
    channels: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"sent": self.sent, "failed": self.failed, "cancelled": self.cancelled, "pending": self.pending,
                "channels": self.channels, "errors": self.errors[:20]}


def retry_delay(attempts: int, base: int = RETRY_BASE_SECONDS, cap: int = RETRY_MAX_SECONDS) -> int:
    """Seconds before the next attempt after `attempts` failed ones: base doubling, capped."""
    return int(min(cap, base * 2 ** max(0, min(attempts - 1, 30))))


def pending_count(session: Session) -> int:
    """Alerts not yet delivered everywhere."""
    from sqlalchemy import func

    return session.scalar(select(func.count()).select_from(Alert).where(Alert.status == AlertStatus.PENDING.value)) or 0


class AlertSender:
    """Delivers pending outbox rows on every channel; safe to run in several processes at once."""

    def __init__(self, engine: Engine, channels: Sequence[Channel], *, public_url: str,
                 retry_base: int = RETRY_BASE_SECONDS, retry_max: int = RETRY_MAX_SECONDS,
                 claim_seconds: int = CLAIM_SECONDS) -> None:
        self.engine = engine
        self.channels = list(channels)
        self.public_url = public_url
        self.retry_base, self.retry_max, self.claim_seconds = retry_base, retry_max, claim_seconds
        self._lock = threading.Lock()  # one delivery round at a time in this process

    def send_pending(self, *, limit: int = 200, now: dt.datetime | None = None) -> SendReport:
        """Deliver the due pending alerts (oldest first); returns what happened."""
        report = SendReport(channels=[c.name for c in self.channels])
        with self._lock:
            if self.channels:
                now = now or utcnow()
                with db.session(self.engine) as s:
                    ids = list(s.scalars(
                        select(Alert.id).where(Alert.status == AlertStatus.PENDING.value,
                                               (Alert.next_attempt_at.is_(None)) | (Alert.next_attempt_at <= now),
                                               (Alert.claimed_until.is_(None)) | (Alert.claimed_until < now))
                        .order_by(Alert.id).limit(limit)))
                for alert_id in ids:
                    self._deliver(alert_id, report)
            with db.session(self.engine) as s:
                report.pending = pending_count(s)
        return report

    def _claim(self, alert_id: int) -> bool:
        now = utcnow()
        with db.transaction(self.engine) as s:
            claimed = s.execute(
                update(Alert).where(Alert.id == alert_id, Alert.status == AlertStatus.PENDING.value,
                                    (Alert.claimed_until.is_(None)) | (Alert.claimed_until < now))
                .values(claimed_until=now + dt.timedelta(seconds=self.claim_seconds))
                .execution_options(synchronize_session=False)).rowcount
        return claimed == 1

    def _deliver(self, alert_id: int, report: SendReport) -> None:
        if not self._claim(alert_id):
            return
        with db.session(self.engine) as s:
            alert = s.get(Alert, alert_id)
            case_status = s.scalar(select(Case.status).where(Case.id == alert.case_id)) if alert else None
        if alert is None:  # pragma: no cover - rows are never deleted
            return
        if case_status != CaseStatus.ACTIVE.value:
            with db.transaction(self.engine) as s:
                a = s.get(Alert, alert_id)
                a.status, a.claimed_until = AlertStatus.CANCELLED.value, None
                a.last_error = f"case {case_status}: not sent"
            report.cancelled += 1
            return
        msg = message(alert, self.public_url)
        delivered = dict(alert.delivered or {})
        errors: list[str] = []
        for channel in self.channels:
            if channel.name in delivered:
                continue
            try:
                channel.send(msg)
            except DeliveryError as e:
                errors.append(str(e))
                continue
            except Exception as e:  # a bug in a channel must not lose the alert
                errors.append(f"{channel.name}: {type(e).__name__}")
                log.exception("alert channel %s failed unexpectedly", channel.name)
                continue
            delivered[channel.name] = utcnow().isoformat(timespec="seconds")
            # Marked at once, in its own transaction: a later failure elsewhere never re-sends this one.
            with db.transaction(self.engine) as s:
                a = s.get(Alert, alert_id)
                a.delivered = {**(a.delivered or {}), channel.name: delivered[channel.name]}
        now = utcnow()
        with db.transaction(self.engine) as s:
            a = s.get(Alert, alert_id)
            a.attempts = (a.attempts or 0) + 1
            a.claimed_until = None
            if all(c.name in delivered for c in self.channels):
                a.status, a.sent_at, a.last_error, a.next_attempt_at = AlertStatus.SENT.value, now, None, None
                report.sent += 1
            else:
                a.next_attempt_at = now + dt.timedelta(seconds=retry_delay(a.attempts, self.retry_base, self.retry_max))
                a.last_error = "; ".join(errors)[:300]
                report.failed += 1
                report.errors.append(f"alert {alert_id}: {a.last_error}")
                log.warning("alert %d not delivered (attempt %d), retrying at %s: %s", alert_id, a.attempts,
                            a.next_attempt_at.isoformat(timespec="seconds"), a.last_error)
