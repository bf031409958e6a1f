"""Browser tests: Playwright driving Debian's chromium against the app served by uvicorn on loopback.

Chromium is started with every background service off, name resolution limited to loopback and a
dead loopback proxy for anything else, so it cannot reach beyond 127.0.0.1 even by accident.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Iterator

import pytest
from sqlalchemy import select

from monitor import db
from monitor.models import AuditEntry, Match
from tests.helpers import free_port as _free_port
from tests.web.conftest import PASSWORD, make_hash_file

CHROMIUM = "/usr/bin/chromium"
pytestmark = pytest.mark.skipif(not os.path.exists(CHROMIUM) and not os.environ.get("CI"),
                                reason="Debian's chromium is not installed (.ci/run installs it)")

CHROMIUM_ARGS = [
    "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-default-apps", "--disable-domain-reliability", "--disable-client-side-phishing-detection",
    "--disable-features=OptimizationHints,MediaRouter,Translate,AutofillServerCommunication", "--no-pings",
    "--metrics-recording-only", "--proxy-server=http://127.0.0.1:9",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
]


@pytest.fixture(scope="session")
def browser():
    """One headless chromium for the whole session."""
    from playwright.sync_api import sync_playwright

    pw = sync_playwright().start()
    b = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
    yield b
    b.close()
    pw.stop()


@pytest.fixture
def served(world) -> Iterator[str]:
    """The world's app served by uvicorn on 127.0.0.1 in a thread; yields its base URL."""
    import uvicorn

    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(world.app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


@pytest.fixture
def page(browser):
    context = browser.new_context()
    p = context.new_page()
    p.set_default_timeout(15_000)
    yield p
    context.close()


def _sign_in(page, base: str, username: str) -> None:
    page.goto(f"{base}/login")
    page.get_by_label("User name").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{base}/")


def _actions(engine, match_id: int) -> list[str]:
    with db.session(engine) as s:
        return [e.action for e in s.scalars(select(AuditEntry).order_by(AuditEntry.id))
                if e.details.get("match_id") == match_id]


def test_sign_in_and_out(served, page):
    page.goto(f"{served}/review")
    assert "/login" in page.url
    page.get_by_label("User name").fill("alice")
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Sign in").click()
    assert page.get_by_role("alert").inner_text().startswith("The user name or password")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{served}/review")
    assert page.get_by_role("heading", name="Review queue").is_visible()
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(f"{served}/login")


def test_review_a_match_blurred_reveal_confirm_and_keyboard(served, page, world):
    from tests.web.conftest import add_match

    second = add_match(world.engine, world.cases["a"], world.site, "second", seed=31)
    _sign_in(page, served, "alice")
    page.goto(f"{served}/review")
    img = page.get_by_alt_text(f"Blurred preview of match {world.matches['a']}")
    img.scroll_into_view_if_needed()
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=img.element_handle())
    assert img.evaluate("img => img.naturalWidth") <= 240
    # keyboard: focus the first match with j, confirm it with c
    page.locator("main").click(position={"x": 1, "y": 1})
    page.keyboard.press("j")
    first_id = int(page.evaluate("document.activeElement.dataset.id"))
    with page.expect_navigation():
        page.keyboard.press("c")
    with db.session(world.engine) as s:
        assert s.get(Match, first_id).review_status == "confirmed"
    target = world.matches["a"] if first_id != world.matches["a"] else second
    page.goto(f"{served}/matches/{target}")
    assert page.get_by_alt_text(f"Blurred preview of match {target}").is_visible()
    page.get_by_role("button", name="Reveal preview").click()
    revealed = page.get_by_alt_text(f"Revealed preview of match {target}")
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=revealed.element_handle())
    assert revealed.evaluate("img => img.naturalWidth") == 320
    with page.expect_navigation():
        page.get_by_role("button", name="Confirm copy").click()
    assert "confirmed" in page.locator("dl.facts").inner_text()
    assert _actions(world.engine, target) == ["match.viewed", "match.preview_revealed", "match.viewed",
                                              "match.confirmed", "match.viewed"]


def test_self_service_with_reference_and_secret(served, page, world, tmp_path: Path):
    page.goto(f"{served}/self-service")
    page.get_by_label("Case reference").fill(world.cases["a"])
    page.get_by_label("Secret").fill("WRONG-WRONG-WRONG-WRONG-WRONG")
    page.get_by_role("button", name="Open my case").click()
    assert "do not match" in page.get_by_role("alert").inner_text()
    page.get_by_label("Case reference").fill(world.cases["a"])
    page.get_by_label("Secret").fill(world.secrets["a"])
    page.get_by_role("button", name="Open my case").click()
    page.wait_for_url(f"{served}/self-service/case")
    assert page.locator("#found").inner_text() == "1"
    assert page.locator("img").count() == 0
    hash_file = tmp_path / "my-hashes.jsonl"
    hash_file.write_bytes(make_hash_file(71))
    page.get_by_label("Hash file").set_input_files(str(hash_file))
    page.get_by_role("button", name="Upload hash file").click()
    assert "Added" in page.get_by_role("status").inner_text()
