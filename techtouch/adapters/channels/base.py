"""What every channel speaks: outbound messages in, one receipt per message out.

A message's `key` is the touch key; providers get it back to us (SendGrid `custom_args`, the
Twilio status callback URL). Delivery marks a touch `sending` before `send` and records the
receipt after it; a crash in between leaves it ambiguous, and `reconcile` answers, for such
messages, which ones the provider already has. A channel whose provider can be asked says so
with `reconcile_is_authoritative`; otherwise webhook events and a grace period decide.

`can_schedule(send_at, now)` says whether the channel holds a message handed over at `now` until
its `send_at` (SendGrid up to 72 hours ahead; Twilio through a Messaging Service, 15 minutes to
35 days ahead; the outbox never). Delivery hands a channel a message before it is due only then:
what a channel cannot hold waits for the delivery that runs when it falls due.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, Protocol, runtime_checkable


@dataclass(frozen=True)
class OutboundEmail:
    key: str
    to_email: str
    to_name: str
    from_email: str
    from_name: str
    subject: str
    html: str
    text: str
    send_at: datetime
    headers: Mapping[str, str] = field(default_factory=dict)
    categories: tuple[str, ...] = ()
    custom_args: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class OutboundSms:
    key: str
    to_phone: str
    body: str
    send_at: datetime


ReceiptStatus = Literal["sent", "failed", "opted_out", "unknown"]


@dataclass(frozen=True)
class Receipt:
    """`sent`: accepted (provider_id set). `failed`: rejected for good (error says why, no address).
    `opted_out`: the provider says the recipient opted out (Twilio 21610): suppress, never retry.
    `unknown`: the outcome is ambiguous (a timeout); reconcile later, never resend blindly."""

    key: str
    status: ReceiptStatus
    provider_id: str | None = None
    error: str | None = None


@runtime_checkable
class EmailChannel(Protocol):
    name: str

    reconcile_is_authoritative: bool

    def send(self, batch: Sequence[OutboundEmail]) -> list[Receipt]:
        """One receipt per message, in order; a failed message does not stop the batch."""
        ...

    def reconcile(self, batch: Sequence[OutboundEmail], since: datetime) -> dict[str, Receipt]:
        """Receipts for the messages (attempted at or after `since`) the provider already has."""
        ...

    def can_schedule(self, send_at: datetime, now: datetime) -> bool:
        """Whether a message handed over at `now` is held by the provider until `send_at`."""
        ...


@runtime_checkable
class SmsChannel(Protocol):
    name: str

    reconcile_is_authoritative: bool

    def send(self, batch: Sequence[OutboundSms]) -> list[Receipt]:
        """One receipt per message, in order; a failed message does not stop the batch."""
        ...

    def reconcile(self, batch: Sequence[OutboundSms], since: datetime) -> dict[str, Receipt]:
        """Receipts for the messages (attempted at or after `since`) the provider already has."""
        ...

    def can_schedule(self, send_at: datetime, now: datetime) -> bool:
        """Whether a message handed over at `now` is held by the provider until `send_at`."""
        ...
