"""Who may still be reached: unsubscribe links, the preferences page, and START lifting a STOP.

Every change here goes through the suppressions table, the one place journeys check; when an SMS
opt-out is lifted is decided by techtouch.domain.suppression, the same rule the importer follows.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, Engine, delete, select

from techtouch.adapters.db.models import Contact, Suppression
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

    Email records `unsubscribed` (reason `unsubscribed`); SMS records `sms_stop` (reason
    `sms_stop`, so that texting START lifts it, as it would after texting STOP).
    """
    if channel not in LINK_CHANNELS:
        raise BadAnswer(f"unknown channel {channel!r}")
    occurred_at = aware_now(now)
    with writing(engine) as connection:
        account_id = connection.scalar(select(Contact.account_id).where(Contact.id == contact_id))
        if account_id is None:
            return Unsubscribed(found=False, changed=False)
        already = connection.scalar(
            select(Suppression.reason).where(
                Suppression.contact_id == contact_id, Suppression.channel == channel
            )
        )
        if already is not None:
            return Unsubscribed(found=True, changed=False)
        type_, reason = ("unsubscribed", "unsubscribed") if channel == "email" else (SMS_STOP, SMS_STOP)
        row = {
            "key": event_key(account_id, contact_id, occurred_at, type_, source),
            "account_id": account_id,
            "contact_id": contact_id,
            "occurred_at": occurred_at,
            "type": type_,
            "value": source,
            "source": source,
        }
        record(connection, [row], Applied())
        suppress(
            connection,
            [{"contact_id": contact_id, "channel": channel, "reason": reason, "since": occurred_at}],
        )
    log.info("unsubscribed from %s via %s", channel, source)
    return Unsubscribed(found=True, changed=True)


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


def preferences(engine: Engine, contact_id: str) -> Preferences | None:
    """What the preferences page shows: which channels still reach the contact (None: no such contact)."""
    with engine.connect() as connection:
        phone = connection.execute(select(Contact.phone).where(Contact.id == contact_id)).first()
        if phone is None:
            return None
        channels = set(
            connection.scalars(select(Suppression.channel).where(Suppression.contact_id == contact_id))
        )
    return Preferences("email" in channels, "sms" in channels, phone[0] is not None)
