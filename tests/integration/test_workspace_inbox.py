"""The CSM workspace's inbox, CTA actions, bulk bar and queue, on SQLite and PostgreSQL.

Who sees what (a CSM only their CTAs, ops all of them read-only, the queue for managers), what
the actions write (status, outcome, history) and what they refuse: someone else's CTA (403),
an unknown one (404), a form without its CSRF token (403), an outcome that does not fit (back
with the reason). And the digest's links land on these pages.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from html import unescape
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, event, select

from techtouch.adapters.db.models import Cta, CtaHistory
from techtouch.services import digest
from techtouch.services.app import App
from techtouch.services.ctas import history
from tests.integration.workspace_base import (
    PUBLIC_URL,
    add_account,
    add_cta,
    add_user,
    client_for,
    cta_status,
    make_app,
    page_token,
    sign_in,
)

ANN = "ann@vendor.example"  # CSM, team emea
BEN = "ben@vendor.example"  # CSM, team emea
MAY = "may@vendor.example"  # manager, team emea
OPS = "ops@vendor.example"


@pytest.fixture
def tt(engine: Engine, tmp_path: Path) -> App:
    app = make_app(engine, tmp_path)
    add_user(app, ANN, name="Ann Lee")
    add_user(app, BEN, name="Ben Ode")
    add_user(app, MAY, role="manager", name="May Ray")
    add_user(app, OPS, role="ops", team=None, name="Olu Ops")
    add_account(engine, "a1", ANN, "Acme Corp")
    add_account(engine, "b1", BEN, "Beta Ltd")
    add_account(engine, "q1", None, "Quiet Inc")
    return app


@pytest.fixture
def client(tt: App) -> Iterator[TestClient]:
    with client_for(tt) as test_client:
        yield test_client


def today() -> date:
    """The team's date (the default timezone is UTC), as the workspace counts overdue and due today."""
    return datetime.now(UTC).date()


def ids_on(html: str) -> list[int]:
    return [int(i) for i in re.findall(r'<tr data-cta="(\d+)"', html)]


def history_actions(engine: Engine, cta_id: int) -> list[tuple[str, str, str | None]]:
    with engine.connect() as c:
        return [(r["action"], r["actor"], r["outcome"]) for r in history(c, cta_id)]


def flash(html: str) -> str:
    found = re.search(r'<div class="flash[^"]*"[^>]*>(.*?)</div>', html, re.S)
    return unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", found.group(1))).strip()) if found else ""


def test_a_csm_sees_only_their_ctas_most_urgent_first(client: TestClient, engine: Engine) -> None:
    day = today()
    low_late = add_cta(engine, "a1", ANN, reason="risk_usage", priority="low", due=day - timedelta(days=2))
    high_later = add_cta(
        engine, "a1", ANN, reason="renewal_at_risk", priority="high", due=day + timedelta(days=5)
    )
    high_today = add_cta(engine, "a1", ANN, reason="advocacy_ask", priority="high", due=day)
    medium = add_cta(
        engine, "a1", ANN, reason="onboarding_help", priority="medium", due=day - timedelta(days=1)
    )
    snoozed = add_cta(engine, "a1", ANN, reason="risk_call", status="snoozed")
    closed = add_cta(engine, "a1", ANN, reason="renewal_call", status="done")
    bens = add_cta(engine, "b1", BEN, reason="renewal_at_risk", priority="high")
    sign_in(client, ANN)
    page = client.get("/inbox")
    assert page.status_code == 200
    assert ids_on(page.text) == [high_today, high_later, medium, low_late]
    assert bens not in ids_on(page.text) and "Beta Ltd" not in page.text
    # Overdue rows are highlighted; the account links to its page; every row can be selected.
    assert re.search(rf'<tr data-cta="{low_late}"[^>]*class="overdue"', page.text)
    assert re.search(rf'<tr data-cta="{high_later}"[^>]*class=""', page.text)
    assert '<a href="/accounts/a1">Acme Corp</a>' in page.text
    assert f'<a class="open" href="/inbox/ctas/{medium}">' in page.text
    assert f'name="ids" value="{medium}"' in page.text
    counts = dict(
        (name, int(n)) for n, name in re.findall(r"<strong>(\d+)</strong> ([a-z ]+)</li>", page.text)
    )
    assert counts == {"open": 4, "in progress": 0, "overdue": 2, "due today": 1, "snoozed": 1}
    # The keyboard keys are documented on the page, and the script is our static file.
    assert "<kbd>j</kbd>" in page.text and "<kbd>?</kbd>" in page.text
    assert '<script src="/static/workspace.js" defer></script>' in page.text
    # Filters.
    assert ids_on(client.get("/inbox?status=snoozed").text) == [snoozed]
    assert ids_on(client.get("/inbox?status=done").text) == [closed]
    assert ids_on(client.get("/inbox?overdue=1").text) == [medium, low_late]
    assert ids_on(client.get("/inbox?reason=advocacy_ask").text) == [high_today]
    assert ids_on(client.get("/inbox?journey=renewal&status=all").text) == [
        high_today,
        high_later,
        medium,
        snoozed,
        closed,
        low_late,
    ]
    assert ids_on(client.get("/inbox?journey=nothing").text) == []


def test_csrf_is_required_on_every_action(client: TestClient, engine: Engine) -> None:
    cta = add_cta(engine, "a1", ANN)
    sign_in(client, ANN)
    token = page_token(client)
    assert token
    for path, form in [
        (f"/inbox/ctas/{cta}/start", {}),
        (f"/inbox/ctas/{cta}/done", {"outcome": "no_answer"}),
        (f"/inbox/ctas/{cta}/snooze", {"until": (today() + timedelta(days=3)).isoformat(), "reason": "x"}),
        (f"/inbox/ctas/{cta}/assign", {"to": BEN}),
        (f"/inbox/ctas/{cta}/cancel", {"note": "x"}),
        (f"/inbox/ctas/{cta}/note", {"note": "x"}),
        ("/inbox/bulk", {"ids": str(cta), "action": "start"}),
    ]:
        assert client.post(path, data=form).status_code == 403, path
        assert client.post(path, data=form | {"csrf_token": token[:-1] + "x"}).status_code == 403, path
        # A JSON body carries no form token either.
        assert client.post(path, json=form | {"csrf_token": token}).status_code == 403, path
    assert cta_status(engine, cta) == ("open", ANN, None)
    assert history_actions(engine, cta) == []


def test_another_csms_cta_is_403_and_unchanged(client: TestClient, engine: Engine, caplog: Any) -> None:
    anns = add_cta(engine, "a1", ANN)
    sign_in(client, BEN)
    token = page_token(client)
    for action, form in [
        ("start", {}),
        ("done", {"outcome": "no_answer"}),
        ("snooze", {"until": (today() + timedelta(days=3)).isoformat(), "reason": "waiting"}),
        ("assign", {"to": BEN}),
        ("cancel", {"note": "mine now"}),
        ("note", {"note": "peek"}),
    ]:
        response = client.post(f"/inbox/ctas/{anns}/{action}", data=form | {"csrf_token": token})
        assert response.status_code == 403, action
        assert "You do not have access" in response.text
    assert cta_status(engine, anns) == ("open", ANN, None)
    assert history_actions(engine, anns) == []
    # Logged with the route and the user's id, never an email.
    refusals = [r.getMessage() for r in caplog.records if "forbidden" in r.getMessage()]
    assert refusals and all("@" not in line for line in refusals)
    assert any("/inbox/ctas/{cta_id:int}/start" in line for line in refusals)
    # Bulk: refused per CTA, said on the page, nothing changed.
    bulk = client.post(
        "/inbox/bulk",
        data={"csrf_token": token, "ids": [str(anns)], "action": "start"},
        follow_redirects=True,
    )
    assert "0 CTAs started" in flash(bulk.text) and f"#{anns}: not allowed" in flash(bulk.text)
    assert cta_status(engine, anns) == ("open", ANN, None)
    # An unknown CTA is a 404 page.
    missing = client.post("/inbox/ctas/999999/start", data={"csrf_token": token})
    assert missing.status_code == 404 and "There is no such CTA" in missing.text


def test_done_with_an_outcome_writes_history_and_a_wrong_outcome_is_explained(
    client: TestClient, engine: Engine
) -> None:
    cta = add_cta(engine, "a1", ANN, reason="renewal_at_risk")
    sign_in(client, ANN)
    token = page_token(client)
    wrong = client.post(
        f"/inbox/ctas/{cta}/done",
        data={"csrf_token": token, "outcome": "advocate_agreed", "next": "/inbox"},
        follow_redirects=True,
    )
    assert wrong.status_code == 200
    assert "was not changed" in flash(wrong.text) and "renewal_confirmed" in flash(wrong.text)
    assert cta_status(engine, cta) == ("open", ANN, None)

    assert client.post(f"/inbox/ctas/{cta}/start", data={"csrf_token": token}).status_code == 303
    done = client.post(
        f"/inbox/ctas/{cta}/done",
        data={
            "csrf_token": token,
            "outcome": "renewal_confirmed",
            "note": "signed for 2 years",
            "next": "/inbox",
        },
    )
    assert done.status_code == 303 and done.headers["location"] == "/inbox"
    assert cta_status(engine, cta) == ("done", ANN, "renewal_confirmed")
    assert history_actions(engine, cta) == [("started", ANN, None), ("done", ANN, "renewal_confirmed")]
    with engine.connect() as c:
        note = c.execute(select(CtaHistory.note).where(CtaHistory.action == "done")).scalar()
    assert note == "signed for 2 years"
    page = client.get("/inbox")
    assert "is done (renewal confirmed)" in flash(page.text)
    assert cta not in ids_on(page.text)
    # The message is shown once.
    assert flash(client.get("/inbox").text) == ""


def test_snooze_cancel_and_note(client: TestClient, engine: Engine) -> None:
    first = add_cta(engine, "a1", ANN, reason="risk_usage")
    second = add_cta(engine, "a1", ANN, reason="risk_call")
    sign_in(client, ANN)
    token = page_token(client)
    past = client.post(
        f"/inbox/ctas/{first}/snooze",
        data={"csrf_token": token, "until": today().isoformat(), "reason": "later", "next": "/inbox"},
        follow_redirects=True,
    )
    assert "snooze until a later day" in flash(past.text)
    bad_date = client.post(
        f"/inbox/ctas/{first}/snooze",
        data={"csrf_token": token, "until": "next week", "reason": "x", "next": "/inbox"},
        follow_redirects=True,
    )
    assert "YYYY-MM-DD" in flash(bad_date.text)
    until = today() + timedelta(days=7)
    client.post(
        f"/inbox/ctas/{first}/snooze",
        data={"csrf_token": token, "until": until.isoformat(), "reason": "on leave"},
    )
    client.post(f"/inbox/ctas/{first}/note", data={"csrf_token": token, "note": "called, left a message"})
    assert client.post(f"/inbox/ctas/{second}/cancel", data={"csrf_token": token}).status_code == 303
    assert cta_status(engine, second)[0] == "open"  # a cancel needs a note
    client.post(
        f"/inbox/ctas/{second}/cancel", data={"csrf_token": token, "note": "duplicate of the renewal call"}
    )
    assert cta_status(engine, first)[0] == "snoozed"
    assert cta_status(engine, second)[0] == "cancelled"
    assert [a for a, _, _ in history_actions(engine, first)] == ["snoozed", "noted"]
    with engine.connect() as c:
        assert c.execute(select(Cta.snoozed_until).where(Cta.id == first)).scalar() == until


def test_bulk_snooze_of_two_and_bulk_done_refusing_one_that_does_not_fit(
    client: TestClient, engine: Engine
) -> None:
    renewal = add_cta(engine, "a1", ANN, reason="renewal_at_risk")
    advocacy = add_cta(engine, "a1", ANN, reason="advocacy_ask")
    risk = add_cta(engine, "a1", ANN, reason="risk_usage")
    sign_in(client, ANN)
    page = client.get("/inbox")
    token = page_token(client)
    # The bulk bar offers the outcomes of the listed CTAs (the script narrows them to the selection).
    assert 'value="renewal_confirmed"' in page.text and 'value="advocate_agreed"' in page.text
    until = today() + timedelta(days=4)
    response = client.post(
        "/inbox/bulk",
        data={
            "csrf_token": token,
            "ids": [str(renewal), str(advocacy)],
            "action": "snooze",
            "until": until.isoformat(),
            "reason": "waiting for the budget",
            "next": "/inbox?status=active",
        },
    )
    assert response.status_code == 303 and response.headers["location"] == "/inbox?status=active"
    assert cta_status(engine, renewal)[0] == cta_status(engine, advocacy)[0] == "snoozed"
    assert cta_status(engine, risk)[0] == "open"
    after = client.get("/inbox")
    assert "2 CTAs snoozed." in flash(after.text)
    assert ids_on(after.text) == [risk]
    assert ids_on(client.get("/inbox?status=snoozed").text) == sorted([renewal, advocacy])

    done = client.post(
        "/inbox/bulk",
        data={
            "csrf_token": token,
            "ids": [str(renewal), str(risk)],
            "action": "done",
            "outcome": "churn_confirmed",
        },
        follow_redirects=True,
    )
    # Both reasons allow churn_confirmed: both closed.
    assert "2 CTAs done." in flash(done.text)
    refused = client.post(
        "/inbox/bulk",
        data={"csrf_token": token, "ids": [str(advocacy)], "action": "done", "outcome": "renewal_confirmed"},
        follow_redirects=True,
    )
    assert f"#{advocacy}: unknown outcome 'renewal_confirmed'" in flash(refused.text)
    assert cta_status(engine, advocacy)[0] == "snoozed"
    empty = client.post("/inbox/bulk", data={"csrf_token": token, "action": "start"}, follow_redirects=True)
    assert "Select at least one CTA" in flash(empty.text)


def test_reassign_within_the_team_only(client: TestClient, tt: App, engine: Engine) -> None:
    add_user(tt, "zed@vendor.example", team="apac", name="Zed Far")
    cta = add_cta(engine, "a1", ANN)
    sign_in(client, ANN)
    page = client.get("/inbox")
    assert f'<option value="{BEN}">' in page.text and "zed@vendor.example" not in page.text
    token = page_token(client)
    far = client.post(f"/inbox/ctas/{cta}/assign", data={"csrf_token": token, "to": "zed@vendor.example"})
    assert far.status_code == 403
    assert cta_status(engine, cta)[1] == ANN
    client.post("/inbox/bulk", data={"csrf_token": token, "ids": [str(cta)], "action": "assign", "to": BEN})
    assert cta_status(engine, cta)[1] == BEN
    assert cta not in ids_on(client.get("/inbox").text)


def test_the_queue_is_for_managers_and_assign_to_me_takes_a_cta(
    client: TestClient, tt: App, engine: Engine
) -> None:
    queued = add_cta(engine, "q1", "queue:cs", priority="high")
    bens = add_cta(engine, "b1", BEN)
    sign_in(client, ANN)
    assert client.get("/queue").status_code == 403
    assert '<a href="/queue"' not in client.get("/inbox").text

    sign_in(client, MAY)
    page = client.get("/queue")
    assert page.status_code == 200
    assert ids_on(page.text) == [queued, bens]
    assert "Quiet Inc" in page.text and "Beta Ltd" in page.text
    assert '<a href="/queue" aria-current="page">Queue</a>' in page.text
    token = page_token(client, "/queue")
    taken = client.post(
        f"/inbox/ctas/{queued}/assign", data={"csrf_token": token, "to": MAY, "next": "/queue"}
    )
    assert taken.status_code == 303 and taken.headers["location"] == "/queue"
    assert cta_status(engine, queued)[1] == MAY
    after = client.get("/queue")
    assert "assigned to you" in flash(after.text)
    assert ids_on(after.text) == [bens]
    assert ids_on(client.get("/inbox").text) == [queued]
    # A manager hands a team member's CTA to another member.
    client.post(f"/inbox/ctas/{bens}/assign", data={"csrf_token": token, "to": ANN, "next": "/queue"})
    assert cta_status(engine, bens)[1] == ANN
    assert [(a, actor) for a, actor, _ in history_actions(engine, queued)] == [("assigned", MAY)]


def test_ops_read_everything_and_change_nothing(client: TestClient, engine: Engine) -> None:
    anns = add_cta(engine, "a1", ANN)
    bens = add_cta(engine, "b1", BEN)
    sign_in(client, OPS)
    page = client.get("/inbox")
    assert page.status_code == 200
    assert sorted(ids_on(page.text)) == sorted([anns, bens])
    assert 'name="ids"' not in page.text and 'action="/inbox/bulk"' not in page.text
    assert '<a href="/reports"' in page.text
    assert client.get("/queue").status_code == 403
    token = page_token(client)
    assert client.post(f"/inbox/ctas/{anns}/start", data={"csrf_token": token}).status_code == 403
    assert client.post(f"/inbox/ctas/{anns}/note", data={"csrf_token": token, "note": "x"}).status_code == 403
    client.post("/inbox/bulk", data={"csrf_token": token, "ids": [str(anns)], "action": "start"})
    assert cta_status(engine, anns) == ("open", ANN, None)
    assert history_actions(engine, anns) == []


def test_the_digest_links_lead_to_the_workspace(client: TestClient, tt: App, engine: Engine) -> None:
    cta = add_cta(engine, "a1", ANN, due=today())
    with engine.connect() as c:
        report = digest.collect(c, tt.settings, today())
    (anns,) = [d for d in report.digests if d.assignee == ANN]
    mail = digest.render(tt.renderer, tt.settings, anns)
    links = set(re.findall(re.escape(PUBLIC_URL) + r'(/inbox[^"\s<>]*)', mail.html))
    assert links == {"/inbox", f"/inbox/ctas/{cta}"}
    # Signed out, each asks for a sign-in and comes back to itself.
    for path in sorted(links):
        asked = client.get(path)
        assert asked.status_code == 303 and asked.headers["location"] == f"/login?next={path}"
    landed = sign_in(client, ANN, next_path=f"/inbox/ctas/{cta}")
    assert landed.headers["location"] == f"/inbox/ctas/{cta}"
    inbox = client.get("/inbox")
    assert inbox.status_code == 200 and cta in ids_on(inbox.text)
    assert client.get(f"/inbox/ctas/{cta}").status_code == 200


def test_a_full_inbox_is_one_page_of_rows_in_a_fixed_number_of_queries(
    client: TestClient, engine: Engine
) -> None:
    day = today()
    with engine.begin() as c:
        c.execute(
            Cta.__table__.insert(),
            [
                {
                    "account_id": "a1",
                    "journey": "renewal",
                    "reason": f"renewal_{i}",
                    "title": f"Call {i}",
                    "priority": ("high", "medium", "low")[i % 3],
                    "assignee": ANN,
                    "status": "open",
                    "due_date": day + timedelta(days=i % 20 - 10),
                    "created_as_of": day,
                    "context": {},
                    "why": {},
                    "outcomes": [],
                }
                for i in range(500)
            ],
        )
    sign_in(client, ANN)
    statements: list[str] = []

    def count(*args: Any) -> None:
        if not args[2].startswith(("BEGIN", "COMMIT", "ROLLBACK")):
            statements.append(args[2])

    event.listen(engine, "before_cursor_execute", count)
    try:
        started = time.perf_counter()
        page = client.get("/inbox")
        elapsed = time.perf_counter() - started
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert page.status_code == 200
    assert len(ids_on(page.text)) == 100
    assert "<strong>500</strong> open" in page.text
    assert 'rel="next"' in page.text
    # The session, the rows, the counts, the filter choices, the team: no query per row.
    assert len(statements) <= 6, statements
    print(f"inbox of 500 open CTAs: {elapsed * 1000:.0f} ms through the TestClient")
    second = client.get("/inbox?page=2")
    assert len(ids_on(second.text)) == 100 and set(ids_on(second.text)).isdisjoint(ids_on(page.text))
    assert 'rel="prev"' in second.text
