"""Suppressions kept in step with imported events, by the one rule of techtouch.domain.suppression.

After an events file is written, every contact that got an (un)suppressing event has its
suppressions recomputed from all of its events, old and new:

* email: the earliest unsubscribe or bounce suppresses for good; an existing row is left alone;
* sms: the latest STOP and the latest START decide (`sms_opted_out`: a tie keeps the opt-out); a
  START lifts only an `sms_stop` suppression that began before it (`start_lifts`), never a carrier
  block or an operator's suppression.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, delete, func, select

from techtouch.adapters.db.bulk import upsert_rows
from techtouch.adapters.db.models import Event, Suppression
from techtouch.domain.suppression import SMS_START, SMS_STOP, sms_opted_out, start_lifts
from techtouch.services.importing.lookups import batched

# Event types that (un)suppress a contact's channel: type -> (channel, reason).
SUPPRESSING = {
    "unsubscribed": ("email", "unsubscribed"),
    "email_bounced": ("email", "bounced"),
    SMS_STOP: ("sms", SMS_STOP),
}
UNSUPPRESSING = {SMS_START: "sms"}
EMAIL_SUPPRESSING = ("unsubscribed", "email_bounced")


def update_suppressions(connection: Connection, contact_ids: Sequence[str]) -> None:
    """Recompute the suppressions of these contacts from all their events (already inserted)."""
    table = Suppression.__table__
    for batch in batched(contact_ids):
        times = _first_and_last(connection, batch)
        suppress: list[dict[str, Any]] = []
        starts: dict[str, datetime] = {}  # contacts not opted out of SMS: their latest START
        for contact_id in batch:
            email = sorted(
                (times[(contact_id, type_)][0], SUPPRESSING[type_][1])
                for type_ in EMAIL_SUPPRESSING
                if (contact_id, type_) in times
            )
            if email:
                since, reason = email[0]
                suppress.append(
                    {"contact_id": contact_id, "channel": "email", "reason": reason, "since": since}
                )
            stop = times.get((contact_id, SMS_STOP), (None, None))[1]
            start = times.get((contact_id, SMS_START), (None, None))[1]
            if sms_opted_out(stop, start):
                suppress.append(
                    {"contact_id": contact_id, "channel": "sms", "reason": SMS_STOP, "since": stop}
                )
            elif start is not None:
                starts[contact_id] = start
        _lift_sms_stops(connection, starts)
        upsert_rows(connection, table, suppress, ["contact_id", "channel"], update=False)


def _first_and_last(
    connection: Connection, contact_ids: Sequence[str]
) -> dict[tuple[str, str], tuple[datetime, datetime]]:
    """(contact, event type) -> (earliest, latest) time, for the (un)suppressing event types."""
    query = (
        select(Event.contact_id, Event.type, func.min(Event.occurred_at), func.max(Event.occurred_at))
        .where(Event.contact_id.in_(contact_ids), Event.type.in_((*SUPPRESSING, *UNSUPPRESSING)))
        .group_by(Event.contact_id, Event.type)
    )
    return {
        (contact_id, type_): (first, last) for contact_id, type_, first, last in connection.execute(query)
    }


def _lift_sms_stops(connection: Connection, starts: dict[str, datetime]) -> None:
    """Delete the `sms_stop` suppressions that these contacts' latest START lifts.

    The rows are read FOR UPDATE (PostgreSQL; SQLite's import holds the write lock already), so
    the suppression judged by `start_lifts` is the one deleted.
    """
    if not starts:
        return
    found = connection.execute(
        select(Suppression.contact_id, Suppression.since)
        .where(
            Suppression.contact_id.in_(list(starts)),
            Suppression.channel == "sms",
            Suppression.reason == SMS_STOP,
        )
        .with_for_update()
    )
    lifted = [contact_id for contact_id, since in found if start_lifts(since, starts[contact_id])]
    if lifted:
        connection.execute(
            delete(Suppression).where(
                Suppression.contact_id.in_(lifted),
                Suppression.channel == "sms",
                Suppression.reason == SMS_STOP,
            )
        )
