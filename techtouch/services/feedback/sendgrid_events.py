"""SendGrid's Event Webhook: parse the signed body, then apply a whole POST in one transaction.

Events name their touch by the `touch_key` custom arg the channel sets; an event about a touch
still `sending`/`pending` is the evidence that settles a crash-ambiguous send. Delivered, open,
click, bounce and dropped events raise the touch's `delivery_status` (never lower it: see
techtouch.domain.statuses.DeliveryStatus). Bounces, drops, spam reports and unsubscribes suppress
email for good, for the address: every contact that has it, and contacts imported later with it
(techtouch.services.importing.suppressions); only an unsubscribe can be lifted, by the person.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, func, select

from techtouch.adapters.db.models import Contact
from techtouch.domain.statuses import DeliveryStatus
from techtouch.services.feedback.errors import BadPayload
from techtouch.services.feedback.recording import (
    EVIDENCE_STATUSES,
    Applied,
    Verdict,
    batched,
    hash_key,
    keep_strongest,
    record,
    retry_transient,
    settle,
    suppress,
    touches,
    writing,
)
from techtouch.services.importing.suppressions import address_of, suppress_addresses

log = logging.getLogger(__name__)

# SendGrid event -> (event type recorded, email suppression reason). `processed` only proves that
# SendGrid has the message (the touch becomes `sent`); `deferred` is a retry in progress.
SENDGRID_EFFECTS: dict[str, tuple[str | None, str | None]] = {
    "processed": (None, None),
    "deferred": (None, None),
    "delivered": ("email_delivered", None),
    "open": ("email_opened", None),
    "click": ("email_clicked", None),
    "bounce": ("email_bounced", "bounced"),
    "dropped": ("email_bounced", "dropped"),
    "spamreport": ("unsubscribed", "spamreport"),
    "unsubscribe": ("unsubscribed", "unsubscribed"),
    "group_unsubscribe": ("unsubscribed", "unsubscribed"),
}
# SendGrid event -> the verdict it gives the touch it names (a blocked bounce gives none: it is
# temporary, and SendGrid retries). Other kinds leave `delivery_status` as it is.
SENDGRID_VERDICTS: dict[str, DeliveryStatus] = {
    "delivered": DeliveryStatus.DELIVERED,
    "open": DeliveryStatus.OPENED,
    "click": DeliveryStatus.CLICKED,
    "bounce": DeliveryStatus.BOUNCED,
    "dropped": DeliveryStatus.DROPPED,
}
_MAX_TIMESTAMP = 2**33  # year 2242: beyond it a `timestamp` is milliseconds or garbage


@dataclass(frozen=True)
class SendGridEvent:
    """One webhook event, reduced to what we act on (addresses are used for matching, never logged)."""

    kind: str
    occurred_at: datetime
    key: str  # our event key, from sg_event_id
    touch_key: str | None  # our custom arg
    message_id: str | None  # sg_message_id up to the first '.', what the send API returned
    email: str | None
    bounce_type: str | None  # `bounce` (permanent) or `blocked` (temporary)


def _text_field(event: Mapping[str, Any], name: str) -> str | None:
    value = event.get(name)
    return value if isinstance(value, str) and value else None


def parse_sendgrid_events(body: bytes | str) -> list[SendGridEvent]:
    """The Event Webhook body (a JSON array of event objects); BadPayload says what is wrong.

    Every event needs a string `event` and a Unix `timestamp`; other fields are optional and
    unknown kinds are kept (and later ignored), as SendGrid adds kinds over time.
    """
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, ValueError) as exc:
        raise BadPayload(f"body is not JSON: {exc}") from None
    if not isinstance(data, list):
        raise BadPayload(f"body must be a JSON array of events, got {type(data).__name__}")
    events: list[SendGridEvent] = []
    for index, event in enumerate(data):
        if not isinstance(event, dict):
            raise BadPayload(f"event {index}: must be an object, got {type(event).__name__}")
        kind = event.get("event")
        if not isinstance(kind, str) or not kind:
            raise BadPayload(f"event {index}: `event` must be a non-empty string")
        timestamp = event.get("timestamp")
        if (
            isinstance(timestamp, bool)
            or not isinstance(timestamp, int | float)
            or not math.isfinite(timestamp)
            or not 0 <= timestamp < _MAX_TIMESTAMP
        ):
            raise BadPayload(f"event {index}: `timestamp` must be a Unix time in seconds")
        event_id = _text_field(event, "sg_event_id")
        if event_id is None:  # not documented as optional, but a replay must still be a no-op
            key = hash_key("sendgrid-content", json.dumps(event, sort_keys=True, separators=(",", ":")))
        else:
            key = hash_key("sendgrid", event_id)
        message_id = _text_field(event, "sg_message_id")
        events.append(
            SendGridEvent(
                kind=kind,
                occurred_at=datetime.fromtimestamp(timestamp, UTC),
                key=key,
                touch_key=_text_field(event, "touch_key"),
                message_id=message_id.split(".", 1)[0] if message_id else None,
                email=_text_field(event, "email"),
                bounce_type=_text_field(event, "type"),
            )
        )
    return events


def _contacts_by_email(connection: Connection, emails: set[str]) -> dict[str, list[tuple[str, str]]]:
    """Lower-cased address -> [(contact_id, account_id)]: one address may be a contact in two accounts."""
    found: dict[str, list[tuple[str, str]]] = {}
    for batch in batched(sorted(emails)):
        query = select(func.lower(Contact.email), Contact.id, Contact.account_id).where(
            func.lower(Contact.email).in_(batch)
        )
        for email, contact_id, account_id in connection.execute(query):
            found.setdefault(email, []).append((contact_id, account_id))
    return found


def _emails(connection: Connection, contact_ids: set[str]) -> dict[str, str]:
    """contact id -> its address, lower-cased."""
    found: dict[str, str] = {}
    for batch in batched(sorted(contact_ids)):
        query = select(Contact.id, Contact.email).where(Contact.id.in_(batch))
        found.update((contact_id, address_of(email)) for contact_id, email in connection.execute(query))
    return found


@retry_transient
def apply_sendgrid_events(engine: Engine, events: Sequence[SendGridEvent]) -> Applied:
    """Apply one webhook POST's events in one transaction (see techtouch.services.feedback).

    An event names its touch by the `touch_key` custom arg; unknown keys (or a key of a non-email
    touch) are counted and skipped. An event without `touch_key` can only suppress: it is mapped to
    the contacts with that address, if any. Blocked bounces (`type: blocked`, temporary) do not.
    A touch's `delivery_status` takes the highest-ranked verdict of the batch if it ranks above
    the stored one, in the same UPDATE as the evidence (settle).
    """
    result = Applied(received=len(events))
    with writing(engine) as connection:
        known = touches(connection, {e.touch_key for e in events if e.touch_key})
        by_email = _contacts_by_email(
            connection,
            {
                e.email.lower()
                for e in events
                if e.touch_key is None and e.email and SENDGRID_EFFECTS.get(e.kind, (None, None))[1]
            },
        )
        evidence: dict[str, str | None] = {}
        verdicts: dict[str, Verdict] = {}
        rows: list[dict[str, Any]] = []
        suppressions: dict[str, dict[str, Any]] = {}  # event key -> suppression it causes
        nobody: list[dict[str, Any]] = []  # opt-outs of addresses no contact has (yet)
        for event in events:
            effect = SENDGRID_EFFECTS.get(event.kind)
            touch = known.get(event.touch_key) if event.touch_key else None
            if event.touch_key is not None:
                if touch is None or touch.channel != "email":
                    result.unknown += 1
                    continue
                if touch.status in EVIDENCE_STATUSES:
                    evidence[event.touch_key] = evidence.get(event.touch_key) or event.message_id
            if effect is None or (event.kind == "bounce" and event.bounce_type == "blocked"):
                result.ignored += 1
                continue
            type_, reason = effect
            if type_ is None:
                continue
            verdict = SENDGRID_VERDICTS.get(event.kind)
            if touch is not None and event.touch_key is not None and verdict is not None:
                keep_strongest(verdicts, event.touch_key, Verdict(verdict, event.occurred_at))
            if touch is not None:
                targets = [(touch.contact_id, touch.account_id, event.key)]
            elif reason is not None and event.email:
                found = by_email.get(event.email.lower(), [])
                targets = [(c, a, hash_key(event.key, c)) for c, a in found]
            else:
                targets = []
            if not targets:
                result.unknown += 1
                if touch is None and reason is not None and event.email:
                    nobody.append({"address": event.email, "reason": reason, "since": event.occurred_at})
                continue
            for contact_id, account_id, key in targets:
                rows.append(
                    {
                        "key": key,
                        "account_id": account_id,
                        "contact_id": contact_id,
                        "occurred_at": event.occurred_at,
                        "type": type_,
                        "value": event.touch_key,
                        "source": "sendgrid",
                    }
                )
                if reason is not None and contact_id is not None:
                    suppressions[key] = {
                        "contact_id": contact_id,
                        "channel": "email",
                        "reason": reason,
                        "since": event.occurred_at,
                    }
        new = record(connection, rows, result)
        settle(connection, evidence, verdicts)
        result.touches = len(evidence)
        added = [s for k, s in suppressions.items() if k in new]
        result.suppressed = suppress(connection, added)
        # Opt-outs follow the person: the address is suppressed, for every contact that has it.
        emails = _emails(connection, {s["contact_id"] for s in added})
        result.suppressed += suppress_addresses(
            connection,
            [
                {"address": emails[s["contact_id"]], "reason": s["reason"], "since": s["since"]}
                for s in added
                if s["contact_id"] in emails
            ]
            + nobody,
        )
    log.info("sendgrid events applied: %s", result.as_dict())
    return result
