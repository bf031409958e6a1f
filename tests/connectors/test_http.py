"""The shared HTTP layer against real loopback servers (and the fake resolver)."""

from __future__ import annotations

import gzip
import socket
import threading
import time
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import pytest

from connectors.errors import (
    Blocked,
    ConnectionFailed,
    HttpStatus,
    NotAnImage,
    RateLimited,
    RobotsDisallowed,
    Timeout,
    TooLarge,
    TooManyRedirects,
    UnexpectedContent,
)
from connectors.http import HttpClient, HttpSettings, ValidatorCache, parse_retry_after

from .conftest import Reply, Site


def sequence(*replies: Reply):
    """A handler answering with each reply in turn (the last one repeats)."""
    state = {"i": 0}

    def handler(_req):
        i = min(state["i"], len(replies) - 1)
        state["i"] += 1
        return replies[i]

    return handler


# -- basics -------------------------------------------------------------------------------------


def test_get_image_identifies_itself_and_pins_the_vetted_address(site, client, png, resolver):
    url = site.add("/a.png", Reply(body=png, content_type="image/png"))
    named = url.replace("127.0.0.1", "site.test")
    response = client.get_image(named)
    assert response.status == 200 and response.content == png
    assert response.mime == "image/png" and response.sniffed.is_image
    assert response.url == named
    request = site.log[-1]
    assert request.headers["Host"] == f"site.test:{site.port}"
    ua = request.headers["User-Agent"]
    assert ua.startswith("ncii-monitor/") and "+https://example.org/ncii-monitor" in ua
    # one resolution for the robots.txt hop and one for the image: each connection went to
    # the address that was checked
    assert resolver.calls == ["site.test", "site.test"]


def test_default_user_agent_without_contact():
    ua = HttpSettings().effective_user_agent
    assert ua.startswith("ncii-monitor/") and "contact not configured" in ua
    assert HttpSettings(user_agent="X/1").effective_user_agent == "X/1"


@pytest.mark.parametrize("url", ["file:///etc/passwd", "gopher://127.0.0.1:70/", "ftp://127.0.0.1/x"])
def test_non_http_schemes_are_refused(client, url):
    with pytest.raises(Blocked, match="scheme"):
        client.get(url)
    assert client.requests_sent == 0


@pytest.mark.parametrize("host", ["evil.test", "metadata.test", "ula.test", "linklocal.test",
                                  "ec2v6.test", "cgnat.test", "mapped.test"])
def test_hostnames_resolving_to_internal_addresses_are_refused(client, resolver, host):
    with pytest.raises(Blocked, match=f"{host} resolves to"):
        client.get(f"http://{host}/x.png")
    assert resolver.calls == [host]
    assert client.requests_sent == 0


def test_rebinding_cannot_happen_between_check_and_connect(site, make_client, png):
    answers = iter([["127.0.0.1"], ["10.0.0.1"], ["10.0.0.1"]])
    calls = []

    def rebinding(host):
        calls.append(host)
        return next(answers)

    client = HttpClient(
        HttpSettings(allow_hosts={"127.0.0.1"}, min_interval=0, respect_robots=False),
        resolver=rebinding,
    )
    url = site.add("/a.png", Reply(body=png)).replace("127.0.0.1", "site.test")
    assert client.get(url).content == png  # connected to the checked 127.0.0.1 ...
    assert calls == ["site.test"]  # ... after exactly one lookup (nothing re-resolves it)
    with pytest.raises(Blocked, match="10.0.0.1"):
        client.get(url)  # the next check sees the new answer and refuses it
    client.close()


# -- retries, rate limits --------------------------------------------------------------------


def test_429_with_retry_after_seconds(site, client, clock, png):
    site.add("/a.png", sequence(Reply(429, headers={"Retry-After": "7"}), Reply(body=png)))
    assert client.get(site.url("/a.png"), check_robots=False).content == png
    assert clock.sleeps == [7.0]
    assert site.hits("/a.png") == 2


def test_503_with_retry_after_http_date(site, client, clock, png):
    when = datetime.fromtimestamp(clock.time(), tz=timezone.utc) + timedelta(seconds=30)
    site.add("/a.png", sequence(Reply(503, headers={"Retry-After": format_datetime(when, True)}),
                                Reply(body=png)))
    assert client.get(site.url("/a.png"), check_robots=False).content == png
    assert clock.sleeps == [30.0]


def test_too_long_retry_after_is_a_clear_error_not_a_long_sleep(site, make_client, clock):
    client = make_client(max_retry_after=60)
    site.add("/a.png", Reply(429, headers={"Retry-After": "3600"}))
    with pytest.raises(RateLimited) as info:
        client.get(site.url("/a.png"), check_robots=False)
    assert clock.sleeps == []
    assert info.value.retry_at == datetime.fromtimestamp(clock.time() + 3600, tz=timezone.utc)
    assert "rate limited until 2026-01-01T01:00:00+00:00" in str(info.value)
    assert site.url("/a.png") in str(info.value)


def test_429_forever_ends_as_rate_limited(site, client, clock):
    site.add("/a.png", Reply(429, headers={"Retry-After": "2"}))
    with pytest.raises(RateLimited):
        client.get(site.url("/a.png"), check_robots=False)
    assert site.hits("/a.png") == 3  # first attempt + retries=2
    assert clock.sleeps == [2.0, 2.0]


def test_500s_then_success_with_exponential_backoff_and_jitter(site, make_client, clock, png):
    client = make_client(retries=3, backoff_base=1.0)
    site.add("/a.png", sequence(Reply(500), Reply(502), Reply(504), Reply(body=png)))
    assert client.get(site.url("/a.png"), check_robots=False).content == png
    assert len(clock.sleeps) == 3
    for attempt, slept in enumerate(clock.sleeps):
        assert 0.5 * 2 ** attempt <= slept <= 2 ** attempt


def test_500_forever_raises_http_status(site, client):
    site.add("/x", Reply(500))
    with pytest.raises(HttpStatus) as info:
        client.get(site.url("/x"), check_robots=False)
    assert info.value.status == 500 and info.value.retryable
    assert site.hits("/x") == 3


def test_404_is_not_retried(site, client):
    with pytest.raises(HttpStatus) as info:
        client.get(site.url("/missing.png"), check_robots=False)
    assert info.value.status == 404 and info.value.gone and not info.value.retryable
    assert site.hits("/missing.png") == 1
    assert str(info.value) == f"{site.url('/missing.png')}: HTTP 404"


def test_per_host_rate_limit(site, make_client, clock, png):
    client = make_client(min_interval=2.0, respect_robots=False)
    site.add("/a.png", Reply(body=png))
    client.get(site.url("/a.png"))
    client.get(site.url("/a.png"))
    client.get(site.url("/a.png"))
    assert clock.sleeps == [2.0, 2.0]
    client.get(site.url("/a.png").replace("127.0.0.1", "site.test"))  # another host: no wait
    assert clock.sleeps == [2.0, 2.0]


def test_burst_and_host_overrides(site, make_client, clock, png):
    client = make_client(min_interval=1.0, burst=3, host_intervals={"site.test": 0},
                         respect_robots=False)
    site.add("/a.png", Reply(body=png))
    for _ in range(4):
        client.get(site.url("/a.png"))
    assert clock.sleeps == [1.0]
    for _ in range(3):
        client.get(site.url("/a.png").replace("127.0.0.1", "site.test"))
    assert clock.sleeps == [1.0]


def test_connection_refused_is_retried_then_reported(make_client, clock):
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    client = make_client(respect_robots=False)
    with pytest.raises(ConnectionFailed, match="cannot connect to 127.0.0.1"):
        client.get(f"http://127.0.0.1:{port}/x")
    assert len(clock.sleeps) == 2


# -- timeouts, sizes ----------------------------------------------------------------------------


def test_read_timeout(site, make_client):
    client = make_client(read_timeout=0.3, retries=0, respect_robots=False)
    site.add("/slow", Reply(body=b"late", delay=1.0))
    started = time.monotonic()
    with pytest.raises(Timeout, match="read timeout"):
        client.get(site.url("/slow"))
    assert time.monotonic() - started < 1.0


def test_trickling_body_is_cut_off_by_the_total_deadline(site, make_client):
    client = make_client(read_timeout=2.0, total_timeout=0.6, retries=0, respect_robots=False)
    site.add("/trickle", Reply(chunks=(b"x" for _ in range(100)), chunk_delay=0.05))
    started = time.monotonic()
    with pytest.raises(Timeout, match="total deadline of 0.6s"):
        client.get(site.url("/trickle"))
    assert time.monotonic() - started < 1.5


class TrickleHeadersServer:
    """Sends a status line, then its headers one byte at a time, forever."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4)
        self.port = self.sock.getsockname()[1]
        self.stop = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        self.sock.settimeout(0.1)
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            threading.Thread(target=self._trickle, args=(conn,), daemon=True).start()

    def _trickle(self, conn: socket.socket) -> None:
        try:
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 200 OK\r\n")
            while not self.stop.is_set():
                conn.sendall(b"X")
                time.sleep(0.05)
        except OSError:
            pass
        finally:
            conn.close()

    def close(self) -> None:
        self.stop.set()
        self.sock.close()


def test_trickling_headers_are_cut_off_by_the_total_deadline(make_client):
    server = TrickleHeadersServer()
    try:
        client = make_client(read_timeout=2.0, total_timeout=0.6, retries=0,
                             respect_robots=False)
        started = time.monotonic()
        with pytest.raises(Timeout, match="total deadline"):
            client.get(f"http://127.0.0.1:{server.port}/")
        assert time.monotonic() - started < 1.5
    finally:
        server.close()


def test_too_large_by_content_length(site, make_client):
    client = make_client(max_bytes=1000, respect_robots=False)
    site.add("/big", Reply(body=b"\xff\xd8\xff" + b"x" * 5000))
    with pytest.raises(TooLarge, match="Content-Length 5003 exceeds the 1000-byte limit"):
        client.get(site.url("/big"))


def test_too_large_without_content_length(site, make_client):
    client = make_client(max_bytes=1000, respect_robots=False)
    site.add("/big", Reply(chunks=[b"x" * 600] * 5))
    with pytest.raises(TooLarge, match="more than 1000 bytes received"):
        client.get(site.url("/big"))


def test_gzip_bomb_is_cut_at_the_cap_after_decompression(site, make_client):
    client = make_client(max_bytes=100_000, respect_robots=False)
    bomb = gzip.compress(b"\x00" * 10_000_000)
    site.add("/bomb", Reply(body=bomb, headers={"Content-Encoding": "gzip"}))
    assert len(bomb) < 100_000
    with pytest.raises(TooLarge, match="100000-byte limit"):
        client.get(site.url("/bomb"))


def test_truncate_keeps_the_head(site, make_client):
    client = make_client(respect_robots=False)
    site.add("/big", Reply(body=b"a" * 5000, content_type="text/plain"))
    response = client.get(site.url("/big"), max_bytes=100, truncate=True)
    assert response.content == b"a" * 100 and response.truncated


# -- content sniffing ---------------------------------------------------------------------------


def test_html_where_an_image_was_promised(site, client):
    site.add("/photo.jpg", Reply(body=b"<!DOCTYPE html><html><body>login</body></html>",
                                 content_type="image/jpeg"))
    with pytest.raises(NotAnImage) as info:
        client.get_image(site.url("/photo.jpg"))
    assert "expected an image, got HTML (declared image/jpeg)" in str(info.value)
    assert info.value.found == "html"


def test_image_with_a_lying_header_is_accepted(site, client, jpeg):
    site.add("/x", Reply(body=jpeg, content_type="text/html"))
    response = client.get_image(site.url("/x"))
    assert response.mime == "image/jpeg" and response.content_type == "text/html"


def test_feed_expectation(site, client):
    site.add("/feed", Reply(body=b"\x89PNG\r\n\x1a\n" + b"\x00" * 100, content_type="text/xml"))
    with pytest.raises(UnexpectedContent, match="expected XML, got PNG image"):
        client.get(site.url("/feed"), expect="xml")


# -- redirects ------------------------------------------------------------------------------


def test_redirect_to_another_loopback_address_is_refused_before_connecting(site, client):
    other = Site(host="127.0.0.2")  # a real server there, to prove it is never contacted
    try:
        target = other.url("/secret", host="127.0.0.2")
        start = site.add("/go", Reply(302, headers={"Location": target}))
        with pytest.raises(Blocked) as info:
            client.get(start, check_robots=False)
        assert f"redirect to {target} refused: 127.0.0.2 is a loopback address" in str(info.value)
        assert other.log == []
    finally:
        other.close()


def test_redirect_to_a_private_name_is_refused_before_connecting(site, client, resolver):
    start = site.add("/go", Reply(301, headers={"Location": "http://evil.test/admin"}))
    with pytest.raises(Blocked, match="redirect to http://evil.test/admin refused"):
        client.get(start, check_robots=False)
    assert resolver.calls == ["evil.test"]


@pytest.mark.parametrize("location", ["file:///etc/passwd", "gopher://127.0.0.1:6379/_INFO",
                                      "http://169.254.169.254/latest/meta-data/"])
def test_redirect_to_forbidden_targets(site, client, location):
    start = site.add("/go", Reply(302, headers={"Location": location}))
    with pytest.raises(Blocked, match="refused"):
        client.get(start, check_robots=False)


def test_redirects_are_followed_and_rechecked(site, client, png, resolver):
    site.add("/a", Reply(301, headers={"Location": "/b"}))
    site.add("/b", Reply(302, headers={"Location": f"http://site.test:{site.port}/c.png"}))
    site.add("/c.png", Reply(body=png))
    response = client.get(site.url("/a"), check_robots=False)
    assert response.content == png
    assert response.url == f"http://site.test:{site.port}/c.png"
    assert response.redirects == (site.url("/b"), f"http://site.test:{site.port}/c.png")
    assert resolver.calls == ["site.test"]


def test_too_many_redirects(site, make_client):
    client = make_client(max_redirects=3)
    site.add("/loop", Reply(302, headers={"Location": "/loop"}))
    with pytest.raises(TooManyRedirects, match="more than 3 redirects"):
        client.get(site.url("/loop"), check_robots=False)
    assert site.hits("/loop") == 4


def test_credentials_are_not_forwarded_to_another_host(site, client, png):
    site.add("/a", Reply(302, headers={"Location": f"http://other.test:{site.port}/b.png"}))
    site.add("/b.png", Reply(body=png))
    client.get(site.url("/a").replace("127.0.0.1", "site.test"), check_robots=False,
               headers={"Authorization": "Bearer secret"})
    first, second = site.log[-2], site.log[-1]
    assert first.headers.get("Authorization") == "Bearer secret"
    assert "Authorization" not in second.headers


# -- conditional requests -------------------------------------------------------------------


def test_etag_and_304(site, client):
    body = b"<?xml version='1.0'?><rss><channel></channel></rss>"

    def handler(req):
        if req.headers.get("If-None-Match") == '"v1"':
            return Reply(304, content_type=None, headers={"ETag": '"v1"'})
        return Reply(body=body, content_type="application/rss+xml",
                     headers={"ETag": '"v1"', "Last-Modified": "Wed, 01 Jan 2026 00:00:00 GMT"})

    url = site.add("/feed", handler)
    cache = ValidatorCache()
    first = client.get(url, cache=cache, check_robots=False)
    assert first.status == 200 and first.content == body
    assert cache.get(url).etag == '"v1"'
    saved = ValidatorCache.from_dict(cache.to_dict())  # what a caller persists
    second = client.get(url, cache=saved, check_robots=False)
    assert second.not_modified and second.content == b""
    assert site.log[-1].headers["If-None-Match"] == '"v1"'
    assert site.log[-1].headers["If-Modified-Since"] == "Wed, 01 Jan 2026 00:00:00 GMT"
    assert saved.get(url).etag == '"v1"'


# -- robots.txt -----------------------------------------------------------------------------


def test_robots_disallow_and_cache(site, client, png):
    site.add("/robots.txt", Reply(body=b"User-agent: *\nDisallow: /private/\n",
                                  content_type="text/plain"))
    site.add("/public.png", Reply(body=png))
    site.add("/private/a.png", Reply(body=png))
    assert client.get(site.url("/public.png")).content == png
    with pytest.raises(RobotsDisallowed, match="robots.txt disallows it for ncii-monitor"):
        client.get(site.url("/private/a.png"))
    assert site.hits("/private/a.png") == 0
    assert site.hits("/robots.txt") == 1
    assert client.robots_allows(site.url("/public.png"))
    assert not client.robots_allows(site.url("/private/x"))


def test_robots_group_for_our_agent(site, client, png):
    site.add("/robots.txt", Reply(body=b"User-agent: *\nAllow: /\n\nUser-agent: ncii-monitor\n"
                                       b"Disallow: /\n", content_type="text/plain"))
    site.add("/a.png", Reply(body=png))
    with pytest.raises(RobotsDisallowed):
        client.get(site.url("/a.png"))


@pytest.mark.parametrize("status", [404, 403, 401, 410])
def test_robots_4xx_means_allowed(site, client, png, status):
    site.add("/robots.txt", Reply(status, body=b"nope", content_type="text/plain"))
    site.add("/a.png", Reply(body=png))
    assert client.get(site.url("/a.png")).content == png


def test_robots_5xx_disallows_temporarily(site, make_client, clock, png):
    client = make_client(retries=0, robots_error_ttl=600)
    state = {"status": 503}
    site.add("/robots.txt", lambda req: Reply(state["status"], body=b"", content_type="text/plain"))
    site.add("/a.png", Reply(body=png))
    with pytest.raises(RobotsDisallowed) as info:
        client.get(site.url("/a.png"))
    assert info.value.temporary and info.value.retryable
    assert "robots.txt is unreachable (HTTP 503)" in str(info.value)
    assert site.hits("/a.png") == 0
    state["status"] = 404
    with pytest.raises(RobotsDisallowed):  # still cached
        client.get(site.url("/a.png"))
    clock.advance(601)
    assert client.get(site.url("/a.png")).content == png
    assert site.hits("/robots.txt") == 2


def test_robots_crawl_delay_slows_the_host_down(site, make_client, clock, png):
    client = make_client(min_interval=0.0)
    site.add("/robots.txt", Reply(body=b"User-agent: *\nCrawl-delay: 5\n",
                                  content_type="text/plain"))
    site.add("/a.png", Reply(body=png))
    client.get(site.url("/a.png"))
    client.get(site.url("/a.png"))
    assert clock.sleeps and clock.sleeps[-1] == pytest.approx(5.0)


def test_robots_respect_can_be_switched_off(site, make_client, png):
    client = make_client(respect_robots=False)
    site.add("/robots.txt", Reply(body=b"User-agent: *\nDisallow: /\n", content_type="text/plain"))
    site.add("/a.png", Reply(body=png))
    assert client.get(site.url("/a.png")).content == png
    assert site.hits("/robots.txt") == 0


# -- helpers --------------------------------------------------------------------------------


def test_parse_retry_after():
    now = 1_767_225_600.0
    assert parse_retry_after("120", now) == 120.0
    assert parse_retry_after("Thu, 01 Jan 2026 00:01:00 GMT", now) == 60.0
    assert parse_retry_after("Wed, 31 Dec 2025 00:00:00 GMT", now) == 0.0
    assert parse_retry_after("soon", now) is None
    assert parse_retry_after(None, now) is None


def test_json_and_link_pagination(site, client):
    site.add("/api", Reply(body=b'{"items": [1, 2]}', content_type="application/json",
                           headers={"Link": '</api?max_id=2>; rel="next", '
                                            '</api?min=9>; rel="prev"'}))
    data, response = client.get_json(site.url("/api"), params={"limit": 2})
    assert data == {"items": [1, 2]}
    assert response.links["next"] == site.url("/api?max_id=2")
    assert site.log[-1].path == "/api?limit=2"


def test_settings_validation_names_the_setting():
    with pytest.raises(ValueError, match="'max_bytes'"):
        HttpSettings(max_bytes=0)
    with pytest.raises(ValueError, match="'contact_url'"):
        HttpSettings(contact_url="example.org")
