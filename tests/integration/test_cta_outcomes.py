"""Outcomes and customer requests steer the journeys (issue 12, points 2 to 5), on SQLite and PostgreSQL.

What a CSM records on a CTA changes the next run: a renewal-at-risk CTA closed `churn_confirmed`
ends the renewal journey, `renewal_confirmed` goes on to the reminder, a risk call closed
`reached_resolved` ends the risk journey. A run closes a CTA whose cause went away, adds a new
escalation to the CTA already open (never a silent duplicate), reopens a snoozed CTA on its date,
and says why each CTA fired. Answers that ask for a person raise a CTA once.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from techtouch import bootstrap
from techtouch.adapters.db.bulk import insert_rows, upsert_rows
from techtouch.adapters.db.models import Cta, CtaHistory, Enrollment, Event, Touch, UsageDaily
from techtouch.domain.access import Actor
from techtouch.services import ctas, users
from techtouch.services.app import App
from tests.integration.journey_base import Base, account, contact, settings_for

D0 = date(2027, 1, 4)  # a Monday
CSM = "casey.morgan@vendor.example"


@pytest.fixture
def base(engine: Engine, tmp_path: Path) -> Base:
    return Base(engine, settings_for(engine, tmp_path / "outbox"))


@pytest.fixture
def app(base: Base) -> App:
    return bootstrap.build(base.settings, engine=base.engine)


@pytest.fixture
def casey(app: App) -> Actor:
    users.add_user(app, CSM, name="Casey Morgan", role="csm", password="correct horse battery")
    with app.engine.connect() as connection:
        return users.actor_for(connection, CSM)


def day(n: int) -> date:
    return D0 + timedelta(days=n)


def answer(base: Base, n: int, survey: str, value: str, comment: str | None = None) -> None:
    """An answer by contact ca1 that the run of day `n` sees (it came the evening before)."""
    when = datetime.combine(day(n - 1), time(18, 0), tzinfo=UTC)
    rows = [{"type": "survey", "value": f"{survey}:{value}", "detail": None, "at": when}]
    if comment:
        rows.append(
            {
                "type": "survey_comment",
                "value": f"{survey}:{value}",
                "detail": comment,
                "at": when + timedelta(minutes=1),
            }
        )
    with base.engine.begin() as c:
        upsert_rows(
            c,
            Event.__table__,
            [
                {
                    "key": f"{survey}-{value}-{n}-{r['type']}",
                    "account_id": "a1",
                    "contact_id": "ca1",
                    "occurred_at": r["at"],
                    "type": r["type"],
                    "value": r["value"],
                    "source": "test",
                    "detail": r["detail"],
                }
                for r in rows
            ],
            key=("key",),
            update=False,
        )


def all_ctas(engine: Engine) -> list[Cta]:
    with engine.connect() as c:
        return list(c.execute(select(Cta).order_by(Cta.id)).all())  # type: ignore[arg-type]


def cta_of(engine: Engine, reason: str) -> Cta:
    found = [c for c in all_ctas(engine) if c.reason == reason]
    assert len(found) == 1, [(c.reason, c.status) for c in all_ctas(engine)]
    return found[0]


def actions(engine: Engine, cta_id: int) -> list[str]:
    with engine.connect() as c:
        return list(
            c.execute(
                select(CtaHistory.action).where(CtaHistory.cta_id == cta_id).order_by(CtaHistory.id)
            ).scalars()
        )


def enrollment(engine: Engine, journey: str) -> Enrollment:
    with engine.connect() as c:
        return c.execute(  # type: ignore[return-value]
            select(Enrollment).where(Enrollment.journey == journey).order_by(Enrollment.cycle.desc())
        ).first()


def renewal_at_risk(base: Base, app: App, casey: Actor) -> Cta:
    """An account 100 days from renewal that answers `not_likely` on day 1: a renewal_at_risk CTA."""
    base.add([account("a1", renewal_date=day(100))], [contact("ca1", "a1")])
    base.run(day(0), "renewal")
    answer(base, 1, "renewal", "not_likely", comment="Budget cuts next year")
    base.run(day(1), "renewal")
    return cta_of(base.engine, "renewal_at_risk")


def test_the_cta_says_why_it_fired(base: Base, app: App, casey: Actor) -> None:
    cta = renewal_at_risk(base, app, casey)
    why = cta.why
    assert why["journey"] == "renewal" and why["milestone"] == "announce" and why["kind"] == "branch"
    assert why["branch"] == "at_risk" and why["rung"] is None
    assert why["condition"] == "survey.renewal in ['unsure', 'not_likely']"
    assert why["values"] == {"survey.renewal": "not_likely"}
    assert why["answer"]["contact_id"] == "ca1" and why["answer"]["contact_name"] == "Ada ca1"
    assert why["answer"]["value"] == "not_likely" and why["answer"]["comment"] == "Budget cuts next year"
    assert cta.outcomes == []  # the reason's defaults apply: renewal_confirmed, churn_confirmed, ...
    record = ctas.get(base.engine.connect(), cta.id, casey)
    assert {"renewal_confirmed", "churn_confirmed", "no_answer"} <= set(record.outcomes)
    assert actions(base.engine, cta.id) == ["created"]


def test_churn_confirmed_ends_the_renewal_journey(base: Base, app: App, casey: Actor) -> None:
    cta = renewal_at_risk(base, app, casey)
    base.run(day(2), "renewal")
    assert enrollment(base.engine, "renewal").status == "active"  # waiting on the CTA
    ctas.complete(app, cta.id, casey, "churn_confirmed", "Moving to a competitor", today=day(3))
    base.run(day(4), "renewal")
    ended = enrollment(base.engine, "renewal")
    assert (ended.status, ended.exit_reason) == ("completed", "at_risk_call_branch")
    for n in range(5, 50, 5):  # days_to_renewal reaches 60 on day 40: no reminder for a churned account
        base.run(day(n), "renewal")
    with base.engine.connect() as c:
        milestones = set(c.execute(select(Touch.milestone).where(Touch.journey == "renewal")).scalars())
    assert "reminder" not in milestones


def test_renewal_confirmed_goes_on_to_the_reminder(base: Base, app: App, casey: Actor) -> None:
    cta = renewal_at_risk(base, app, casey)
    ctas.complete(app, cta.id, casey, "renewal_confirmed", today=day(2))
    base.run(day(3), "renewal")
    assert enrollment(base.engine, "renewal").milestone == "reminder"
    base.run(day(40), "renewal")  # 60 days before renewal
    with base.engine.connect() as c:
        reminder = c.execute(select(Touch.channel).where(Touch.milestone == "reminder")).scalars().all()
    assert reminder == ["email"]


def test_an_escalation_joins_the_open_cta_and_a_new_one_follows_a_closed_one(
    base: Base, app: App, casey: Actor
) -> None:
    cta = renewal_at_risk(base, app, casey)
    for n in range(2, 10):  # the at-risk call is still open a week later: the overdue rung fires
        base.run(day(n), "renewal")
    assert len(all_ctas(base.engine)) == 1  # joined, not a second CTA
    history = actions(base.engine, cta.id)
    assert history == ["created", "escalated"]
    with base.engine.connect() as c:
        touch = c.execute(select(Touch.status).where(Touch.rung == "overdue")).scalar()
        detail = c.execute(
            select(CtaHistory.detail).where(CtaHistory.cta_id == cta.id, CtaHistory.action == "escalated")
        ).scalar()
    assert touch == "deduplicated"
    assert detail["priority"] == {"from": "high", "to": "high"} and detail["why"]["kind"] == "rung"


def test_a_cause_that_went_away_closes_the_cta(base: Base, app: App, casey: Actor) -> None:
    cta = renewal_at_risk(base, app, casey)
    base.event("a1", "renewal_signed", None, day(2))
    base.run(day(3), "renewal")
    closed = cta_of(base.engine, "renewal_at_risk")
    assert (closed.status, closed.outcome) == ("done", "resolved_by_customer")
    assert "goal 'signed'" in closed.note and closed.closed_as_of == day(3)
    assert actions(base.engine, cta.id) == ["created", "auto_closed"]


def test_a_ladder_cta_closes_when_its_milestone_gets_done(base: Base, casey: Actor) -> None:
    base.add([account("a1", start_date=D0)], [contact("ca1", "a1")])
    for n in range(0, 3):  # welcome on day 0, not clicked: the CTA rung on day 2
        base.run(day(n), "onboarding")
    cta = cta_of(base.engine, "onboarding_no_welcome_response")
    assert (cta.why["kind"], cta.why["rung"], cta.why["condition"]) == ("rung", "cta", "clicked")
    assert cta.why["values"] == {"clicked": False}
    with base.engine.begin() as c:  # the customer clicks the welcome email at last
        key = c.execute(
            select(Touch.key).where(Touch.milestone == "welcome", Touch.channel == "email")
        ).scalar()
        c.execute(Touch.__table__.update().where(Touch.key == key).values(status="clicked"))
    base.run(day(3), "onboarding")
    assert cta_of(base.engine, "onboarding_no_welcome_response").outcome == "resolved_by_customer"


def test_a_request_raises_one_cta_with_the_answer_and_is_never_auto_closed(base: Base, casey: Actor) -> None:
    base.add([account("a1", start_date=D0)], [contact("ca1", "a1")])
    base.run(day(0), "onboarding")
    answer(base, 1, "live_training", "yes", comment="Tuesdays are best")
    base.run(day(1), "onboarding")
    base.run(day(1), "onboarding")  # a rerun adds nothing
    base.run(day(2), "onboarding")  # nor the next day's run: once per enrollment
    cta = cta_of(base.engine, "onboarding_training_seat")
    assert cta.why["kind"] == "request" and cta.why["request"] == "live_training"
    assert cta.why["answer"]["comment"] == "Tuesdays are best"
    assert cta.outcomes == ["training_booked", "no_answer"] and cta.priority == "medium"
    with base.engine.connect() as c:
        touch_count = c.execute(select(Touch.id).where(Touch.milestone == "request")).all()
    assert len(touch_count) == 1
    assert cta_of(base.engine, "onboarding_training_seat").status == "open"


def test_a_risk_call_closed_reached_resolved_ends_the_risk_journey(
    base: Base, app: App, casey: Actor
) -> None:
    at_risk(base)
    base.run(day(0), "risk")
    assert enrollment(base.engine, "risk").status == "active"
    answer(base, 1, "talk_to_csm", "yes")
    base.run(day(1), "risk")
    cta = cta_of(base.engine, "risk_talk_request")
    ctas.complete(app, cta.id, casey, "reached_resolved", "Seasonal dip, back in March", today=day(2))
    base.run(day(3), "risk")
    ended = enrollment(base.engine, "risk")
    assert (ended.status, ended.exit_reason) == ("completed", "call_resolved")


def test_a_call_that_leaves_the_account_at_risk_asks_for_an_executive_touch(
    base: Base, app: App, casey: Actor
) -> None:
    at_risk(base)
    for n in range(0, 15):  # report, content, and on day 14 the call CTA: usage did not recover
        base.run(day(n), "risk")
    call = cta_of(base.engine, "risk_not_recovered")
    assert enrollment(base.engine, "risk").milestone == "call"
    ctas.complete(app, call.id, casey, "reached_at_risk", "Champion left the company", today=day(15))
    base.run(day(16), "risk")
    executive = cta_of(base.engine, "risk_exec_escalation")
    assert executive.why["branch"] == "still_at_risk" and executive.priority == "high"
    assert executive.why["values"] == {"cta.risk_not_recovered.outcome": "reached_at_risk"}


def at_risk(base: Base) -> None:
    """Account a1, live for two years, whose key actions fell from 40 to 5 a day: the risk journey."""
    base.add([account("a1")], [contact("ca1", "a1")], usage_days=0)
    with base.engine.begin() as c:  # key actions fell from 40 to 5 a day over the last 30 days
        usage = [
            {
                "account_id": "a1",
                "date": D0 - timedelta(days=d),
                "active_users": 3,
                "logins": 4,
                "key_actions": 5 if d <= 30 else 40,
            }
            for d in range(1, 61)
        ]
        insert_rows(c, UsageDaily.__table__, usage)


def test_a_snoozed_cta_reopens_on_its_date(base: Base, app: App, casey: Actor) -> None:
    cta = renewal_at_risk(base, app, casey)
    ctas.snooze(app, cta.id, casey, day(5), "Customer on holiday", today=day(1))
    base.run(day(4), "renewal")
    assert cta_of(base.engine, "renewal_at_risk").status == "snoozed"
    base.run(day(5), "renewal")
    woke = cta_of(base.engine, "renewal_at_risk")
    assert (woke.status, woke.snoozed_until) == ("open", None)
    assert actions(base.engine, cta.id) == ["created", "snoozed", "woke"]
