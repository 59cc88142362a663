"""The webhook and link service end to end: real signatures, real app, real database (both backends).

SendGrid bodies are signed with a fresh ECDSA P-256 key and checked by sendgrid's EventWebhook;
Twilio requests carry an X-Twilio-Signature computed by twilio's RequestValidator. Assertions look
at what the journeys read (load_engagement, load_contacts, latest_events), not only at rows.
"""

from __future__ import annotations

import base64
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select, text, update
from twilio.request_validator import RequestValidator

from techtouch import bootstrap
from techtouch.adapters.db.bulk import insert_rows
from techtouch.adapters.db.models import Account, Contact, Enrollment, Event, Suppression, Touch
from techtouch.adapters.db.signals import latest_events
from techtouch.adapters.db.state import load_contacts, load_engagement
from techtouch.adapters.render.links import LinkSigner
from techtouch.bootstrap import build_channels
from techtouch.entrypoints.web import create_app
from techtouch.services import feedback
from techtouch.settings import PROJECT_ROOT, Settings

PUBLIC_URL = "https://cs.example.com"
SECRET = "webhook-test-link-secret-0123456789"
TWILIO_TOKEN = "twilio-test-auth-token"
NOW = datetime(2027, 1, 4, 9, 0, tzinfo=UTC)
PHONE_1 = "+33612345678"
PHONE_2 = "+14155550123"

# ------------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def sendgrid_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def public_key_b64(key: ec.EllipticCurvePrivateKey) -> str:
    """What the SendGrid console shows: base64 DER SubjectPublicKeyInfo, no PEM armour."""
    der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(der).decode()


@pytest.fixture
def settings(db_url: str, tmp_path: Path, sendgrid_key: ec.EllipticCurvePrivateKey) -> Settings:
    return Settings(
        database_url=db_url,
        outbox_dir=tmp_path / "outbox",
        public_url=PUBLIC_URL,
        secret_key=SECRET,
        sendgrid_webhook_public_key=public_key_b64(sendgrid_key),
        twilio_auth_token=TWILIO_TOKEN,
    )


@pytest.fixture
def signer() -> LinkSigner:
    return LinkSigner(PUBLIC_URL, SECRET.encode())


def _account(account_id: str) -> dict[str, Any]:
    return {
        "id": account_id,
        "name": f"Account {account_id}",
        "segment": "tech_touch",
        "arr": 8000.0,
        "start_date": date(2026, 1, 1),
        "renewal_date": None,
        "csm_email": None,
        "timezone": None,
        "paused_until": None,
        "is_advocate": False,
        "updated_at": NOW,
    }


def _contact(contact_id: str, account_id: str, email: str, phone: str | None) -> dict[str, Any]:
    return {
        "id": contact_id,
        "account_id": account_id,
        "name": f"Ada {contact_id}",
        "email": email,
        "phone": phone,
        "role": "admin",
        "email_consent": True,
        "sms_consent": True,
        "timezone": None,
        "updated_at": NOW,
    }


def _touch(
    key: str, enrollment_id: int, account_id: str, contact_id: str, channel: str, status: str, **extra: Any
):
    return {
        "key": key,
        "enrollment_id": enrollment_id,
        "account_id": account_id,
        "contact_id": contact_id,
        "journey": "onboarding",
        "milestone": "welcome",
        "rung": "email_1",
        "channel": channel,
        "sender": None,
        "template": None,
        "status": status,
        "as_of": date(2027, 1, 4),
        "send_at": NOW,
        "provider_id": None,
        "error": None,
        "attempted_at": NOW if status == "sending" else None,
        "created_at": NOW,
        "updated_at": NOW,
    } | extra


# Touch keys (the shape delivery uses does not matter here: they are opaque to the service).
T_MAIL = "onboarding/a1/1/welcome/email_1/c1"  # sending: a crash left it ambiguous
T_MAIL_SENT = "onboarding/a1/1/welcome/email_2/c2"  # already sent
T_MAIL_PENDING = "onboarding/a1/1/welcome/email_3/c2"  # pending (marked before the provider call)
T_MAIL_OTHER = "onboarding/a2/1/welcome/email_1/c3"
T_SMS = "onboarding/a1/1/welcome/sms_1/c1"  # sending
T_SMS_2 = "onboarding/a1/1/welcome/sms_2/c2"  # sent


@pytest.fixture
def base(engine: Engine) -> Engine:
    """Two accounts, three contacts (c1 and c3 share an address), active enrollments and touches."""
    with engine.begin() as c:
        insert_rows(c, Account.__table__, [_account("a1"), _account("a2")])
        insert_rows(
            c,
            Contact.__table__,
            [
                _contact("c1", "a1", "ada@customer.example", PHONE_1),
                _contact("c2", "a1", "bob@customer.example", PHONE_2),
                _contact("c3", "a2", "ada@customer.example", None),
            ],
        )
        enrollment = {
            "journey": "onboarding",
            "cycle": 1,
            "status": "active",
            "entered_as_of": date(2027, 1, 1),
        }
        enrollment |= {"milestone": "welcome", "phase": "active", "step": 1, "entry": {}}
        insert_rows(
            c, Enrollment.__table__, [enrollment | {"account_id": "a1"}, enrollment | {"account_id": "a2"}]
        )
        ids = {account: id_ for account, id_ in c.execute(select(Enrollment.account_id, Enrollment.id))}
        insert_rows(
            c,
            Touch.__table__,
            [
                _touch(T_MAIL, ids["a1"], "a1", "c1", "email", "sending"),
                _touch(T_MAIL_SENT, ids["a1"], "a1", "c2", "email", "sent", provider_id="sgid-2"),
                _touch(T_MAIL_PENDING, ids["a1"], "a1", "c2", "email", "pending"),
                _touch(T_MAIL_OTHER, ids["a2"], "a2", "c3", "email", "sent", provider_id="sgid-3"),
                _touch(T_SMS, ids["a1"], "a1", "c1", "sms", "sending"),
                _touch(T_SMS_2, ids["a1"], "a1", "c2", "sms", "sent", provider_id="SM-old"),
            ],
        )
    return engine


@pytest.fixture
def client(settings: Settings, base: Engine) -> Iterator[TestClient]:
    with TestClient(create_app(bootstrap.build(settings, engine=base)), base_url=PUBLIC_URL) as test_client:
        yield test_client


# -------------------------------------------------------------------------------------- helpers


def snapshot(engine: Engine) -> dict[str, Any]:
    """Every row the service may write, to prove that a request changed nothing."""
    queries = {
        "events": select(Event.key, Event.type, Event.value, Event.contact_id, Event.detail),
        "suppressions": select(Suppression.contact_id, Suppression.channel, Suppression.reason),
        "touches": select(Touch.key, Touch.status, Touch.provider_id, Touch.error, Touch.updated_at),
    }
    with engine.connect() as c:
        return {name: sorted(tuple(row) for row in c.execute(query)) for name, query in queries.items()}


def events_of(engine: Engine, type_: str) -> list[tuple[Any, ...]]:
    with engine.connect() as c:
        query = select(Event.account_id, Event.contact_id, Event.value, Event.source).where(
            Event.type == type_
        )
        return sorted(tuple(row) for row in c.execute(query))


def suppressions(engine: Engine) -> dict[tuple[str, str], str]:
    with engine.connect() as c:
        rows = c.execute(select(Suppression.contact_id, Suppression.channel, Suppression.reason))
        return {(contact, channel): reason for contact, channel, reason in rows}


def touch(engine: Engine, key: str) -> tuple[str, str | None, str | None]:
    with engine.connect() as c:
        row = c.execute(select(Touch.status, Touch.provider_id, Touch.error).where(Touch.key == key)).one()
        return row.status, row.provider_id, row.error


def sg_event(kind: str, touch_key: str | None, event_id: str, **extra: Any) -> dict[str, Any]:
    event = {
        "email": "ada@customer.example",
        "timestamp": int(NOW.timestamp()) + 60,
        "event": kind,
        "sg_event_id": event_id,
        "sg_message_id": "14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.0",
        "category": ["onboarding"],
    }
    if touch_key is not None:
        event["touch_key"] = touch_key
    return event | extra


def sign_sendgrid(
    key: ec.EllipticCurvePrivateKey, body: bytes, timestamp: int | None = None
) -> dict[str, str]:
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    signature = key.sign(stamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    return {
        "X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(signature).decode(),
        "X-Twilio-Email-Event-Webhook-Timestamp": stamp,
        "Content-Type": "application/json",
    }


def post_sendgrid(client: TestClient, key: ec.EllipticCurvePrivateKey, events: Any) -> httpx.Response:
    body = json.dumps(events).encode()
    return client.post("/webhooks/sendgrid", content=body, headers=sign_sendgrid(key, body))


def post_twilio(
    client: TestClient, path: str, params: dict[str, str], query: str = "", token: str = TWILIO_TOKEN
) -> httpx.Response:
    url = f"{PUBLIC_URL}{path}" + (f"?{query}" if query else "")
    signature = RequestValidator(token).compute_signature(url, params)
    return client.post(
        path + (f"?{query}" if query else ""),
        content=urlencode(params),
        headers={"X-Twilio-Signature": signature, "Content-Type": "application/x-www-form-urlencoded"},
    )


def status_callback(sid: str, status: str, error: str | None = None) -> dict[str, str]:
    params = {
        "MessageSid": sid,
        "SmsSid": sid,
        "MessageStatus": status,
        "SmsStatus": status,
        "AccountSid": "AC00000000000000000000000000000000",
        "From": "+15005550006",
        "To": PHONE_1,
        "ApiVersion": "2010-04-01",
    }
    return params | ({"ErrorCode": error} if error else {})


def inbound_sms(sid: str, sender: str, body: str) -> dict[str, str]:
    return {
        "MessageSid": sid,
        "SmsSid": sid,
        "AccountSid": "AC00000000000000000000000000000000",
        "From": sender,
        "To": "+15005550006",
        "Body": body,
        "NumMedia": "0",
    }


def token_of(url: str) -> str:
    return urlsplit(url).path.split("/", 2)[2]


def tampered(token: str) -> str:
    body, signature = token.split(".")
    payload = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    payload["contact"] = "c2"
    forged = base64.urlsafe_b64encode(json.dumps(payload).encode()).rstrip(b"=").decode()
    return f"{forged}.{signature}"


# ------------------------------------------------------------------------------------- SendGrid


def test_sendgrid_events_update_touches_events_and_suppressions(
    client: TestClient, base: Engine, sendgrid_key: ec.EllipticCurvePrivateKey
) -> None:
    with base.connect() as c:
        before = load_engagement(c, "onboarding")
    assert not before["opened"].any() and not before["clicked"].any()

    events = [
        sg_event("processed", T_MAIL, "ev-processed"),
        sg_event("processed", T_MAIL_PENDING, "ev-processed-2", sg_message_id="0aZ9.filter.1"),
        sg_event("delivered", T_MAIL, "ev-delivered"),
        sg_event("open", T_MAIL, "ev-open"),
        sg_event("click", T_MAIL, "ev-click", url="https://app.example/setup"),
        sg_event("deferred", T_MAIL_SENT, "ev-deferred"),
        sg_event("bounce", T_MAIL_SENT, "ev-bounce-blocked", type="blocked"),  # temporary: no suppression
        sg_event("dropped", T_MAIL_OTHER, "ev-dropped", reason="Bounced Address"),
        sg_event("open", "onboarding/zz/9/nope/email_1/c9", "ev-unknown"),
        sg_event("open", T_SMS, "ev-wrong-channel"),
        sg_event("group_resubscribe", T_MAIL, "ev-new-kind"),
    ]
    response = post_sendgrid(client, sendgrid_key, events)
    assert response.status_code == 200, response.text
    assert response.json() == {
        "received": 11,
        "recorded": 4,  # delivered, open, click, dropped
        "duplicates": 0,
        "unknown": 2,
        "ignored": 2,  # a blocked bounce (temporary), a kind we do not know
        "touches": 2,
        "suppressed": 2,  # c3's address: c1 has it too (opt-outs follow the person)
        "unsuppressed": 0,
    }
    # processed/delivered: the ambiguous touch is `sent`, with the id the send API returned.
    assert touch(base, T_MAIL) == ("sent", "14c5d75ce93", None)
    assert touch(base, T_MAIL_PENDING) == ("sent", "0aZ9", None)
    assert touch(base, T_MAIL_SENT) == ("sent", "sgid-2", None)
    assert events_of(base, "email_delivered") == [("a1", "c1", T_MAIL, "sendgrid")]
    assert events_of(base, "email_opened") == [("a1", "c1", T_MAIL, "sendgrid")]
    assert events_of(base, "email_clicked") == [("a1", "c1", T_MAIL, "sendgrid")]
    assert events_of(base, "email_bounced") == [("a2", "c3", T_MAIL_OTHER, "sendgrid")]
    assert suppressions(base) == {("c1", "email"): "dropped", ("c3", "email"): "dropped"}
    with base.connect() as c:
        after = load_engagement(c, "onboarding").set_index("enrollment_id")
        enrollment_a1 = c.scalar(select(Enrollment.id).where(Enrollment.account_id == "a1"))
        reachable = load_contacts(c).set_index("contact_id")
    assert after.loc[enrollment_a1, "opened"] and after.loc[enrollment_a1, "clicked"]
    assert not reachable.loc["c3", "email_ok"] and not reachable.loc["c1", "email_ok"]
    assert reachable.loc["c2", "email_ok"]

    # Bounces, spam reports and unsubscribes suppress email and say why.
    response = post_sendgrid(
        client,
        sendgrid_key,
        [
            sg_event("bounce", T_MAIL_SENT, "ev-bounce", type="bounce", email="bob@customer.example"),
            sg_event("spamreport", T_MAIL, "ev-spam"),
            sg_event("unsubscribe", T_MAIL_OTHER, "ev-unsub"),  # c3 stays `dropped`: first reason kept
        ],
    )
    assert response.status_code == 200, response.text
    assert suppressions(base) == {  # c1 and c3 share an address: both stay `dropped`, first kept
        ("c1", "email"): "dropped",
        ("c2", "email"): "bounced",
        ("c3", "email"): "dropped",
    }
    assert events_of(base, "unsubscribed") == [
        ("a1", "c1", T_MAIL, "sendgrid"),
        ("a2", "c3", T_MAIL_OTHER, "sendgrid"),
    ]


def test_sendgrid_group_unsubscribe_and_events_without_touch_key(
    client: TestClient, base: Engine, sendgrid_key: ec.EllipticCurvePrivateKey
) -> None:
    response = post_sendgrid(
        client,
        sendgrid_key,
        [
            sg_event("group_unsubscribe", T_MAIL_SENT, "ev-group", asm_group_id=42),
            # No touch_key (e.g. sent before custom args existed): an address we know is suppressed
            # for every contact who has it; an open cannot be tied to a touch and is skipped.
            sg_event("bounce", None, "ev-bounce-no-key", email="ADA@customer.example", type="bounce"),
            sg_event("open", None, "ev-open-no-key"),
            sg_event("bounce", None, "ev-stranger", email="stranger@elsewhere.example", type="bounce"),
        ],
    )
    assert response.status_code == 200, response.text
    assert response.json()["unknown"] == 2
    assert suppressions(base) == {
        ("c1", "email"): "bounced",
        ("c2", "email"): "unsubscribed",
        ("c3", "email"): "bounced",
    }
    assert [row[:2] for row in events_of(base, "email_bounced")] == [("a1", "c1"), ("a2", "c3")]
    assert events_of(base, "email_opened") == []


def test_sendgrid_replay_changes_nothing(
    client: TestClient, base: Engine, sendgrid_key: ec.EllipticCurvePrivateKey
) -> None:
    events = [
        sg_event("delivered", T_MAIL, "ev-1"),
        sg_event("open", T_MAIL, "ev-2"),
        sg_event("open", T_MAIL, "ev-2"),  # SendGrid may repeat an event inside a batch, too
        sg_event("bounce", T_MAIL_SENT, "ev-3", type="bounce"),
    ]
    first = post_sendgrid(client, sendgrid_key, events)
    assert first.json()["recorded"] == 3 and first.json()["duplicates"] == 1
    state = snapshot(base)
    second = post_sendgrid(client, sendgrid_key, events)  # signed again: a redelivery
    assert second.status_code == 200
    assert second.json()["recorded"] == 0 and second.json()["duplicates"] == 4
    assert second.json()["suppressed"] == 0
    assert snapshot(base) == state


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)  # SQLite has one writer: no deadlocks
def test_a_deadlock_with_another_writer_is_retried(base: Engine, caplog: pytest.LogCaptureFixture) -> None:
    """Another writer locks our two touches in the opposite order: PostgreSQL aborts the batch,
    which runs again and succeeds (every call is idempotent)."""
    events = feedback.parse_sendgrid_events(
        json.dumps([sg_event("processed", T_MAIL_PENDING, "ev-b"), sg_event("processed", T_MAIL, "ev-a")])
    )
    other = base.connect()
    # Autocommit: PostgreSQL snapshots pg_stat_activity once per transaction.
    watcher = base.connect().execution_options(isolation_level="AUTOCOMMIT")
    try:
        # The other writer waits longer before checking for deadlocks, so the batch is the one aborted.
        other.exec_driver_sql("SET deadlock_timeout = '30s'")
        other.execute(update(Touch).where(Touch.key == T_MAIL_PENDING).values(error="other writer"))
        with ThreadPoolExecutor(1) as pool:
            applying = pool.submit(feedback.apply_sendgrid_events, base, events)
            # The batch locks T_MAIL (first in key order), then waits for T_MAIL_PENDING.
            waiting = text(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
            deadline = time.monotonic() + 60
            while not watcher.scalar(waiting):
                assert not applying.done(), applying.result()
                assert time.monotonic() < deadline, "the batch never waited for the other writer's lock"
            other.execute(update(Touch).where(Touch.key == T_MAIL).values(error="other writer"))
            other.commit()
            result = applying.result(timeout=60)
    finally:
        other.close()
        watcher.close()
    assert result.touches == 2
    assert touch(base, T_MAIL) == ("sent", "14c5d75ce93", "other writer")
    assert touch(base, T_MAIL_PENDING)[0] == "sent"
    assert "40P01" in caplog.text


def test_sendgrid_refuses_unsigned_tampered_and_stale_bodies(
    client: TestClient, base: Engine, sendgrid_key: ec.EllipticCurvePrivateKey
) -> None:
    body = json.dumps([sg_event("unsubscribe", T_MAIL, "ev-forged")]).encode()
    good = sign_sendgrid(sendgrid_key, body)
    other_key = ec.generate_private_key(ec.SECP256R1())
    state = snapshot(base)
    attempts = {
        "unsigned": (body, {"Content-Type": "application/json"}),
        "body changed after signing": (body.replace(b"ev-forged", b"ev-forgeD"), good),
        "timestamp changed": (
            body,
            good | {"X-Twilio-Email-Event-Webhook-Timestamp": str(int(time.time()) + 1)},
        ),
        "another key": (body, sign_sendgrid(other_key, body)),
        "garbage signature": (body, good | {"X-Twilio-Email-Event-Webhook-Signature": "not base64!"}),
        "stale": (body, sign_sendgrid(sendgrid_key, body, int(time.time()) - 3600)),
        "from the future": (body, sign_sendgrid(sendgrid_key, body, int(time.time()) + 3600)),
        "timestamp not a number": (body, good | {"X-Twilio-Email-Event-Webhook-Timestamp": "yesterday"}),
    }
    for name, (content, headers) in attempts.items():
        response = client.post("/webhooks/sendgrid", content=content, headers=headers)
        assert response.status_code == 403, (name, response.text)
        assert response.json()["error"], name
    assert "tolerance" in client.post("/webhooks/sendgrid", content=body, headers=attempts["stale"][1]).text
    # Not UTF-8: the library verifies text, so such a body can never be verified.
    garbage = b"\xff\xfe[]"
    assert (
        client.post(
            "/webhooks/sendgrid", content=garbage, headers=sign_sendgrid(sendgrid_key, garbage)
        ).status_code
        == 403
    )
    assert snapshot(base) == state
    # The same body, properly signed, goes through: the refusals were about the signature only.
    assert client.post("/webhooks/sendgrid", content=body, headers=good).status_code == 200
    assert suppressions(base) == {("c1", "email"): "unsubscribed", ("c3", "email"): "unsubscribed"}


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"{not json", "not JSON"),
        (b'{"event": "open"}', "JSON array"),
        (b"[1, 2]", "event 0: must be an object"),
        (b'[{"timestamp": 1700000000}]', "event 0: `event`"),
        (
            b'[{"event": "open", "timestamp": 1700000000}, {"event": "open", "timestamp": "x"}]',
            "event 1: `timestamp`",
        ),
        (b'[{"event": "open", "timestamp": 1700000000000}]', "Unix time in seconds"),
    ],
)
def test_sendgrid_malformed_bodies_are_400_with_the_reason(
    client: TestClient, base: Engine, sendgrid_key: ec.EllipticCurvePrivateKey, body: bytes, reason: str
) -> None:
    response = client.post("/webhooks/sendgrid", content=body, headers=sign_sendgrid(sendgrid_key, body))
    assert response.status_code == 400, response.text
    assert reason in response.json()["error"]
    assert events_of(base, "email_opened") == []


def test_webhooks_without_keys_answer_503_so_providers_retry(base: Engine, tmp_path: Path) -> None:
    settings = Settings(database_url="sqlite://", outbox_dir=tmp_path, public_url=PUBLIC_URL)
    with TestClient(create_app(bootstrap.build(settings, engine=base)), base_url=PUBLIC_URL) as bare:
        body = json.dumps([sg_event("open", T_MAIL, "ev")]).encode()
        assert bare.post("/webhooks/sendgrid", content=body).status_code == 503
        assert (
            post_twilio(bare, "/webhooks/twilio/inbound", inbound_sms("SM1", PHONE_1, "STOP")).status_code
            == 503
        )
    assert suppressions(base) == {}


def test_a_bad_sendgrid_key_fails_at_start(base: Engine, settings: Settings) -> None:
    with pytest.raises(ValueError, match="SENDGRID_WEBHOOK_PUBLIC_KEY"):
        create_app(
            bootstrap.build(
                settings.model_copy(update={"sendgrid_webhook_public_key": "bm90IGEga2V5"}), engine=base
            )
        )


# --------------------------------------------------------------------------------------- Twilio


def test_twilio_status_callbacks(client: TestClient, base: Engine) -> None:
    path = "/webhooks/twilio/status"
    query = urlencode({"touch_key": T_SMS})
    response = post_twilio(client, path, status_callback("SM-1", "queued"), query)
    assert response.status_code == 200, response.text
    assert touch(base, T_SMS) == ("sent", "SM-1", None)

    assert post_twilio(client, path, status_callback("SM-1", "delivered"), query).json()["recorded"] == 1
    assert events_of(base, "sms_delivered") == [("a1", "c1", T_SMS, "twilio")]
    state = snapshot(base)
    again = post_twilio(client, path, status_callback("SM-1", "delivered"), query)
    assert again.status_code == 200 and again.json()["duplicates"] == 1
    assert snapshot(base) == state

    # Twilio refused the message because the number opted out (21610): suppress SMS, never retry.
    query_2 = urlencode({"touch_key": T_SMS_2})
    response = post_twilio(client, path, status_callback("SM-2", "undelivered", "21610"), query_2)
    assert response.json()["suppressed"] == 1
    assert suppressions(base) == {("c2", "sms"): "sms_stop"}
    assert events_of(base, "sms_stop") == [("a1", "c2", T_SMS_2, "twilio")]
    with base.connect() as c:
        assert not load_contacts(c).set_index("contact_id").loc["c2", "sms_ok"]
    assert touch(base, T_SMS_2) == ("sent", "SM-old", None)  # was sent: the outcome is in the events

    # Unknown touch keys and statuses are counted, not errors.
    unknown = post_twilio(client, path, status_callback("SM-3", "sent"), urlencode({"touch_key": "nope"}))
    assert unknown.status_code == 200 and unknown.json()["unknown"] == 1


def test_the_callback_url_the_twilio_channel_sends_is_the_one_verified(
    client: TestClient, base: Engine, settings: Settings
) -> None:
    """The contract with techtouch.adapters.channels.twilio: its status callback URL, signed by Twilio over
    exactly that URL, passes verification and names the touch."""
    twilio_settings = settings.model_copy(
        update={"sms_channel": "twilio", "twilio_account_sid": "AC" + "0" * 32, "twilio_from": "+15005550006"}
    )
    _, sms = build_channels(twilio_settings)
    callback = sms.callback_url(T_SMS)
    assert callback.startswith(f"{PUBLIC_URL}/webhooks/twilio/status?")
    params = status_callback("SM-7", "sent")
    signature = RequestValidator(TWILIO_TOKEN).compute_signature(callback, params)
    parts = urlsplit(callback)
    response = client.post(
        f"{parts.path}?{parts.query}",
        content=urlencode(params),
        headers={"X-Twilio-Signature": signature, "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 200, response.text
    assert touch(base, T_SMS) == ("sent", "SM-7", None)


def test_twilio_failure_marks_an_ambiguous_touch_failed(client: TestClient, base: Engine) -> None:
    response = post_twilio(
        client,
        "/webhooks/twilio/status",
        status_callback("SM-9", "failed", "30008"),
        urlencode({"touch_key": T_SMS}),
    )
    assert response.status_code == 200
    assert touch(base, T_SMS) == ("failed", "SM-9", "twilio failed (error 30008)")
    assert suppressions(base) == {}


def test_twilio_refuses_bad_signatures_and_malformed_bodies(client: TestClient, base: Engine) -> None:
    path = "/webhooks/twilio/status"
    query = urlencode({"touch_key": T_SMS})
    params = status_callback("SM-1", "delivered")
    state = snapshot(base)
    assert post_twilio(client, path, params, query, token="another-token").status_code == 403
    # Signed for the URL without the query: the touch key could have been swapped in.
    signature = RequestValidator(TWILIO_TOKEN).compute_signature(f"{PUBLIC_URL}{path}", params)
    headers = {"X-Twilio-Signature": signature, "Content-Type": "application/x-www-form-urlencoded"}
    assert client.post(f"{path}?{query}", content=urlencode(params), headers=headers).status_code == 403
    forged = params | {"MessageStatus": "undelivered", "ErrorCode": "21610"}
    assert client.post(f"{path}?{query}", content=urlencode(forged), headers=headers).status_code == 403
    unsigned = {"Content-Type": "application/x-www-form-urlencoded"}
    response = client.post(
        "/webhooks/twilio/inbound", content=urlencode(inbound_sms("SM5", PHONE_1, "STOP")), headers=unsigned
    )
    assert response.status_code == 403
    assert snapshot(base) == state

    response = client.post(path, json={"MessageSid": "SM-1"})
    assert response.status_code == 400 and "form-urlencoded" in response.json()["error"]
    response = post_twilio(client, path, {"MessageStatus": "sent"}, query)
    assert response.status_code == 400 and "MessageSid" in response.json()["error"]
    response = post_twilio(client, "/webhooks/twilio/inbound", {"Body": "STOP", "MessageSid": "SM6"})
    assert response.status_code == 400 and "From" in response.json()["error"]
    assert snapshot(base) == state


def twiml_messages(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/xml")
    return re.findall(r"<Message>(.*?)</Message>", response.text, re.S)


def test_inbound_stop_start_help(client: TestClient, base: Engine) -> None:
    path = "/webhooks/twilio/inbound"

    def sms_ok() -> dict[str, bool]:
        with base.connect() as c:
            return load_contacts(c).set_index("contact_id")["sms_ok"].to_dict()

    assert sms_ok() == {"c1": True, "c2": True, "c3": False}
    assert twiml_messages(post_twilio(client, path, inbound_sms("SM-a", PHONE_1, "  Stop \n"))) == []
    assert sms_ok()["c1"] is False and sms_ok()["c2"] is True
    assert suppressions(base) == {("c1", "sms"): "sms_stop"}
    assert [row[:2] for row in events_of(base, "sms_stop")] == [("a1", "c1")]

    assert twiml_messages(post_twilio(client, path, inbound_sms("SM-b", PHONE_1, "start"))) == []
    assert sms_ok()["c1"] is True
    assert [row[:2] for row in events_of(base, "sms_start")] == [("a1", "c1")]

    # A redelivered old STOP does not undo the newer START.
    assert post_twilio(client, path, inbound_sms("SM-a", PHONE_1, "  Stop \n")).status_code == 200
    assert sms_ok()["c1"] is True

    for word in ("STOPALL", "unsubscribe", "Cancel", "END", "quit"):
        post_twilio(client, path, inbound_sms(f"SM-{word}", PHONE_2, word))
        assert sms_ok()["c2"] is False, word
        post_twilio(client, path, inbound_sms(f"SM-un-{word}", PHONE_2, "UNSTOP"))
        assert sms_ok()["c2"] is True, word

    (help_text,) = twiml_messages(post_twilio(client, path, inbound_sms("SM-c", PHONE_1, "help")))
    assert "STOP" in help_text and "The Customer Success team" in help_text

    # Anything else: nothing stored, nothing said; "stop it" is a sentence, not the keyword.
    state = snapshot(base)
    for i, body in enumerate(["stop it", "My card is 4111 1111 1111 1111", ""]):
        assert twiml_messages(post_twilio(client, path, inbound_sms(f"SM-x{i}", PHONE_1, body))) == []
    assert twiml_messages(post_twilio(client, path, inbound_sms("SM-y", "+447700900123", "STOP"))) == []
    assert snapshot(base) == state


def test_a_start_at_the_stop_s_instant_keeps_the_opt_out(base: Engine) -> None:
    """The one suppression rule (techtouch.domain.suppression), as the importer applies it: a START
    lifts only a STOP strictly before it; at the same instant the opt-out wins."""

    def inbound(sid: str, word: str, at: datetime) -> feedback.Inbound:
        return feedback.apply_twilio_inbound(base, inbound_sms(sid, PHONE_1, word), now=at)

    assert inbound("SM-stop", "STOP", NOW).applied.suppressed == 1

    earlier = inbound("SM-early", "START", NOW - timedelta(seconds=1))
    tie = inbound("SM-tie", "START", NOW)
    assert (earlier.applied.recorded, earlier.applied.unsuppressed) == (1, 0)
    assert (tie.action, tie.applied.recorded, tie.applied.unsuppressed) == ("start", 1, 0)
    assert suppressions(base) == {("c1", "sms"): "sms_stop"}
    with base.connect() as c:
        assert not load_contacts(c).set_index("contact_id")["sms_ok"]["c1"]

    later = inbound("SM-late", "START", NOW + timedelta(microseconds=1))
    assert later.applied.unsuppressed == 1
    assert suppressions(base) == {}


# ---------------------------------------------------------------------------------------- links


def test_unsubscribe_page_and_one_click(client: TestClient, base: Engine, signer: LinkSigner) -> None:
    url = signer.unsubscribe("c1")
    assert url.startswith(f"{PUBLIC_URL}/u/")
    path = urlsplit(url).path
    page = client.get(path)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert '<form method="post">' in page.text and "emails" in page.text
    assert page.headers["referrer-policy"] == "no-referrer"
    assert suppressions(base) == {}  # showing the page (or a scanner following the link) changes nothing

    # RFC 8058: the mailbox provider POSTs `List-Unsubscribe=One-Click` to the List-Unsubscribe URL.
    one_click = client.post(
        path,
        content="List-Unsubscribe=One-Click",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert one_click.status_code == 200 and "unsubscribed" in one_click.text
    # c3 has c1's address: the opt-out follows the person, in every account.
    assert suppressions(base) == {("c1", "email"): "unsubscribed", ("c3", "email"): "unsubscribed"}
    assert [row[:2] for row in events_of(base, "unsubscribed")] == [("a1", "c1"), ("a2", "c3")]
    with base.connect() as c:
        assert not load_contacts(c).set_index("contact_id").loc["c1", "email_ok"]

    state = snapshot(base)
    assert client.post(path, data={"List-Unsubscribe": "One-Click"}).status_code == 200  # the page's button
    assert snapshot(base) == state

    sms = urlsplit(signer.unsubscribe("c2", channel="sms")).path
    assert "text messages" in client.get(sms).text
    assert client.post(sms).status_code == 200
    assert suppressions(base)[("c2", "sms")] == "sms_stop"


def test_tampered_and_misused_tokens_are_400(client: TestClient, base: Engine, signer: LinkSigner) -> None:
    unsubscribe = token_of(signer.unsubscribe("c1"))
    survey = token_of(signer.survey("a1", "c1", "nps", 9))
    state = snapshot(base)
    for method, path in [
        ("GET", f"/u/{tampered(unsubscribe)}"),
        ("POST", f"/u/{tampered(unsubscribe)}"),
        ("POST", f"/u/{unsubscribe[:-2]}"),
        ("POST", f"/u/{survey}"),  # a survey link is not an unsubscribe link
        ("GET", f"/s/{tampered(survey)}"),
        ("GET", f"/s/{unsubscribe}"),
        ("POST", f"/s/{tampered(survey)}/comment"),
        ("GET", f"/p/{unsubscribe}"),
        ("GET", "/u/not-a-token"),
    ]:
        response = client.request(method, path, data={"comment": "hi"} if method == "POST" else None)
        assert response.status_code == 400, (method, path)
        assert "not valid" in response.text
    other = LinkSigner(PUBLIC_URL, b"another-deployment-secret")
    assert client.get(urlsplit(other.survey("a1", "c1", "nps", 9)).path).status_code == 400
    assert snapshot(base) == state


def test_survey_answers_repeat_and_change(client: TestClient, base: Engine, signer: LinkSigner) -> None:
    def answer(value: str, contact: str = "c1") -> httpx.Response:
        path = urlsplit(signer.survey("a1", contact, "renewal", value)).path
        shown = client.get(path)  # the question, this answer selected: nothing recorded yet
        assert shown.status_code == 200 and 'name="comment"' in shown.text, shown.text
        response = client.post(path, data={"answer": value})  # the confirm button
        assert response.status_code == 200, response.text
        return response

    def latest() -> str:
        with base.connect() as c:
            return latest_events(c, datetime.now(UTC) + timedelta(seconds=1)).loc["a1", "survey.renewal"]

    page = answer("likely")
    assert "Thank you" in page.text and "likely" in page.text
    assert latest() == "likely"
    answer("likely")  # a second click on the same answer
    assert events_of(base, "survey") == [("a1", "c1", "renewal:likely", "web")]
    answer("not_likely")  # changed their mind: the new answer wins
    assert latest() == "not_likely"
    answer("likely")  # and back again
    assert latest() == "likely"
    assert len(events_of(base, "survey")) == 3
    answer("unsure", contact="c2")  # a colleague answers later: the account's latest answer
    assert latest() == "unsure"


def test_survey_answers_win_over_a_clock_behind_imported_answers(base: Engine) -> None:
    later = NOW + timedelta(days=30)
    feedback.record_survey_answer(base, "a1", "c2", "nps", "3", now=later)
    recorded = feedback.record_survey_answer(base, "a1", "c1", "nps", "9", now=NOW)
    assert recorded is not None and recorded.recorded
    with base.connect() as c:
        assert latest_events(c, later + timedelta(days=1)).loc["a1", "survey.nps"] == "9"


def test_every_answer_the_templates_offer_is_accepted(
    client: TestClient, base: Engine, signer: LinkSigner
) -> None:
    offered: set[tuple[str, str]] = set()
    for template in (PROJECT_ROOT / "templates").rglob("*.email.*"):
        source = template.read_text()
        for survey, answers in re.findall(r'ui\.choices\("(\w+)",\s*\[(.*?)\]\s*\)', source, re.S):
            offered |= {(survey, a) for a in re.findall(r'\(\s*"(\w+)"\s*,', answers)}
        for survey, low, high in re.findall(r'ui\.scale\("(\w+)",\s*(\d+),\s*(\d+)', source):
            offered |= {(survey, str(n)) for n in range(int(low), int(high) + 1)}
    surveys = {survey for survey, _ in offered}
    assert {"renewal", "nps", "csat", "advocate", "recovery_content", "talk_to_csm"} <= surveys
    assert len(offered) > 30
    for survey, answer in sorted(offered):
        path = urlsplit(signer.survey("a1", "c1", survey, answer)).path
        assert client.get(path).status_code == 200, (survey, answer)
        response = client.post(path, data={"answer": answer})
        assert response.status_code == 200, (survey, answer, response.text)
    with base.connect() as c:
        recorded = set(c.scalars(select(Event.value).where(Event.type == "survey")))
    assert recorded == {f"{survey}:{answer}" for survey, answer in offered}


def test_survey_answer_that_is_not_valid_is_400(client: TestClient, base: Engine, signer: LinkSigner) -> None:
    assert client.get(urlsplit(signer.survey("a1", "c1", "nps", 11)).path).status_code == 400
    assert client.get(urlsplit(signer.survey("gone", "c1", "nps", 9)).path).status_code == 404
    assert events_of(base, "survey") == []


def test_survey_comment(client: TestClient, base: Engine, signer: LinkSigner) -> None:
    token = token_of(signer.survey("a1", "c1", "nps", 6))
    assert client.get(f"/s/{token}").status_code == 200
    comment = "Setup took <b>too long</b>; the CSV import docs were confusing."
    response = client.post(f"/s/{token}/comment", data={"comment": comment})
    assert response.status_code == 200 and "Thank you" in response.text
    assert (
        client.post(f"/s/{token}/comment", data={"comment": comment + "  "}).status_code == 200
    )  # double submit
    with base.connect() as c:
        rows = c.execute(
            select(Event.value, Event.detail, Event.contact_id).where(Event.type == "survey_comment")
        ).all()
    assert [tuple(r) for r in rows] == [("nps:6", comment, "c1")]
    too_long = client.post(f"/s/{token}/comment", data={"comment": "x" * (feedback.COMMENT_MAX + 1)})
    assert too_long.status_code == 400 and "longer than" in too_long.text
    assert client.post(f"/s/{token}/comment", data={"comment": "   "}).status_code == 400
    assert client.post(f"/s/{token}/comment").status_code == 400


def test_preferences_page(client: TestClient, base: Engine, signer: LinkSigner) -> None:
    path = urlsplit(signer.preferences("c1")).path
    assert path.startswith("/p/")
    page = client.get(path)
    assert page.status_code == 200 and "Stop emails" in page.text and "Stop text messages" in page.text
    response = client.post(path, data={"channel": "sms"})
    assert response.status_code == 200 and "Stop text messages" not in response.text
    assert suppressions(base) == {("c1", "sms"): "sms_stop"}
    assert client.post(path, data={"channel": "fax"}).status_code == 400
    no_phone = client.get(urlsplit(signer.preferences("c3")).path)
    assert "Stop emails" in no_phone.text and "Stop text messages" not in no_phone.text


def test_healthz(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}


# ------------------------------------------------------------------------------- techtouch serve


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until_serving(process: subprocess.Popen[bytes], timeout: float = 60) -> list[str]:
    """Block until uvicorn says it listens (or the process ends): no sleeping, no busy polling."""
    ready = threading.Event()
    lines: list[str] = []

    def drain() -> None:
        assert process.stdout is not None
        for line in process.stdout:  # keeps reading, so the pipe never fills up
            lines.append(line.decode(errors="replace"))
            if b"Uvicorn running on" in line:
                ready.set()
        ready.set()

    threading.Thread(target=drain, daemon=True).start()
    assert ready.wait(timeout), f"not serving after {timeout} s: {''.join(lines)}"
    assert process.poll() is None, "".join(lines)
    return lines


def test_techtouch_serve(sqlite_url: str, tmp_path: Path, sendgrid_key: ec.EllipticCurvePrivateKey) -> None:
    """The real command under uvicorn: ready when /healthz answers, then a signed webhook goes in."""
    port = free_port()
    env = dict(os.environ) | {
        "TECHTOUCH_DATABASE_URL": sqlite_url,
        "TECHTOUCH_OUTBOX_DIR": str(tmp_path / "outbox"),
        "TECHTOUCH_SENDGRID_WEBHOOK_PUBLIC_KEY": public_key_b64(sendgrid_key),
        "TECHTOUCH_SECRET_KEY": "a-long-random-secret-for-this-test",
    }
    upgraded = subprocess.run(
        [sys.executable, "-m", "techtouch", "db", "upgrade"], env=env, capture_output=True, text=True
    )
    assert upgraded.returncode == 0, upgraded.stderr  # serve refuses a database without the schema
    process = subprocess.Popen(
        [sys.executable, "-m", "techtouch", "serve", "--port", str(port)],
        env=env,
        cwd=PROJECT_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        output = wait_until_serving(process)
        base_url = f"http://127.0.0.1:{port}"
        assert httpx.get(f"{base_url}/healthz").json() == {"status": "ok"}, output
        body = json.dumps([sg_event("open", "no-such-touch", "ev-1")]).encode()
        response = httpx.post(
            f"{base_url}/webhooks/sendgrid", content=body, headers=sign_sendgrid(sendgrid_key, body)
        )
        assert response.status_code == 200 and response.json()["unknown"] == 1
        assert httpx.post(f"{base_url}/webhooks/sendgrid", content=body).status_code == 403
        token = "tok3n-that-must-not-be-logged"
        assert httpx.get(f"{base_url}/u/{token}").status_code == 400
        httpx.post(f"{base_url}/webhooks/twilio/status?touch_key=renewal%2Fa1%2F1").status_code  # noqa: B018
    finally:
        process.terminate()
        process.wait(timeout=30)
    logged = "".join(output)
    assert "GET /u/… HTTP/1.1" in logged, logged
    assert token not in logged and "renewal%2Fa1" not in logged


@pytest.mark.parametrize(
    ("extra", "refusal"),
    [
        ({}, "needs TECHTOUCH_SECRET_KEY"),
        (
            {
                "TECHTOUCH_SECRET_KEY": "k" * 32,
                "TECHTOUCH_EMAIL_CHANNEL": "sendgrid",
                "TECHTOUCH_SENDGRID_API_KEY": "SG.x",
                "TECHTOUCH_PUBLIC_URL": "http://links.example.com",
            },
            "is plain http",
        ),
    ],
)
def test_techtouch_serve_refuses_a_development_key_or_plain_http_links(
    sqlite_url: str, extra: dict[str, str], refusal: str
) -> None:
    env = dict(os.environ) | {"TECHTOUCH_DATABASE_URL": sqlite_url} | extra
    subprocess.run(
        [sys.executable, "-m", "techtouch", "db", "upgrade"], env=env, check=True, capture_output=True
    )
    result = subprocess.run(
        [sys.executable, "-m", "techtouch", "serve", "--port", str(free_port())],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1 and refusal in result.stderr, result.stderr
