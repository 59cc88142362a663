"""What every channel speaks: outbound messages in, one receipt per message out.

A message's `key` is the touch key. A channel must treat it as an idempotency key: sending a key
it already has is not an error and not a second message, and `reconcile` tells, after a crash
between the provider call and recording its id, which keys the provider already has.
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


@dataclass(frozen=True)
class Receipt:
    key: str
    status: Literal["sent", "failed"]
    provider_id: str | None = None
    error: str | None = None


@runtime_checkable
class EmailChannel(Protocol):
    name: str

    def send(self, batch: Sequence[OutboundEmail]) -> list[Receipt]:
        """One receipt per message, in order; a failed message does not stop the batch."""
        ...

    def reconcile(self, keys: Sequence[str]) -> dict[str, Receipt]:
        """Receipts for the keys the provider already has (the others are absent)."""
        ...


@runtime_checkable
class SmsChannel(Protocol):
    name: str

    def send(self, batch: Sequence[OutboundSms]) -> list[Receipt]:
        """One receipt per message, in order; a failed message does not stop the batch."""
        ...

    def reconcile(self, keys: Sequence[str]) -> dict[str, Receipt]:
        """Receipts for the keys the provider already has (the others are absent)."""
        ...
