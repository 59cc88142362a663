"""The one claim -> send -> mark state machine behind every outbound message: touches and digests.

A row of a ledger table (`touches`, `digests`) is one message, found by its unique `key`:

- `pending`: recorded, never attempted. Safe to send.
- `sending`: claimed for an attempt; the claim and its stamp are committed *before* the provider
  call. After a crash, or a timeout the provider may or may not have acted on, it is ambiguous.
- final (`sent`, `failed`, and for touches `suppressed`), with the provider's id or the reason.

Every transition is a compare-and-set on `status` (`UPDATE ... WHERE status = 'pending' RETURNING
key`): two senders running at once never both claim a row, and a final status is never overwritten.

The ambiguity rule (`judge`): an ambiguous row is never sent blindly. The channel is asked
(`reconcile`); what it has is marked from its receipt. What it lacks goes out again only when the
channel's answer is authoritative (`reconcile_is_authoritative`: the outbox, Twilio's message list)
or when the caller's grace period says that silence proves absence (touches: SendGrid's webhook
events, `delivery.reconcile_after_minutes`; digests: never, since a CSM missing one digest costs
less than a CSM getting two). A resend is a compare-and-set as well (`reclaim`): it takes only an
attempt stamped before a cut-off, and renews the stamp, so a second sender that judged the same
row finds it renewed and leaves it.

Callers own the transactions: each function takes a connection, so that a claim of fresh rows and
of resends commits together, and before the provider call.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Connection, Table, or_, update

from techtouch.adapters.channels.base import OutboundEmail, OutboundSms, Receipt
from techtouch.adapters.db.bulk import one_of, update_rows
from techtouch.adapters.db.models import Digest, Touch
from techtouch.domain.statuses import DigestStatus, ReceiptStatus, TouchStatus

log = logging.getLogger(__name__)
Message = OutboundEmail | OutboundSms


@dataclass(frozen=True)
class Ledger:
    """A table of outbound messages: the column that stamps an attempt, and its status vocabulary.

    The stamp's age is the claim's lease: a `sending` row stamped recently may be another sender's
    batch in flight.
    """

    table: Table
    stamp: str
    statuses: type[TouchStatus] | type[DigestStatus]

    @property
    def unsettled(self) -> tuple[str, str]:
        """The states a row may still leave: only these are claimed, renewed or marked."""
        return (self.statuses.PENDING, self.statuses.SENDING)

    def outcome(self, receipt: Receipt) -> Mark | None:
        """The final status a receipt proves, or None: `unknown` and `opted_out` are the caller's call
        (an ambiguous row stays `sending`; an opted-out recipient is a touch's suppression)."""
        verdict = receipt_status(receipt)
        if verdict == ReceiptStatus.SENT:
            return Mark(receipt.key, self.statuses.SENT, receipt.provider_id, receipt.error)
        if verdict == ReceiptStatus.FAILED:
            return Mark(receipt.key, self.statuses.FAILED, receipt.provider_id, receipt.error)
        return None


TOUCHES = Ledger(cast(Table, Touch.__table__), "attempted_at", TouchStatus)
# The digests table has no attempt column (and the schema stays as it is): `updated_at` serves, as
# the claim sets it and nothing else changes a digest while it is `sending`.
DIGESTS = Ledger(cast(Table, Digest.__table__), "updated_at", DigestStatus)


def receipt_status(receipt: Receipt) -> ReceiptStatus:
    """A receipt's status as the enum (channels hand over the string `Receipt.status` is typed with).

    A status outside the vocabulary is a channel bug, read as UNKNOWN: the row stays `sending` and
    is reconciled. Raising here, after the provider call, would leave the whole batch ambiguous.
    """
    try:
        return ReceiptStatus(receipt.status)
    except ValueError:
        log.warning("receipt for %s with unknown status %r: left ambiguous", receipt.key, receipt.status)
        return ReceiptStatus.UNKNOWN


@dataclass(frozen=True)
class Mark:
    """One row's final status, with the provider's id (sent) or the reason (failed, suppressed)."""

    key: str
    status: str
    provider_id: str | None = None
    error: str | None = None


def claim(connection: Connection, ledger: Ledger, keys: Iterable[str], at: datetime) -> set[str]:
    """`pending` -> `sending`, stamped `at`: the keys this sender won and may now send."""
    keys = list(keys)
    if not keys:
        return set()
    table = ledger.table
    return set(
        connection.scalars(
            update(table)
            .where(one_of(connection, table.c.key, keys), table.c.status == ledger.statuses.PENDING)
            .values({"status": ledger.statuses.SENDING, ledger.stamp: at})
            .returning(table.c.key)
        )
    )


def expire(connection: Connection, ledger: Ledger, keys: Iterable[str], reason: str) -> set[str]:
    """`pending` -> `expired` (touches only): a compare-and-set from `pending`, so a row another
    sender has claimed meanwhile (`sending`: maybe in flight) is never expired. The keys expired."""
    keys = list(keys)
    if not keys:
        return set()
    table = ledger.table
    return set(
        connection.scalars(
            update(table)
            .where(one_of(connection, table.c.key, keys), table.c.status == ledger.statuses.PENDING)
            .values(status=TouchStatus.EXPIRED, error=reason)
            .returning(table.c.key)
        )
    )


def reclaim(
    connection: Connection, ledger: Ledger, keys: Iterable[str], at: datetime, stale_before: datetime
) -> set[str]:
    """Renew ambiguous attempts judged lost (`judge`'s `resend`) so that they go out again.

    Only a `sending` row stamped at or before `stale_before` (older than the lease) is taken, and
    its stamp becomes `at`: of two senders that judged the same row, the second finds it renewed
    and leaves it. The keys this sender won.
    """
    keys = list(keys)
    if not keys:
        return set()
    table = ledger.table
    stamp = table.c[ledger.stamp]
    return set(
        connection.scalars(
            update(table)
            .where(
                one_of(connection, table.c.key, keys),
                table.c.status == ledger.statuses.SENDING,
                stamp <= stale_before,
            )
            .values({ledger.stamp: at})
            .returning(table.c.key)
        )
    )


def mark(connection: Connection, ledger: Ledger, marks: Sequence[Mark]) -> None:
    """Settle rows: a row still `pending` or `sending` takes its final status; a final one never
    changes (a late receipt, or a webhook that got there first, cannot undo it)."""
    if not marks:
        return
    first: dict[str, Mark] = {}
    for m in marks:  # a key marked twice keeps its first status, as one UPDATE after the other would
        first.setdefault(m.key, m)
    table = ledger.table
    update_rows(
        connection,
        table,
        "key",
        [
            {"key": m.key, "status": m.status, "provider_id": m.provider_id, "error": m.error}
            for m in first.values()
        ],
        # or_(), not in_(): an expanding IN cannot be part of SQLite's executemany
        where=[or_(*(table.c.status == s for s in ledger.unsettled))],
    )


@dataclass
class Verdict:
    """What reconciling ambiguous attempts decided, each key in exactly one of the three."""

    found: dict[str, Receipt] = field(default_factory=dict)  # the provider has it: mark from the receipt
    resend: list[str] = field(default_factory=list)  # the provider lacks it: reclaim and send again
    waiting: list[str] = field(default_factory=list)  # cannot tell yet (or ever): leave it `sending`


def judge(
    channel: Any,
    messages: Sequence[Message],
    since: datetime,
    *,
    now: datetime,
    grace: timedelta | None,
    settles_at: Mapping[str, datetime] | None = None,
) -> Verdict:
    """The ambiguity rule: ask the channel which of these ambiguous attempts (made at or after
    `since`) it has, then decide what to do with each one (see the module docstring).

    `grace`: how long a channel that cannot be asked must stay silent about a message, counted
    from `settles_at[key]` (when evidence would have come), before its silence proves the provider
    never got it; None: silence never does.
    """
    found = dict(channel.reconcile(messages, since))
    authoritative = bool(getattr(channel, "reconcile_is_authoritative", False))
    verdict = Verdict(found=found)
    for message in messages:
        key = message.key
        if key in found:
            continue
        silent_long_enough = grace is not None and settles_at is not None and settles_at[key] <= now - grace
        (verdict.resend if authoritative or silent_long_enough else verdict.waiting).append(key)
    return verdict


def send(channel: Any, batch: Sequence[Message], settle: Callable[[list[Receipt]], None]) -> None:
    """Send a claimed batch and settle its receipts.

    A configuration error (bad key, wrong host) part-way: settle what the channel reports settled
    (`exc.receipts`), then re-raise. The rest stay `sending` and are reconciled by the next sender.
    """
    try:
        receipts: list[Receipt] = channel.send(batch)
    except Exception as exc:
        settle(list(getattr(exc, "receipts", [])))
        raise
    settle(receipts)
