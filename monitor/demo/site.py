"""A small web site on the loopback interface, for the demo (and the tests and the benchmark).

``LoopbackSite`` serves fixed routes from memory on 127.0.0.1 with a port the system picks,
from a thread; it never listens on another interface and never looks names up. Builders for
the two kinds of pages the demo's sources read: an RSS feed and an HTML gallery.
"""

from __future__ import annotations

import html
import socketserver
import threading
import time
from dataclasses import dataclass, field
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable, Sequence
from datetime import datetime, timedelta, timezone
from xml.sax.saxutils import escape


@dataclass
class Route:
    """One response: body and type, or a status; ``delay`` seconds before answering."""

    body: bytes = b""
    content_type: str = "application/octet-stream"
    status: int = 200
    delay: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)


Handler = Callable[[str], Route]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    request_queue_size = 128

    def server_bind(self) -> None:  # no getfqdn(): no name lookups at all
        socketserver.TCPServer.server_bind(self)
        self.server_name = "127.0.0.1"
        self.server_port = self.server_address[1]

    def handle_error(self, request, client_address) -> None:  # clients may hang up; stay quiet
        pass


class LoopbackSite:
    """Routes (path -> Route, or a function of the path) served on http://127.0.0.1:<port>/."""

    def __init__(self) -> None:
        self.routes: dict[str, Route | Handler] = {}
        self.hits: dict[str, int] = {}
        self._lock = threading.Lock()
        site = self

        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def log_message(self, *args) -> None:  # quiet
                pass

            def do_GET(self) -> None:  # noqa: N802
                path = self.path.split("#", 1)[0]
                with site._lock:
                    site.hits[path] = site.hits.get(path, 0) + 1
                route = site.routes.get(path) or site.routes.get(path.split("?", 1)[0])
                if callable(route):
                    route = route(path)
                if route is None:
                    route = Route(b"not found", "text/plain", 404)
                if route.delay:
                    time.sleep(route.delay)
                try:
                    self.send_response(route.status)
                    self.send_header("Content-Type", route.content_type)
                    self.send_header("Content-Length", str(len(route.body)))
                    for k, v in route.headers.items():
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(route.body)
                except OSError:
                    self.close_connection = True

        self.server = _Server(("127.0.0.1", 0), H)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True, name="loopback-site")
        self.thread.start()

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def add(self, path: str, route: Route | Handler) -> str:
        """Serve `route` at `path`; returns its full URL."""
        self.routes[path] = route
        return self.url(path)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> "LoopbackSite":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def image_type(name: str) -> str:
    """A Content-Type for an image file name (the monitor sniffs the bytes anyway)."""
    ext = name.rsplit(".", 1)[-1].lower()
    return {"jpg": "image/jpeg", "jpeg": "image/jpeg", "png": "image/png", "gif": "image/gif",
            "webp": "image/webp"}.get(ext, "application/octet-stream")


def rss_feed(base_url: str, title: str, items: Sequence[tuple[str, str, str]],
             start: datetime | None = None) -> bytes:
    """An RSS 2.0 feed: one entry per (post path, image URL, title), oldest first in time."""
    start = start or datetime(2026, 1, 1, tzinfo=timezone.utc)
    entries = []
    for i, (post, image_url, item_title) in enumerate(items):
        when = format_datetime(start + timedelta(minutes=i))
        entries.append(
            f"<item><title>{escape(item_title)}</title><link>{escape(base_url + post)}</link>"
            f"<guid>{escape(base_url + post)}</guid><pubDate>{when}</pubDate>"
            f'<enclosure url="{escape(image_url)}" type="image/jpeg" length="0"/></item>')
    return ("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<rss version=\"2.0\"><channel>"
            f"<title>{escape(title)}</title><link>{escape(base_url)}/</link><description>demo</description>"
            + "".join(entries) + "</channel></rss>\n").encode("utf-8")


def gallery_page(title: str, images: Sequence[tuple[str, str]], next_url: str | None = None) -> bytes:
    """An HTML gallery: one <img> per (image URL, alt text), and an optional rel=next link."""
    figures = "".join(f'<figure><img src="{html.escape(src)}" alt="{html.escape(alt)}"></figure>'
                      for src, alt in images)
    nxt = f'<a rel="next" href="{html.escape(next_url)}">older</a>' if next_url else ""
    return (f"<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title></head>"
            f"<body><h1>{html.escape(title)}</h1><div class=\"gallery\">{figures}</div>{nxt}</body></html>"
            ).encode("utf-8")
