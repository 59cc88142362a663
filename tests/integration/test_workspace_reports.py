"""`/reports` and techtouch.services.workspace_reports on SQLite and PostgreSQL.

A small, known dataset (inserted rows: enrollments, touches, provider and survey events, CTAs and
their history, users in two teams) with exact counts for every report, for ops and for a manager
(their team only); then the same service over touches a real journey run wrote; then the page and
the CSV downloads through FastAPI's TestClient, signed in through the real form: the header row
and values, formula cells neutralized, the attachment header, 403 for a CSM, 404 and 400."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, insert

from techtouch import bootstrap
from techtouch.adapters.db.models import Contact, Cta, CtaHistory, Enrollment, Event, Touch
from techtouch.domain.access import Actor, Forbidden
from techtouch.domain.catalog import CompiledJourney, load_catalog
from techtouch.services import users, workspace_reports
from techtouch.services.app import App
from techtouch.services.workspace_reports import Period
from tests.integration.journey_base import Base, account, contact, settings_for
from tests.integration.workspace_base import add_account, add_user, client_for, make_app, sign_in

TODAY = date(2026, 11, 20)
WITHIN = Period(date(2026, 10, 1), date(2026, 11, 30))
QUERY = "start=2026-10-01&end=2026-11-30"
OPS = "ops@vendor.example"
MANAGER = "morgan@vendor.example"  # team emea
CSM_A = "avery@vendor.example"  # team emea
CSM_B = "blake@vendor.example"  # team apac

PULSE = """\
id: pulse
name: Pulse
priority: 10
audience: {segments: [tech_touch, high_touch]}
recipients: [admin]
enter_when: "days_since_start >= 0"
goals:
  - {id: renewed, when: "renewal_signed"}
requests:
  - {id: call_me, when: "survey.pulse == 'call'", cta: {title: "Call me", reason: pulse_call}}
milestones:
  - id: ask
    title: Pulse answered
    done_when: "survey.pulse is answered"
    ladder:
      - {id: email, channel: email, template: pulse/ask, sender: csm}
      - {id: email2, channel: email, template: pulse/ask_2, sender: vp_cs, after: 3d}
      - {id: cta, channel: cta, after: 2d, title: "Pulse: no answer", reason: pulse_no_answer}
    branches:
      - {id: unhappy, when: "survey.pulse == 'no'", cta: {title: "Unhappy", reason: pulse_unhappy}}
  - id: thanks
    ladder:
      - {id: email, channel: email, template: pulse/thanks, sender: csm}
"""
# Two templates offer the `pulse` survey; the thank-you offers none.
TEMPLATES = {
    "pulse/ask.email.html": '<a href="{{ survey_url("pulse", "yes") }}">Yes</a>',
    "pulse/ask.email.txt": '{{ survey_url("pulse", "no") }}',
    "pulse/ask_2.email.html": '<a href="{{ survey_url("pulse", "yes") }}">Yes</a>',
    "pulse/thanks.email.html": "Thanks",
}


def at(day: date, hour: int = 9) -> datetime:
    return datetime.combine(day, time(hour), tzinfo=UTC)


@dataclass
class Data:
    app: App
    engine: Engine
    ids: dict[str, int]

    def actor(self, email: str) -> Actor:
        with self.engine.connect() as connection:
            return users.actor_for(connection, email)


def pulse_app(engine: Engine, tmp_path: Path) -> App:
    """The app with the `pulse` journey only and its templates (the shipped ones are not under test)."""
    journeys, templates = tmp_path / "journeys", tmp_path / "templates"
    journeys.mkdir()
    (journeys / "pulse.yaml").write_text(PULSE, encoding="utf-8")
    for name, body in TEMPLATES.items():
        (templates / name).parent.mkdir(parents=True, exist_ok=True)
        (templates / name).write_text(body, encoding="utf-8")
    app = make_app(engine, tmp_path, templates_dir=templates)
    return bootstrap.build(app.settings, engine=engine, catalog=load_catalog([journeys]))


def seed_data(engine: Engine, tmp_path: Path) -> Data:
    app = pulse_app(engine, tmp_path)
    add_user(app, OPS, role="ops", team=None)
    add_user(app, MANAGER, role="manager", team="emea", name="Morgan Lee")
    add_user(app, CSM_A, role="csm", team="emea", name="Avery Stone")
    add_user(app, CSM_B, role="csm", team="apac", name="Blake Fox")
    for account_id, csm in [("a1", CSM_A), ("a2", CSM_A), ("a3", CSM_A), ("a4", CSM_A), ("b1", CSM_B),
                            ("b2", CSM_B), ("q1", None)]:  # fmt: skip
        add_account(engine, account_id, csm)
    contacts = ["a1", "a1b", "a2", "a3", "a4", "b1", "b2", "q1"]
    with engine.begin() as c:
        c.execute(insert(Contact), [contact(f"c-{k}", k[:2]) for k in contacts])
    ids: dict[str, int] = {}

    def enroll(key: str, account_id: str, journey: str, status: str, milestone: str, entered: date,
               exited: date | None = None, reason: str | None = None) -> None:  # fmt: skip
        with engine.begin() as c:
            ids[key] = c.execute(
                insert(Enrollment)
                .values(
                    account_id=account_id,
                    journey=journey,
                    cycle=1,
                    status=status,
                    milestone=milestone,
                    phase="active",
                    step=1,
                    entered_as_of=entered,
                    exited_as_of=exited,
                    exit_reason=reason,
                    entry={},
                )
                .returning(Enrollment.id)
            ).scalar_one()

    enrolled = date(2026, 10, 5)
    enroll("a1", "a1", "pulse", "active", "thanks", enrolled)
    enroll("a2", "a2", "pulse", "active", "ask", enrolled)
    enroll("a3", "a3", "pulse", "completed", "ask", enrolled, date(2026, 10, 9), "renewed")
    enroll("b1", "b1", "pulse", "exited", "ask", enrolled, date(2026, 11, 5), "timeout")
    enroll("q1", "q1", "pulse", "active", "ask", enrolled)
    enroll("b2", "b2", "pulse", "active", "ask", date(2026, 10, 10))  # no touch yet
    enroll("a4", "a4", "pulse", "active", "ask", date(2026, 9, 1))  # entered before the range

    def touch(key: str, enrollment: str, milestone: str, rung: str, channel: str, status: str,
              contact_id: str | None, template: str | None = None, delivery: str | None = None,
              as_of: date = date(2026, 10, 6)) -> None:  # fmt: skip
        with engine.begin() as c:
            c.execute(
                insert(Touch).values(
                    key=key,
                    enrollment_id=ids[enrollment],
                    account_id=enrollment[:2],
                    contact_id=contact_id,
                    journey="pulse",
                    milestone=milestone,
                    rung=rung,
                    channel=channel,
                    template=template,
                    status=status,
                    delivery_status=delivery,
                    as_of=as_of,
                )
            )

    touch("k-a1-ask", "a1", "ask", "email", "email", "opened", "c-a1", "pulse/ask")
    touch("k-a1b-ask", "a1", "ask", "email", "email", "sent", "c-a1b", "pulse/ask")
    touch("k-a1-thanks", "a1", "thanks", "email", "email", "sent", "c-a1", "pulse/thanks", "delivered")
    touch("k-a2-ask", "a2", "ask", "email", "email", "sent", "c-a2", "pulse/ask", "clicked")
    touch("k-a2-ask2", "a2", "ask", "email2", "email", "sent", "c-a2", "pulse/ask_2", as_of=date(2026, 10, 9))
    touch("k-a2-cta", "a2", "ask", "cta", "cta", "created", None, as_of=date(2026, 10, 11))
    touch("k-a3-ask", "a3", "ask", "email", "email", "skipped", "c-a3", "pulse/ask")
    touch("k-b1-ask", "b1", "ask", "email", "email", "sent", "c-b1", "pulse/ask")
    touch("k-b1-unhappy", "b1", "ask", "branch_unhappy", "cta", "created", None, as_of=date(2026, 10, 10))
    touch("k-q1-ask", "q1", "ask", "email", "email", "pending", "c-q1", "pulse/ask")
    touch("k-a1-call", "a1", "request", "call_me", "cta", "created", None, as_of=date(2026, 10, 12))
    touch("k-a4-ask", "a4", "ask", "email", "email", "sent", "c-a4", "pulse/ask", as_of=date(2026, 9, 1))

    events: list[dict[str, Any]] = []

    def event(account_id: str, contact_id: str | None, when: datetime, kind: str, value: str) -> None:
        events.append(
            {"key": hashlib.sha256(f"{account_id}|{contact_id}|{when}|{kind}|{value}".encode()).hexdigest(),
             "account_id": account_id,
             "contact_id": contact_id, "occurred_at": when, "type": kind, "value": value, "source": "test"}
        )  # fmt: skip

    # Provider feedback naming a touch: delivered (a2's reminder), a click (b1, also opened+delivered).
    event("a2", "c-a2", at(date(2026, 10, 9)), "email_delivered", "k-a2-ask2")
    event("b1", "c-b1", at(date(2026, 10, 7)), "email_clicked", "k-b1-ask")
    # Answers to `pulse` (a3 was never asked; a2's comes after the range; `pulsex` is another survey).
    event("a1", "c-a1", at(date(2026, 10, 8)), "survey", "pulse:yes")
    event("a1", "c-a1b", at(date(2026, 10, 10)), "survey", "pulse:yes")
    event("b1", "c-b1", at(date(2026, 10, 9)), "survey", "pulse:no")
    event("a3", "c-a3", at(date(2026, 10, 9)), "survey", "pulse:yes")
    event("a2", "c-a2", at(date(2026, 12, 5)), "survey", "pulse:no")
    event("a2", "c-a2", at(date(2026, 10, 9)), "survey", "pulsex:1")
    # NPS: c-a1 answered 10 then 3 (the latest counts); 6 late on the range's last day counts;
    # a2's 8 is before the range; q1's answer has no contact.
    event("a1", "c-a1", at(date(2026, 10, 2)), "survey", "nps:10")
    event("a1", "c-a1", at(date(2026, 10, 20)), "survey", "nps:3")
    event("a1", "c-a1b", at(date(2026, 10, 21)), "survey", "nps:9")
    event("b1", "c-b1", at(date(2026, 10, 22)), "survey", "nps:7")
    event("q1", None, at(date(2026, 10, 23)), "survey", "nps:0")
    event("a2", "c-a2", at(date(2026, 9, 1)), "survey", "nps:8")
    event("a2", "c-a2", at(date(2026, 11, 30), 23), "survey", "nps:6")
    with engine.begin() as c:
        c.execute(insert(Event), events)

    # Risk enrollments: 2 recovered, 1 timeout, 1 finished in the range; one before it, one active.
    enroll("r-a1", "a1", "risk", "completed", "recover", date(2026, 9, 20), date(2026, 10, 15), "recovered")
    enroll("r-a2", "a2", "risk", "completed", "recover", date(2026, 9, 20), date(2026, 10, 16), "recovered")
    enroll("r-b1", "b1", "risk", "exited", "recover", date(2026, 9, 20), date(2026, 10, 20), "timeout")
    enroll("r-a3", "a3", "risk", "completed", "recover", date(2026, 9, 20), date(2026, 10, 21), "finished")
    enroll("r-a4", "a4", "risk", "completed", "recover", date(2026, 8, 1), date(2026, 9, 15), "recovered")
    enroll("r-b2", "b2", "risk", "active", "report", date(2026, 10, 20))

    def cta(key: str, account_id: str, assignee: str, created: date, status: str, *, due: date,
            outcome: str | None = None, first_action_hours: float | None = None) -> None:  # fmt: skip
        opened_at = at(created, 8)
        first = None if first_action_hours is None else opened_at + timedelta(hours=first_action_hours)
        with engine.begin() as c:
            ids[key] = c.execute(
                insert(Cta)
                .values(
                    account_id=account_id,
                    journey="pulse",
                    reason=f"reason_{key}",
                    title=key,
                    priority="medium",
                    assignee=assignee,
                    status=status,
                    due_date=due,
                    created_as_of=created,
                    context={},
                    why={},
                    outcomes=[],
                    outcome=outcome,
                    first_action_at=first,
                    created_at=opened_at,
                )
                .returning(Cta.id)
            ).scalar_one()

    # Week 2026-W41 (Monday 5 October) and 2026-W42 (Monday 12 October).
    cta("k1", "a1", CSM_A, date(2026, 10, 6), "done", due=date(2026, 10, 8), outcome="reached_resolved",
        first_action_hours=2)  # fmt: skip
    cta("k2", "a2", CSM_A, date(2026, 10, 7), "open", due=date(2026, 11, 10))  # overdue on TODAY
    cta("k3", "a3", CSM_A, date(2026, 10, 8), "in_progress", due=date(2026, 12, 1), first_action_hours=4)
    cta("k4", "a4", CSM_A, date(2026, 10, 11), "done", due=date(2026, 10, 13), outcome="no_answer",
        first_action_hours=9)  # fmt: skip
    cta("k5", "b1", CSM_B, date(2026, 10, 13), "snoozed", due=date(2026, 11, 1), first_action_hours=1)
    cta("k6", "b2", CSM_B, date(2026, 10, 14), "cancelled", due=date(2026, 10, 20), first_action_hours=3)
    cta("k7", "q1", "queue:cs", date(2026, 10, 15), "open", due=date(2026, 11, 25))
    cta("k8", "a1", CSM_A, date(2026, 9, 20), "open", due=date(2026, 9, 25))  # before the range

    def history(key: str, day: date, action: str, actor: str = "techtouch") -> dict[str, Any]:
        return {
            "cta_id": ids[key],
            "at": at(day),
            "as_of": day,
            "actor": actor,
            "action": action,
            "detail": {},
        }

    with engine.begin() as c:
        c.execute(
            insert(CtaHistory),
            [
                history("k2", date(2026, 10, 8), "escalated"),  # joined in W41
                history("k2", date(2026, 10, 13), "escalated"),  # joined in W42
                history("k3", date(2026, 10, 8), "started", CSM_A),  # not an escalation
                history("k8", date(2026, 9, 21), "escalated"),  # before the range
            ],
        )
    return Data(app, engine, ids)


@pytest.fixture(autouse=True)
def no_cached_reports() -> None:
    """Each test computes its reports (the cache is per process; databases of tests may look alike)."""
    workspace_reports.clear_cache()


@pytest.fixture
def data(engine: Engine, tmp_path: Path) -> Data:
    return seed_data(engine, tmp_path)


def build(data: Data, email: str) -> workspace_reports.WorkspaceReports:
    return workspace_reports.build(data.app, data.actor(email), WITHIN, TODAY)


def row(found: workspace_reports.WorkspaceReports, milestone: str, rung: str | None) -> dict[str, int]:
    [funnel] = found.funnels
    [match] = [r for r in funnel.rows if r.milestone == milestone and r.rung == rung]
    return match.measures() | {"messages": match.messages}


def counts(entered: int, sent: int, delivered: int, opened: int, clicked: int, done: int, escalated: int,
           messages: int) -> dict[str, int]:  # fmt: skip
    return {"entered": entered, "sent": sent, "delivered": delivered, "opened": opened, "clicked": clicked,
            "done": done, "escalated": escalated, "messages": messages}  # fmt: skip


# --- the service ----------------------------------------------------------------------------------


def test_funnel_counts_enrollments_per_milestone_and_rung(data: Data) -> None:
    found = build(data, OPS)
    [funnel] = found.funnels
    assert (funnel.journey, funnel.name) == ("pulse", "Pulse")
    assert (funnel.enrolled, funnel.active, funnel.completed, funnel.exited) == (6, 4, 1, 1)
    # In the order a customer meets them: the milestone, its ladder, its branch; zeros included.
    assert [(r.milestone, r.rung, r.kind) for r in funnel.rows] == [
        ("ask", None, "milestone"),
        ("ask", "email", "rung"),
        ("ask", "email2", "rung"),
        ("ask", "cta", "rung"),
        ("ask", "branch_unhappy", "branch"),
        ("thanks", None, "milestone"),
        ("thanks", "email", "rung"),
        ("request", None, "milestone"),
        ("request", "call_me", "request"),
    ]
    # a1 opened (status), a2 clicked (verdict), b1 clicked (event); a3 skipped, q1 pending;
    # a1 moved on and a3 completed at `ask`; a2 got the ladder's CTA, b1 the branch's.
    assert row(found, "ask", None) == counts(5, 3, 3, 3, 2, 2, 2, messages=5)
    assert row(found, "ask", "email") == counts(5, 3, 3, 3, 2, 2, 0, messages=4)
    assert row(found, "ask", "email2") == counts(1, 1, 1, 0, 0, 0, 0, messages=1)  # delivered: an event
    assert row(found, "ask", "cta") == counts(1, 0, 0, 0, 0, 0, 1, messages=0)
    assert row(found, "ask", "branch_unhappy") == counts(1, 0, 0, 0, 0, 0, 1, messages=0)
    assert row(found, "thanks", None) == counts(1, 1, 1, 0, 0, 0, 0, messages=1)
    assert row(found, "thanks", "email") == counts(1, 1, 1, 0, 0, 0, 0, messages=1)
    # a1 asked for a person: a CTA, whatever the milestone; a request is never "done".
    assert row(found, "request", "call_me") == counts(1, 0, 0, 0, 0, 0, 1, messages=0)
    assert funnel.rows[-1].milestone_title == "Customer asked for a person"


def test_answer_rates_nps_and_risk_recovery(data: Data) -> None:
    found = build(data, OPS)
    # Asked: the enrollments of a1, a2, b1 (a3's was skipped, q1's pending, a4's entered before the
    # range); of them a1 and b1 answered since (a2 after TODAY); answers in the range: a1 twice, b1,
    # a3; `pulsex` is not `pulse`.
    assert [(r.survey, r.asked, r.answered, r.answers) for r in found.answer_rates] == [("pulse", 3, 2, 4)]
    assert found.answer_rates[0].rate == pytest.approx(2 / 3)
    # Latest per contact in the range: 3 (not 10), 9, 7, 0, 6.
    assert found.nps.counts == {0: 1, 1: 0, 2: 0, 3: 1, 4: 0, 5: 0, 6: 1, 7: 1, 8: 0, 9: 1, 10: 0}
    assert (found.nps.responses, found.nps.promoters, found.nps.passives, found.nps.detractors) == (
        5,
        1,
        1,
        3,
    )
    assert found.nps.score == -40.0
    assert found.risk.by_reason == {"recovered": 2, "finished": 1, "timeout": 1}
    assert (found.risk.ended, found.risk.recovered, found.risk.rate) == (4, 2, 0.5)


def test_cta_workload_per_assignee_and_week(data: Data) -> None:
    rows = [
        (r.week, r.assignee, r.name, r.opened, r.open_now, r.overdue_now, r.closed, r.acted, r.joined,
         r.median_first_action_hours, r.outcomes)
        for r in build(data, OPS).workload.rows
    ]  # fmt: skip
    assert rows == [
        # k5 snoozed and overdue, k6 cancelled: first actions after 1 h and 3 h.
        ("2026-W42", CSM_B, "Blake Fox", 2, 1, 1, 1, 2, 0, 2.0, {}),
        ("2026-W42", "queue:cs", "queue:cs", 1, 1, 0, 0, 0, 0, None, {}),
        # An escalation joined k2 that week; nothing was opened.
        ("2026-W42", CSM_A, "Avery Stone", 0, 0, 0, 0, 0, 1, None, {}),
        # k1..k4: k2 open and overdue, k3 in progress; first actions 2, 4 and 9 h.
        ("2026-W41", CSM_A, "Avery Stone", 4, 2, 1, 2, 3, 1, 4.0, {"no_answer": 1, "reached_resolved": 1}),
    ]
    assert build(data, OPS).workload.outcomes == ("no_answer", "reached_resolved")


def test_a_manager_sees_their_team_only(data: Data) -> None:
    found = build(data, MANAGER)
    assert found.scope.label == "team emea" and found.scope.members == (CSM_A, MANAGER)
    [funnel] = found.funnels
    assert (funnel.enrolled, funnel.active, funnel.completed, funnel.exited) == (3, 2, 1, 0)
    assert row(found, "ask", None) == counts(3, 2, 2, 2, 1, 2, 1, messages=4)
    assert [(r.survey, r.asked, r.answered, r.answers) for r in found.answer_rates] == [("pulse", 2, 1, 3)]
    assert (found.nps.responses, found.nps.score) == (3, -33.3)  # 3, 9, 6
    assert found.risk.by_reason == {"recovered": 2, "finished": 1}
    assert [(r.week, r.assignee, r.opened) for r in found.workload.rows] == [
        ("2026-W42", CSM_A, 0),
        ("2026-W41", CSM_A, 4),
    ]


def test_computed_reports_are_kept_a_few_minutes_per_scope(data: Data, engine: Engine) -> None:
    first = build(data, OPS)
    late = {"key": "late-nps", "account_id": "b2", "contact_id": "c-b2", "type": "survey", "value": "nps:10"}
    with engine.begin() as c:  # a new answer arrives
        c.execute(insert(Event).values(**late, occurred_at=at(date(2026, 10, 30)), source="test"))
    assert build(data, OPS) is first  # the same scope and range: the numbers computed a moment ago
    csv_rows = workspace_reports.table(data.app, data.actor(OPS), "nps", WITHIN, TODAY).rows
    assert csv_rows[10] == (10, "promoter", 0)  # the CSV of the page's range: the page's numbers
    assert build(data, MANAGER) is not first  # another scope
    fresh = workspace_reports.build(data.app, data.actor(OPS), WITHIN, TODAY, cached=False)
    assert (fresh.nps.responses, first.nps.responses) == (6, 5)
    assert build(data, OPS) is fresh  # kept in its place
    with pytest.raises(Forbidden):  # access is checked before the cache
        build(data, CSM_A)


def test_an_imported_address_in_another_case_is_still_the_team_s(data: Data, engine: Engine) -> None:
    add_account(engine, "a5", "Avery@vendor.example")  # an import keeps the local part's case
    with engine.begin() as c:
        c.execute(insert(Contact).values(**contact("c-a5", "a5")))
        answer = {
            "key": "a5-nps",
            "account_id": "a5",
            "contact_id": "c-a5",
            "type": "survey",
            "value": "nps:10",
        }
        c.execute(insert(Event).values(**answer, occurred_at=at(date(2026, 10, 25)), source="test"))
    found = build(data, MANAGER)
    assert found.scope.people == ("Avery@vendor.example", CSM_A, MANAGER)
    assert (found.nps.responses, found.nps.promoters, found.nps.score) == (4, 2, 0.0)  # 3, 9, 6 and 10


def test_a_csm_may_not_see_reports(data: Data) -> None:
    with pytest.raises(Forbidden):
        build(data, CSM_A)
    with pytest.raises(Forbidden):
        workspace_reports.table(data.app, data.actor(CSM_B), "nps", WITHIN, TODAY)


def test_a_range_outside_the_data_is_empty_and_bad_ranges_are_refused(data: Data) -> None:
    quiet = workspace_reports.build(
        data.app, data.actor(OPS), Period(date(2025, 1, 1), date(2025, 1, 31)), TODAY
    )
    assert quiet.funnels[0].enrolled == 0 and all(r.entered == 0 for r in quiet.funnels[0].rows)
    assert quiet.answer_rates[0].asked == 0 and quiet.nps.responses == 0 and quiet.nps.score is None
    assert quiet.risk.ended == 0 and quiet.risk.rate is None and quiet.workload.rows == ()
    default = workspace_reports.period(None, None, TODAY)
    assert (default.start, default.end, default.days) == (date(2026, 8, 23), TODAY, 90)
    with pytest.raises(workspace_reports.ReportError, match="after the end"):
        workspace_reports.period(date(2026, 11, 2), date(2026, 11, 1), TODAY)
    with pytest.raises(workspace_reports.ReportError, match="start: a date like"):
        workspace_reports.parse_day("yesterday", "start")
    with pytest.raises(workspace_reports.UnknownReport):
        workspace_reports.table(data.app, data.actor(OPS), "funnel-nope", WITHIN, TODAY)


def test_the_funnel_of_a_real_run(db_url: str, tmp_path: Path) -> None:
    """Touches written by a run of the shipped renewal journey: one account reached by email, one
    that no channel reaches (its ladder goes straight to the CTA)."""
    from techtouch.adapters.db import migrate
    from techtouch.adapters.db.engine import make_engine

    engine = make_engine(db_url)
    migrate.upgrade(engine)
    try:
        base = Base(engine, settings_for(engine, tmp_path / "outbox"))
        day = date(2027, 1, 4)
        renewal = {"renewal_date": day + timedelta(days=100)}
        base.add(
            [account("r1", **renewal), account("r2", **renewal)],
            [contact("c1", "r1"), contact("c2", "r2", email_consent=False, phone=None)],
        )
        base.run(day, "renewal")
        journey: CompiledJourney = base.catalog["renewal"]
        with engine.connect() as connection:
            scope = workspace_reports.Scope("all teams")
            within = Period(day - timedelta(days=1), day)
            [funnel] = workspace_reports.funnels(connection, [journey], scope, within)
            workload = workspace_reports.cta_workload(connection, scope, within, day)
        found = {(r.milestone, r.rung): r for r in funnel.rows}
        assert funnel.enrolled == 2
        assert (found[("announce", None)].entered, found[("announce", None)].sent) == (2, 1)
        assert found[("announce", None)].escalated == 1
        assert (found[("announce", "email")].sent, found[("announce", "email")].messages) == (1, 1)
        assert found[("announce", "cta")].escalated == 1
        assert [(r.assignee, r.opened, r.open_now) for r in workload.rows] == [
            ("casey.morgan@vendor.example", 1, 1)
        ]
    finally:
        engine.dispose()


# --- the page and the CSV -------------------------------------------------------------------------


def client_as(data: Data, email: str) -> TestClient:
    client = client_for(data.app)
    signed = sign_in(client, email)
    assert signed.status_code == 303, signed.text
    return client


def read_csv(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))


def test_the_reports_page_shows_charts_tables_and_csv_links(data: Data) -> None:
    page = client_as(data, OPS).get(f"/reports?{QUERY}")
    assert page.status_code == 200, page.text
    html = page.text
    assert "<h1>Reports</h1>" in html and "all teams" in html
    assert 'value="2026-10-01"' in html and 'value="2026-11-30"' in html
    # A chart per funnel, answer rates, NPS and workload: images of SVG with a text alternative.
    assert html.count('src="data:image/svg+xml;base64,') == 4
    assert 'alt="Bar chart: Pulse: funnel per milestone. entered: ask 5, thanks 1, requests 1;' in html
    assert "NPS distribution (NPS -40.0)" in html
    for name in ("funnel-pulse", "answer-rates", "nps", "cta-workload", "risk-recovery"):
        assert f'href="/reports/{name}.csv?{QUERY.replace("&", "&amp;")}"' in html
    # The tables: numbers an assistive technology (and a test) can read.
    assert "<caption>Pulse: funnel per milestone and rung</caption>" in html
    assert '<th scope="row"><code>pulse</code></th><td class="num">3</td>' in html
    assert "Avery Stone" in html and "Reached resolved 1" in html
    assert "<script" not in html.split("<main", 1)[1].split("</main>")[0]
    assert page.headers["content-security-policy"].startswith("default-src 'none'")


def test_csv_downloads_have_a_header_values_and_an_attachment(data: Data) -> None:
    client = client_as(data, MANAGER)
    response = client.get(f"/reports/funnel-pulse.csv?{QUERY}")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert response.headers["content-disposition"] == (
        'attachment; filename="funnel-pulse_2026-10-01_2026-11-30.csv"'
    )
    rows = read_csv(response.text)
    assert rows[0][:6] == ["journey", "milestone", "milestone_title", "rung", "kind", "channel"]
    assert rows[0][6:] == [
        "entered",
        "sent",
        "delivered",
        "opened",
        "clicked",
        "done",
        "escalated",
        "messages",
    ]
    assert rows[1] == [
        "pulse",
        "ask",
        "Pulse answered",
        "",
        "milestone",
        "",
        "3",
        "2",
        "2",
        "2",
        "1",
        "2",
        "1",
        "4",
    ]
    nps = read_csv(client.get(f"/reports/nps.csv?{QUERY}").text)
    assert nps[0] == ["score", "group", "responses"] and nps[4] == ["3", "detractor", "1"] and len(nps) == 12
    workload = read_csv(client.get(f"/reports/cta-workload.csv?{QUERY}").text)
    assert workload[0][:5] == ["week", "week_start", "assignee", "name", "opened"]
    assert workload[0][-2:] == ["outcome_no_answer", "outcome_reached_resolved"]
    assert [r[:5] for r in workload[1:]] == [
        ["2026-W42", "2026-10-12", CSM_A, "Avery Stone", "0"],
        ["2026-W41", "2026-10-05", CSM_A, "Avery Stone", "4"],
    ]
    answers = read_csv(client.get(f"/reports/answer-rates.csv?{QUERY}").text)
    assert answers == [
        ["survey", "asked", "answered", "answer_rate", "answers"],
        ["pulse", "2", "1", "0.5", "3"],
    ]


def test_csv_cells_that_a_spreadsheet_would_run_are_neutralized(data: Data, engine: Engine) -> None:
    with engine.begin() as c:
        for i, reason in enumerate(
            ['=HYPERLINK("http://evil.example","x")', "+1", "-2", "@SUM(A1)", "plain"]
        ):
            c.execute(
                insert(Enrollment).values(
                    account_id="q1",
                    journey="risk",
                    cycle=10 + i,
                    status="exited",
                    milestone="report",
                    phase="active",
                    step=0,
                    entered_as_of=date(2026, 10, 1),
                    exited_as_of=date(2026, 10, 2),
                    exit_reason=reason,
                    entry={},
                )
            )
    rows = read_csv(client_as(data, OPS).get(f"/reports/risk-recovery.csv?{QUERY}").text)
    reasons = {r[0] for r in rows[1:]}
    assert {'\'=HYPERLINK("http://evil.example","x")', "'+1", "'-2", "'@SUM(A1)", "plain"} <= reasons
    assert "recovered" in reasons  # untouched
    assert rows[0] == ["exit_reason", "enrollments", "share"]


def test_a_csm_gets_403_and_bad_requests_get_clear_answers(data: Data) -> None:
    csm = client_as(data, CSM_A)
    assert csm.get("/reports").status_code == 403
    assert csm.get(f"/reports/nps.csv?{QUERY}").status_code == 403
    ops = client_as(data, OPS)
    assert ops.get("/reports/passwords.csv").status_code == 404
    bad = ops.get("/reports/nps.csv?start=2026-13-01")
    assert bad.status_code == 400 and "start: a date like" in bad.text
    page = ops.get("/reports?start=2026-11-02&end=2026-11-01")
    assert page.status_code == 400 and "is after the end" in page.text and 'aria-invalid="true"' in page.text
    anonymous = client_for(data.app).get("/reports")
    assert anonymous.status_code == 303 and anonymous.headers["location"].startswith("/login")


@pytest.mark.slow
def test_the_workspace_benchmark_prints_its_table_and_writes_its_json(tmp_path: Path) -> None:
    """`make bench-workspace` at a tiny scale, so that its code cannot rot. No speed is asserted:
    the goals are in its table, never in a timed test."""
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, str(root / "benchmarks" / "workspace.py"), "--accounts", "400", "--requests", "2",
         "--results", str(tmp_path)],
        cwd=root, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    assert "history: synthetic" in done.stdout and "/inbox, CSM with 500 open CTAs" in done.stdout
    document = json.loads((tmp_path / "workspace-400-sqlite.json").read_text(encoding="utf-8"))
    assert document["accounts"] == 400 and document["db"] == "sqlite"
    assert document["rows"]["touches"] > 0 and document["rows"]["ctas"] >= 500
    hows = {(m["name"], m["how"]) for m in document["measurements"]}
    assert ("CTA page", "TestClient (whole request)") in hows
    assert all(m["median_ms"] > 0 for m in document["measurements"])
    assert all(m["samples"] == 2 for m in document["measurements"] if m["goal_ms"] is not None)
    assert ("reports rollup refresh", "first: the whole history") in hows
