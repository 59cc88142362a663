"""A touch's `delivery_status` is the provider's latest verdict, and it never goes backwards.

Signed SendGrid events and Twilio status callbacks go through the real app (`bootstrap.build` +
`create_app`) into a real database (both backends); the listing is read the way users read it,
`python -m techtouch touches --status … --json` in a subprocess. The claim state (`status`) stays
what delivery made it: `sent`.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import Engine, select, text, update
from twilio.request_validator import RequestValidator

from techtouch import bootstrap
from techtouch.adapters.db import migrate
from techtouch.adapters.db.bulk import insert_rows
from techtouch.adapters.db.engine import make_engine
from techtouch.adapters.db.models import Account, Contact, Enrollment, Touch
from techtouch.adapters.db.state import load_engagement
from techtouch.entrypoints.web import create_app
from techtouch.settings import Settings

ROOT = Path(__file__).parents[2]
PUBLIC_URL = "https://cs.example.com"
TWILIO_TOKEN = "twilio-test-auth-token"
NOW = datetime(2027, 1, 4, 9, 0, tzinfo=UTC)
T0 = int(NOW.timestamp())

MAIL_1 = "onboarding/a1/1/welcome/email_1/c1"
MAIL_2 = "onboarding/a1/1/welcome/email_2/c2"
MAIL_3 = "onboarding/a1/1/welcome/email_3/c1"  # sending: a crash left it ambiguous
SMS_1 = "onboarding/a1/1/welcome/sms_1/c1"
SMS_2 = "onboarding/a1/1/welcome/sms_2/c2"
SMS_3 = "onboarding/a1/1/welcome/sms_3/c1"  # sending


@pytest.fixture(scope="module")
def sendgrid_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture
def settings(db_url: str, tmp_path: Path, sendgrid_key: ec.EllipticCurvePrivateKey) -> Settings:
    der = sendgrid_key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return Settings(
        database_url=db_url,
        outbox_dir=tmp_path / "outbox",
        public_url=PUBLIC_URL,
        secret_key=SecretStr("verdict-test-link-secret-0123456789"),
        sendgrid_webhook_public_key=base64.b64encode(der).decode(),
        twilio_auth_token=SecretStr(TWILIO_TOKEN),
    )


def _touch(key: str, enrollment_id: int, contact_id: str, channel: str, status: str) -> dict[str, Any]:
    return {
        "key": key,
        "enrollment_id": enrollment_id,
        "account_id": "a1",
        "contact_id": contact_id,
        "journey": "onboarding",
        "milestone": "welcome",
        "rung": key.split("/")[4],
        "channel": channel,
        "sender": None,
        "template": None,
        "status": status,
        "as_of": date(2027, 1, 4),
        "send_at": NOW,
        "provider_id": None if status == "sending" else f"pid-{key[-9:]}",
        "error": None,
        "attempted_at": NOW if status == "sending" else None,
        "created_at": NOW,
        "updated_at": NOW,
    }


@pytest.fixture
def base(engine: Engine) -> Engine:
    """One account, two contacts, an active enrollment, three emails and three SMS."""
    with engine.begin() as c:
        insert_rows(
            c,
            Account.__table__,
            [
                {
                    "id": "a1",
                    "name": "Account a1",
                    "segment": "tech_touch",
                    "arr": 8000.0,
                    "start_date": date(2026, 1, 1),
                    "is_advocate": False,
                    "updated_at": NOW,
                }
            ],
        )
        contact = {"account_id": "a1", "role": "admin", "email_consent": True, "sms_consent": True}
        insert_rows(
            c,
            Contact.__table__,
            [
                contact | {"id": "c1", "name": "Ada", "email": "ada@example.com", "phone": "+33612345678"},
                contact | {"id": "c2", "name": "Bob", "email": "bob@example.com", "phone": "+14155550123"},
            ],
        )
        insert_rows(
            c,
            Enrollment.__table__,
            [
                {
                    "account_id": "a1",
                    "journey": "onboarding",
                    "cycle": 1,
                    "status": "active",
                    "entered_as_of": date(2027, 1, 1),
                    "milestone": "welcome",
                    "phase": "active",
                    "step": 1,
                    "entry": {},
                }
            ],
        )
        enrollment_id = c.scalar(select(Enrollment.id))
        assert enrollment_id is not None
        insert_rows(
            c,
            Touch.__table__,
            [
                _touch(MAIL_1, enrollment_id, "c1", "email", "sent"),
                _touch(MAIL_2, enrollment_id, "c2", "email", "sent"),
                _touch(MAIL_3, enrollment_id, "c1", "email", "sending"),
                _touch(SMS_1, enrollment_id, "c1", "sms", "sent"),
                _touch(SMS_2, enrollment_id, "c2", "sms", "sent"),
                _touch(SMS_3, enrollment_id, "c1", "sms", "sending"),
            ],
        )
    return engine


@pytest.fixture
def client(settings: Settings, base: Engine) -> Iterator[TestClient]:
    with TestClient(create_app(bootstrap.build(settings, engine=base)), base_url=PUBLIC_URL) as test_client:
        yield test_client


# -------------------------------------------------------------------------------------- helpers


def sg_event(kind: str, touch_key: str, event_id: str, at: int, **extra: Any) -> dict[str, Any]:
    return {
        "email": "ada@example.com",
        "timestamp": at,
        "event": kind,
        "sg_event_id": event_id,
        "sg_message_id": "14c5d75ce93.filter0001.16648.5515E0B88.0",
        "touch_key": touch_key,
    } | extra


def post_sendgrid(
    client: TestClient, key: ec.EllipticCurvePrivateKey, events: list[dict[str, Any]]
) -> httpx.Response:
    body = json.dumps(events).encode()
    stamp = str(int(time.time()))  # the signature's own time: checked against the clock
    signature = key.sign(stamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    headers = {
        "X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(signature).decode(),
        "X-Twilio-Email-Event-Webhook-Timestamp": stamp,
        "Content-Type": "application/json",
    }
    response: httpx.Response = client.post("/webhooks/sendgrid", content=body, headers=headers)
    assert response.status_code == 200, response.text
    return response


def post_status(client: TestClient, touch_key: str, sid: str, status: str, error: str = "") -> httpx.Response:
    path = "/webhooks/twilio/status?" + urlencode({"touch_key": touch_key})
    params = {"MessageSid": sid, "MessageStatus": status, "AccountSid": "AC" + "0" * 32, "To": "+33612345678"}
    if error:
        params["ErrorCode"] = error
    signature = RequestValidator(TWILIO_TOKEN).compute_signature(f"{PUBLIC_URL}{path}", params)
    response: httpx.Response = client.post(
        path,
        content=urlencode(params),
        headers={"X-Twilio-Signature": signature, "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 200, response.text
    return response


def verdict(engine: Engine, key: str) -> tuple[str, str | None, datetime | None]:
    """(status, delivery_status, delivery_status_at) of one touch."""
    with engine.connect() as c:
        row = c.execute(
            select(Touch.status, Touch.delivery_status, Touch.delivery_status_at).where(Touch.key == key)
        ).one()
    return row.status, row.delivery_status, row.delivery_status_at


def touch_rows(engine: Engine) -> list[tuple[Any, ...]]:
    """Every touch column a feedback call may write, updated_at included: to prove a no-op."""
    query = select(
        Touch.key,
        Touch.status,
        Touch.provider_id,
        Touch.error,
        Touch.delivery_status,
        Touch.delivery_status_at,
        Touch.updated_at,
    )
    with engine.connect() as c:
        return sorted(tuple(row) for row in c.execute(query))


def listing(db_url: str, *args: str) -> list[dict[str, Any]]:
    """`techtouch touches --json …` as a user runs it."""
    env = dict(os.environ) | {"TECHTOUCH_DATABASE_URL": db_url}  # TECHTOUCH_* already dropped
    result = subprocess.run(
        [sys.executable, "-m", "techtouch", "touches", "--json", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    rows: list[dict[str, Any]] = json.loads(result.stdout)
    return rows


def at(seconds: int) -> datetime:
    return datetime.fromtimestamp(T0 + seconds, UTC)


# ------------------------------------------------------------------------------------- SendGrid


def test_sendgrid_verdicts_only_move_forward(
    client: TestClient, base: Engine, sendgrid_key: ec.EllipticCurvePrivateKey, db_url: str
) -> None:
    post_sendgrid(client, sendgrid_key, [sg_event("delivered", MAIL_1, "d1", T0 + 10)])
    assert verdict(base, MAIL_1) == ("sent", "delivered", at(10))

    post_sendgrid(client, sendgrid_key, [sg_event("open", MAIL_1, "o1", T0 + 20)])
    assert verdict(base, MAIL_1) == ("sent", "opened", at(20))

    # A late `delivered` (another event id: SendGrid's own retry) does not take the touch back.
    state = touch_rows(base)
    response = post_sendgrid(client, sendgrid_key, [sg_event("delivered", MAIL_1, "d1-late", T0 + 30)])
    assert response.json()["recorded"] == 1  # the event is kept, the verdict is not lowered
    assert verdict(base, MAIL_1) == ("sent", "opened", at(20))
    assert touch_rows(base) == state

    post_sendgrid(client, sendgrid_key, [sg_event("click", MAIL_1, "k1", T0 + 40, url="https://x.example")])
    assert verdict(base, MAIL_1) == ("sent", "clicked", at(40))
    # A second open after the click changes nothing either.
    post_sendgrid(client, sendgrid_key, [sg_event("open", MAIL_1, "o2", T0 + 50)])
    assert verdict(base, MAIL_1) == ("sent", "clicked", at(40))

    # Replaying everything changes no touch (not even updated_at), and records nothing.
    state = touch_rows(base)
    replay = [
        sg_event("delivered", MAIL_1, "d1", T0 + 10),
        sg_event("open", MAIL_1, "o1", T0 + 20),
        sg_event("click", MAIL_1, "k1", T0 + 40, url="https://x.example"),
    ]
    response = post_sendgrid(client, sendgrid_key, replay)
    assert response.json()["recorded"] == 0 and response.json()["duplicates"] == 3
    assert touch_rows(base) == state

    listed = {row["key"]: row for row in listing(db_url)}
    assert listed[MAIL_1]["status"] == "sent"
    assert listed[MAIL_1]["delivery_status"] == "clicked"
    assert listed[MAIL_1]["delivery_status_at"] == "2027-01-04T09:00:40Z"
    assert listed[MAIL_2]["delivery_status"] is None and listed[MAIL_2]["delivery_status_at"] is None


def test_one_batch_out_of_order_keeps_its_strongest_verdict_and_settles_the_send(
    client: TestClient, base: Engine, sendgrid_key: ec.EllipticCurvePrivateKey
) -> None:
    events = [
        sg_event("click", MAIL_3, "k3", T0 + 30),
        sg_event("processed", MAIL_3, "p3", T0 + 1),
        sg_event("delivered", MAIL_3, "d3", T0 + 10),
        sg_event("open", MAIL_3, "o3", T0 + 20),
        sg_event("open", MAIL_2, "o2a", T0 + 25),
        sg_event("open", MAIL_2, "o2b", T0 + 15),  # the earlier of two equal verdicts is kept
    ]
    response = post_sendgrid(client, sendgrid_key, events)
    assert response.json()["touches"] == 1
    # The evidence (a `sending` touch becomes `sent`) and the verdict land in the same UPDATE.
    assert verdict(base, MAIL_3) == ("sent", "clicked", at(30))
    assert verdict(base, MAIL_2) == ("sent", "opened", at(15))
    with base.connect() as c:
        assert c.scalar(select(Touch.provider_id).where(Touch.key == MAIL_3)) == "14c5d75ce93"


def test_a_bounce_is_the_last_word_and_the_cli_lists_it(
    client: TestClient, base: Engine, sendgrid_key: ec.EllipticCurvePrivateKey, db_url: str
) -> None:
    post_sendgrid(
        client,
        sendgrid_key,
        [
            sg_event("delivered", MAIL_1, "d1", T0 + 10),
            sg_event("delivered", MAIL_2, "d2", T0 + 10),
            # A blocked bounce is temporary: no verdict, no suppression.
            sg_event("bounce", MAIL_2, "b2-blocked", T0 + 15, type="blocked"),
        ],
    )
    assert verdict(base, MAIL_2) == ("sent", "delivered", at(10))
    # SendGrid reports an asynchronous bounce after `delivered`: it is taken.
    post_sendgrid(client, sendgrid_key, [sg_event("bounce", MAIL_1, "b1", T0 + 60, type="bounce")])
    assert verdict(base, MAIL_1) == ("sent", "bounced", at(60))
    # Nothing follows a terminal verdict: not an open, not another terminal one.
    state = touch_rows(base)
    post_sendgrid(client, sendgrid_key, [sg_event("open", MAIL_1, "o1", T0 + 70)])
    post_sendgrid(client, sendgrid_key, [sg_event("dropped", MAIL_1, "x1", T0 + 80)])
    assert touch_rows(base) == state

    bounced = listing(db_url, "--status", "bounced")
    assert [(r["key"], r["status"], r["delivery_status"]) for r in bounced] == [(MAIL_1, "sent", "bounced")]
    delivered = listing(db_url, "--status", "delivered")
    assert [r["key"] for r in delivered] == [MAIL_2]
    # `sent` is the claim state: every sent message, whatever the provider said since.
    assert {r["key"] for r in listing(db_url, "--status", "sent")} == {MAIL_1, MAIL_2, SMS_1, SMS_2}


# --------------------------------------------------------------------------------------- Twilio


def test_twilio_callbacks_give_verdicts_that_only_move_forward(
    client: TestClient, base: Engine, db_url: str
) -> None:
    post_status(client, SMS_1, "SM1", "sent")
    assert verdict(base, SMS_1) == ("sent", None, None)  # a step, not a verdict
    post_status(client, SMS_1, "SM1", "delivered")
    status, delivery_status, delivered_at = verdict(base, SMS_1)
    assert (status, delivery_status) == ("sent", "delivered") and delivered_at is not None

    post_status(client, SMS_2, "SM2", "undelivered", "30003")
    assert verdict(base, SMS_2)[:2] == ("sent", "undelivered")
    # A `delivered` arriving after the carrier's `undelivered` does not undo it.
    state = touch_rows(base)
    post_status(client, SMS_2, "SM2", "delivered")
    assert touch_rows(base) == state

    # `failed` on a crash-ambiguous touch: the claim fails, and the verdict says why.
    post_status(client, SMS_3, "SM3", "failed", "30008")
    assert verdict(base, SMS_3)[:2] == ("failed", "failed")

    # Replays (the same MessageSid and status) change nothing.
    state = touch_rows(base)
    post_status(client, SMS_1, "SM1", "delivered")
    post_status(client, SMS_2, "SM2", "undelivered", "30003")
    post_status(client, SMS_3, "SM3", "failed", "30008")
    assert touch_rows(base) == state

    assert [r["key"] for r in listing(db_url, "--status", "undelivered")] == [SMS_2]
    assert [r["key"] for r in listing(db_url, "--status", "delivered")] == [SMS_1]
    # `failed` matches the claim state and the verdict alike: here the same touch.
    failed = listing(db_url, "--status", "failed")
    assert [(r["key"], r["status"], r["delivery_status"]) for r in failed] == [(SMS_3, "failed", "failed")]


# ------------------------------------------------------------------------------ what journeys read


def test_engagement_counts_the_verdict_column(base: Engine) -> None:
    """opened/clicked verdicts count as engagement even where no event names the touch; a
    delivered or bounced verdict does not."""
    with base.connect() as c:
        before = load_engagement(c, "onboarding")
    assert not before["opened"].any() and not before["clicked"].any()
    with base.begin() as c:
        c.execute(update(Touch).where(Touch.key == MAIL_2).values(delivery_status="bounced"))
        c.execute(update(Touch).where(Touch.key == MAIL_1).values(delivery_status="delivered"))
    with base.connect() as c:
        assert not load_engagement(c, "onboarding")["opened"].any()
    with base.begin() as c:
        c.execute(update(Touch).where(Touch.key == MAIL_1).values(delivery_status="opened"))
    with base.connect() as c:
        frame = load_engagement(c, "onboarding")
    assert frame["opened"].all() and not frame["clicked"].any()
    with base.begin() as c:
        c.execute(update(Touch).where(Touch.key == MAIL_1).values(delivery_status="clicked"))
    with base.connect() as c:
        frame = load_engagement(c, "onboarding")
    assert frame["opened"].all() and frame["clicked"].all()


# ----------------------------------------------------------------------------------- migration


def test_the_migration_fills_verdicts_from_events_already_recorded(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        migrate.upgrade(engine, "0003")
        with engine.begin() as c:
            c.execute(
                text(
                    "INSERT INTO accounts (id, name, segment, arr, start_date, is_advocate, updated_at) "
                    "VALUES ('a1', 'A', 'tech_touch', 1.0, '2026-01-01', false, '2027-01-04 09:00:00')"
                )
            )
            c.execute(
                text(
                    "INSERT INTO enrollments (account_id, journey, cycle, status, entered_as_of, phase, step,"
                    " entry) VALUES ('a1', 'onboarding', 1, 'active', '2027-01-01', 'active', 1, '{}')"
                )
            )
            enrollment_id = c.execute(text("SELECT id FROM enrollments")).scalar_one()
            for key, channel in (
                ("t-click", "email"),
                ("t-bounce", "email"),
                ("t-sms", "sms"),
                ("t-none", "email"),
            ):
                c.execute(
                    text(
                        "INSERT INTO touches (key, enrollment_id, account_id, journey, milestone, rung,"
                        " channel, status, as_of, created_at, updated_at) VALUES (:key, :e, 'a1',"
                        " 'onboarding', 'welcome', 'r', :channel, 'sent', '2027-01-04',"
                        " '2027-01-04 09:00:00', '2027-01-04 09:00:00')"
                    ),
                    {"key": key, "e": enrollment_id, "channel": channel},
                )
            events = [
                ("t-click", "email_delivered", 1),
                ("t-click", "email_opened", 2),
                ("t-click", "email_clicked", 4),
                ("t-click", "email_clicked", 3),
                ("t-bounce", "email_delivered", 1),
                ("t-bounce", "email_bounced", 5),
                ("t-bounce", "email_opened", 6),
                ("t-sms", "sms_delivered", 7),
                ("onboarding", "email_opened", 8),  # an imported event naming a journey, not a touch
            ]
            for n, (value, type_, minute) in enumerate(events):
                c.execute(
                    text(
                        "INSERT INTO events (key, account_id, occurred_at, type, value, source)"
                        " VALUES (:k, 'a1', :at, :type, :value, 'sendgrid')"
                    ),
                    {"k": f"ev{n}", "at": datetime(2027, 1, 4, 9, minute), "type": type_, "value": value},
                )
        migrate.upgrade(engine)
        with engine.connect() as c:
            found = {
                row.key: (row.delivery_status, row.delivery_status_at)
                for row in c.execute(select(Touch.key, Touch.delivery_status, Touch.delivery_status_at))
            }
        assert found == {
            "t-click": ("clicked", datetime(2027, 1, 4, 9, 3, tzinfo=UTC)),
            "t-bounce": ("bounced", datetime(2027, 1, 4, 9, 5, tzinfo=UTC)),
            "t-sms": ("delivered", datetime(2027, 1, 4, 9, 7, tzinfo=UTC)),
            "t-none": (None, None),
        }
    finally:
        engine.dispose()


def test_listing_statuses_accept_every_value_and_nothing_else(db_url: str, engine: Engine) -> None:
    env = dict(os.environ) | {"TECHTOUCH_DATABASE_URL": db_url, "COLUMNS": "400"}
    result = subprocess.run(
        [sys.executable, "-m", "techtouch", "touches", "--status", "planned"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 2
    message = " ".join(result.stderr.replace("│", " ").split())
    for value in ("sent", "delivered", "opened", "clicked", "bounced", "dropped", "undelivered", "failed"):
        assert f"'{value}'" in message, message
