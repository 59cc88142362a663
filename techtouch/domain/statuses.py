"""Every status vocabulary techtouch stores or passes around, as StrEnums shared by models, engine,
services and CLI.

Why StrEnums and not bare strings: a member *is* its string (`TouchStatus.SENT == "sent"`, the same
hash, JSON-encoded and bound to SQL as "sent"), so DataFrame columns, SQL parameters and rows read
back from the database keep working unchanged, while code that writes a status can only name one
that exists, and the CLI can list the valid ones. Only values that something writes are members:
a value nobody writes is a filter that silently matches nothing. `tests/unit/test_statuses.py`
pins every vocabulary, including against the database's CHECK constraints.

Pure: no imports beyond the standard library (the domain layer).
"""

from __future__ import annotations

from enum import StrEnum


class TouchStatus(StrEnum):
    """`touches.status`: where one outbound message or CTA stands.

    A run records a touch as PENDING (a message to deliver), SKIPPED (a rung the recipient's
    channels do not allow: kept so that the ladder's history shows it), or, for a CTA touch,
    CREATED (its CTA was opened) or DEDUPLICATED (the account already had an open CTA for that
    reason). Messages then run the claim -> send -> mark machine (techtouch.services.claims):
    PENDING -> SENDING -> SENT | FAILED | SUPPRESSED. A PENDING message whose intended day has passed
    by more than `delivery.expire_after_hours` (a late backfill, a worker that was down) becomes
    EXPIRED instead (a compare-and-set from PENDING: never from SENDING), and is never sent.
    OPENED and CLICKED are written by the
    simulator only (techtouch.services.simulate); in production, engagement arrives as events
    (`email_opened`, `email_clicked`) and the touch stays SENT. What the provider said about a
    message (delivered, opened, bounced…) is kept apart, in `touches.delivery_status`
    (DeliveryStatus), so that the claim machine never sees a value it does not own.
    """

    PENDING = "pending"
    SKIPPED = "skipped"
    CREATED = "created"
    DEDUPLICATED = "deduplicated"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    SUPPRESSED = "suppressed"
    OPENED = "opened"
    CLICKED = "clicked"
    EXPIRED = "expired"


# Not final yet: delivery may still claim or settle these, and a provider event about one proves
# that the provider has the message (techtouch.services.feedback moves it to SENT).
UNSETTLED_TOUCH_STATUSES: tuple[TouchStatus, ...] = (TouchStatus.PENDING, TouchStatus.SENDING)
# Messages that reached nobody and never will: the frequency cap does not count them.
UNSENT_TOUCH_STATUSES: tuple[TouchStatus, ...] = (
    TouchStatus.SKIPPED,
    TouchStatus.SUPPRESSED,
    TouchStatus.FAILED,
    TouchStatus.EXPIRED,
)
# A touch in one of these was opened (CLICKED implies it): the `opened` / `clicked` condition names.
ENGAGED_TOUCH_STATUSES: tuple[TouchStatus, ...] = (TouchStatus.OPENED, TouchStatus.CLICKED)


class DeliveryStatus(StrEnum):
    """`touches.delivery_status`: the provider's verdict on a message, NULL until one arrives.

    Written by techtouch.services.feedback only, from SendGrid's `delivered`, `open`, `click`,
    `bounce` (not `type: blocked`, a temporary refusal) and `dropped` events and Twilio's
    `delivered`, `undelivered` and `failed` status callbacks. It never goes backwards
    (DELIVERY_RANK): events arrive out of order and are replayed, so a verdict only replaces a
    lower-ranked one. A terminal verdict (TERMINAL_DELIVERY_STATUSES) is the last word: it
    replaces delivered, opened or clicked (SendGrid reports a late, asynchronous bounce after
    `delivered`), and nothing replaces it, not even another terminal verdict.
    """

    DELIVERED = "delivered"
    OPENED = "opened"
    CLICKED = "clicked"
    BOUNCED = "bounced"
    DROPPED = "dropped"
    UNDELIVERED = "undelivered"
    FAILED = "failed"


# The message never arrived, and no later event changes that.
TERMINAL_DELIVERY_STATUSES: tuple[DeliveryStatus, ...] = (
    DeliveryStatus.BOUNCED,
    DeliveryStatus.DROPPED,
    DeliveryStatus.UNDELIVERED,
    DeliveryStatus.FAILED,
)
# No verdict yet (delivery_status NULL): below every verdict.
NO_DELIVERY_RANK = 0
# A verdict replaces the current one only when its rank is strictly higher (equal ranks keep the
# first: a replay, or a `dropped` after a `bounced`, changes nothing).
DELIVERY_RANK: dict[DeliveryStatus, int] = {
    DeliveryStatus.DELIVERED: 1,
    DeliveryStatus.OPENED: 2,
    DeliveryStatus.CLICKED: 3,
    **dict.fromkeys(TERMINAL_DELIVERY_STATUSES, 4),
}
# A touch with one of these verdicts was opened (a click implies it), like ENGAGED_TOUCH_STATUSES.
ENGAGED_DELIVERY_STATUSES: tuple[DeliveryStatus, ...] = (DeliveryStatus.OPENED, DeliveryStatus.CLICKED)


def delivery_rank(status: str | None) -> int:
    """The rank of a stored `delivery_status` (NULL: NO_DELIVERY_RANK); an unknown value is a ValueError."""
    return NO_DELIVERY_RANK if status is None else DELIVERY_RANK[DeliveryStatus(status)]


def advances(current: str | None, verdict: str) -> bool:
    """Whether `verdict` replaces the `current` delivery status (the rule the SQL of feedback applies)."""
    return delivery_rank(verdict) > delivery_rank(current)


class TouchListingStatus(StrEnum):
    """What `techtouch touches --status` accepts: every TouchStatus, then every DeliveryStatus not
    already one (a touch matches when its `status` or its `delivery_status` is the value: `sent`
    lists every sent message, `delivered` those whose latest verdict is delivered).
    tests/unit/test_statuses.py pins it to exactly that union."""

    PENDING = "pending"
    SKIPPED = "skipped"
    CREATED = "created"
    DEDUPLICATED = "deduplicated"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    SUPPRESSED = "suppressed"
    OPENED = "opened"
    CLICKED = "clicked"
    EXPIRED = "expired"
    DELIVERED = "delivered"
    BOUNCED = "bounced"
    DROPPED = "dropped"
    UNDELIVERED = "undelivered"


class DigestStatus(StrEnum):
    """`digests.status`: one CSM digest email, through the same claim -> send -> mark machine as
    touches (techtouch.services.claims), without SUPPRESSED: a CSM cannot opt out of their digest."""

    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"


# A digest in one of these is done for the day: a rerun does not send it again.
FINAL_DIGEST_STATUSES: tuple[DigestStatus, ...] = (DigestStatus.SENT, DigestStatus.FAILED)


class CtaStatus(StrEnum):
    """`ctas.status`, exactly the values the CHECK constraint `ck_ctas_status` allows.

    A run writes OPEN; a person moves it (techtouch.services.ctas): OPEN → IN_PROGRESS → DONE (with
    an outcome), SNOOZED until a date (the run of that date reopens it), CANCELLED (not worth doing).
    A run also closes a CTA whose cause went away (DONE, outcome `resolved_by_customer`).
    """

    OPEN = "open"
    IN_PROGRESS = "in_progress"
    DONE = "done"
    SNOOZED = "snoozed"
    CANCELLED = "cancelled"


# Still someone's to act on (a snoozed CTA comes back): at most one per account and reason (the
# partial unique index `uq_ctas_open_account_reason`), and what the CSM digest lists.
OPEN_CTA_STATUSES: tuple[CtaStatus, ...] = (CtaStatus.OPEN, CtaStatus.IN_PROGRESS, CtaStatus.SNOOZED)
CLOSED_CTA_STATUSES: tuple[CtaStatus, ...] = (CtaStatus.DONE, CtaStatus.CANCELLED)


class CtaAction(StrEnum):
    """`cta_history.action`: one row per change of a CTA, by a person or by a run (`techtouch`)."""

    CREATED = "created"
    STARTED = "started"
    SNOOZED = "snoozed"
    WOKE = "woke"  # its snooze date came: open again
    DONE = "done"
    CANCELLED = "cancelled"
    ASSIGNED = "assigned"
    ESCALATED = "escalated"  # a new escalation for the same account and reason joined it
    AUTO_CLOSED = "auto_closed"  # its cause went away: done with outcome resolved_by_customer
    NOTED = "noted"


class EnrollmentStatus(StrEnum):
    """`enrollments.status`: ACTIVE while the journey runs; COMPLETED when it reached its end (the
    last milestone, a goal, an exit branch); EXITED when it ended without (`max_days`)."""

    ACTIVE = "active"
    COMPLETED = "completed"
    EXITED = "exited"


# An enrollment that ended: the account may enter again once `reentry.after_days` have passed.
ENDED_ENROLLMENT_STATUSES: tuple[EnrollmentStatus, ...] = (
    EnrollmentStatus.COMPLETED,
    EnrollmentStatus.EXITED,
)


class EnrollmentPhase(StrEnum):
    """`enrollments.phase` within the current milestone: PENDING (waiting for its `after` and
    `start_when`) or ACTIVE (its ladder is running)."""

    PENDING = "pending"
    ACTIVE = "active"


class ReceiptStatus(StrEnum):
    """A channel's verdict on one message (`techtouch.adapters.channels.base.Receipt.status`).

    SENT: the provider accepted it (provider id set). FAILED: rejected for good (the error says
    why). OPTED_OUT: the provider says the recipient opted out (Twilio 21610): suppress, never
    retry. UNKNOWN: ambiguous (a timeout): the row stays `sending` and is reconciled later.
    """

    SENT = "sent"
    FAILED = "failed"
    OPTED_OUT = "opted_out"
    UNKNOWN = "unknown"
