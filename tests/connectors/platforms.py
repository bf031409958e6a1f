"""Fake platform API servers on 127.0.0.1 for the connector tests: a tiny threaded HTTP server
whose answers come from a Python function, so each test can speak the documented API shape
(pagination, rate-limit headers, 429 with Retry-After, expired tokens, malformed JSON).

``ApiServer(handler)``: ``handler(req)`` gets a :class:`Req` (method, path, query, headers,
body) and returns a :class:`Reply` (status, JSON or bytes, headers). Every request is recorded.
"""

from __future__ import annotations

import json
import socketserver
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable
from urllib.parse import parse_qs, urlsplit


@dataclass
class Req:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body or b"null")

    @property
    def form(self) -> dict[str, str]:
        return {k: v[0] for k, v in parse_qs(self.body.decode()).items()}


@dataclass
class Reply:
    status: int = 200
    data: Any = None
    body: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json"

    def payload(self) -> bytes:
        if self.body is not None:
            return self.body
        return json.dumps(self.data).encode()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True

    def server_bind(self) -> None:  # no getfqdn(): no name lookups
        socketserver.TCPServer.server_bind(self)
        self.server_name = "127.0.0.1"
        self.server_port = self.server_address[1]

    def handle_error(self, request, client_address) -> None:
        pass


class ApiServer:
    def __init__(self, handler: Callable[[Req], Reply]) -> None:
        self.handler = handler
        self.requests: list[Req] = []
        self.files: dict[str, bytes] = {}  # path -> bytes served as-is (pictures)
        server = self

        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def _handle(self) -> None:
                parts = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                req = Req(self.command, parts.path, {k: v[-1] for k, v in parse_qs(parts.query).items()},
                          {k.lower(): v for k, v in self.headers.items()}, body)
                server.requests.append(req)
                if parts.path in server.files:
                    reply = Reply(body=server.files[parts.path], content_type="image/jpeg")
                elif parts.path == "/robots.txt":
                    reply = Reply(404, body=b"", content_type="text/plain")
                else:
                    try:
                        reply = server.handler(req)
                    except Exception as exc:  # a test bug: answer 500 with the reason
                        reply = Reply(500, body=repr(exc).encode(), content_type="text/plain")
                data = reply.payload()
                self.send_response(reply.status)
                self.send_header("Content-Type", reply.content_type)
                self.send_header("Content-Length", str(len(data)))
                for k, v in reply.headers.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            do_GET = _handle
            do_POST = _handle

        self.server = _Server(("127.0.0.1", 0), H)
        self.port = self.server.server_address[1]
        self.base = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"{self.base}{path}"

    def hits(self, path: str) -> list[Req]:
        return [r for r in self.requests if r.path == path]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> "ApiServer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def page_of(items: list, size: int, start: int) -> tuple[list, int | None]:
    """items[start:start+size] and the next start (None at the end)."""
    chunk = items[start:start + size]
    nxt = start + size if start + size < len(items) else None
    return chunk, nxt


def end_to_end(engine, url: str, kind: str, plant: Callable[[bytes, Callable[[int], bytes]], None],
               **options: Any) -> tuple[str, Any, Any]:
    """Register a case, plant an altered copy of its picture (and decoys) on a fake platform via
    ``plant(copy_bytes, decoy(seed))``, add the source and poll it twice through the real
    pipeline. Returns (case reference, first report, second report)."""
    from monitor.demo import pictures as P
    from tests.test_pipeline import add_source, jpeg, make_pipeline, register_case

    reference = register_case(engine, seeds=(1,))
    plant(jpeg(1, P.captioned, 70), lambda seed: jpeg(seed))
    source_id = add_source(engine, url, kind=kind, **options)
    pipeline = make_pipeline(engine)
    try:
        first = pipeline.poll(source_id)
        second = pipeline.poll(source_id)
    finally:
        pipeline.close()
    return reference, first, second
