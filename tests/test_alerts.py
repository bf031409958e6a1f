"""Alerts: the outbox and its delivery by email (a real SMTP server, aiosmtpd, on 127.0.0.1, with
STARTTLS and login) and by webhook (a real HTTP receiver on 127.0.0.1 that checks the HMAC)."""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import re
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from sqlalchemy import select

from hashes.policy import Evidence
from monitor import alerts, db, registry
from monitor.alerts import AlertSender, DryRunChannel, EmailChannel, WebhookChannel
from monitor.matching import FoundMatch
from monitor.models import Alert, Media, MediaStatus, RegisteredHash, Source, utcnow
from monitor.scan import record_matches
from monitor.settings import Settings, SettingsError, SmtpSettings, WebhookSettings
from tests.helpers import Mailbox, free_port as _free_port

aiosmtpd = pytest.importorskip("aiosmtpd", reason="aiosmtpd is needed for the SMTP tests (pip install aiosmtpd)")
from aiosmtpd.controller import Controller  # noqa: E402
from aiosmtpd.smtp import AuthResult, LoginPassword  # noqa: E402

pytestmark = pytest.mark.usefixtures("loopback_only")

SECRET = "a-webhook-secret-of-some-length"
PUBLIC = "https://ncii.example.org"
HEX_HASH = re.compile(r"\b[0-9a-f]{16,}\b")


# --- fixtures ------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tls() -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A self-signed certificate for 127.0.0.1: (server context, client context trusting it)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
            .sign(key, hashes.SHA256()))
    pem = cert.public_bytes(serialization.Encoding.PEM)
    import tempfile
    with tempfile.TemporaryDirectory() as d:
        cert_file, key_file = f"{d}/cert.pem", f"{d}/key.pem"
        open(cert_file, "wb").write(pem)
        open(key_file, "wb").write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                     serialization.NoEncryption()))
        server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        server.load_cert_chain(cert_file, key_file)
    client = ssl.create_default_context(cadata=pem.decode())
    return server, client


class SmtpServer:
    """aiosmtpd on 127.0.0.1: STARTTLS required, login alert/secret."""

    def __init__(self, port: int, server_tls: ssl.SSLContext) -> None:
        self.mailbox = Mailbox()

        def authenticator(server, session, envelope, mechanism, auth_data):
            ok = isinstance(auth_data, LoginPassword) and auth_data == (b"alert", b"s3cret")
            return AuthResult(success=ok)

        # server_hostname: without it aiosmtpd calls socket.getfqdn(), a name lookup of this
        # machine that the loopback-only guard (rightly) refuses.
        self.controller = Controller(self.mailbox, hostname="127.0.0.1", port=port, tls_context=server_tls,
                                     server_hostname="localhost",
                                     require_starttls=True, authenticator=authenticator, auth_required=True,
                                     ready_timeout=5.0)
        self.controller.start()

    def stop(self) -> None:
        self.controller.stop()


@pytest.fixture
def smtp(tls):
    servers: list[SmtpServer] = []
    port = _free_port()

    def start() -> SmtpServer:
        server = SmtpServer(port, tls[0])
        servers.append(server)
        return server

    start.port = port  # type: ignore[attr-defined]
    yield start
    for s in servers:
        s.stop()


def email_channel(port: int, client_tls: ssl.SSLContext) -> EmailChannel:
    settings = SmtpSettings(host="127.0.0.1", port=port, security="starttls", username="alert", password="s3cret",
                            sender="monitor@ncii.example.org", recipients=("advocate@ncii.example.org",), timeout=5)
    return EmailChannel(settings, ssl_context=client_tls)


class Receiver:
    """A webhook endpoint on 127.0.0.1 that verifies the signature, with programmable statuses."""

    def __init__(self, statuses: list[int] | None = None) -> None:
        self.statuses = list(statuses or [])
        self.received: list[dict] = []
        receiver = self

        class H(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                valid = alerts.verify_signature(SECRET, body, self.headers.get(alerts.SIGNATURE_HEADER),
                                                self.headers.get(alerts.TIMESTAMP_HEADER))
                receiver.received.append({"body": body, "valid": valid, "headers": dict(self.headers)})
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                if not valid:
                    status = 401
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

        class S(ThreadingHTTPServer):
            daemon_threads = True

            def server_bind(self) -> None:
                import socketserver
                socketserver.TCPServer.server_bind(self)
                self.server_name, self.server_port = "127.0.0.1", self.server_address[1]

        self.server = S(("127.0.0.1", 0), H)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/ncii"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    made: list[Receiver] = []

    def make(statuses=None) -> Receiver:
        r = Receiver(statuses)
        made.append(r)
        return r

    yield make
    for r in made:
        r.close()


def make_alerts(engine, n: int = 1) -> tuple[str, list[int]]:
    """A case with one registered hash and `n` matches of it, each with its outbox alert."""
    import io

    from hashes.compute import HashOptions, hash_bytes
    from hashes.hashfile import HashFileWriter, make_header, read_hash_file
    from monitor.demo import pictures as P

    buf = io.StringIO()
    w = HashFileWriter(buf, "jsonl", make_header(("pdq",), "none", "test"))
    w.write(hash_bytes(P.jpeg_bytes(P.picture(5, (200, 150))), options=HashOptions(algorithms=("pdq",))))
    w.close()
    ids = []
    with db.transaction(engine) as s:
        new = registry.create_case(s, actor="test", label="Jane Doe", contact="jane@example.org")
        registry.register_hash_file(s, new.reference, read_hash_file(buf.getvalue()), actor="test")
        rh = s.scalar(select(RegisteredHash))
        source = Source(name="board", kind="rss", url="https://board.example/feed.xml", settings={},
                        interval_seconds=600, jitter_seconds=0, enabled=True, consecutive_failures=0,
                        backoff_seconds=0)
        s.add(source)
        for i in range(n):
            media = Media(sha256=f"{i:064x}", md5=f"{i:032x}", url=f"https://cdn.example/{i}.jpg",
                          status=MediaStatus.HASHED.value, hashes=[])
            s.add(media)
            s.flush()
            ev = Evidence(rule="pdq-whole", algorithm="pdq", query_region="full", registered_region="full",
                          distance=12, max_distance=31, query_quality=90, registered_quality=90)
            rec = record_matches(s, media.id, [FoundMatch(rh.case_id, new.reference, rh.id, ev, "test")], actor="test")[0]
            ids.append(alerts.enqueue(s, rec, page_url=f"https://board.example/thread/{i}",
                                      source=source).match_id)
    return new.reference, ids


# --- tests ---------------------------------------------------------------------------------------------

def test_email_alert_over_starttls_with_login_is_delivered_once(engine, smtp, tls):
    case, _ = make_alerts(engine)
    server = smtp()
    sender = AlertSender(engine, [email_channel(smtp.port, tls[1])], public_url=PUBLIC)
    report = sender.send_pending()
    assert (report.sent, report.failed, report.pending) == (1, 0, 0)
    assert len(server.mailbox.messages) == 1
    mail = server.mailbox.messages[0]
    text = mail.content.decode()
    assert mail.rcpt_tos == ["advocate@ncii.example.org"]
    assert f"Subject: [ncii] possible copy found for case {case}" in text
    assert "https://board.example/thread/0" in text and f"{PUBLIC}/review/matches/" in text
    assert "pdq distance 12 (at most 31)" in text
    assert "Message-ID: <ncii-alert-1@ncii.example.org>" in text
    # Never a picture, never a hash value, never the victim's personal data.
    assert "multipart" not in text.lower() and not HEX_HASH.search(text)
    assert "Jane" not in text and "jane@" not in text
    with db.session(engine) as s:
        alert = s.scalar(select(Alert))
        assert alert.status == "sent" and alert.sent_at and set(alert.delivered) == {"email"}
    assert sender.send_pending().sent == 0 and len(server.mailbox.messages) == 1


def test_smtp_down_then_up_the_alert_waits_and_is_never_lost(engine, smtp, tls):
    make_alerts(engine)
    sender = AlertSender(engine, [email_channel(smtp.port, tls[1])], public_url=PUBLIC)
    down = sender.send_pending()  # nothing listens on the port yet
    assert (down.sent, down.failed, down.pending) == (0, 1, 1)
    with db.session(engine) as s:
        alert = s.scalar(select(Alert))
        assert alert.status == "pending" and alert.attempts == 1 and "cannot reach" in alert.last_error
        assert alert.next_attempt_at > utcnow() and alert.claimed_until is None
    assert sender.send_pending().failed == 0  # not due yet: no attempt at all
    server = smtp()
    up = sender.send_pending(now=utcnow() + dt.timedelta(hours=2))
    assert (up.sent, up.pending) == (1, 0)
    assert len(server.mailbox.messages) == 1


def test_webhook_is_signed_and_a_failed_channel_is_retried_without_resending_the_other(
        engine, smtp, tls, receiver):
    case, _ = make_alerts(engine)
    server = smtp()
    hook = receiver(statuses=[500])
    channels = [email_channel(smtp.port, tls[1]), WebhookChannel(WebhookSettings(url=hook.url, secret=SECRET))]
    sender = AlertSender(engine, channels, public_url=PUBLIC)
    first = sender.send_pending()
    assert (first.sent, first.failed, first.pending) == (0, 1, 1)
    assert "webhook: HTTP 500" in first.errors[0]
    second = sender.send_pending(now=utcnow() + dt.timedelta(hours=2))
    assert (second.sent, second.pending) == (1, 0)
    assert len(server.mailbox.messages) == 1  # the email went out once, in the first round
    assert len(hook.received) == 2 and all(r["valid"] for r in hook.received)
    keys = {r["headers"]["Idempotency-Key"] for r in hook.received}
    assert keys == {"ncii-alert-1"}  # the receiver can tell the retry is the same alert
    body = json.loads(hook.received[1]["body"])
    assert body["case"] == case and body["idempotency_key"] == "ncii-alert-1" and body["type"] == "ncii.match"
    assert body["review_url"] == f"{PUBLIC}/review/matches/{body['match_id']}"
    assert body["evidence"]["distance"] == 12 and body["page_url"] == "https://board.example/thread/0"
    raw = hook.received[1]["body"].decode()
    assert not HEX_HASH.search(raw) and "Jane" not in raw and "cdn.example" not in raw


def test_a_wrong_secret_is_refused_by_the_receiver(engine, receiver):
    make_alerts(engine)
    hook = receiver()
    sender = AlertSender(engine, [WebhookChannel(WebhookSettings(url=hook.url, secret="not-the-shared-secret"))],
                         public_url=PUBLIC)
    report = sender.send_pending()
    assert report.failed == 1 and "HTTP 401" in report.errors[0]
    assert hook.received and not hook.received[0]["valid"]


def test_signature_verification_rejects_tampering_and_replays():
    body = b'{"alert_id":1}'
    ts = str(int(time.time()))
    sig = alerts.sign(SECRET, ts, body)
    assert sig.startswith("sha256=") and alerts.verify_signature(SECRET, body, sig, ts)
    assert not alerts.verify_signature(SECRET, body + b" ", sig, ts)  # body changed
    assert not alerts.verify_signature("another-secret-entirely", body, sig, ts)
    assert not alerts.verify_signature(SECRET, body, sig, str(int(ts) + 1))  # timestamp changed
    old = str(int(time.time()) - 3600)
    assert not alerts.verify_signature(SECRET, body, alerts.sign(SECRET, old, body), old)  # a replay
    assert not alerts.verify_signature(SECRET, body, None, ts)


def test_an_alert_whose_case_was_withdrawn_is_cancelled_not_sent(engine):
    case, _ = make_alerts(engine)
    with db.transaction(engine) as s:
        registry.withdraw_case(s, case, actor="test")
    sink = DryRunChannel()
    report = AlertSender(engine, [sink], public_url=PUBLIC).send_pending()
    assert report.cancelled == 1 and report.sent == 0 and report.pending == 0 and sink.sent == []
    with db.session(engine) as s:
        assert s.scalar(select(Alert.status)) == "cancelled"


def test_two_senders_at_once_never_deliver_one_alert_twice(engine):
    make_alerts(engine, n=6)
    delivered: list[int] = []
    lock = threading.Lock()

    class Slow:
        name = "dry-run"

        def send(self, msg):
            time.sleep(0.05)
            with lock:
                delivered.append(msg["alert_id"])

    senders = [AlertSender(engine, [Slow()], public_url=PUBLIC) for _ in range(2)]
    threads = [threading.Thread(target=s.send_pending) for s in senders]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(delivered) == sorted(set(delivered))
    senders[0].send_pending()  # anything skipped while the other held its claim
    assert sorted(delivered) == list(range(1, 7))


def test_alert_settings_from_the_environment():
    base = {"NCII_DATA_DIR": "/tmp/x"}
    s = Settings.load({**base, "NCII_SMTP_HOST": "mail.example.org", "NCII_SMTP_TO": "a@example.org, b@example.org",
                       "NCII_SMTP_SECURITY": "tls", "NCII_WEBHOOK_URL": "https://hooks.example.org/x",
                       "NCII_WEBHOOK_SECRET": SECRET, "NCII_PUBLIC_URL": "https://ncii.example.org/"})
    assert s.smtp.port == 465 and s.smtp.recipients == ("a@example.org", "b@example.org")
    assert s.webhook.url.endswith("/x") and s.public_url == "https://ncii.example.org"
    assert SECRET not in repr(s)
    assert [c.name for c in alerts.channels_from_settings(s)] == ["email", "webhook"]
    assert alerts.channels_from_settings(Settings.load(base)) == []
    for bad in ({"NCII_SMTP_HOST": "m"}, {"NCII_WEBHOOK_URL": "https://h", "NCII_WEBHOOK_SECRET": "short"},
                {"NCII_SMTP_HOST": "m", "NCII_SMTP_TO": "a@b", "NCII_SMTP_SECURITY": "ssl3"},
                {"NCII_PUBLIC_URL": "ftp://x"}, {"NCII_HTTP_MIN_INTERVAL": "-1"}):
        with pytest.raises(SettingsError):
            Settings.load({**base, **bad})
