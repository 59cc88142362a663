"""The CTA lifecycle as rules, with no I/O: which change is allowed from which status, which
outcomes a CTA may close with, and how priorities compare.

One place for the CLI, the web workspace and the journey runs (techtouch.services.ctas applies
these rules to rows): `open → in_progress → done` with an outcome; `snoozed` until a later date
with a reason (the run of that date reopens it); `cancelled`; reassignment while open. A run
closes a CTA whose cause went away with the system outcome `resolved_by_customer`, which no
person may pick.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from enum import StrEnum

from techtouch.domain.statuses import OPEN_CTA_STATUSES, CtaStatus

PRIORITIES: tuple[str, ...] = ("high", "medium", "low")  # most urgent first
PRIORITY_RANK: dict[str, int] = {p: i for i, p in enumerate(PRIORITIES)}

RESOLVED_BY_CUSTOMER = "resolved_by_customer"
SYSTEM_ACTOR = "techtouch"

# Every CTA may close with these; a reason adds its own (DEFAULT_OUTCOMES_BY_PREFIX) unless its
# journey file lists `outcomes:` for it.
COMMON_OUTCOMES: tuple[str, ...] = ("reached_resolved", "reached_at_risk", "no_answer")
DEFAULT_OUTCOMES_BY_PREFIX: dict[str, tuple[str, ...]] = {
    "renewal": ("renewal_confirmed", "churn_confirmed"),
    "advocacy": ("advocate_agreed", "advocate_declined"),
    "onboarding": ("configured_together", "training_booked"),
    "risk": ("usage_plan_agreed", "churn_confirmed"),
}
NOTE_MAX = 2000
REASON_MAX = 500


class CtaChange(StrEnum):
    """What a person (or script) does to a CTA."""

    START = "start"
    DONE = "done"
    SNOOZE = "snooze"
    CANCEL = "cancel"
    ASSIGN = "assign"
    NOTE = "note"


class CtaRuleError(ValueError):
    """A change the lifecycle does not allow; the message says why and what would be allowed."""


# From which statuses each change may start.
ALLOWED_FROM: dict[CtaChange, tuple[CtaStatus, ...]] = {
    CtaChange.START: (CtaStatus.OPEN, CtaStatus.SNOOZED),
    CtaChange.DONE: OPEN_CTA_STATUSES,
    CtaChange.SNOOZE: (CtaStatus.OPEN, CtaStatus.IN_PROGRESS, CtaStatus.SNOOZED),
    CtaChange.CANCEL: OPEN_CTA_STATUSES,
    CtaChange.ASSIGN: OPEN_CTA_STATUSES,
    CtaChange.NOTE: tuple(CtaStatus),
}
RESULT: dict[CtaChange, CtaStatus | None] = {
    CtaChange.START: CtaStatus.IN_PROGRESS,
    CtaChange.DONE: CtaStatus.DONE,
    CtaChange.SNOOZE: CtaStatus.SNOOZED,
    CtaChange.CANCEL: CtaStatus.CANCELLED,
    CtaChange.ASSIGN: None,  # the status stays
    CtaChange.NOTE: None,
}


def check_change(change: CtaChange, status: str) -> CtaStatus | None:
    """The status after `change` from `status`, or CtaRuleError naming the statuses that allow it."""
    allowed = ALLOWED_FROM[change]
    if status not in allowed:
        names = ", ".join(str(s) for s in allowed)
        verb = "complete" if change is CtaChange.DONE else str(change)  # not "cannot done a CTA"
        raise CtaRuleError(f"cannot {verb} a CTA that is {status}: only a CTA that is {names}")
    return RESULT[change]


def outcomes_for(reason: str, configured: Sequence[str] | None = None) -> tuple[str, ...]:
    """The outcomes a CTA of `reason` may close with: the journey's list, else the defaults."""
    if configured:
        return tuple(dict.fromkeys(configured))
    prefix = reason.split("_", 1)[0].split(".", 1)[0]
    return (*DEFAULT_OUTCOMES_BY_PREFIX.get(prefix, ()), *COMMON_OUTCOMES)


def check_outcome(outcome: str, allowed: Sequence[str]) -> str:
    """`outcome` if a person may close with it; else CtaRuleError listing the allowed ones."""
    if outcome == RESOLVED_BY_CUSTOMER:
        raise CtaRuleError(f"{RESOLVED_BY_CUSTOMER!r} is set by a run when the cause goes away")
    if outcome not in allowed:
        raise CtaRuleError(f"unknown outcome {outcome!r}; this CTA closes with: {', '.join(allowed)}")
    return outcome


def check_snooze(until: date, today: date, reason: str) -> None:
    if until <= today:
        raise CtaRuleError(f"snooze until a later day than {today.isoformat()} (got {until.isoformat()})")
    if not reason.strip():
        raise CtaRuleError("a snooze needs a reason (what are you waiting for?)")
    if len(reason) > REASON_MAX:
        raise CtaRuleError(f"the snooze reason is longer than {REASON_MAX} characters")


def check_note(note: str | None) -> str | None:
    if note is None or not note.strip():
        return None
    if len(note) > NOTE_MAX:
        raise CtaRuleError(f"the note is longer than {NOTE_MAX} characters")
    return note.strip()


def higher_priority(current: str, new: str) -> str:
    """The more urgent of two priorities (an escalation never lowers one)."""
    return new if PRIORITY_RANK.get(new, 9) < PRIORITY_RANK.get(current, 9) else current


@dataclass(frozen=True)
class CtaCause:
    """What raised a CTA, as far as a run can tell it went away (auto-close)."""

    milestone: str
    kind: str  # rung, personal, branch, request, goal


def cause_cleared(
    cause: CtaCause, *, milestone_done: bool, ended_by: str | None, goal_ids: Mapping[str, object]
) -> str | None:
    """Why a CTA's cause went away, or None while it stands.

    A ladder CTA (its last rung, or a CSM's personal reach-out) asked for its milestone: done
    when the milestone got done. Any CTA but a customer's request is resolved when the enrollment
    ended by reaching a goal (the renewal was signed, usage recovered). A request is a promise
    to the customer: a person closes it.
    """
    if cause.kind == "request":
        return None
    if ended_by is not None and ended_by in goal_ids:
        return f"the journey reached its goal {ended_by!r}"
    if cause.kind in ("rung", "personal") and milestone_done:
        return f"the milestone {cause.milestone!r} got done"
    return None
