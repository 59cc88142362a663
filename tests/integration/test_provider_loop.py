"""The feedback loop end to end: `techtouch run` sends through the official SendGrid and Twilio
libraries to loopback fakes; signed webhooks, a survey click, STOP and an unsubscribe go through
the real web app; and the next runs act on them.
"""

from __future__ import annotations

import base64
import json
import os
import time
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from unittest import mock
from urllib.parse import urlencode, urlsplit
from zoneinfo import ZoneInfo

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text
from twilio.request_validator import RequestValidator

from techtouch import bootstrap
from techtouch.adapters.db.state import load_engagement
from techtouch.adapters.render.links import LinkSigner
from techtouch.entrypoints.web import create_app
from techtouch.services.day import run_day
from techtouch.services.runner import select_journeys
from techtouch.services.summary import report_dict
from techtouch.settings import Settings, load_settings
from tests.fakes.sendgrid_api import FakeSendGrid
from tests.fakes.twilio_api import FakeTwilio
from tests.integration.journey_base import Base, account, contact

ROOT = Path(__file__).parents[2]
# Webhooks and clicks happen now, so the runs are today and the next days: a run reads what
# happened before its own instant.
# Today in the team's (and the accounts') zone: the runs deliver at the real clock, and a run of a
# day that has already ended in Paris would be a backfill (its messages expire, never sent late).
D0 = datetime.now(ZoneInfo("Europe/Paris")).date()
PUBLIC_URL = "https://cs.example.com"
SECRET = "loop-test-secret-0123456789abcdef0123"
SERVICE_SID = "MG" + "1" * 32


@pytest.fixture
def providers() -> Iterator[tuple[FakeSendGrid, FakeTwilio]]:
    with FakeSendGrid() as sendgrid, FakeTwilio() as twilio:
        yield sendgrid, twilio


@pytest.fixture
def webhook_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture
def env(
    db_url: str,
    tmp_path: Path,
    providers: tuple[FakeSendGrid, FakeTwilio],
    webhook_key: ec.EllipticCurvePrivateKey,
) -> dict[str, str]:
    sendgrid, twilio = providers
    public = webhook_key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return dict(os.environ) | {
        "TECHTOUCH_DATABASE_URL": db_url,
        "TECHTOUCH_TIMEZONE": "Europe/Paris",
        "TECHTOUCH_PUBLIC_URL": PUBLIC_URL,
        "TECHTOUCH_SECRET_KEY": SECRET,
        "TECHTOUCH_EMAIL_CHANNEL": "sendgrid",
        "TECHTOUCH_SENDGRID_API_KEY": sendgrid.api_key,
        "TECHTOUCH_SENDGRID_HOST": sendgrid.url,
        "TECHTOUCH_SENDGRID_WEBHOOK_PUBLIC_KEY": base64.b64encode(public).decode(),
        "TECHTOUCH_SMS_CHANNEL": "twilio",
        "TECHTOUCH_TWILIO_ACCOUNT_SID": twilio.account_sid,
        "TECHTOUCH_TWILIO_AUTH_TOKEN": twilio.auth_token,
        "TECHTOUCH_TWILIO_MESSAGING_SERVICE_SID": SERVICE_SID,
        "TECHTOUCH_TWILIO_BASE_URL": twilio.base_url,
        "TECHTOUCH_TWILIO_MPS": "50",
        # Runs deliver at the real clock: business hours all day, every day, so that the time the
        # suite runs at decides nothing (test_delivery_window covers the hours themselves).
        "TECHTOUCH_DELIVERY__BUSINESS_START": "00:00",
        "TECHTOUCH_DELIVERY__BUSINESS_END": "23:59",
        "TECHTOUCH_DELIVERY__BUSINESS_DAYS": "[0,1,2,3,4,5,6]",
    }


@pytest.fixture
def base(engine: Engine, tmp_path: Path) -> Base:
    renewal = D0 + timedelta(days=100)
    b = Base(engine, Settings(database_url=str(engine.url), timezone="Europe/Paris"))
    b.add(
        [account(a, renewal_date=renewal) for a in ("a1", "a2", "a3")],
        [
            contact("c1", "a1", phone="+33612345001"),
            contact("c2", "a2", phone="+33612345002"),
            contact("c3", "a3", phone="+33612345003"),
        ],
        as_of=D0,
    )
    return b


@pytest.fixture
def client(env: dict[str, str], engine: Engine, base: Base) -> Iterator[TestClient]:
    settings = Settings(
        **{k.removeprefix("TECHTOUCH_").lower(): v for k, v in env.items() if k.startswith("TECHTOUCH_")}
    )
    with TestClient(create_app(bootstrap.build(settings, engine=engine))) as test_client:
        yield test_client


def run(env: dict[str, str], day: date) -> dict[str, Any]:
    """`techtouch run --all --as-of DAY --json`, in process, delivered at the day's run instant.

    The providers get each day's messages as a delivery at that day's 07:00 would hand them over
    (business hours are all day in `env`): the suite's own clock decides nothing, where the CLI
    would deliver at the real time (a future day's message is then held, a past day's expired).
    """
    with mock.patch.dict(os.environ, env, clear=True):
        app = bootstrap.build(load_settings())
    try:
        report = run_day(app, select_journeys(app.catalog, app.settings), day, now=app.instant(day))
        return json.loads(json.dumps(report_dict(report), default=str))
    finally:
        app.close()


def touches(engine: Engine, **where: str) -> list[Any]:
    clause = " AND ".join(f"{k} = :{k}" for k in where) or "1 = 1"
    with engine.connect() as connection:
        return connection.execute(
            text(
                "SELECT key, account_id, milestone, rung, channel, template, status, provider_id "
                f"FROM touches WHERE {clause}"
            ),
            where,
        ).all()


def post_sendgrid(client: TestClient, key: ec.EllipticCurvePrivateKey, events: list[dict[str, Any]]) -> None:
    body = json.dumps(events).encode()
    stamp = str(int(time.time()))
    signature = key.sign(stamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    response = client.post(
        "/webhooks/sendgrid",
        content=body,
        headers={
            "X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(signature).decode(),
            "X-Twilio-Email-Event-Webhook-Timestamp": stamp,
            "Content-Type": "application/json",
        },
    )
    assert response.status_code == 200, response.text


def post_twilio(client: TestClient, url: str, params: dict[str, str], token: str) -> str:
    parts = urlsplit(url)
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    signature = RequestValidator(token).compute_signature(f"{PUBLIC_URL}{path}", params)
    response = client.post(
        path,
        content=urlencode(params),
        headers={"X-Twilio-Signature": signature, "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 200, response.text
    return response.text


def test_provider_feedback_changes_what_the_next_runs_do(
    env: dict[str, str],
    base: Base,
    engine: Engine,
    client: TestClient,
    providers: tuple[FakeSendGrid, FakeTwilio],
    webhook_key: ec.EllipticCurvePrivateKey,
) -> None:
    sendgrid, twilio = providers

    # Day 0: the announce email goes to all three admins through SendGrid, in one request.
    report = run(env, D0)
    assert report["delivery"]["sent"] == {"email": 3}
    announce = {t.account_id: t for t in touches(engine, rung="email", milestone="announce")}
    assert {t.status for t in announce.values()} == {"sent"}
    assert sorted(sendgrid.accepted_keys()) == sorted(t.key for t in announce.values())
    assert [r.personalizations for r in sendgrid.requests] == [3]  # one request, three recipients
    assert all(t.provider_id for t in announce.values())

    # SendGrid reports delivery and an open; the open is engagement the journey reads.
    delivered = sendgrid.events("delivered")
    opened = dict(next(e for e in delivered if e["touch_key"] == announce["a1"].key))
    opened |= {"event": "open", "sg_event_id": "open-event-1"}
    post_sendgrid(client, webhook_key, [*delivered, opened])
    post_sendgrid(client, webhook_key, [opened])  # a replay changes nothing
    with engine.connect() as connection:
        engagement = load_engagement(connection, "renewal")
        opens = connection.execute(
            text("SELECT COUNT(*) FROM events WHERE type = 'email_opened'")
        ).scalar_one()
    assert opens == 1
    assert bool(engagement.loc[engagement["milestone"] == "announce", "opened"].sum() == 1)

    # a1's admin clicks "unsure" in the email (a signed survey link) and confirms it on the page.
    signer = LinkSigner(PUBLIC_URL, SECRET.encode())
    unsure = signer.survey("a1", "c1", "renewal", "unsure")
    assert unsure in sendgrid.by_key()[announce["a1"].key].html
    page = client.get(urlsplit(unsure).path)  # what a mail scanner sees too: nothing is recorded
    assert page.status_code == 200 and "confirm" in page.text.lower()
    confirmed = client.post(urlsplit(unsure).path, data={"answer": "unsure"})
    assert confirmed.status_code == 200 and "thank" in confirmed.text.lower()
    assert client.post(urlsplit(unsure).path, data={"answer": "unsure"}).status_code == 200  # idempotent
    # a2's admin texts STOP; a3's admin unsubscribes from email with one click (RFC 8058).
    stop = {
        "MessageSid": "SM" + "2" * 32,
        "AccountSid": twilio.account_sid,
        "From": "+33612345002",
        "To": "+15005550006",
        "Body": " stop ",
        "NumMedia": "0",
    }
    post_twilio(client, "/webhooks/twilio/inbound", stop, twilio.auth_token)
    one_click = client.post(
        urlsplit(signer.unsubscribe("c3")).path,
        content="List-Unsubscribe=One-Click",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert one_click.status_code == 200

    # Day 1: doubt raises a high-priority CTA for a1's CSM and sends the incentive email.
    run(env, D0 + timedelta(days=1))
    with engine.connect() as connection:
        ctas = connection.execute(text("SELECT account_id, reason, priority FROM ctas")).all()
    assert ("a1", "renewal_at_risk", "high") in ctas
    incentive = [t for t in touches(engine, account_id="a1") if t.template == "renewal/incentive"]
    assert len(incentive) == 1 and incentive[0].status == "sent"
    assert incentive[0].key in sendgrid.by_key()

    # Day 3: the second email (from the VP) goes to a2 only: a1 answered, a3 unsubscribed.
    run(env, D0 + timedelta(days=3))
    email2 = {t.account_id: t.status for t in touches(engine, rung="email2")}
    assert email2.get("a2") == "sent"
    assert "a1" not in email2
    assert email2.get("a3") != "sent"
    assert not any(k and "/a3/" in k and "email2" in k for k in sendgrid.accepted_keys())

    # Day 5: the SMS rung: a3 gets it through Twilio; a2 said STOP, so not a2.
    run(env, D0 + timedelta(days=5))
    sms = {t.account_id: t for t in touches(engine, channel="sms")}
    assert sms["a3"].status == "sent" and sms["a3"].provider_id.startswith("SM")
    assert "a2" not in sms or sms["a2"].status in ("skipped", "suppressed")
    assert [m.to for m in twilio.messages] == ["+33612345003"]

    # Twilio's status callback (its URL carries the touch key) is accepted and recorded once.
    ((url, params),) = twilio.status_callbacks("delivered")
    assert "touch_key=" in url
    post_twilio(client, url, params, twilio.auth_token)
    post_twilio(client, url, params, twilio.auth_token)
    with engine.connect() as connection:
        delivered_sms = connection.execute(
            text("SELECT COUNT(*) FROM events WHERE type = 'sms_delivered'")
        ).scalar_one()
    assert delivered_sms == 1
    assert sms["a3"].provider_id == params["MessageSid"]
