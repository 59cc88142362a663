"""The CSM workspace in a real browser: Debian's Chromium, driven by Playwright, against `techtouch serve`.

One server for the module, over a SQLite base whose CTAs were raised by real journey runs: renewal
accounts whose admin answered `not_likely` (a `renewal_at_risk` CTA each), answers asking for a talk
or an offer (request CTAs). CSM Avery holds most of them, CSM Blake one, an account without a CSM
puts one in the team queue. Each test works on CTAs no other test touches, so they pass in any
order; the next-run test alone moves the calendar (a run of tomorrow), and comes last in the file.

Screenshots (full page) go to test-artifacts/ at the project root: inbox, cta, reports, queue,
account. Outside CI a missing Chromium skips these tests with the reason; under CI=true it fails them.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from sqlalchemy import Engine, func, select

from techtouch import bootstrap
from techtouch.adapters.db import migrate
from techtouch.adapters.db.bulk import upsert_rows
from techtouch.adapters.db.engine import make_engine
from techtouch.adapters.db.models import Cta, CtaHistory, Enrollment, Event
from techtouch.services import users
from techtouch.services.health import compute_health
from techtouch.settings import Settings
from tests.browser.conftest import free_port, healthy
from tests.integration.journey_base import Base, account, contact

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
SECRET = "browser-test-secret-0123456789abcdef"
PASSWORD = "correct horse battery staple"
ZONE = "Europe/Paris"
AVERY = "avery.csm@vendor.example"  # CSM A
BLAKE = "blake.csm@vendor.example"  # CSM B
MORGAN = "morgan.manager@vendor.example"  # their manager
OLIVE = "olive.ops@vendor.example"  # ops
# Avery's accounts: which test works on which CTA (one each, so that the tests stay independent).
AVERY_ACCOUNTS = {
    "a1": "Northwind Traders",  # the CTA page, read only: always open
    "a2": "Contoso",  # snoozed on its page
    "a3": "Fabrikam",  # done on its page
    "a4": "Globex",  # keyboard triage
    "a5": "Initech",  # keyboard triage
    "a6": "Umbrella",  # bulk snooze (a renewal_at_risk CTA)
    "a7": "Hooli",  # bulk snooze (a request: the customer wants to talk first)
    "a8": "Stark Industries",  # the CSRF check
    "a9": "Soylent",  # closed churn_confirmed, then the next run
}
BLAKE_ACCOUNT = ("b1", "Wayne Enterprises")  # asks for the early-renewal offer: a title only Blake has
QUEUE_ACCOUNT = ("q1", "Tyrell Corporation")  # no CSM: its CTA waits in the team queue
BLAKE_TITLE = "Send the early-renewal offer"
WHY_CONDITION = "survey.renewal in ['unsure', 'not_likely']"
COMMENT = "Budget cuts next year; the CFO decides in March."


# --- the browser, the base, the server --------------------------------------------------------------


@dataclass
class World:
    """The served workspace: its URL, the database it serves, and the CTAs the runs raised."""

    url: str
    engine: Engine
    base: Base
    d0: date  # the first run; today (the server's, in ZONE) is d0 + 3
    ctas: dict[str, int]  # account id → the id of its CTA

    def day(self, n: int) -> date:
        return self.d0 + timedelta(days=n)

    @property
    def today(self) -> date:
        return self.day(3)


def answer(
    base: Base, account_id: str, when: date, survey: str, value: str, comment: str | None = None
) -> None:
    """An answer by the account's admin (contact `c<account>`) the evening before `when`'s run."""
    at = datetime.combine(when - timedelta(days=1), datetime.min.time(), tzinfo=UTC) + timedelta(hours=18)
    rows = [("survey", None, at)]
    if comment:
        rows.append(("survey_comment", comment, at + timedelta(minutes=1)))
    with base.engine.begin() as c:
        upsert_rows(
            c,
            Event.__table__,
            [
                {
                    "key": f"{account_id}-{survey}-{value}-{kind}",
                    "account_id": account_id,
                    "contact_id": f"c{account_id}",
                    "occurred_at": moment,
                    "type": kind,
                    "value": f"{survey}:{value}",
                    "source": "test",
                    "detail": detail,
                }
                for kind, detail, moment in rows
            ],
            key=("key",),
            update=False,
        )


def seed(engine: Engine, settings: Settings) -> tuple[Base, date, dict[str, int]]:
    """Accounts, contacts, 70 days of usage, four users, and CTAs raised by three days of renewal runs.

    Renewal 100 days out: the day-0 run announces it; the answers come that evening; the day-1 run
    raises a CTA per answer (renewal_at_risk for `not_likely`, the requests for the early-renewal
    survey); the day-2 run moves the at-risk enrollments on to wait for their CTA. Today is day 3.
    """
    app = bootstrap.build(settings, engine=engine)
    for email, name, role in [
        (AVERY, "Avery Quinn", "csm"),
        (BLAKE, "Blake Rivera", "csm"),
        (MORGAN, "Morgan Lee", "manager"),
        (OLIVE, "Olive Park", "ops"),
    ]:
        users.add_user(app, email, name=name, role=role, password=PASSWORD, team="emea")
    d0 = datetime.now(settings.zone).date() - timedelta(days=3)
    renewal = d0 + timedelta(days=100)
    owners = [(a, n, AVERY) for a, n in AVERY_ACCOUNTS.items()] + [
        (*BLAKE_ACCOUNT, BLAKE),
        (*QUEUE_ACCOUNT, None),
    ]
    base = Base(engine, settings)
    base.add(
        [account(a, name=n, csm_email=csm, renewal_date=renewal, arr=12000.0) for a, n, csm in owners],
        [contact(f"c{a}", a) for a, _, _ in owners],
        as_of=d0,
    )
    base.run(d0, "renewal")
    day1 = d0 + timedelta(days=1)
    for a in [*AVERY_ACCOUNTS, QUEUE_ACCOUNT[0]]:
        if a == "a7":
            answer(base, a, day1, "early_renewal", "talk_first")
        else:
            answer(base, a, day1, "renewal", "not_likely", comment=COMMENT if a == "a1" else None)
    answer(base, BLAKE_ACCOUNT[0], day1, "early_renewal", "interested")
    base.run(day1, "renewal")
    base.run(d0 + timedelta(days=2), "renewal")
    # Health as `techtouch health` scores it, weekly back to two months ago: the health chart has a line
    # (the `not_likely` answers pull it down at the end).
    for n in [*range(-63, 0, 7), 0, 1, 2]:
        scored = d0 + timedelta(days=n)
        compute_health(engine, scored, app.instant(scored), settings.health)
    with engine.connect() as c:
        found = {r.account_id: r.id for r in c.execute(select(Cta.account_id, Cta.id))}
    expected = {*AVERY_ACCOUNTS, BLAKE_ACCOUNT[0], QUEUE_ACCOUNT[0]}
    assert set(found) == expected, f"the runs raised CTAs for {sorted(found)}, not {sorted(expected)}"
    return base, d0, found


@pytest.fixture(scope="module")
def world(chromium: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """A seeded SQLite base served by `techtouch serve` (a subprocess) on a free port of 127.0.0.1."""
    tmp = tmp_path_factory.mktemp("workspace")
    url = f"sqlite:///{tmp / 'techtouch.db'}"
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("TECHTOUCH_") or k.startswith("TECHTOUCH_TEST_")
    }
    clean["TECHTOUCH_CONFIG_FILE"] = str(tmp / "no-techtouch.toml")  # no config file of the developer's
    with pytest.MonkeyPatch.context() as mp:
        for name in set(os.environ) - set(clean):
            mp.delenv(name)
        mp.setenv("TECHTOUCH_CONFIG_FILE", clean["TECHTOUCH_CONFIG_FILE"])
        settings = Settings(database_url=url, outbox_dir=tmp / "outbox", timezone=ZONE, secret_key=SECRET)
    engine = make_engine(url)
    migrate.upgrade(engine)
    base, d0, ctas = seed(engine, settings)

    port = free_port()
    public = f"http://127.0.0.1:{port}"
    env = clean | {
        "TECHTOUCH_DATABASE_URL": url,
        "TECHTOUCH_PUBLIC_URL": public,
        "TECHTOUCH_SECRET_KEY": SECRET,
        "TECHTOUCH_TIMEZONE": ZONE,
        "TECHTOUCH_OUTBOX_DIR": str(tmp / "outbox"),
    }
    log = tmp / "serve.log"
    server = subprocess.Popen(
        [sys.executable, "-m", "techtouch", "serve", "--port", str(port)],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=open(log, "wb"),  # noqa: SIM115 - lives as long as the server
    )
    try:
        deadline = time.monotonic() + 60
        while not healthy(public):
            assert server.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "techtouch serve did not answer /healthz"
            time.sleep(0.1)
        yield World(public, engine, base, d0, ctas)
    finally:
        server.terminate()
        server.wait(timeout=20)
        engine.dispose()


@pytest.fixture(scope="module")
def browser(chromium: str) -> Iterator[Browser]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh browser profile per test (no cookie of another test's user)."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(10_000)
    try:
        yield context.new_page()
    finally:
        context.close()


# --- helpers ---------------------------------------------------------------------------------------


def sign_in(page: Page, world: World, email: str, path: str = "/inbox") -> None:
    """Open `path`; signed out, the workspace sends the browser to the form, which comes back to it."""
    page.goto(world.url + path)
    assert "/login" in page.url, page.url
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(world.url + path)


def shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def row_ids(page: Page) -> list[int]:
    """The CTAs of the list on the page, in their order."""
    return [
        int(v or 0)
        for v in page.locator("table.ctas tbody tr[data-cta]").evaluate_all(
            "rows => rows.map(r => r.dataset.cta)"
        )
    ]


def cta_row(engine: Engine, cta_id: int) -> Any:
    with engine.connect() as c:
        return c.execute(select(Cta).where(Cta.id == cta_id)).one()


def history_count(engine: Engine, cta_id: int) -> int:
    with engine.connect() as c:
        return int(c.execute(select(func.count()).where(CtaHistory.cta_id == cta_id)).scalar_one())


def open_ctas_of(engine: Engine, email: str) -> set[int]:
    with engine.connect() as c:
        return set(
            c.execute(
                select(Cta.id).where(Cta.assignee == email, Cta.status.in_(("open", "in_progress")))
            ).scalars()
        )


def renewal_enrollment(engine: Engine, account_id: str) -> Any:
    with engine.connect() as c:
        return c.execute(
            select(Enrollment)
            .where(Enrollment.account_id == account_id, Enrollment.journey == "renewal")
            .order_by(Enrollment.cycle.desc())
        ).first()


# --- the tests -------------------------------------------------------------------------------------


def test_a_csm_signs_in_through_the_form_and_sees_only_their_ctas(world: World, page: Page) -> None:
    page.goto(world.url + "/inbox")
    assert "/login" in page.url  # signed out: the form first
    page.get_by_label("Email").fill(AVERY)
    page.get_by_label("Password").fill("not the password at all")
    page.get_by_role("button", name="Sign in").click()
    assert "do not match" in page.get_by_role("alert").inner_text()

    page.get_by_label("Email").fill(AVERY)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(world.url + "/inbox")

    assert page.locator("h1").inner_text() == "Inbox"
    assert "Avery Quinn" in page.locator("header.top").inner_text()
    shown = row_ids(page)
    assert world.ctas["a1"] in shown and set(shown) == open_ctas_of(world.engine, AVERY)
    assert world.ctas[BLAKE_ACCOUNT[0]] not in shown and world.ctas[QUEUE_ACCOUNT[0]] not in shown
    body = page.locator("main").inner_text()
    assert BLAKE_ACCOUNT[1] not in body and BLAKE_TITLE not in body and QUEUE_ACCOUNT[1] not in body
    assert AVERY_ACCOUNTS["a1"] in body
    shot(page, "inbox")


def test_the_cta_page_says_why_it_fired_with_the_account_and_its_charts(world: World, page: Page) -> None:
    cta_id = world.ctas["a1"]
    sign_in(page, world, AVERY, f"/inbox/ctas/{cta_id}")  # comes back to the CTA after signing in

    assert page.locator("h1").inner_text() == "Renewal at risk"
    why = page.locator("section.why").inner_text()
    assert WHY_CONDITION in why and "at_risk" in why and "announce" in why
    assert "not_likely" in why and COMMENT in why and "Ada ca1" in why
    assert AVERY_ACCOUNTS["a1"] in page.locator("header.cta-head").inner_text()
    assert page.locator("figure.chart svg").count() >= 2  # health and usage
    assert page.locator("section.health figure.chart svg").count() == 1
    # A chart with something drawn in it, not an empty frame.
    assert page.locator("figure.chart svg path, figure.chart svg polyline, figure.chart svg rect").count() > 3
    assert page.get_by_role("button", name="Mark done").is_visible()
    shot(page, "cta")


def test_snoozing_a_cta_on_its_page_takes_it_off_the_open_list(world: World, page: Page) -> None:
    cta_id = world.ctas["a2"]
    tomorrow = world.today + timedelta(days=1)
    sign_in(page, world, AVERY, f"/inbox/ctas/{cta_id}")
    page.get_by_label("Until").fill(tomorrow.isoformat())
    page.get_by_label("Reason").fill("waiting for the budget review")
    page.get_by_role("button", name="Snooze").click()
    page.wait_for_load_state()

    assert f"snoozed until {tomorrow.isoformat()}" in page.get_by_role("status").inner_text()
    head = page.locator("header.cta-head").inner_text()
    assert "Snoozed" in head and tomorrow.isoformat() in head and "waiting for the budget review" in head
    row = cta_row(world.engine, cta_id)
    assert (row.status, row.snoozed_until, row.snooze_reason) == (
        "snoozed",
        tomorrow,
        "waiting for the budget review",
    )

    page.goto(world.url + "/inbox")
    assert cta_id not in row_ids(page)
    page.get_by_label("Status").select_option("snoozed")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url("**/inbox?status=snoozed**")
    assert cta_id in row_ids(page)
    assert f"until {tomorrow.isoformat()}" in page.locator(f"tr[data-cta='{cta_id}']").inner_text()


def test_completing_a_cta_with_an_outcome_shows_it_in_the_history(world: World, page: Page) -> None:
    cta_id = world.ctas["a3"]
    sign_in(page, world, AVERY, f"/inbox/ctas/{cta_id}")
    page.get_by_label("Outcome").select_option("renewal_confirmed")
    page.locator("#done-note").fill("Signed the renewal quote on the call.")
    page.get_by_role("button", name="Mark done").click()
    page.wait_for_load_state()

    assert "is done (renewal confirmed)" in page.get_by_role("status").inner_text()
    head = page.locator("header.cta-head").inner_text()
    assert "Done" in head and "Renewal confirmed" in head
    history = page.locator("section.history").inner_text()
    assert "outcome: Renewal confirmed" in history and "Signed the renewal quote on the call." in history
    assert "Avery Quinn" in history and "techtouch" in history  # who closed it, and the run that raised it
    assert "This CTA is closed" in page.locator("section.actions").inner_text()  # no more forms
    assert page.get_by_role("button", name="Mark done").count() == 0
    row = cta_row(world.engine, cta_id)
    assert (row.status, row.outcome, row.closed_as_of) == ("done", "renewal_confirmed", world.today)


def test_keyboard_triage_closes_two_ctas(world: World, page: Page) -> None:
    first, second = world.ctas["a4"], world.ctas["a5"]
    sign_in(page, world, AVERY)
    ids = row_ids(page)
    i, j = ids.index(first), ids.index(second)
    assert i < j  # same priority and due date: by id

    for _ in range(i + 1):  # the cursor starts before the first row
        page.keyboard.press("j")
    assert "cursor" in (page.locator(f"tr[data-cta='{first}']").get_attribute("class") or "")
    page.keyboard.press("x")
    page.keyboard.press("j")
    page.keyboard.press("k")  # back and forth: still on the first, still selected
    assert page.locator(f"#sel-{first}").is_checked()
    for _ in range(j - i):
        page.keyboard.press("j")
    assert "cursor" in (page.locator(f"tr[data-cta='{second}']").get_attribute("class") or "")
    page.keyboard.press("x")
    assert page.locator(f"#sel-{second}").is_checked()
    assert [n for n in ids if page.locator(f"#sel-{n}").is_checked()] == [first, second]

    page.keyboard.press("d")  # done: the outcome choice of the bulk bar
    assert page.evaluate("document.activeElement.id") == "b-outcome"
    page.locator("#b-outcome").select_option("no_answer")
    page.keyboard.press("Tab")  # on to "Mark done"
    page.keyboard.press("Enter")
    page.wait_for_load_state()

    assert "2 CTAs done." in page.get_by_role("status").inner_text()
    left = row_ids(page)
    assert first not in left and second not in left and left  # the others are still there
    for cta_id in (first, second):
        row = cta_row(world.engine, cta_id)
        assert (row.status, row.outcome) == ("done", "no_answer")


def test_bulk_snooze_of_two_selected_ctas(world: World, page: Page) -> None:
    chosen = [world.ctas["a6"], world.ctas["a7"]]
    until = world.today + timedelta(days=7)
    sign_in(page, world, AVERY)
    before = row_ids(page)
    for cta_id in chosen:
        page.locator(f"#sel-{cta_id}").check()
    page.locator("#b-until").fill(until.isoformat())
    page.locator("#b-reason").fill("customer on holiday")
    page.get_by_role("button", name="Snooze").click()
    page.wait_for_load_state()

    assert "2 CTAs snoozed." in page.get_by_role("status").inner_text()
    assert set(row_ids(page)) == set(before) - set(chosen)
    for cta_id in chosen:
        row = cta_row(world.engine, cta_id)
        assert (row.status, row.snoozed_until, row.snooze_reason) == ("snoozed", until, "customer on holiday")
    page.goto(world.url + "/inbox?status=snoozed")
    assert set(chosen) <= set(row_ids(page))


def test_another_csm_gets_403_on_a_cta_that_is_not_theirs(world: World, page: Page) -> None:
    sign_in(page, world, BLAKE)
    assert row_ids(page) == [world.ctas[BLAKE_ACCOUNT[0]]]
    assert BLAKE_TITLE in page.locator("main").inner_text()

    response = page.goto(f"{world.url}/inbox/ctas/{world.ctas['a8']}")
    assert response is not None and response.status == 403
    assert "Not yours to open" in page.locator("h1").inner_text()
    assert AVERY_ACCOUNTS["a8"] not in page.locator("body").inner_text()
    response = page.goto(f"{world.url}/accounts/a8")
    assert response is not None and response.status == 403


def test_a_post_without_the_csrf_token_is_refused_and_changes_nothing(world: World, page: Page) -> None:
    cta_id = world.ctas["a8"]
    sign_in(page, world, AVERY, f"/inbox/ctas/{cta_id}")
    token = page.locator("form[action$='/done'] input[name=csrf_token]").get_attribute("value")
    assert token
    action = f"{world.url}/inbox/ctas/{cta_id}/done"
    before = history_count(world.engine, cta_id)

    for form in ({"outcome": "no_answer"}, {"outcome": "no_answer", "csrf_token": "x" * len(token)}):
        refused = page.request.post(action, form=form, max_redirects=0)  # the browser's session cookie
        assert refused.status == 403, refused.status
        assert "expired" in refused.text()
        assert cta_row(world.engine, cta_id).status == "open"
        assert history_count(world.engine, cta_id) == before

    # The same POST with the session's token goes through: the refusal was the token, nothing else.
    accepted = page.request.post(action, form={"outcome": "no_answer", "csrf_token": token}, max_redirects=0)
    assert accepted.status == 303
    assert (cta_row(world.engine, cta_id).status, history_count(world.engine, cta_id)) == ("done", before + 1)


def test_manager_sees_the_queue_and_the_reports(world: World, page: Page) -> None:
    sign_in(page, world, MORGAN, "/queue")
    nav = page.get_by_role("navigation", name="Workspace").inner_text()
    assert "Queue" in nav and "Reports" in nav
    queue = page.locator("main").inner_text()
    assert QUEUE_ACCOUNT[1] in queue and BLAKE_TITLE in queue and AVERY_ACCOUNTS["a1"] in queue
    # The queue (the account without a CSM), then every open CTA of the team: both CSMs'.
    team = open_ctas_of(world.engine, AVERY) | open_ctas_of(world.engine, BLAKE)
    assert set(row_ids(page)) == {world.ctas[QUEUE_ACCOUNT[0]]} | team
    shot(page, "queue")

    page.get_by_role("link", name="Reports").click()
    page.wait_for_url(world.url + "/reports")
    assert page.locator("h1").inner_text() == "Reports"
    charts = page.locator("figure.chart img")
    assert charts.count() >= 3
    assert all(
        (charts.nth(n).get_attribute("src") or "").startswith("data:image/svg+xml")
        for n in range(charts.count())
    )
    assert all(charts.nth(n).evaluate("img => img.naturalWidth > 0") for n in range(charts.count()))
    assert "Renewal" in page.locator("#funnels").inner_text()
    shot(page, "reports")


def test_ops_see_every_cta_read_only_and_a_csm_gets_403_on_reports(world: World, page: Page) -> None:
    sign_in(page, world, OLIVE)
    assert page.locator("h1").inner_text() == "All CTAs"
    shown = set(row_ids(page))
    assert {world.ctas[BLAKE_ACCOUNT[0]], world.ctas[QUEUE_ACCOUNT[0]]} <= shown
    assert page.locator("form#bulk").count() == 0  # read only: no bulk bar
    page.goto(f"{world.url}/inbox/ctas/{world.ctas[BLAKE_ACCOUNT[0]]}")
    assert "Read-only" in page.locator("section.actions").inner_text()
    assert page.get_by_role("button", name="Mark done").count() == 0

    page.context.clear_cookies()
    sign_in(page, world, BLAKE)
    response = page.goto(world.url + "/reports")
    assert response is not None and response.status == 403


def test_the_next_run_acts_on_the_outcome_recorded_in_the_browser(world: World, page: Page) -> None:
    """Closed `churn_confirmed` today, the renewal enrollment ends at tomorrow's run (at_risk_call_branch)."""
    cta_id = world.ctas["a9"]
    assert renewal_enrollment(world.engine, "a9").status == "active"  # waiting on the CTA
    sign_in(page, world, AVERY, f"/inbox/ctas/{cta_id}")
    page.get_by_label("Outcome").select_option("churn_confirmed")
    page.locator("#done-note").fill("Moving to a competitor.")
    page.get_by_role("button", name="Mark done").click()
    page.wait_for_load_state()
    assert "Churn confirmed" in page.locator("header.cta-head").inner_text()
    assert renewal_enrollment(world.engine, "a9").status == "active"  # nothing ends before the run

    world.base.run(world.today + timedelta(days=1), "renewal")  # tomorrow's run, on the served base

    ended = renewal_enrollment(world.engine, "a9")
    assert (ended.status, ended.exit_reason) == ("completed", "at_risk_call_branch")
    assert renewal_enrollment(world.engine, "a1").status == "active"  # an open CTA: still waiting
    page.goto(world.url + "/accounts/a9")
    journeys = page.locator("section.journeys").inner_text()
    assert "Completed" in journeys and "At risk call branch" in journeys
    shot(page, "account")
