"""Fixtures for the connector tests.

Network rule: no test may send traffic outside 127.0.0.0/8 and ::1. ``_loopback_only`` wraps
``socket.socket.connect``/``connect_ex``, ``socket.create_connection`` and the name lookups for
the whole session: any attempt to reach another address (or to resolve a real host name)
raises before anything is sent, and the test that made it fails even if the error was caught.
Host names used by tests resolve only through ``FAKE_DNS`` (the resolver hook).
"""

from __future__ import annotations

import io
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable, Iterable

import pytest

from tests.conftest import _is_loopback

from connectors.clock import FakeClock
from connectors.http import HttpClient, HttpSettings

# --------------------------------------------------------------------------------------------
# The network guard


class NetworkViolation(BaseException):
    """Raised (as a BaseException, so no `except Exception` can swallow it) on any attempt to
    reach a non-loopback address."""


VIOLATIONS: list[str] = []


# One definition of "loopback" for every guard in the suite.
_loopback_address = _is_loopback


def _violation(what: str) -> None:
    VIOLATIONS.append(what)
    raise NetworkViolation(f"test tried to reach a non-loopback address: {what}")


@pytest.fixture(scope="session", autouse=True)
def _loopback_only():
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex
    real_create = socket.create_connection
    real_getaddrinfo = socket.getaddrinfo
    real_gethostbyname = socket.gethostbyname
    real_gethostbyaddr = socket.gethostbyaddr

    def connect(self, address):
        if not _loopback_address(address):
            _violation(f"connect {address!r}")
        return real_connect(self, address)

    def connect_ex(self, address):
        if not _loopback_address(address):
            _violation(f"connect_ex {address!r}")
        return real_connect_ex(self, address)

    def create_connection(address, *args, **kwargs):
        if not _loopback_address(address):
            _violation(f"create_connection {address!r}")
        return real_create(address, *args, **kwargs)

    def getaddrinfo(host, *args, **kwargs):
        if host is not None and not _loopback_address((host,)):
            _violation(f"getaddrinfo {host!r}")
        return real_getaddrinfo(host, *args, **kwargs)

    def gethostbyname(host):
        if not _loopback_address((host,)):
            _violation(f"gethostbyname {host!r}")
        return real_gethostbyname(host)

    def gethostbyaddr(host):
        if not _loopback_address((host,)):
            _violation(f"gethostbyaddr {host!r}")
        return real_gethostbyaddr(host)

    socket.socket.connect = connect
    socket.socket.connect_ex = connect_ex
    socket.create_connection = create_connection
    socket.getaddrinfo = getaddrinfo
    socket.gethostbyname = gethostbyname
    socket.gethostbyaddr = gethostbyaddr
    try:
        yield
    finally:
        socket.socket.connect = real_connect
        socket.socket.connect_ex = real_connect_ex
        socket.create_connection = real_create
        socket.getaddrinfo = real_getaddrinfo
        socket.gethostbyname = real_gethostbyname
        socket.gethostbyaddr = real_gethostbyaddr


@pytest.fixture(autouse=True)
def _no_violations():
    before = len(VIOLATIONS)
    yield
    new = VIOLATIONS[before:]
    if new:
        pytest.fail(f"non-loopback network access attempted: {new}")


# --------------------------------------------------------------------------------------------
# Fake DNS (the resolver hook)

FAKE_DNS: dict[str, list[str]] = {
    "site.test": ["127.0.0.1"],
    "other.test": ["127.0.0.1"],
    "evil.test": ["10.0.0.1"],
    "private172.test": ["172.16.5.4"],
    "private192.test": ["192.168.1.1"],
    "cgnat.test": ["100.64.0.1"],
    "linklocal.test": ["169.254.10.10"],
    "metadata.test": ["169.254.169.254"],
    "ec2v6.test": ["fd00:ec2::254"],
    "ula.test": ["fd00::1"],
    "v6linklocal.test": ["fe80::1"],
    "v6loop.test": ["::1"],
    "mapped.test": ["::ffff:10.0.0.1"],
    "nat64.test": ["64:ff9b::a00:1"],
    "sixtofour.test": ["2002:a00:1::1"],
    "multicast.test": ["224.0.0.1"],
    "unspecified.test": ["0.0.0.0"],
    "reserved.test": ["240.0.0.1"],
    "mixed.test": ["127.0.0.1", "10.0.0.1"],
    "public.test": ["93.184.216.34"],
    "loopback2.test": ["127.0.0.2"],
}


class FakeResolver:
    def __init__(self, table: dict[str, list[str]] | None = None) -> None:
        self.table = dict(FAKE_DNS if table is None else table)
        self.calls: list[str] = []

    def __call__(self, host: str) -> list[str]:
        self.calls.append(host)
        return list(self.table.get(host, []))


@pytest.fixture
def resolver() -> FakeResolver:
    return FakeResolver()


# --------------------------------------------------------------------------------------------
# A loopback HTTP server with programmable routes


@dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str | None = "application/octet-stream"
    chunks: Iterable[bytes] | None = None  # sent one by one (with chunk_delay), no length
    chunk_delay: float = 0.0
    send_length: bool = True
    delay: float = 0.0  # before the status line


@dataclass
class Request:
    path: str
    headers: dict[str, str]


Handler = Callable[[Request], Reply]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True

    def handle_error(self, request, client_address) -> None:  # clients hang up on purpose
        pass

    def server_bind(self) -> None:  # no getfqdn(): no name lookups at all
        import socketserver

        socketserver.TCPServer.server_bind(self)
        self.server_name = "127.0.0.1"
        self.server_port = self.server_address[1]


class Site:
    """Routes: path (with query) -> Reply or callable(Request) -> Reply. Unknown paths 404."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.routes: dict[str, Reply | Handler] = {}
        self.log: list[Request] = []
        site = self

        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # no 40 ms delayed-ACK stalls between writes

            def log_message(self, *args):  # quiet
                pass

            def do_GET(self):
                req = Request(self.path, {k: v for k, v in self.headers.items()})
                site.log.append(req)
                route = site.routes.get(self.path)
                if route is None:
                    route = site.routes.get(self.path.split("?", 1)[0])
                if route is None:
                    reply = Reply(404, b"not found", content_type="text/plain")
                elif callable(route):
                    reply = route(req)
                else:
                    reply = route
                try:
                    self._send(reply)
                except (BrokenPipeError, ConnectionResetError, OSError):
                    self.close_connection = True

            def _send(self, reply: Reply) -> None:
                if reply.delay:
                    time.sleep(reply.delay)
                self.send_response(reply.status)
                if reply.content_type:
                    self.send_header("Content-Type", reply.content_type)
                for k, v in reply.headers.items():
                    self.send_header(k, v)
                if reply.chunks is not None:
                    self.send_header("Connection", "close")
                    self.end_headers()
                    for chunk in reply.chunks:
                        self.wfile.write(chunk)
                        self.wfile.flush()
                        if reply.chunk_delay:
                            time.sleep(reply.chunk_delay)
                    self.close_connection = True
                    return
                if reply.send_length:
                    self.send_header("Content-Length", str(len(reply.body)))
                else:
                    self.send_header("Connection", "close")
                    self.close_connection = True
                self.end_headers()
                if reply.status not in (204, 304):
                    self.wfile.write(reply.body)

        self.server = _Server((host, 0), H)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    def url(self, path: str = "/", host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    def add(self, path: str, reply: Reply | Handler) -> str:
        self.routes[path] = reply
        return self.url(path)

    def hits(self, path: str) -> int:
        return sum(1 for r in self.log if r.path == path)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def site():
    s = Site()
    try:
        yield s
    finally:
        s.close()


# --------------------------------------------------------------------------------------------
# Clients


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def make_client(resolver, clock):
    clients: list[HttpClient] = []

    def make(**overrides) -> HttpClient:
        options = dict(
            allow_hosts=frozenset({"127.0.0.1"}),
            min_interval=0.0,
            retries=2,
            backoff_base=0.5,
            connect_timeout=2.0,
            read_timeout=2.0,
            total_timeout=5.0,
            contact_url="https://example.org/ncii-monitor",
        )
        options.update(overrides)
        client = HttpClient(HttpSettings(**options), resolver=resolver, clock=clock)
        clients.append(client)
        return client

    yield make
    for c in clients:
        c.close()


@pytest.fixture
def client(make_client) -> HttpClient:
    return make_client()


# --------------------------------------------------------------------------------------------
# Synthetic images (generated patterns; never photographs)


def make_image(fmt: str = "PNG", size: tuple[int, int] = (64, 48), seed: int = 0) -> bytes:
    from PIL import Image

    w, h = size
    img = Image.new("RGB", size)
    px = img.load()
    for y in range(h):
        for x in range(w):
            px[x, y] = ((x * 4 + seed * 37) % 256, (y * 5 + seed * 11) % 256, ((x + y) * 3) % 256)
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    return buf.getvalue()


@pytest.fixture(scope="session")
def png() -> bytes:
    return make_image("PNG")


@pytest.fixture(scope="session")
def jpeg() -> bytes:
    return make_image("JPEG")
