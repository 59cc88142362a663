"""Opt-outs follow the person: an email unsubscribe or bounce suppresses the address for every
contact that has it (in any case, in any account), including contacts imported later; the person
can re-subscribe from the preferences page (an unsubscribe, not a bounce), and that is recorded.
Both backends, the real app; what delivery and journeys read is `load_contacts`' email_ok."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, insert, select

from techtouch import bootstrap
from techtouch.adapters.db.bulk import insert_rows
from techtouch.adapters.db.models import (
    Account,
    Contact,
    EmailSuppression,
    Enrollment,
    Event,
    Suppression,
    Touch,
)
from techtouch.adapters.db.state import load_contacts
from techtouch.adapters.render.links import LinkSigner
from techtouch.entrypoints.web import create_app
from techtouch.services import feedback
from techtouch.services.importer import import_csv
from techtouch.settings import Settings
from tests.integration.journey_base import account, contact

PUBLIC_URL = "https://cs.example.com"
SECRET = "address-optout-test-secret-0123456789"
OLD_SECRET = "address-optout-last-years-secret-0123"
ADA = "ada@customer.example"
CONTACTS_HEADER = "contact_id,account_id,name,email,phone,role,email_consent,sms_consent"
EVENTS_HEADER = "account_id,contact_id,occurred_at,type,value"
NOW = (datetime.now(UTC) - timedelta(days=1)).replace(microsecond=0)


@pytest.fixture
def base(engine: Engine) -> Engine:
    """Ada is a contact of two accounts (c1 and c3, her address spelt two ways); Bob is c2."""
    with engine.begin() as c:
        insert_rows(c, Account.__table__, [account("a1"), account("a2")])
        insert_rows(
            c,
            Contact.__table__,
            [
                contact("c1", "a1", email=ADA),
                contact("c2", "a1", email="bob@customer.example", phone="+14155550123"),
                contact("c3", "a2", email="Ada@Customer.Example", phone=None),
            ],
        )
    return engine


def settings_of(engine: Engine, tmp_path: Path, **extra: Any) -> Settings:
    return Settings(
        database_url=engine.url.render_as_string(hide_password=False),
        outbox_dir=tmp_path / "outbox",
        public_url=PUBLIC_URL,
        secret_key=SECRET,
        **extra,
    )


@pytest.fixture
def client(base: Engine, tmp_path: Path) -> Iterator[TestClient]:
    app = create_app(bootstrap.build(settings_of(base, tmp_path), engine=base))
    with TestClient(app, base_url=PUBLIC_URL) as test_client:
        yield test_client


@pytest.fixture
def signer() -> LinkSigner:
    return LinkSigner(PUBLIC_URL, SECRET.encode())


def email_suppressions(engine: Engine) -> dict[str, str]:
    with engine.connect() as c:
        return dict(
            c.execute(
                select(Suppression.contact_id, Suppression.reason).where(Suppression.channel == "email")
            )
            .tuples()
            .all()
        )


def addresses(engine: Engine) -> dict[str, str]:
    with engine.connect() as c:
        return dict(c.execute(select(EmailSuppression.address, EmailSuppression.reason)).tuples().all())


def emailable(engine: Engine) -> dict[str, bool]:
    """What journeys and delivery read: may email reach the contact?"""
    with engine.connect() as c:
        return {k: bool(v) for k, v in load_contacts(c).set_index("contact_id")["email_ok"].items()}


def events_of(engine: Engine, type_: str) -> list[tuple[str, str | None]]:
    with engine.connect() as c:
        rows = c.execute(select(Event.contact_id, Event.value).where(Event.type == type_))
        return sorted(tuple(r) for r in rows)  # type: ignore[misc]


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def import_contacts(engine: Engine, tmp_path: Path, *rows: str) -> None:
    import_csv(
        engine, "contacts", write(tmp_path, "contacts.csv", "\n".join([CONTACTS_HEADER, *rows]) + "\n")
    )


def test_an_unsubscribe_link_suppresses_the_address_for_every_contact_and_later_imports(
    client: TestClient, base: Engine, signer: LinkSigner, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    path = urlsplit(signer.unsubscribe("c1")).path
    one_click = client.post(
        path,
        content="List-Unsubscribe=One-Click",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert one_click.status_code == 200
    assert email_suppressions(base) == {"c1": "unsubscribed", "c3": "unsubscribed"}
    assert emailable(base) == {"c1": False, "c2": True, "c3": False}
    assert events_of(base, "unsubscribed") == [("c1", "link"), ("c3", "link")]  # each account's story
    assert addresses(base) == {ADA: "unsubscribed"}

    # Imported later, in another spelling, into another account: suppressed at import.
    import_contacts(
        base,
        tmp_path,
        "c4,a2,Ada Again,ADA@customer.EXAMPLE,,champion,true,false",
        "c5,a2,Carol,carol@customer.example,,user,true,false",
    )
    assert email_suppressions(base) == {"c1": "unsubscribed", "c3": "unsubscribed", "c4": "unsubscribed"}
    assert emailable(base)["c4"] is False and emailable(base)["c5"] is True
    # A contact whose address changes to a suppressed one is suppressed too.
    import_contacts(base, tmp_path, f"c5,a2,Carol,{ADA},,user,true,false")
    assert emailable(base)["c5"] is False
    assert "ada@" not in caplog.text.lower() and "customer.example" not in caplog.text.lower()


def test_a_bounce_suppresses_the_address_even_for_contacts_imported_later(
    base: Engine, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    at = int(NOW.timestamp())
    bounces = [
        {
            "event": "bounce",
            "type": "bounce",
            "email": "ADA@customer.example",
            "timestamp": at,
            "sg_event_id": "b1",
        },
        {
            "event": "bounce",
            "type": "bounce",
            "email": "dave@elsewhere.example",
            "timestamp": at,
            "sg_event_id": "b2",
        },
    ]
    events = feedback.parse_sendgrid_events(json.dumps(bounces))
    applied = feedback.apply_sendgrid_events(base, events)
    assert applied.suppressed == 2 and applied.unknown == 1
    assert email_suppressions(base) == {"c1": "bounced", "c3": "bounced"}
    assert addresses(base) == {ADA: "bounced", "dave@elsewhere.example": "bounced"}
    # Dave was no contact yet: when he is imported, his address is known to bounce.
    import_contacts(base, tmp_path, "c6,a1,Dave,Dave@Elsewhere.example,,user,true,false")
    assert emailable(base)["c6"] is False
    assert "elsewhere" not in caplog.text.lower() and "ada@" not in caplog.text.lower()


def test_a_bounce_of_one_contact_s_touch_suppresses_the_others_with_the_address(base: Engine) -> None:
    touch_key = "onboarding/a2/1/welcome/email/c3"
    with base.begin() as c:
        enrollment_id = c.execute(
            insert(Enrollment)
            .values(account_id="a2", journey="onboarding", cycle=1, status="active", entered_as_of=NOW.date())
            .returning(Enrollment.id)
        ).scalar_one()
        c.execute(
            insert(Touch).values(
                key=touch_key,
                enrollment_id=enrollment_id,
                account_id="a2",
                contact_id="c3",
                journey="onboarding",
                milestone="welcome",
                rung="email",
                channel="email",
                status="sent",
                as_of=NOW.date(),
            )
        )
    event = feedback.SendGridEvent("dropped", NOW, "k-dropped", touch_key, None, None, None)
    assert feedback.apply_sendgrid_events(base, [event]).suppressed == 2
    assert email_suppressions(base) == {"c1": "dropped", "c3": "dropped"}


def test_imported_opt_outs_follow_the_person_and_a_resubscription_is_honoured(
    base: Engine, tmp_path: Path
) -> None:
    unsubscribed = write(
        tmp_path, "events.csv", f"{EVENTS_HEADER}\na2,c3,2026-12-01T10:00:00Z,unsubscribed,\n"
    )
    import_csv(base, "events", unsubscribed)
    assert email_suppressions(base) == {"c1": "unsubscribed", "c3": "unsubscribed"}
    feedback.resubscribe(base, "c1", now=datetime(2026, 12, 2, tzinfo=UTC))
    assert email_suppressions(base) == {} and addresses(base) == {}
    import_csv(base, "events", unsubscribed)  # the same file again: the later re-subscription stands
    assert email_suppressions(base) == {}
    later = write(tmp_path, "later.csv", f"{EVENTS_HEADER}\na1,c1,2026-12-03T10:00:00Z,unsubscribed,\n")
    import_csv(base, "events", later)  # a newer opt-out wins again
    assert email_suppressions(base) == {"c1": "unsubscribed", "c3": "unsubscribed"}


def test_resubscribing_from_the_preferences_page_lifts_an_unsubscribe_and_is_recorded(
    client: TestClient, base: Engine, signer: LinkSigner
) -> None:
    feedback.unsubscribe(base, "c3", "email", source="link", now=NOW)
    path = urlsplit(signer.preferences("c1")).path
    page = client.get(path)
    assert "Emails: <strong>off</strong>" in page.text and "Get emails again" in page.text
    resumed = client.post(path, data={"channel": "email", "action": "resume"})
    assert resumed.status_code == 200, resumed.text
    assert "you will get our emails again" in resumed.text and "Stop emails" in resumed.text
    assert email_suppressions(base) == {} and addresses(base) == {}
    assert emailable(base) == {"c1": True, "c2": True, "c3": True}
    assert events_of(base, "email_resubscribed") == [("c1", "preferences"), ("c3", "preferences")]
    # A second click changes nothing; stopping again works as before.
    assert client.post(path, data={"channel": "email", "action": "resume"}).status_code == 200
    assert len(events_of(base, "email_resubscribed")) == 2
    assert client.post(path, data={"channel": "email"}).status_code == 200
    assert email_suppressions(base) == {"c1": "unsubscribed", "c3": "unsubscribed"}
    # Text messages are resumed by texting START, not from the page.
    assert client.post(path, data={"channel": "sms", "action": "resume"}).status_code == 400
    assert client.post(path, data={"channel": "email", "action": "delete"}).status_code == 400


def test_a_bounce_is_not_lifted_by_a_click(client: TestClient, base: Engine, signer: LinkSigner) -> None:
    feedback.unsubscribe(base, "c1", "email", now=NOW)
    at = int((NOW + timedelta(hours=1)).timestamp())
    events = feedback.parse_sendgrid_events(
        f'[{{"event": "bounce", "type": "bounce", "email": "{ADA}", "timestamp": {at}, "sg_event_id": "b"}}]'
    )
    feedback.apply_sendgrid_events(base, events)
    assert addresses(base) == {ADA: "bounced"}  # a bounce outranks the unsubscribe it follows
    path = urlsplit(signer.preferences("c3")).path
    page = client.get(path)
    assert "Get emails again" not in page.text and "refused or reported" in page.text
    assert client.post(path, data={"channel": "email", "action": "resume"}).status_code == 200
    assert email_suppressions(base) == {"c1": "unsubscribed", "c3": "unsubscribed"}
    assert emailable(base)["c1"] is False and emailable(base)["c3"] is False
    assert events_of(base, "email_resubscribed") == []


@pytest.mark.parametrize("kept", [True, False])
def test_unsubscribe_links_in_mail_sent_before_a_rotation(base: Engine, tmp_path: Path, kept: bool) -> None:
    sent_last_year = urlsplit(LinkSigner(PUBLIC_URL, OLD_SECRET.encode()).unsubscribe("c2")).path
    settings = settings_of(base, tmp_path, previous_secret_keys=[OLD_SECRET] if kept else [])
    with TestClient(create_app(bootstrap.build(settings, engine=base)), base_url=PUBLIC_URL) as client:
        response = client.post(sent_last_year, data={"List-Unsubscribe": "One-Click"})
        fresh = urlsplit(LinkSigner(PUBLIC_URL, SECRET.encode()).preferences("c2")).path
        assert client.get(fresh).status_code == 200  # the new key signs and verifies
    if kept:
        assert response.status_code == 200 and email_suppressions(base) == {"c2": "unsubscribed"}
    else:
        assert response.status_code == 400 and email_suppressions(base) == {}
