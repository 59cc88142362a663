"""Suppressions kept in step with imported events, by the one rule of techtouch.domain.suppression,
and email opt-outs kept by address, so that they follow the person.

After an events file is written, every contact that got an (un)suppressing event has its
suppressions recomputed from all of its events, old and new:

* email: the earliest bounce suppresses for good; an unsubscribe suppresses until a later
  `email_resubscribed` (the latest of the two decides, a tie keeps the opt-out, as for SMS);
  an existing row is left alone unless a re-subscription lifts it;
* sms: the latest STOP and the latest START decide (`sms_opted_out`: a tie keeps the opt-out); a
  START lifts only an `sms_stop` suppression that began before it (`start_lifts`), never a carrier
  block or an operator's suppression.

Opt-outs follow the person (`suppress_addresses`, `suppress_known_addresses`, `lift_addresses`):
an email suppression, whoever records it (link, SendGrid, import), is also kept for the address
(`email_suppressions`, lower-cased: ASCII case-insensitive on SQLite, as its LOWER() is) and
extended to every contact with that address, and to contacts imported later with it. Delivery
reads only `suppressions`, so it needs no address lookup. Only an unsubscribe is lifted by a
re-subscription (LIFTABLE); a bounce, a drop or a spam report stays: the address does not work,
or the provider keeps its own list, and a click on an old link proves neither wrong.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Connection, Table, delete, func, select, update

from techtouch.adapters.db.bulk import insert_new, upsert_rows
from techtouch.adapters.db.models import Contact, EmailSuppression, Event, Suppression
from techtouch.domain.suppression import SMS_START, SMS_STOP, sms_opted_out, start_lifts
from techtouch.services.importing.lookups import batched

# Event types that (un)suppress a contact's channel: type -> (channel, reason).
SUPPRESSING = {
    "unsubscribed": ("email", "unsubscribed"),
    "email_bounced": ("email", "bounced"),
    SMS_STOP: ("sms", SMS_STOP),
}
EMAIL_RESUBSCRIBED = "email_resubscribed"
UNSUPPRESSING = {SMS_START: "sms", EMAIL_RESUBSCRIBED: "email"}
EMAIL_SUPPRESSING = ("unsubscribed", "email_bounced")
# The email suppression reasons a person lifts by re-subscribing (the others stay: see above).
LIFTABLE = ("unsubscribed",)


def address_of(email: str) -> str:
    """The form an address is matched in: trimmed and lower-cased (`Ada@X.com` is `ada@x.com`)."""
    return email.strip().lower()


def update_suppressions(connection: Connection, contact_ids: Sequence[str]) -> None:
    """Recompute the suppressions of these contacts from all their events (already inserted)."""
    table = Suppression.__table__
    for batch in batched(contact_ids):
        times = _first_and_last(connection, batch)
        suppress: list[dict[str, Any]] = []
        starts: dict[str, datetime] = {}  # contacts not opted out of SMS: their latest START
        resubscribed: dict[str, datetime] = {}  # contacts whose latest re-subscription stands
        for contact_id in batch:
            email = []
            if (contact_id, "email_bounced") in times:
                email.append((times[(contact_id, "email_bounced")][0], "bounced"))
            unsubscribed = times.get((contact_id, "unsubscribed"))
            resubscribe = times.get((contact_id, EMAIL_RESUBSCRIBED), (None, None))[1]
            if unsubscribed is not None and sms_opted_out(unsubscribed[1], resubscribe):
                # Since the first unsubscribe, or the first one after the latest re-subscription.
                email.append((unsubscribed[0] if resubscribe is None else unsubscribed[1], "unsubscribed"))
            elif resubscribe is not None:
                resubscribed[contact_id] = resubscribe
            if email:
                since, reason = min(email)
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
        lift_addresses(connection, _addresses(connection, resubscribed))
        upsert_rows(connection, table, suppress, ["contact_id", "channel"], update=False)
        emails = [row for row in suppress if row["channel"] == "email"]
        addresses = _addresses(connection, {row["contact_id"]: row for row in emails})
        suppress_addresses(
            connection,
            [{"address": a, "reason": row["reason"], "since": row["since"]} for a, row in addresses.items()],
        )


def _addresses(connection: Connection, by_contact: Mapping[str, Any]) -> dict[str, Any]:
    """address -> the value of its contact in `by_contact` (of several contacts: the earliest
    suppression or re-subscription, whichever `by_contact` holds, sorted by contact id)."""
    found: dict[str, Any] = {}
    for batch in batched(sorted(by_contact)):
        rows = connection.execute(select(Contact.id, Contact.email).where(Contact.id.in_(batch)))
        for contact_id, email in sorted(rows):
            found.setdefault(address_of(email), by_contact[contact_id])
    return found


def suppress_addresses(connection: Connection, rows: Iterable[Mapping[str, Any]]) -> int:
    """Keep each address's opt-out (`address`, `reason`, `since`) and suppress email to every contact
    with the address; returns the contacts newly suppressed.

    The earliest opt-out of an address is kept, except that a bounce, a drop or a spam report
    replaces an unsubscribe (they are not lifted by a re-subscription, an unsubscribe is).
    Contacts get the address's reason and time; one already suppressed keeps its own.
    """
    first: dict[str, Mapping[str, Any]] = {}
    for row in rows:
        address = address_of(row["address"])
        if address and (address not in first or row["since"] < first[address]["since"]):
            first[address] = {"address": address, "reason": row["reason"], "since": row["since"]}
    if not first:
        return 0
    table = cast(Table, EmailSuppression.__table__)
    ordered = [first[address] for address in sorted(first)]
    insert_new(connection, table, ordered, ["address"], "address")
    for row in ordered:
        if row["reason"] not in LIFTABLE:
            connection.execute(
                update(table)
                .where(table.c.address == row["address"], table.c.reason.in_(LIFTABLE))
                .values(reason=row["reason"], since=row["since"])
            )
    return _suppress_contacts(
        connection,
        select(Contact.id, EmailSuppression.reason, EmailSuppression.since).join(
            EmailSuppression, func.lower(Contact.email) == EmailSuppression.address
        ),
        Contact.email,
        sorted(first),
    )


def suppress_known_addresses(connection: Connection, contact_ids: Sequence[str]) -> int:
    """Contacts just written (imported, or their address changed) whose address is suppressed get
    the address's suppression; returns how many were newly suppressed."""
    query = select(Contact.id, EmailSuppression.reason, EmailSuppression.since).join(
        EmailSuppression, func.lower(Contact.email) == EmailSuppression.address
    )
    return _suppress_contacts(connection, query, Contact.id, sorted(set(contact_ids)))


def _suppress_contacts(connection: Connection, query: Any, column: Any, keys: Sequence[str]) -> int:
    """Insert the email suppressions `query` yields (contact id, reason, since) for `column IN keys`."""
    rows: list[dict[str, Any]] = []
    for batch in batched(list(keys)):
        where = func.lower(column).in_(batch) if column is Contact.email else column.in_(batch)
        rows += [
            {"contact_id": contact_id, "channel": "email", "reason": reason, "since": since}
            for contact_id, reason, since in connection.execute(query.where(where))
        ]
    rows.sort(key=lambda row: row["contact_id"])
    table = cast(Table, Suppression.__table__)
    return len(insert_new(connection, table, rows, ["contact_id", "channel"], "contact_id"))


def lift_addresses(connection: Connection, addresses: Mapping[str, datetime]) -> list[str]:
    """Lift the unsubscribes of these addresses that began before their re-subscription (address ->
    when): the address's row and the `unsubscribed` suppressions of every contact with it. An
    address suppressed for another reason (a bounce) is left alone, contacts included.
    Returns the contacts whose email suppression was lifted, sorted."""
    if not addresses:
        return []
    table = cast(Table, EmailSuppression.__table__)
    held: dict[str, tuple[str, datetime]] = {}
    for batch in batched(sorted(addresses)):
        query = select(table.c.address, table.c.reason, table.c.since).where(table.c.address.in_(batch))
        held.update((a, (reason, since)) for a, reason, since in connection.execute(query.with_for_update()))
    open_ = sorted(a for a in addresses if a not in held or held[a][0] in LIFTABLE)
    for address in open_:
        if address in held and start_lifts(held[address][1], addresses[address]):
            connection.execute(delete(table).where(table.c.address == address))
    lifted: list[str] = []
    for batch in batched(open_):
        found = connection.execute(
            select(Suppression.contact_id, Suppression.since, func.lower(Contact.email))
            .join(Contact, Contact.id == Suppression.contact_id)
            .where(
                func.lower(Contact.email).in_(batch),
                Suppression.channel == "email",
                Suppression.reason.in_(LIFTABLE),
            )
            .with_for_update(of=Suppression)
        ).all()
        lifted += [c for c, since, address in found if start_lifts(since, addresses[address])]
    lifted.sort()
    for batch in batched(lifted):
        connection.execute(
            delete(Suppression).where(
                Suppression.contact_id.in_(batch),
                Suppression.channel == "email",
                Suppression.reason.in_(LIFTABLE),
            )
        )
    return lifted


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
