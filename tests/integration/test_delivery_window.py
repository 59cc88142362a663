"""Nothing reaches a customer outside their window (issue 13, point 4), on SQLite and PostgreSQL.

A channel that cannot schedule (the outbox, Twilio with a from-number) gets only what is due, and a
later delivery at the due time sends the rest; SendGrid and Twilio with a Messaging Service get
future `send_at`s. A pending message whose day is over by more than `delivery.expire_after_hours`,
or recorded after its day (a backfill), is `expired`, counted, and never sent; a `sending` touch
(maybe in flight) is never expired.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, text

from techtouch import bootstrap
from techtouch.adapters.db.bulk import insert_rows
from techtouch.adapters.db.models import Enrollment, Touch
from techtouch.services import claims
from techtouch.services import day as service
from techtouch.services.app import App
from techtouch.services.claims import TOUCHES
from techtouch.settings import Delivery
from tests.fakes.sendgrid_api import FakeSendGrid
from tests.fakes.twilio_api import FakeTwilio
from tests.integration.journey_base import Base, account, contact, settings_for

PARIS = ZoneInfo("Europe/Paris")
D0 = date(2027, 1, 4)  # a Monday
SECRET = "delivery-window-secret-0123456789abcdef"
ALL_DAY = {"business_start": "00:00", "business_end": "23:59", "business_days": list(range(7))}


def paris(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=PARIS)


@pytest.fixture
def base(engine: Engine, tmp_path: Path) -> Base:
    base = Base(engine, settings_for(engine, tmp_path / "outbox"))
    base.add(
        [account("a1")],
        [contact(f"c{i}", "a1", phone=f"+3361234567{i}") for i in range(1, 4)],
        usage_days=5,
        as_of=D0,
    )
    with engine.begin() as connection:
        insert_rows(
            connection,
            Enrollment.__table__,
            [
                {"account_id": "a1", "journey": "renewal", "cycle": 1, "status": "active"}
                | {"entered_as_of": D0, "milestone": "announce", "phase": "active", "step": 1, "entry": {}}
            ],
        )
    return base


def add_touch(
    engine: Engine,
    contact_id: str,
    send_at: datetime,
    *,
    channel: str = "email",
    as_of: date | None = None,
    created_at: datetime | None = None,
    **extra: Any,
) -> str:
    key = f"renewal/a1/1/announce/{channel}/{contact_id}"
    with engine.begin() as connection:
        enrollment = connection.execute(text("SELECT id FROM enrollments")).scalar_one()
        row = {
            "key": key,
            "enrollment_id": enrollment,
            "account_id": "a1",
            "contact_id": contact_id,
            "journey": "renewal",
            "milestone": "announce",
            "rung": channel,
            "channel": channel,
            "sender": "csm" if channel == "email" else None,
            "template": "renewal/announce",
            "status": "pending",
            "as_of": as_of or send_at.astimezone(PARIS).date(),
            "send_at": send_at,
            # Recorded by the day's run, before the message was due (a backfill says otherwise).
            "created_at": created_at or send_at - timedelta(hours=2),
        } | extra
        insert_rows(connection, Touch.__table__, [row])
    return key


def statuses(engine: Engine) -> dict[str, str]:
    with engine.connect() as connection:
        return dict(connection.execute(text("SELECT key, status FROM touches")).all())  # type: ignore[arg-type]


def app_for(base: Base, **overrides: Any) -> App:
    settings = settings_for(base.engine, base.settings.outbox_dir, **overrides)
    return bootstrap.build(settings, engine=base.engine)


def deliver(app: App, now: datetime) -> Any:
    state = service.load_state(app, now.astimezone(PARIS).date())
    return service.deliver_pending(app, state, now=now)


def outbox_emails(base: Base) -> set[str]:
    folder = base.settings.outbox_dir / "email"
    return {p.stem for p in folder.glob("*.eml")} if folder.exists() else set()


def test_the_outbox_gets_only_what_is_due_and_a_later_delivery_sends_the_rest(base: Base) -> None:
    morning = add_touch(base.engine, "c1", paris(D0, 9))
    afternoon = add_touch(base.engine, "c2", paris(D0, 15))
    app = app_for(base)

    report = deliver(app, paris(D0, 9, 5))
    assert report.sent["email"] == 1 and report.held == 1 and report.expired == 0
    assert statuses(base.engine) == {morning: "sent", afternoon: "pending"}
    assert len(outbox_emails(base)) == 1

    assert deliver(app, paris(D0, 14, 5)).sent["email"] == 0  # still not due: nothing early
    report = deliver(app, paris(D0, 15, 5))  # the hourly delivery at the due time
    assert report.sent["email"] == 1 and report.held == 0
    assert statuses(base.engine) == {morning: "sent", afternoon: "sent"}
    assert len(outbox_emails(base)) == 2


def test_a_due_message_waits_while_it_is_outside_the_recipients_business_hours(base: Base) -> None:
    key = add_touch(base.engine, "c1", paris(D0, 16, 30))
    app = app_for(base)
    report = deliver(app, paris(D0, 18, 5))  # due, but 18:05 in Paris is after hours: held
    assert report.held == 1 and statuses(base.engine) == {key: "pending"} and not outbox_emails(base)
    report = deliver(app, paris(D0 + timedelta(days=1), 9, 5))  # next morning, inside the grace
    assert report.sent["email"] == 1 and statuses(base.engine) == {key: "sent"}


def test_sendgrid_gets_future_send_at_within_its_72_hours_and_no_further(base: Base) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    soon = add_touch(base.engine, "c1", now + timedelta(hours=5))
    later = add_touch(base.engine, "c2", now + timedelta(hours=100))
    with FakeSendGrid() as sendgrid:
        app = app_for(
            base,
            email_channel="sendgrid",
            sendgrid_api_key=sendgrid.api_key,
            sendgrid_host=sendgrid.url,
            secret_key=SECRET,
        )
        report = service.deliver_pending(app, service.load_state(app, D0), ["email"], now=now)
        accepted = sendgrid.by_key()
    assert report.sent["email"] == 1 and report.held == 1
    assert set(accepted) == {soon}
    assert accepted[soon].send_at == int((now + timedelta(hours=5)).timestamp())  # scheduled, not now
    assert statuses(base.engine) == {soon: "sent", later: "pending"}


@pytest.mark.parametrize("sender", ["from_number", "messaging_service"])
def test_twilio_schedules_only_through_a_messaging_service(base: Base, sender: str) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    due = add_touch(base.engine, "c1", now - timedelta(minutes=5), channel="sms")
    future = add_touch(base.engine, "c2", now + timedelta(hours=2), channel="sms")
    with FakeTwilio() as twilio:
        chosen = (
            {"twilio_from": "+15005550006"}
            if sender == "from_number"
            else {"twilio_messaging_service_sid": "MG" + "0" * 32}
        )
        app = app_for(
            base,
            sms_channel="twilio",
            twilio_account_sid=twilio.account_sid,
            twilio_auth_token=twilio.auth_token,
            twilio_base_url=twilio.base_url,
            secret_key=SECRET,
            # Every hour is business hours here: the test is about scheduling, at the real time.
            delivery=Delivery(**ALL_DAY),
            **chosen,
        )
        report = service.deliver_pending(app, service.load_state(app, D0), ["sms"], now=now)
        messages = {m.to: m for m in twilio.messages}
    if sender == "from_number":  # sends at once: only what is due
        assert report.sent["sms"] == 1 and report.held == 1
        assert set(messages) == {"+33612345671"} and messages["+33612345671"].send_at is None
        assert statuses(base.engine) == {due: "sent", future: "pending"}
    else:  # Twilio holds the future one until its send_at
        assert report.sent["sms"] == 2 and report.held == 0
        assert messages["+33612345672"].send_at is not None
        assert abs(messages["+33612345672"].send_at - (now + timedelta(hours=2))) < timedelta(seconds=1)
        assert statuses(base.engine) == {due: "sent", future: "sent"}


def test_a_backfill_of_a_past_day_expires_instead_of_sending_today(base: Base) -> None:
    now = datetime.now(UTC)
    three_days_ago = add_touch(
        base.engine, "c1", now - timedelta(days=3), created_at=now - timedelta(minutes=1)
    )
    # Yesterday's message recorded today: within the grace of 24 hours, and still never sent today.
    yesterday = add_touch(
        base.engine, "c2", now - timedelta(days=1, hours=1), created_at=now - timedelta(minutes=1)
    )
    app = app_for(base, delivery=Delivery(**ALL_DAY))
    report = deliver(app, now)
    assert report.expired == 2 and report.sent["email"] == 0
    assert statuses(base.engine) == {three_days_ago: "expired", yesterday: "expired"}
    assert not outbox_emails(base)
    assert deliver(app, now).expired == 0  # a compare-and-set: counted once


def test_a_worker_down_for_two_days_expires_what_was_pending_then_sends_what_is_new(base: Base) -> None:
    stale = add_touch(base.engine, "c1", paris(D0, 9))  # recorded Monday morning, never delivered
    fresh = add_touch(base.engine, "c2", paris(D0 + timedelta(days=2), 9))  # Wednesday's
    app = app_for(base)
    report = deliver(app, paris(D0 + timedelta(days=2), 9, 5))  # the worker is back on Wednesday
    assert report.expired == 1 and report.sent["email"] == 1
    assert statuses(base.engine) == {stale: "expired", fresh: "sent"}
    assert len(outbox_emails(base)) == 1


def test_the_grace_is_a_setting_and_a_day_late_message_inside_it_still_goes_out(base: Base) -> None:
    key = add_touch(base.engine, "c1", paris(D0, 9))
    tuesday = paris(D0 + timedelta(days=1), 10)
    strict = app_for(base, delivery=Delivery(expire_after_hours=0))
    assert deliver(strict, paris(D0, 23)).held == 1  # Monday evening: after hours, not yet expired
    assert deliver(app_for(base), tuesday).sent["email"] == 1  # default 24 h: Tuesday catches up
    assert statuses(base.engine) == {key: "sent"}

    other = add_touch(base.engine, "c2", paris(D0, 9))
    assert deliver(strict, tuesday).expired == 1  # 0 h: on its day or never
    assert statuses(base.engine)[other] == "expired"


def test_a_sending_touch_is_never_expired(base: Base) -> None:
    now = datetime.now(UTC)
    key = add_touch(
        base.engine,
        "c1",
        now - timedelta(days=5),
        status="sending",
        attempted_at=now - timedelta(minutes=1),  # inside the claim lease: maybe in flight
    )
    app = app_for(base, delivery=Delivery(**ALL_DAY))
    report = deliver(app, now)
    assert report.expired == 0 and report.awaiting == 1
    assert statuses(base.engine) == {key: "sending"}
    with base.engine.begin() as connection:  # the compare-and-set itself only takes `pending`
        assert claims.expire(connection, TOUCHES, [key], "late") == set()
    assert statuses(base.engine) == {key: "sending"}


def test_an_expired_touch_does_not_count_for_the_frequency_cap(base: Base) -> None:
    from techtouch.domain.statuses import UNSENT_TOUCH_STATUSES, TouchStatus

    assert TouchStatus.EXPIRED in UNSENT_TOUCH_STATUSES


def test_run_reports_count_expired_and_the_ladder_moves_on(base: Base, tmp_path: Path) -> None:
    """A backfill run three days back: its message expires (counted in the report), and the ladder
    goes on at the next run as it would after a sent message."""
    today = datetime.now(PARIS).date()
    other = Base(base.engine, settings_for(base.engine, tmp_path / "outbox2", delivery=Delivery(**ALL_DAY)))
    with base.engine.begin() as connection:
        connection.execute(text("DELETE FROM touches"))
        connection.execute(text("DELETE FROM enrollments"))
        connection.execute(text("UPDATE accounts SET renewal_date = :d"), {"d": today + timedelta(days=100)})
    report = other.run(today - timedelta(days=3), "renewal", real_clock=True)
    assert report.delivery is not None and report.delivery.expired >= 1
    assert report.delivery.sent["email"] == 0
    assert set(statuses(base.engine).values()) == {"expired"}
    later = other.run(today, "renewal", real_clock=True)  # the next rung (3 days later) is recorded
    assert later.delivery is not None
    rungs = {k.split("/")[4] for k in statuses(base.engine)}
    assert "email2" in rungs
