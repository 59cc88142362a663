"""The link pages in a real browser: Debian's Chromium, driven by Playwright, against `techtouch serve`.

Outside CI a missing Chromium skips these tests with the reason; under CI=true it fails them.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from techtouch.adapters.db import migrate
from techtouch.adapters.db.engine import make_engine
from techtouch.adapters.render.links import LinkSigner
from techtouch.settings import Settings
from tests.browser.conftest import free_port, healthy
from tests.integration.journey_base import Base, account, contact

ROOT = Path(__file__).resolve().parents[2]
SECRET = "browser-test-secret-0123456789abcdef"


@pytest.fixture
def engine(sqlite_url: str) -> Iterator[Engine]:
    """Pages are the same on either backend (the webhooks are tested on both): SQLite only."""
    eng = make_engine(sqlite_url)
    migrate.upgrade(eng)
    yield eng
    eng.dispose()


@pytest.fixture
def served(engine: Engine, sqlite_url: str, tmp_path: Path) -> Iterator[str]:
    """`techtouch serve` on a free port over a base with one account and its admin."""
    Base(engine, Settings(database_url=sqlite_url)).add(
        [account("a1")], [contact("c1", "a1")], usage_days=5, as_of=date.today()
    )
    port = free_port()
    public = f"http://127.0.0.1:{port}"
    env = dict(os.environ) | {
        "TECHTOUCH_DATABASE_URL": sqlite_url,
        "TECHTOUCH_PUBLIC_URL": public,
        "TECHTOUCH_SECRET_KEY": SECRET,
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "techtouch", "serve", "--port", str(port)],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=open(tmp_path / "serve.log", "wb"),  # noqa: SIM115 - lives as long as the server
    )
    try:
        deadline = time.monotonic() + 60
        while not healthy(public):
            assert server.poll() is None, (tmp_path / "serve.log").read_text()
            assert time.monotonic() < deadline, "techtouch serve did not answer /healthz"
            time.sleep(0.1)
        yield public
    finally:
        server.terminate()
        server.wait(timeout=20)


@pytest.fixture
def page(chromium: str) -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        try:
            yield browser.new_page()
        finally:
            browser.close()


def scalar(engine: Engine, sql: str) -> object:
    with engine.connect() as connection:
        return connection.execute(text(sql)).scalar_one()


def test_unsubscribe_asks_first_then_one_click_suppresses(served: str, page: object, engine: Engine) -> None:
    url = LinkSigner(served, SECRET.encode()).unsubscribe("c1")
    page.goto(url)  # type: ignore[attr-defined]
    assert page.locator("h1").inner_text() == "Unsubscribe?"  # type: ignore[attr-defined]
    assert scalar(engine, "SELECT COUNT(*) FROM suppressions") == 0  # opening the link is not consent

    page.get_by_role("button", name="Unsubscribe").click()  # type: ignore[attr-defined]
    page.wait_for_load_state()  # type: ignore[attr-defined]

    assert "unsubscribed" in page.locator("body").inner_text().lower()  # type: ignore[attr-defined]
    assert scalar(engine, "SELECT channel FROM suppressions WHERE contact_id = 'c1'") == "email"


def test_a_survey_link_asks_to_confirm_and_only_the_button_records(
    served: str, page: object, engine: Engine
) -> None:
    url = LinkSigner(served, SECRET.encode()).survey("a1", "c1", "renewal", "unsure")
    page.goto(url)  # type: ignore[attr-defined]
    assert page.locator("h1").inner_text() == "Confirm your answer"  # type: ignore[attr-defined]
    assert page.get_by_label("unsure").is_checked()  # type: ignore[attr-defined]
    assert not page.get_by_label("not likely").is_checked()  # type: ignore[attr-defined]
    assert (
        scalar(engine, "SELECT COUNT(*) FROM events WHERE type = 'survey'") == 0
    )  # opening is not answering

    page.get_by_label("not likely").check()  # type: ignore[attr-defined]
    page.get_by_label("Anything you would like to add? (optional)").fill(  # type: ignore[attr-defined]
        "Budget review in March; talk to our CFO."
    )
    page.get_by_role("button", name="Confirm my answer").click()  # type: ignore[attr-defined]
    page.wait_for_load_state()  # type: ignore[attr-defined]

    assert "Thank you" in page.locator("h1").inner_text()  # type: ignore[attr-defined]
    assert scalar(engine, "SELECT value FROM events WHERE type = 'survey'") == "renewal:not_likely"
    assert scalar(engine, "SELECT detail FROM events WHERE type = 'survey_comment'") == (
        "Budget review in March; talk to our CFO."
    )


def test_a_tampered_link_shows_an_error_and_records_nothing(
    served: str, page: object, engine: Engine
) -> None:
    url = LinkSigner(served, SECRET.encode()).survey("a1", "c1", "renewal", "likely")
    response = page.goto(url[:-3] + ("AAA" if not url.endswith("AAA") else "BBB"))  # type: ignore[attr-defined]
    assert response.status == 400
    assert "not valid" in page.locator("body").inner_text()  # type: ignore[attr-defined]
    assert scalar(engine, "SELECT COUNT(*) FROM events WHERE type = 'survey'") == 0
