"""Twilio's webhooks: status callbacks for messages we sent, and inbound SMS keywords (STOP/START).

A status callback settles a crash-ambiguous touch (any status proves Twilio has the message) or
fails it; error 21610 means the number opted out at the carrier. Delivered, undelivered and failed
raise the touch's `delivery_status` (never lower it: techtouch.domain.statuses.DeliveryStatus).
An inbound STOP suppresses SMS to every contact with that number and START lifts it, under the one
rule of techtouch.domain.suppression.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, cast

from sqlalchemy import Engine, Table, func, select, update

from techtouch.adapters.db.models import Contact, Touch
from techtouch.domain import validators
from techtouch.domain.statuses import DeliveryStatus
from techtouch.domain.suppression import SMS_START, SMS_STOP
from techtouch.services.feedback.consent import lift_sms_stop
from techtouch.services.feedback.errors import BadPayload
from techtouch.services.feedback.recording import (
    EVIDENCE_STATUSES,
    Applied,
    Verdict,
    aware_now,
    hash_key,
    record,
    retry_transient,
    settle,
    suppress,
    touches,
    writing,
)

log = logging.getLogger(__name__)

TWILIO_OPTED_OUT = "21610"  # "Attempt to send to unsubscribed recipient": the number sent STOP
TWILIO_EVIDENCE = ("accepted", "scheduled", "queued", "sending", "sent", "delivered", "read")
TWILIO_FAILED = ("failed", "undelivered")
TWILIO_KNOWN = (*TWILIO_EVIDENCE, *TWILIO_FAILED, "canceled", "partially_delivered", "receiving", "received")
# MessageStatus -> the verdict it gives the touch (queued, sent… are steps, not verdicts).
TWILIO_VERDICTS: dict[str, DeliveryStatus] = {
    "delivered": DeliveryStatus.DELIVERED,
    "undelivered": DeliveryStatus.UNDELIVERED,
    "failed": DeliveryStatus.FAILED,
}

# Whole-message keywords, as carriers and Twilio's default opt-out handling treat them.
STOP_WORDS = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "OPTOUT", "REVOKE"})
START_WORDS = frozenset({"START", "UNSTOP"})
HELP_WORDS = frozenset({"HELP", "INFO"})

SmsAction = Literal["stop", "start", "help", "other"]


def _required(params: Mapping[str, str], *names: str) -> list[str]:
    missing = [name for name in names if not params.get(name)]
    if missing:
        raise BadPayload(f"missing form field(s): {', '.join(missing)}")
    return [params[name] for name in names]


@retry_transient
def apply_twilio_status(
    engine: Engine, params: Mapping[str, str], touch_key: str | None, *, now: datetime | None = None
) -> Applied:
    """One status callback: MessageSid, MessageStatus and ErrorCode; `touch_key` from the callback URL.

    queued/sent/delivered… move a sending/pending touch to `sent` (provider id = MessageSid);
    delivered records `sms_delivered`; failed/undelivered mark a sending/pending touch `failed`,
    and with ErrorCode 21610 (the number opted out) record `sms_stop` and suppress SMS.
    delivered/undelivered/failed raise `delivery_status` when they rank above the stored verdict
    (received now: a status callback carries no time of its own).
    The same (MessageSid, status) twice changes nothing.
    """
    sid, status = _required(params, "MessageSid", "MessageStatus")
    error_code = (params.get("ErrorCode") or "").strip()
    result = Applied(received=1)
    if status not in TWILIO_KNOWN:
        result.ignored = 1
        return result
    if not touch_key:
        result.unknown = 1
        return result
    with writing(engine) as connection:
        touch = touches(connection, [touch_key]).get(touch_key)
        if touch is None or touch.channel != "sms":
            result.unknown = 1
            return result
        received_at = aware_now(now)
        event = {
            "key": hash_key("twilio-status", sid, status),
            "account_id": touch.account_id,
            "contact_id": touch.contact_id,
            "occurred_at": received_at,
            "value": touch_key,
            "source": "twilio",
        }
        verdict = TWILIO_VERDICTS.get(status)
        verdicts = {} if verdict is None else {touch_key: Verdict(verdict, received_at)}
        if status in TWILIO_EVIDENCE:
            evidence = {touch_key: sid} if touch.status in EVIDENCE_STATUSES else {}
            settle(connection, evidence, verdicts)
            result.touches = len(evidence)
            if status == "delivered":
                record(connection, [event | {"type": "sms_delivered"}], result)
            return result
        if status in TWILIO_FAILED:
            if touch.status in EVIDENCE_STATUSES:
                table = cast(Table, Touch.__table__)
                connection.execute(
                    update(table)
                    .where(table.c.key == touch_key, table.c.status.in_(EVIDENCE_STATUSES))
                    .values(
                        status="failed",
                        provider_id=func.coalesce(table.c.provider_id, sid),
                        error=f"twilio {status}" + (f" (error {error_code})" if error_code else ""),
                    )
                )
                result.touches = 1
            settle(connection, {}, verdicts)
            if error_code == TWILIO_OPTED_OUT and touch.contact_id is not None:
                new = record(connection, [event | {"type": SMS_STOP}], result)
                if new:
                    result.suppressed = suppress(
                        connection,
                        [
                            {
                                "contact_id": touch.contact_id,
                                "channel": "sms",
                                "reason": SMS_STOP,
                                "since": event["occurred_at"],
                            }
                        ],
                    )
            return result
        result.ignored = 1
    return result


def classify_sms(body: str | None) -> SmsAction:
    """STOP/START/HELP keywords are the whole message, trimmed, in any case; anything else is `other`."""
    word = (body or "").strip().upper()
    if word in STOP_WORDS:
        return "stop"
    if word in START_WORDS:
        return "start"
    if word in HELP_WORDS:
        return "help"
    return "other"


@dataclass
class Inbound:
    """What an inbound SMS was and did; the web layer answers HELP from `action`."""

    action: SmsAction
    contacts: int  # contacts with the sender's number
    applied: Applied = field(default_factory=Applied)


@retry_transient
def apply_twilio_inbound(
    engine: Engine, params: Mapping[str, str], *, now: datetime | None = None
) -> Inbound:
    """An inbound SMS: STOP suppresses SMS to every contact with that number, START lifts it.

    Contacts are matched by number in E.164. Only keywords are acted on; the text of any other
    message is neither stored nor logged. A START lifts only a STOP strictly before it: at the
    same instant the opt-out wins (techtouch.domain.suppression), as it does for the importer.
    """
    sid, sender = _required(params, "MessageSid", "From")
    action = classify_sms(params.get("Body"))
    inbound = Inbound(action=action, contacts=0, applied=Applied(received=1))
    if action not in ("stop", "start"):
        return inbound
    try:
        phone = validators.parse_phone_e164(sender.strip())
    except ValueError:
        phone = sender.strip()
    occurred_at = aware_now(now)
    type_ = SMS_STOP if action == "stop" else SMS_START
    result = inbound.applied
    with writing(engine) as connection:
        contacts = connection.execute(
            select(Contact.id, Contact.account_id).where(Contact.phone == phone)
        ).all()
        inbound.contacts = len(contacts)
        if not contacts:
            result.unknown = 1
            return inbound
        rows = [
            {
                "key": hash_key("twilio-inbound", sid, contact_id),
                "account_id": account_id,
                "contact_id": contact_id,
                "occurred_at": occurred_at,
                "type": type_,
                "value": None,
                "source": "twilio",
            }
            for contact_id, account_id in contacts
        ]
        new = record(connection, rows, result)
        changed = [row["contact_id"] for row in rows if row["key"] in new]
        if action == "stop":
            result.suppressed = suppress(
                connection,
                [
                    {"contact_id": c, "channel": "sms", "reason": SMS_STOP, "since": occurred_at}
                    for c in changed
                ],
            )
        elif changed:
            result.unsuppressed = lift_sms_stop(connection, changed, occurred_at)
    log.info("inbound sms %s: %s", action, result.as_dict())
    return inbound
