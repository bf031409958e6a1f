"""The demo's takedown part (issue 8's "done when"): an advocate confirms a match, drafts a TAKE IT
DOWN notice, approves it and sends it by email to the demo platform's address; the demo site then
removes the picture; the re-check records the removal and its time; the report shows it.

The demo platform's mail server is ``SmtpSink``: a minimal SMTP receiver written with the standard
library, on 127.0.0.1 only, that keeps what it receives in memory (aiosmtpd is a test dependency
only, so the demo does not need it). Everything else is the real code: the registry entry of the
demo platform, the templates, the element check, the SMTP sender with its send-once claim, the
safe HTTP client for the re-check.
"""

from __future__ import annotations

import dataclasses
import socketserver
import threading
from email import message_from_bytes, policy
from typing import Any, Callable
from urllib.parse import urlsplit

from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from monitor import db
from monitor.demo.site import LoopbackSite
from monitor.models import Case, Match, MediaSighting
from monitor.pipeline import http_client
from monitor.settings import Settings, SmtpSettings
from monitor.takedowns import delivery, reports, tracking
from monitor.takedowns import notices as N
from monitor.takedowns.config import TakedownSettings

ACTOR = "demo"
ORG = TakedownSettings(org_name="Demo Helpline", org_email="notices@demo-helpline.test", signatory="Dee Advocate",
                       org_address="1 Demo Street, Demo Town", sender="notices@demo-helpline.test", bcc=None)


class SmtpSink:
    """A tiny SMTP server on 127.0.0.1 that accepts every message and keeps it (demo only)."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        sink = self

        class Handler(socketserver.StreamRequestHandler):
            def reply(self, line: str) -> None:
                self.wfile.write((line + "\r\n").encode("ascii"))

            def handle(self) -> None:
                self.reply("220 demo-board.test ESMTP demo sink")
                mail_from, rcpts = None, []
                while True:
                    raw = self.rfile.readline(4096)
                    if not raw:
                        return
                    verb = raw.decode("ascii", "replace").strip()
                    upper = verb.upper()
                    if upper.startswith(("EHLO", "HELO")):
                        self.reply("250 demo-board.test")
                    elif upper.startswith("MAIL FROM:"):
                        mail_from, rcpts = verb[10:].strip().strip("<>").split(" ")[0], []
                        self.reply("250 OK")
                    elif upper.startswith("RCPT TO:"):
                        rcpts.append(verb[8:].strip().strip("<>"))
                        self.reply("250 OK")
                    elif upper == "DATA":
                        self.reply("354 end with <CRLF>.<CRLF>")
                        lines = []
                        while True:
                            line = self.rfile.readline(1 << 20)
                            if not line or line in (b".\r\n", b".\n"):
                                break
                            lines.append(line[1:] if line.startswith(b"..") else line)
                        sink.messages.append({"from": mail_from, "to": rcpts, "data": b"".join(lines)})
                        self.reply("250 OK: queued")
                    elif upper in ("RSET", "NOOP"):
                        self.reply("250 OK")
                    elif upper == "QUIT":
                        self.reply("221 bye")
                        return
                    else:
                        self.reply("502 not implemented")

        class Server(socketserver.ThreadingTCPServer):
            daemon_threads = True
            allow_reuse_address = True

        self.server = Server(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True,
                                       name="demo-smtp-sink")
        self.thread.start()

    def smtp_settings(self) -> SmtpSettings:
        """How to reach it (plain SMTP on loopback)."""
        return SmtpSettings(host="127.0.0.1", port=self.port, security="none", sender=ORG.sender or "",
                            recipients=(ORG.org_email or "",), timeout=10)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _confirm(engine: Engine, match_id: int) -> None:
    """The advocate confirms the match, through the review code a person uses (monitor.review)."""
    from monitor import review

    with db.transaction(engine) as s:
        review.confirm(s, match_id, actor=ACTOR)


def run_takedown_demo(engine: Engine, settings: Settings, site: LoopbackSite, case_reference: str,
                      say: Callable[[str], None] = lambda _m: None) -> dict[str, Any]:
    """Confirm, draft, approve, send, remove, re-check, report; returns what happened (for --json)."""
    with db.session(engine) as s:
        case_id = s.scalar(select(Case.id).where(Case.reference == case_reference))
        # The match whose picture was found at the most addresses: the notice lists every copy.
        copies = func.count(MediaSighting.id)
        match_id = s.scalar(select(Match.id).join(MediaSighting, MediaSighting.media_id == Match.media_id)
                            .where(Match.case_id == case_id).group_by(Match.id)
                            .order_by(copies.desc(), Match.id).limit(1))
    if match_id is None:
        say("7. Takedown: no match to confirm, so no notice.")
        return {}
    say(f"7. The advocate reviews match {match_id} and confirms it: the picture is a copy of the victim's.")
    _confirm(engine, match_id)
    ts = dataclasses.replace(ORG, platforms_file=None)
    with db.transaction(engine) as s:
        [notice] = N.draft_for_case(s, case_id, ts, actor=ACTOR, match_ids=[match_id], notice_type="take_it_down")
        drafted = N.to_dict(s, notice)
    say(f"8. A TAKE IT DOWN Act notice is drafted ({drafted['reference']}) for {len(drafted['urls'])} copy(ies) on "
        f"the demo platform, to {drafted['recipient']['email']} (found by: {drafted['recipient']['found_by']}); "
        f"legal elements: {', '.join(drafted['elements']['checked'])}: "
        + ("all present." if drafted["elements"]["ok"] else f"MISSING {drafted['elements']['missing']}."))
    with db.transaction(engine) as s:
        N.approve(s, N.get(s, notice.id), ts, actor=ACTOR)
    say("9. The advocate reads it and approves it (nothing is sent before this).")
    sink = SmtpSink()
    try:
        sent = delivery.send_approved(engine, sink.smtp_settings(), ts, notice_ids=[notice.id], actor=ACTOR)
        parsed = [(m, message_from_bytes(m["data"], policy=policy.default)) for m in sink.messages]
        received = [{"to": m["to"], "subject": str(p["Subject"]), "message_id": str(p["Message-ID"]),
                     "attachments": [a.get_filename() for a in p.iter_attachments()], "bytes": len(m["data"])}
                    for m, p in parsed]
    finally:
        sink.close()
    say(f"10. Sent by SMTP to the demo platform's mail server (a sink on 127.0.0.1:{sink.port}): "
        f"{len(received)} message(s), text plus a PDF copy." + (f" Errors: {sent.errors}" if sent.errors else ""))
    with db.session(engine) as s:
        urls = [u["url"] for u in N.to_dict(s, N.get(s, notice.id))["urls"]]
    for url in urls:
        site.routes.pop(urlsplit(url).path, None)
    say(f"11. The demo platform removes the picture ({len(urls)} address(es) now answer 404).")
    http = http_client(settings.monitor)
    try:
        track = tracking.recheck(engine, http, actor=ACTOR)
    finally:
        http.close()
    with db.session(engine) as s:
        final = N.to_dict(s, N.get(s, notice.id))
        rows = reports.takedown_report(s)
        sightings_gone = s.scalar(select(MediaSighting.gone_at).where(MediaSighting.url == urls[0]))
    took = (final["removed_at"] - final["sent_at"]).total_seconds() if final["removed_at"] else None
    removed_at = final["removed_at"].strftime("%H:%M:%S UTC") if final["removed_at"] else "an unknown time"
    say(f"12. The re-check finds it gone: notice {final['reference']} is {final['state']} at {removed_at}"
        + (f", {took:.1f} s after it was sent." if took is not None else "."))
    for r in rows:
        say(f"    report: {r.platform} / {r.notice_type}: {r.sent} sent, {r.removed} removed, median "
            f"{r.median_hours} h, within deadline {r.within_deadline_share}, open {r.open}, overdue {r.overdue}")
    return {"notice": final, "received": received, "send": sent.to_dict(), "recheck": track.to_dict(),
            "sighting_gone_at": sightings_gone, "report": [r.to_dict() for r in rows]}
