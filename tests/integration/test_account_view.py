"""techtouch.services.account_view on SQLite and PostgreSQL: one seeded account with usage, health
snapshots, answers, a comment, opt-outs, journeys, touches, provider events and CTAs with history;
every section of the CTA page and the account page has what it should, bounded to its window, the
timeline is newest first, and the access rules hold (a CSM, another CSM, a manager, ops)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, insert, update

from techtouch.adapters.db.models import (
    Account,
    Contact,
    Cta,
    EmailSuppression,
    Enrollment,
    Event,
    HealthSnapshot,
    Suppression,
    Touch,
    UsageDaily,
)
from techtouch.domain.access import Actor, Forbidden
from techtouch.services import account_view, ctas, users
from techtouch.services.account_view import TimelineKind, UnknownAccount, UnknownCta
from techtouch.services.app import App
from tests.integration.workspace_base import add_account, add_user, make_app

TODAY = date(2026, 11, 20)
CSM = "casey@vendor.example"
OTHER_CSM = "robin@vendor.example"
MANAGER = "morgan@vendor.example"
OTHER_MANAGER = "alex@vendor.example"
OPS = "ops@vendor.example"
WHY = {
    "journey": "renewal",
    "milestone": "announce",
    "rung": None,
    "branch": "at_risk",
    "kind": "branch",
    "condition": "survey.renewal in ['unsure', 'not_likely']",
    "values": {"survey.renewal": "unsure", "days_to_renewal": 84, "usage.change_30d": None},
    "answer": {
        "survey": "renewal",
        "value": "unsure",
        "contact_id": "c1",
        "contact_name": "Ada Lovelace",
        "at": "2026-11-18T09:30:00+00:00",
        "comment": "budget cuts next year",
    },
}


@dataclass(frozen=True)
class Story:
    """What `seed_story` made: the app, the account, its CTAs and who is who."""

    app: App
    account_id: str
    cta_id: int  # Casey's open CTA, with why and history
    closed_cta_id: int  # Casey's, done a while ago
    other_cta_id: int  # Robin's, on the same account, with a private note
    actors: dict[str, Actor]


def at(day: date, hour: int = 10, minute: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute), tzinfo=UTC)


def seed_story(engine: Engine, tmp_path: Path, today: date = TODAY) -> Story:
    """Northwind (a1), Casey's account, renewing in 84 days, with 13 weeks of usage, 90 days of
    health (and an older snapshot outside the window), a renewal answer `unsure` with a comment
    (Ada), Bob's STOP and suppressed address, two journeys, three touches with provider events, and
    three CTAs with history. Plus a2, an account of Robin's with nothing on it."""
    app = make_app(engine, tmp_path)
    add_user(app, CSM, name="Casey Morgan")
    add_user(app, OTHER_CSM, name="Robin Lee")
    add_user(app, MANAGER, role="manager", name="Morgan Diaz")
    add_user(app, OTHER_MANAGER, role="manager", team="apac", name="Alex Kim")
    add_user(app, OPS, role="ops", team=None, name="Olivia Ops")
    add_account(engine, "a1", CSM, name="Northwind")
    add_account(engine, "a2", OTHER_CSM, name="Contoso")
    start = today - timedelta(days=400)
    with engine.begin() as c:
        c.execute(
            insert(Contact),
            [
                _contact("c1", "Ada Lovelace", "ada@customer.example", "admin"),
                _contact("c2", "Bob Stone", "Bob@Customer.example", "champion"),
            ],
        )
        c.execute(
            _accounts_update("a1", start_date=start, renewal_date=today + timedelta(days=84), arr=12000.0)
        )
        c.execute(
            insert(UsageDaily),
            [
                {
                    "account_id": "a1",
                    "date": today - timedelta(days=k),
                    "active_users": 5,
                    "logins": 10,
                    "key_actions": 200 - k,  # falling: 200 today, 81 a hundred and nineteen days ago
                }
                for k in range(0, 120)
            ],
        )
        c.execute(
            insert(HealthSnapshot),
            [_snapshot(today - timedelta(days=k), 80.0 - k / 3) for k in range(0, 90)]
            + [_snapshot(today - timedelta(days=120), 12.0)],  # outside the 90-day window
        )
        renewal_id = c.execute(
            insert(Enrollment)
            .values(
                account_id="a1",
                journey="renewal",
                cycle=1,
                status="active",
                entered_as_of=today - timedelta(days=30),
                milestone="announce",
                phase="active",
                step=2,
                next_due=today + timedelta(days=2),
                entry={},
            )
            .returning(Enrollment.id)
        ).scalar_one()
        c.execute(
            insert(Enrollment).values(
                account_id="a1",
                journey="risk",
                cycle=1,
                status="completed",
                entered_as_of=today - timedelta(days=200),
                exited_as_of=today - timedelta(days=170),
                exit_reason="recovered",
                milestone=None,
                phase="pending",
                step=0,
                entry={},
            )
        )
        c.execute(
            insert(Touch),
            [
                _touch(
                    renewal_id,
                    "k-email",
                    "email",
                    "email_1",
                    "c1",
                    today - timedelta(days=10),
                    at(today - timedelta(days=10), 7),
                    template="renewal/announce",
                    delivery_status="opened",
                ),
                _touch(
                    renewal_id,
                    "k-sms",
                    "sms",
                    "sms_1",
                    "c2",
                    today - timedelta(days=5),
                    None,
                    status="skipped",
                ),
                _touch(
                    renewal_id, "k-cta", "cta", "cta", None, today - timedelta(days=3), None, status="created"
                ),
            ],
        )
        c.execute(
            insert(Event),
            [
                _event(
                    "e1", "c1", at(today - timedelta(days=10), 8), "email_delivered", "k-email", "sendgrid"
                ),
                _event("e2", "c1", at(today - timedelta(days=9), 12), "email_opened", "k-email", "sendgrid"),
                _event("e3", "c1", at(today - timedelta(days=4), 9, 30), "survey", "renewal:unsure", "link"),
                _event(
                    "e4",
                    "c1",
                    at(today - timedelta(days=4), 9, 31),
                    "survey_comment",
                    "renewal:unsure",
                    "link",
                    detail="budget cuts next year",
                ),
                _event("e5", "c2", at(today - timedelta(days=6), 15), "sms_stop", "twilio", "twilio"),
                _event("e6", None, at(today - timedelta(days=300)), "milestone", "configured", "import"),
            ],
        )
        c.execute(
            insert(Suppression).values(
                contact_id="c2", channel="sms", reason="sms_stop", since=at(today - timedelta(days=6), 15)
            )
        )
        c.execute(
            insert(EmailSuppression).values(
                address="bob@customer.example", reason="unsubscribed", since=at(today - timedelta(days=7))
            )
        )
        cta_id = _cta(
            c,
            "a1",
            CSM,
            "renewal_at_risk",
            "Renewal at risk: unsure",
            today,
            WHY,
            priority="high",
            due=today - timedelta(days=1),
            created=today - timedelta(days=3),
        )
        closed_id = _cta(
            c,
            "a1",
            CSM,
            "onboarding_stalled",
            "Onboarding stalled",
            today,
            {},
            priority="low",
            due=today - timedelta(days=60),
            created=today - timedelta(days=70),
        )
        other_id = _cta(
            c,
            "a1",
            OTHER_CSM,
            "advocacy_detractor",
            "Detractor follow-up",
            today,
            {},
            priority="medium",
            due=today + timedelta(days=5),
            created=today - timedelta(days=2),
        )
        ctas.record_created(c, [cta_id, closed_id, other_id], today - timedelta(days=3))
    with engine.connect() as c:
        actors = {email: users.actor_for(c, email) for email in (CSM, OTHER_CSM, MANAGER, OTHER_MANAGER, OPS)}
    day_before = today - timedelta(days=1)
    ctas.complete(
        app,
        closed_id,
        actors[CSM],
        "reached_resolved",
        "configured on a call",
        today=day_before,
        at=at(day_before, 11),
    )
    ctas.start(app, cta_id, actors[CSM], today=today, at=at(today, 9))
    ctas.note(app, cta_id, actors[CSM], "called Ada, left a message", today=today, at=at(today, 9, 5))
    ctas.note(app, other_id, actors[OTHER_CSM], "private to Robin's CTA", today=today, at=at(today, 9, 10))
    return Story(app, "a1", cta_id, closed_id, other_id, actors)


def _contact(contact_id: str, name: str, email: str, role: str) -> dict[str, Any]:
    return {
        "id": contact_id,
        "account_id": "a1",
        "name": name,
        "email": email,
        "phone": "+33612345678" if contact_id == "c1" else "+33612345679",
        "role": role,
        "email_consent": True,
        "sms_consent": True,
        "timezone": None,
    }


def _accounts_update(account_id: str, **values: Any) -> Any:
    return update(Account).where(Account.id == account_id).values(**values)


def _snapshot(day: date, score: float) -> dict[str, Any]:
    return {
        "account_id": "a1",
        "as_of": day,
        "score": score,
        "color": "green" if score >= 70 else "yellow" if score >= 45 else "red",
        "usage_score": 70.0,
        "engagement_score": 60.0,
        "sentiment_score": 50.0,
        "renewal_score": 40.0,
        "usage_change_30d": -0.25,
        "logins_14d": 140,
        "active_users_7d": 5.0,
        "key_actions_30d": 2000,
    }


def _touch(
    enrollment_id: int,
    key: str,
    channel: str,
    rung: str,
    contact_id: str | None,
    as_of: date,
    send_at: datetime | None,
    *,
    template: str | None = None,
    status: str = "sent",
    delivery_status: str | None = None,
) -> dict[str, Any]:
    return {
        "key": key,
        "enrollment_id": enrollment_id,
        "account_id": "a1",
        "contact_id": contact_id,
        "journey": "renewal",
        "milestone": "announce",
        "rung": rung,
        "channel": channel,
        "sender": None,
        "template": template,
        "status": status,
        "as_of": as_of,
        "send_at": send_at,
        "delivery_status": delivery_status,
    }


def _event(
    key: str,
    contact_id: str | None,
    occurred_at: datetime,
    type_: str,
    value: str,
    source: str,
    *,
    detail: str | None = None,
) -> dict[str, Any]:
    return {
        "key": key,
        "account_id": "a1",
        "contact_id": contact_id,
        "occurred_at": occurred_at,
        "type": type_,
        "value": value,
        "source": source,
        "detail": detail,
    }


def _cta(
    connection: Any,
    account_id: str,
    assignee: str,
    reason: str,
    title: str,
    today: date,
    why: dict[str, Any],
    *,
    priority: str,
    due: date,
    created: date,
) -> int:
    return int(
        connection.execute(
            insert(Cta)
            .values(
                account_id=account_id,
                journey=reason.split("_")[0],
                reason=reason,
                title=title,
                priority=priority,
                assignee=assignee,
                status="open",
                due_date=due,
                created_as_of=created,
                context={},
                why=why,
                outcomes=[],
            )
            .returning(Cta.id)
        ).scalar_one()
    )


@pytest.fixture
def story(engine: Engine, tmp_path: Path) -> Story:
    return seed_story(engine, tmp_path)


def test_cta_page_has_every_section(story: Story) -> None:
    page = account_view.cta_page(story.app, story.cta_id, story.actors[CSM], today=TODAY)

    assert page.cta.id == story.cta_id and page.cta.status == "in_progress"
    assert page.assignee_name == "Casey Morgan"
    assert page.overdue  # due yesterday, still open
    assert page.can_change

    why = page.why
    assert (why.journey, why.milestone, why.branch, why.kind) == ("renewal", "announce", "at_risk", "branch")
    assert why.rung is None
    assert why.condition == "survey.renewal in ['unsure', 'not_likely']"
    assert dict(why.values) == {
        "survey.renewal": "unsure",
        "days_to_renewal": "84",
        "usage.change_30d": "missing",
    }
    assert why.answer is not None
    assert (why.answer.contact_name, why.answer.value, why.answer.comment) == (
        "Ada Lovelace",
        "unsure",
        "budget cuts next year",
    )
    assert [(h.action, h.actor_name) for h in page.history] == [
        ("created", None),
        ("started", "Casey Morgan"),
        ("noted", "Casey Morgan"),
    ]

    context = page.account
    facts = context.facts
    assert (facts.name, facts.arr, facts.segment) == ("Northwind", 12000.0, "tech_touch")
    assert facts.renewal_date == TODAY + timedelta(days=84) and facts.days_to_renewal == 84
    assert (facts.csm_email, facts.csm_name) == (CSM, "Casey Morgan")
    assert facts.start_date == TODAY - timedelta(days=400) and not facts.paused

    # Health: the latest snapshot, and the 90-day trend only (the one 120 days old is left out).
    assert context.health is not None and context.health.as_of == TODAY and context.health.score == 80.0
    assert len(context.health_trend) == 90
    assert context.health_trend[0][0] == TODAY - timedelta(days=89)
    assert all(score > 12.0 for _, score, _ in context.health_trend)
    assert context.health_chart is not None and context.health_chart.svg.startswith("<svg")
    assert context.health_chart.rows[-1] == (TODAY.isoformat(), "80")

    # Usage: 13 weeks ending today, oldest first; this week's key actions are 200+199+...+194.
    assert len(context.usage) == 13
    assert context.usage[-1].end == TODAY and context.usage[0].start == TODAY - timedelta(days=90)
    assert context.usage[-1].key_actions == sum(200 - k for k in range(7))
    assert context.usage[-1].logins == 70 and context.usage[-1].active_users == 5.0
    assert context.usage_chart is not None and "key actions" in context.usage_chart.columns

    # Latest answers and comments, latest first, with the contact's name.
    assert [(a.kind, a.survey, a.answer, a.comment, a.contact_name) for a in context.answers] == [
        ("comment", "renewal", "unsure", "budget cuts next year", "Ada Lovelace"),
        ("answer", "renewal", "unsure", None, "Ada Lovelace"),
    ]

    # Contacts: Bob texted STOP and his address (any case) is suppressed; Ada can be reached.
    by_id = {c.id: c for c in context.contacts}
    assert by_id["c1"].can_email and by_id["c1"].can_sms and by_id["c1"].suppressions == ()
    bob = by_id["c2"]
    assert [(s.channel, s.reason) for s in bob.suppressions] == [("sms", "sms_stop")]
    assert bob.address_suppressed is not None and bob.address_suppressed.reason == "unsubscribed"
    assert not bob.can_email and not bob.can_sms

    # Journeys: both enrollments, the latest entered first, with their positions.
    assert [(p.journey, p.status, p.milestone, p.step, p.exit_reason) for p in context.positions] == [
        ("renewal", "active", "announce", 2, None),
        ("risk", "completed", None, 0, "recovered"),
    ]

    # CTAs: open first by priority (high, then medium), then the closed one; Robin's is listed
    # but Casey may not open it.
    assert [(c.id, c.is_open, c.visible) for c in context.ctas] == [
        (story.cta_id, True, True),
        (story.other_cta_id, True, False),
        (story.closed_cta_id, False, True),
    ]
    assert context.open_ctas == 2


def test_timeline_is_merged_newest_first(story: Story) -> None:
    page = account_view.cta_page(story.app, story.cta_id, story.actors[CSM], today=TODAY)
    timeline = page.account.timeline
    times = [item.at for item in timeline]
    assert times == sorted(times, reverse=True)
    assert not page.account.timeline_cut

    kinds = {item.kind for item in timeline}
    assert kinds == {
        TimelineKind.TOUCH,
        TimelineKind.ENGAGEMENT,
        TimelineKind.ANSWER,
        TimelineKind.COMMENT,
        TimelineKind.CONSENT,
        TimelineKind.MILESTONE,
        TimelineKind.CTA,
    }
    headlines = [item.headline for item in timeline]
    # The newest: Casey's note this morning; the oldest: the milestone 300 days ago.
    assert timeline[0].kind is TimelineKind.CTA and timeline[0].detail == "called Ada, left a message"
    assert timeline[-1].headline == "Milestone reached: configured"
    assert headlines.index("Comment on renewal: unsure") < headlines.index("Answered renewal: unsure")
    opened = next(item for item in timeline if item.headline == "Email opened")
    assert (opened.detail, opened.who, opened.journey) == ("renewal/announce", "Ada Lovelace", "renewal")
    comment = next(item for item in timeline if item.kind is TimelineKind.COMMENT)
    assert comment.detail == "budget cuts next year" and comment.who == "Ada Lovelace"
    stop = next(item for item in timeline if item.kind is TimelineKind.CONSENT)
    assert stop.who == "Bob Stone"
    email = next(item for item in timeline if item.kind is TimelineKind.TOUCH and item.detail)
    assert email.status == "sent, opened" and email.where == "announce · email_1"
    # A CTA touch has no send time: it sits at its run's instant (07:00 in the team's zone, UTC).
    cta_touch = next(item for item in timeline if item.headline == "CTA created")
    assert cta_touch.at == story.app.instant(TODAY - timedelta(days=3))
    # The done CTA's change, with its outcome; and no change of Robin's CTA (its note is his).
    done = next(item for item in timeline if item.headline == "CTA done")
    assert done.status == "open → done; outcome reached_resolved" and done.who == "Casey Morgan"
    assert all(item.cta_id != story.other_cta_id for item in timeline)
    assert "private to Robin's CTA" not in {item.detail for item in timeline}


def test_runs_replaying_past_days_put_their_changes_on_that_day(story: Story) -> None:
    """record_created ran "now" for a day three days ago (as `simulate` does): its rows sit at that
    day's run instant, next to the CTA touch of the same run, not at today's wall-clock time."""
    page = account_view.cta_page(story.app, story.cta_id, story.actors[CSM], today=TODAY)
    raised = [item for item in page.account.timeline if item.headline == "CTA raised"]
    assert raised and all(item.at == story.app.instant(TODAY - timedelta(days=3)) for item in raised)


def test_manager_and_ops_see_everything_on_the_account(story: Story) -> None:
    manager = account_view.account_page(story.app, "a1", story.actors[MANAGER], today=TODAY)
    assert all(c.visible for c in manager.ctas)
    assert "private to Robin's CTA" in {item.detail for item in manager.timeline}
    ops = account_view.cta_page(story.app, story.cta_id, story.actors[OPS], today=TODAY)
    assert not ops.can_change  # ops read everything and change nothing


def test_closed_cta_cannot_be_changed(story: Story) -> None:
    page = account_view.cta_page(story.app, story.closed_cta_id, story.actors[CSM], today=TODAY)
    assert page.cta.status == "done" and page.cta.outcome == "reached_resolved"
    assert not page.can_change and not page.overdue
    assert page.why.empty  # an older CTA: `{}`


def test_access_rules(story: Story) -> None:
    app, actors = story.app, story.actors
    with pytest.raises(Forbidden):
        account_view.cta_page(app, story.cta_id, actors[OTHER_CSM], today=TODAY)
    with pytest.raises(UnknownCta):
        account_view.cta_page(app, 999_999, actors[CSM], today=TODAY)
    with pytest.raises(UnknownAccount):
        account_view.account_page(app, "nope", actors[CSM], today=TODAY)
    # Casey's own account; Robin holds a CTA on it, so Robin may open it too; Casey may not open
    # Robin's account a2.
    assert account_view.account_page(app, "a1", actors[CSM], today=TODAY).facts.id == "a1"
    assert account_view.account_page(app, "a1", actors[OTHER_CSM], today=TODAY).facts.id == "a1"
    with pytest.raises(Forbidden):
        account_view.account_page(app, "a2", actors[CSM], today=TODAY)
    # A manager of the team sees the team's accounts; one of another team does not.
    assert account_view.account_page(app, "a2", actors[MANAGER], today=TODAY).facts.id == "a2"
    with pytest.raises(Forbidden):
        account_view.account_page(app, "a2", actors[OTHER_MANAGER], today=TODAY)
    assert account_view.account_page(app, "a2", actors[OPS], today=TODAY).facts.id == "a2"


def test_an_empty_account_still_renders(story: Story) -> None:
    context = account_view.account_page(story.app, "a2", story.actors[OTHER_CSM], today=TODAY)
    assert context.health is None and context.health_chart is None
    assert context.usage == () and context.usage_chart is None
    assert context.timeline == () and context.ctas == () and context.contacts == ()


def test_why_of_tolerates_what_older_runs_wrote() -> None:
    assert account_view.why_of({}).empty
    assert account_view.why_of(None).empty
    odd = account_view.why_of({"journey": 3, "values": ["not", "a", "dict"], "answer": "text", "extra": [1]})
    assert odd.journey == "3" and odd.values == () and odd.answer is None
    assert odd.other == (("extra", "[1]"),)


def test_a_cta_held_beyond_the_listed_ones_still_opens_the_account(story: Story, engine: Engine) -> None:
    """The page lists CTA_LIMIT CTAs (open ones first); access still counts Robin's, closed and
    older than the hundred listed."""
    ctas.complete(story.app, story.other_cta_id, story.actors[OTHER_CSM], "no_answer", today=TODAY)
    with engine.begin() as c:
        for k in range(account_view.CTA_LIMIT):
            c.execute(
                insert(Cta).values(
                    account_id="a1",
                    journey="risk",
                    reason=f"risk_call_{k}",
                    title="Call the customer",
                    priority="low",
                    assignee=CSM,
                    status="done",
                    due_date=TODAY,
                    created_as_of=TODAY,
                    context={},
                    why={},
                    outcomes=[],
                )
            )
    context = account_view.account_page(story.app, "a1", story.actors[OTHER_CSM], today=TODAY)
    assert len(context.ctas) == account_view.CTA_LIMIT
    assert context.ctas[0].id == story.cta_id  # the open one first, however many closed are newer
    assert story.other_cta_id not in {c.id for c in context.ctas}  # not listed: older than the 100
