"""The engine's guarantees (issue: rules of point 4) on real SQLite and PostgreSQL, default journeys."""

from __future__ import annotations

import email
from datetime import UTC, date, datetime, timedelta
from email import policy
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, func, select, update
from sqlalchemy.orm import Session

from techtouch.adapters.db.bulk import insert_rows
from techtouch.adapters.db.models import Account, Cta, Enrollment, Touch, UsageDaily
from techtouch.domain.clock import run_instant
from techtouch.services.runner import run_journeys
from tests.integration.journey_base import Base, account, contact, settings_for

D0 = date(2027, 1, 4)  # a Monday


@pytest.fixture
def base(engine: Engine, tmp_path: Path) -> Base:
    return Base(engine, settings_for(engine, tmp_path / "outbox"))


def touches(engine: Engine, **where: str) -> list[Touch]:
    with Session(engine) as c:
        statement = select(Touch).order_by(Touch.id)
        for column, value in where.items():
            statement = statement.where(getattr(Touch, column) == value)
        return list(c.execute(statement).scalars())


def ladder(engine: Engine, journey: str = "renewal") -> list[tuple[int, str, str, str, str | None]]:
    return [
        ((t.as_of - D0).days, t.milestone, t.rung, t.channel, t.status)
        for t in touches(engine, journey=journey)
    ]


def days(base: Base, n: int, *journeys: str, events: dict | None = None) -> None:
    for offset in range(n):
        for args in (events or {}).get(offset, []):
            base.event(*args)
        base.run(D0 + timedelta(days=offset), *journeys)


def renewal_account(**extra: object) -> dict:
    return account("a1", renewal_date=D0 + timedelta(days=100), **extra)


def test_silent_contact_gets_email_then_another_sender_then_sms_then_cta(base: Base) -> None:
    base.add([renewal_account()], [contact("c1", "a1")])
    days(base, 9, "renewal")
    assert ladder(base.engine) == [
        (0, "announce", "email", "email", "sent"),
        (3, "announce", "email2", "email", "sent"),
        (5, "announce", "sms", "sms", "sent"),
        (7, "announce", "cta", "cta", "created"),
    ]
    first, second = (t.sender for t in touches(base.engine, channel="email"))
    assert first == "csm" and second == "vp_cs"
    with Session(base.engine) as c:
        cta = c.execute(select(Cta)).scalar_one()
    assert (cta.title, cta.priority, cta.assignee, cta.reason) == (
        "Renewal at risk: no response",
        "high",
        "casey.morgan@vendor.example",
        "renewal_no_response",
    )
    assert cta.context["arr"] == 8000.0 and "health" in cta.context


def test_answer_stops_the_ladder_and_doubt_creates_a_high_priority_cta_at_the_next_run(base: Base) -> None:
    base.add([renewal_account()], [contact("c1", "a1")])
    days(base, 6, "renewal", events={2: [("a1", "survey", "renewal:unsure", D0 + timedelta(days=1), "c1")]})
    steps = ladder(base.engine)
    # the CTA for the CSM and the incentive email go out together; the ladder stops
    assert sorted(s[:4] for s in steps) == [
        (0, "announce", "email", "email"),
        (2, "announce", "branch_at_risk", "cta"),
        (2, "announce", "branch_incentive", "email"),
    ]
    with Session(base.engine) as c:
        cta = c.execute(select(Cta)).scalar_one()
    assert (cta.reason, cta.priority, cta.created_as_of) == (
        "renewal_at_risk",
        "high",
        D0 + timedelta(days=2),
    )


def test_renewal_signed_sends_a_thank_you_and_ends_the_journey(base: Base) -> None:
    base.add([renewal_account()], [contact("c1", "a1")])
    days(base, 3, "renewal", events={1: [("a1", "renewal_signed", None, D0)]})
    assert [s[1:3] for s in ladder(base.engine)] == [("announce", "email"), ("goal", "signed")]
    with Session(base.engine) as c:
        enrollment = c.execute(select(Enrollment)).scalar_one()
    assert (enrollment.status, enrollment.exit_reason) == ("completed", "signed")


def test_paused_account_gets_nothing_until_the_pause_ends_then_resumes_without_a_burst(base: Base) -> None:
    base.add([renewal_account(paused_until=D0 + timedelta(days=1))], [contact("c1", "a1")])
    days(base, 1, "renewal")
    assert ladder(base.engine) == []
    with base.engine.begin() as c:  # a pause mid-ladder: vacation after the first email
        c.execute(update(Account).values(paused_until=D0 + timedelta(days=12)))
    days_from = [1, 2, 12, 13, 14, 15, 16, 17]
    for offset in days_from:
        base.run(D0 + timedelta(days=offset), "renewal")
    got = [s[:3] for s in ladder(base.engine)]
    assert got == [(12, "announce", "email"), (15, "announce", "email2"), (17, "announce", "sms")]


def test_high_touch_accounts_get_ctas_for_the_csm_not_automated_messages(base: Base) -> None:
    base.add([renewal_account(segment="high_touch", arr=250_000.0)], [contact("c1", "a1")])
    days(base, 9, "renewal")
    assert {t.channel for t in touches(base.engine)} == {"cta"}
    assert not (base.settings.outbox_dir / "email").exists() or not any(
        (base.settings.outbox_dir / "email").iterdir()
    )
    with Session(base.engine) as c:
        titles = [cta.title for cta in c.execute(select(Cta).order_by(Cta.id)).scalars()]
    assert titles[0].startswith("Reach out personally") and "Renewal at risk: no response" in titles


def test_unreachable_contact_goes_straight_to_the_cta_and_sms_needs_consent(base: Base) -> None:
    base.add(
        [renewal_account(), account("a2", renewal_date=D0 + timedelta(days=100))],
        [contact("c1", "a1", phone=None), contact("c2", "a2", sms_consent=False)],
    )
    base.suppress("c1", "email", "unsubscribed")
    days(base, 8, "renewal")
    a1 = [(t.as_of - D0).days for t in touches(base.engine, account_id="a1")]
    assert [t.rung for t in touches(base.engine, account_id="a1")] == ["cta"] and a1 == [0]
    a2 = [(t.rung, t.status) for t in touches(base.engine, account_id="a2")]
    assert a2 == [("email", "sent"), ("email2", "sent"), ("sms", "skipped"), ("cta", "created")]


def test_suppression_is_checked_again_at_send_time(base: Base) -> None:
    base.add([renewal_account()], [contact("c1", "a1")])
    catalog = base.run(D0, "renewal", dry_run=True) and base.catalog
    run_journeys(
        base.engine,
        base.settings,
        [catalog["renewal"]],
        D0,
        run_instant(D0, base.settings.zone, base.settings.run_time),
    )
    assert [t.status for t in touches(base.engine)] == ["pending"]
    base.suppress("c1", "email", "bounced")
    base.run(D0, "renewal")  # the rerun decides nothing new, and delivery re-checks consent
    assert [t.status for t in touches(base.engine)] == ["suppressed"]
    assert not (base.settings.outbox_dir / "email").exists()


def test_ctas_go_to_the_team_queue_and_stay_one_per_account_and_reason(base: Base) -> None:
    base.add([renewal_account(csm_email=None)], [contact("c1", "a1", phone=None)])
    base.suppress("c1", "email", "unsubscribed")
    with base.engine.begin() as c:
        insert_rows(
            c,
            Cta.__table__,
            [
                {
                    "account_id": "a1",
                    "journey": "manual",
                    "reason": "renewal_no_response",
                    "title": "Already on it",
                    "priority": "high",
                    "assignee": "queue:cs",
                    "status": "open",
                    "due_date": D0,
                    "created_as_of": D0,
                    "context": {},
                    "created_at": datetime(2027, 1, 1, tzinfo=UTC),
                    "updated_at": datetime(2027, 1, 1, tzinfo=UTC),
                }
            ],
        )
    base.run(D0, "renewal")
    with base.engine.connect() as c:
        open_ctas = c.execute(select(func.count()).select_from(Cta).where(Cta.status == "open")).scalar_one()
    assert open_ctas == 1
    assert [t.status for t in touches(base.engine)] == ["deduplicated"]
    with base.engine.begin() as c:
        c.execute(update(Cta).values(status="done"))
    base.settings = base.settings.model_copy(update={"team_queue": "queue:renewals"})
    with base.engine.begin() as c:
        c.execute(update(Enrollment).values(status="completed", exited_as_of=D0 - timedelta(days=300)))
    base.run(D0 + timedelta(days=1), "renewal")
    with Session(base.engine) as c:
        newest = c.execute(select(Cta).order_by(Cta.id.desc())).scalars().first()
    assert (newest.assignee, newest.status) == ("queue:renewals", "open")


def test_frequency_cap_gives_the_contact_to_the_higher_priority_journey_and_the_other_waits(
    base: Base,
) -> None:
    base.add([renewal_account()], [contact("c1", "a1")])
    with base.engine.begin() as c:  # usage fell 80 % in the last 30 days: the risk journey wants a1 too
        c.execute(update(UsageDaily).where(UsageDaily.date >= D0 - timedelta(days=30)).values(key_actions=8))
    days(base, 2)
    got = [((t.as_of - D0).days, t.journey, t.milestone) for t in touches(base.engine)]
    assert got == [(0, "risk", "report"), (1, "renewal", "announce")]


def test_send_time_falls_in_the_recipients_business_hours(base: Base) -> None:
    zones = {"a1": "Europe/Paris", "a2": "America/Los_Angeles", "a3": "Asia/Tokyo"}
    base.add(
        [account(a, renewal_date=D0 + timedelta(days=100), timezone=z) for a, z in zones.items()],
        [contact(f"c{a}", a) for a in zones],
    )
    base.run(D0, "renewal")
    run_at = run_instant(D0, base.settings.zone, base.settings.run_time)
    for t in touches(base.engine):
        local = t.send_at.astimezone(ZoneInfo(zones[t.account_id]))
        assert t.send_at >= run_at
        assert local.weekday() < 5 and 9 <= local.hour < 17, (t.account_id, local)
    by_account = {
        t.account_id: t.send_at.astimezone(ZoneInfo(zones[t.account_id])) for t in touches(base.engine)
    }
    assert by_account["a1"].hour == 9  # 07:00 Paris run → opens at 09:00
    assert by_account["a3"] == run_at.astimezone(ZoneInfo("Asia/Tokyo"))  # 15:00 in Tokyo: now
    assert by_account["a2"].date() == D0 and by_account["a2"].hour == 9


def test_rerun_of_the_same_day_creates_and_sends_nothing_new(base: Base) -> None:
    base.add(
        [renewal_account(), account("a2", renewal_date=D0 + timedelta(days=90))],
        [contact("c1", "a1"), contact("c2", "a2")],
    )
    base.run(D0)
    first = [(t.key, t.status) for t in touches(base.engine)]
    files = sorted(p.name for p in (base.settings.outbox_dir / "email").iterdir())
    report = base.run(D0)
    assert [(t.key, t.status) for t in touches(base.engine)] == first
    assert sorted(p.name for p in (base.settings.outbox_dir / "email").iterdir()) == files
    assert sum(j.steps["count"].sum() if len(j.steps) else 0 for j in report.journeys) == 0
    message = email.message_from_bytes(
        (base.settings.outbox_dir / "email" / files[0]).read_bytes(), policy=policy.default
    )
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert message.get_body(("html",)) is not None and message.get_body(("plain",)) is not None


def test_dry_run_writes_nothing(base: Base) -> None:
    base.add([renewal_account()], [contact("c1", "a1")])
    report = base.run(D0, dry_run=True)
    assert touches(base.engine) == []
    assert report.journeys and any(len(j.steps) for j in report.journeys)


def test_undelivered_pending_touches_are_delivered_by_the_next_run(base: Base) -> None:
    base.add([renewal_account()], [contact("c1", "a1")])
    run_journeys(
        base.engine,
        base.settings,
        [base.run(D0, dry_run=True) and base.catalog["renewal"]],
        D0,
        run_instant(D0, base.settings.zone, base.settings.run_time),
    )  # recorded, then "crashed" before delivery
    assert [t.status for t in touches(base.engine)] == ["pending"]
    base.run(D0 + timedelta(days=1), "renewal")
    assert [t.status for t in touches(base.engine)] == ["sent"]
    assert len(list((base.settings.outbox_dir / "email").iterdir())) == 1


def _drop_usage(base: Base, account_id: str, key_actions: int) -> None:
    with base.engine.begin() as c:
        c.execute(
            update(UsageDaily)
            .where(UsageDaily.account_id == account_id, UsageDaily.date >= D0 - timedelta(days=30))
            .values(key_actions=key_actions)
        )


def test_risk_reports_then_sends_content_and_calls_when_usage_does_not_recover(base: Base) -> None:
    base.add([account("a1")], [contact("c1", "a1")])
    _drop_usage(base, "a1", 5)
    days(base, 16, "risk")
    assert [s[:4] for s in ladder(base.engine, "risk")] == [
        (0, "report", "email", "email"),
        (3, "content", "email", "email"),
        (14, "recover", "cta", "cta"),
    ]
    with Session(base.engine) as c:
        cta = c.execute(select(Cta)).scalar_one()
        enrollment = c.execute(select(Enrollment)).scalar_one()
    assert (cta.title, cta.priority) == ("Call the customer: usage not recovered", "high")
    assert enrollment.entry["baseline_key_actions_7d"] == pytest.approx(40 * 7)


def test_risk_recovery_sends_the_survey_and_ends_the_journey(base: Base) -> None:
    base.add([account("a1")], [contact("c1", "a1")])
    _drop_usage(base, "a1", 5)
    days(base, 4, "risk")
    with base.engine.begin() as c:  # the last week is back to the baseline
        insert_rows(
            c,
            UsageDaily.__table__,
            [
                {
                    "account_id": "a1",
                    "date": D0 + timedelta(days=d),
                    "active_users": 4,
                    "logins": 6,
                    "key_actions": 45,
                }
                for d in range(0, 7)
            ],
        )
    for offset in range(7, 9):
        base.run(D0 + timedelta(days=offset), "risk")
    assert [s[1:3] for s in ladder(base.engine, "risk")] == [
        ("report", "email"),
        ("content", "email"),
        ("goal", "recovered"),
    ]
    with Session(base.engine) as c:
        enrollment = c.execute(select(Enrollment)).scalar_one()
    assert (enrollment.status, enrollment.exit_reason) == ("completed", "recovered")


def test_advocacy_detractor_gets_a_cta_and_a_promoter_who_agrees_becomes_an_advocate(base: Base) -> None:
    base.add([account("a1"), account("a2")], [contact("c1", "a1"), contact("c2", "a2")])
    for account_id in ("a1", "a2"):
        base.event(account_id, "milestone", "live", D0 - timedelta(days=120))
    days(
        base,
        12,
        "advocacy",
        events={
            1: [("a1", "survey", "nps:3", D0), ("a2", "survey", "nps:10", D0)],
            4: [("a2", "survey", "advocate:yes", D0 + timedelta(days=3))],
        },
    )
    a1 = [(t.milestone, t.rung, t.channel) for t in touches(base.engine, account_id="a1")]
    a2 = [(t.milestone, t.rung, t.channel) for t in touches(base.engine, account_id="a2")]
    assert a1 == [("nps", "email", "email"), ("nps", "branch_detractor", "cta")]
    # "Yes, happy to help" is a request too: someone has to arrange the reference (issue 12).
    assert a2 == [
        ("nps", "email", "email"),
        ("ask", "email", "email"),
        ("ask", "branch_agreed", "email"),
        ("request", "advocate_yes", "cta"),
    ]
    with Session(base.engine) as c:
        detractor = c.execute(select(Cta).where(Cta.reason == "advocacy_detractor")).scalar_one()
        reference = c.execute(select(Cta).where(Cta.reason == "advocacy_reference")).scalar_one()
        assert reference.account_id == "a2"
        advocate = c.get(Account, "a2")
    assert (detractor.account_id, detractor.priority) == ("a1", "high")
    assert advocate is not None and advocate.is_advocate
