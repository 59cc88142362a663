"""Who may still be reached: unsubscribe links, the preferences page, and START lifting a STOP.

Every change here goes through the suppressions table, the one place journeys check; when an SMS
opt-out is lifted is decided by techtouch.domain.suppression, the same rule the importer follows.

Opt-outs follow the person: an email unsubscribe suppresses the address for every contact that
has it, now and imported later (techtouch.services.importing.suppressions), as a STOP does for a
phone number; each of those contacts gets an `unsubscribed` event. Re-subscribing from the
preferences page lifts an unsubscribe (not a bounce or a spam report) for the address, recorded
as an `email_resubscribed` event per contact.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, delete, func, select

from techtouch.adapters.db.models import Contact, EmailSuppression, Suppression
from techtouch.domain.suppression import SMS_STOP, start_lifts
from techtouch.services.feedback.errors import BadAnswer
from techtouch.services.feedback.recording import (
    Applied,
    aware_now,
    record,
    retry_transient,
    suppress,
    writing,
)
from techtouch.services.importer import event_key
from techtouch.services.importing.suppressions import (
    EMAIL_RESUBSCRIBED,
    LIFTABLE,
    address_of,
    lift_addresses,
    suppress_addresses,
)

log = logging.getLogger(__name__)

LINK_CHANNELS = ("email", "sms")


@dataclass(frozen=True)
class Unsubscribed:
    """The result of an unsubscribe click, for the page that confirms it."""

    found: bool  # the contact exists
    changed: bool  # this call suppressed the channel (False: it already was, or no such contact)


@retry_transient
def unsubscribe(
    engine: Engine,
    contact_id: str,
    channel: str = "email",
    *,
    source: str = "web",
    now: datetime | None = None,
) -> Unsubscribed:
    """Suppress `channel` for a contact from a signed link; a repeated click changes nothing.

    Email records `unsubscribed` (reason `unsubscribed`) for every contact with the contact's
    address, and suppresses the address (contacts imported later with it are suppressed too); SMS
    records `sms_stop` (reason `sms_stop`, so that texting START lifts it, as it would after
    texting STOP).
    """
    if channel not in LINK_CHANNELS:
        raise BadAnswer(f"unknown channel {channel!r}")
    occurred_at = aware_now(now)
    with writing(engine) as connection:
        found = connection.execute(
            select(Contact.account_id, Contact.email).where(Contact.id == contact_id)
        ).first()
        if found is None:
            return Unsubscribed(found=False, changed=False)
        account_id, email = found
        already = connection.scalar(
            select(Suppression.reason).where(
                Suppression.contact_id == contact_id, Suppression.channel == channel
            )
        )
        if already is not None:
            return Unsubscribed(found=True, changed=False)
        if channel == "email":
            address = address_of(email)
            targets = _same_address(connection, address)
            rows = [
                _event(account, contact, occurred_at, "unsubscribed", source) for contact, account in targets
            ]
            record(connection, rows, Applied())
            suppress_addresses(
                connection, [{"address": address, "reason": "unsubscribed", "since": occurred_at}]
            )
        else:
            record(connection, [_event(account_id, contact_id, occurred_at, SMS_STOP, source)], Applied())
            suppress(
                connection,
                [{"contact_id": contact_id, "channel": "sms", "reason": SMS_STOP, "since": occurred_at}],
            )
    log.info("unsubscribed from %s via %s", channel, source)
    return Unsubscribed(found=True, changed=True)


def _event(
    account_id: str, contact_id: str, occurred_at: datetime, type_: str, source: str
) -> dict[str, Any]:
    return {
        "key": event_key(account_id, contact_id, occurred_at, type_, source),
        "account_id": account_id,
        "contact_id": contact_id,
        "occurred_at": occurred_at,
        "type": type_,
        "value": source,
        "source": source,
    }


def _same_address(connection: Connection, address: str) -> list[tuple[str, str]]:
    """(contact id, account id) of every contact with this (lower-cased) address, by id."""
    return [
        (contact_id, account_id)
        for contact_id, account_id in connection.execute(
            select(Contact.id, Contact.account_id)
            .where(func.lower(Contact.email) == address)
            .order_by(Contact.id)
        )
    ]


@dataclass(frozen=True)
class Resubscribed:
    """The result of a re-subscription from the preferences page."""

    found: bool  # the contact exists
    changed: bool  # this call lifted the address's unsubscribe
    refused: bool = False  # the address is suppressed for a reason a click does not lift (a bounce)


@retry_transient
def resubscribe(
    engine: Engine, contact_id: str, *, source: str = "preferences", now: datetime | None = None
) -> Resubscribed:
    """Lift an email unsubscribe for the contact's address (every contact with it), recorded as an
    `email_resubscribed` event per contact. A bounce, drop or spam report is not lifted (`refused`):
    the address does not take mail, or the provider keeps its own list; an operator decides."""
    occurred_at = aware_now(now)
    with writing(engine) as connection:
        found = connection.execute(select(Contact.email).where(Contact.id == contact_id)).first()
        if found is None:
            return Resubscribed(found=False, changed=False)
        address = address_of(found[0])
        targets = _same_address(connection, address)
        reasons = set(
            connection.scalars(
                select(Suppression.reason).where(
                    Suppression.contact_id.in_([c for c, _ in targets]), Suppression.channel == "email"
                )
            )
        )
        reasons |= set(
            connection.scalars(select(EmailSuppression.reason).where(EmailSuppression.address == address))
        )
        if not reasons:
            return Resubscribed(found=True, changed=False)
        if not reasons <= set(LIFTABLE):
            return Resubscribed(found=True, changed=False, refused=True)
        if not lift_addresses(connection, {address: occurred_at}):
            return Resubscribed(found=True, changed=False)  # the opt-out is newer than this click
        record(
            connection,
            [
                _event(account, contact, occurred_at, EMAIL_RESUBSCRIBED, source)
                for contact, account in targets
            ],
            Applied(),
        )
    log.info("resubscribed to email via %s", source)
    return Resubscribed(found=True, changed=True)


def lift_sms_stop(connection: Connection, contact_ids: Sequence[str], start: datetime) -> int:
    """START lifts the contacts' `sms_stop` suppressions that `start_lifts` says it does.

    The suppressions are read (and on PostgreSQL locked, so that the rows judged are the rows
    deleted) and judged in Python by techtouch.domain.suppression rather than by a comparison
    written again in SQL: the importer and this webhook cannot drift apart on a STOP and a START
    at the same instant (the STOP wins). A carrier block or an email suppression is never lifted.
    """
    stops = connection.execute(
        select(Suppression.contact_id, Suppression.since)
        .where(
            Suppression.contact_id.in_(sorted(set(contact_ids))),
            Suppression.channel == "sms",
            Suppression.reason == SMS_STOP,
        )
        .order_by(Suppression.contact_id)
        .with_for_update()
    ).all()
    lifted = [contact_id for contact_id, since in stops if start_lifts(since, start)]
    if not lifted:
        return 0
    statement = delete(Suppression).where(
        Suppression.contact_id.in_(lifted),
        Suppression.channel == "sms",
        Suppression.reason == SMS_STOP,
    )
    return int(connection.execute(statement).rowcount or 0)


@dataclass(frozen=True)
class Preferences:
    """What the preferences page shows about a contact."""

    email_suppressed: bool
    sms_suppressed: bool
    has_phone: bool
    email_liftable: bool = False  # suppressed by an unsubscribe only: the person may re-subscribe


def preferences(engine: Engine, contact_id: str) -> Preferences | None:
    """What the preferences page shows: which channels still reach the contact (None: no such contact)."""
    with engine.connect() as connection:
        found = connection.execute(
            select(Contact.phone, Contact.email).where(Contact.id == contact_id)
        ).first()
        if found is None:
            return None
        reasons: dict[str, str] = {
            channel: reason
            for channel, reason in connection.execute(
                select(Suppression.channel, Suppression.reason).where(Suppression.contact_id == contact_id)
            )
        }
        held = connection.scalar(
            select(EmailSuppression.reason).where(EmailSuppression.address == address_of(found.email))
        )
    email = "email" in reasons
    liftable = email and reasons["email"] in LIFTABLE and (held is None or held in LIFTABLE)
    return Preferences(email, "sms" in reasons, found.phone is not None, liftable)
