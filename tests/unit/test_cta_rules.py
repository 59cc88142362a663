"""The CTA lifecycle rules (techtouch.domain.cta_rules), without a database: which change is allowed
from which status and where it leads, which outcomes close a CTA, what a snooze and a note need,
how priorities compare, and when a run may close a CTA by itself."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from techtouch.domain import cta_rules
from techtouch.domain.cta_rules import (
    COMMON_OUTCOMES,
    NOTE_MAX,
    PRIORITIES,
    PRIORITY_RANK,
    REASON_MAX,
    RESOLVED_BY_CUSTOMER,
    CtaCause,
    CtaChange,
    CtaRuleError,
    cause_cleared,
    check_change,
    check_note,
    check_outcome,
    check_snooze,
    higher_priority,
    outcomes_for,
)
from techtouch.domain.statuses import CLOSED_CTA_STATUSES, OPEN_CTA_STATUSES, CtaStatus

TODAY = date(2027, 1, 4)

# Every (change, status) pair: the status after it, or None when the change is refused.
EXPECTED: dict[CtaChange, dict[CtaStatus, CtaStatus | str | None]] = {
    CtaChange.START: {
        CtaStatus.OPEN: CtaStatus.IN_PROGRESS,
        CtaStatus.SNOOZED: CtaStatus.IN_PROGRESS,
        CtaStatus.IN_PROGRESS: None,
        CtaStatus.DONE: None,
        CtaStatus.CANCELLED: None,
    },
    CtaChange.DONE: {
        CtaStatus.OPEN: CtaStatus.DONE,
        CtaStatus.IN_PROGRESS: CtaStatus.DONE,
        CtaStatus.SNOOZED: CtaStatus.DONE,
        CtaStatus.DONE: None,
        CtaStatus.CANCELLED: None,
    },
    CtaChange.SNOOZE: {
        CtaStatus.OPEN: CtaStatus.SNOOZED,
        CtaStatus.IN_PROGRESS: CtaStatus.SNOOZED,
        CtaStatus.SNOOZED: CtaStatus.SNOOZED,  # a new date and reason
        CtaStatus.DONE: None,
        CtaStatus.CANCELLED: None,
    },
    CtaChange.CANCEL: {
        CtaStatus.OPEN: CtaStatus.CANCELLED,
        CtaStatus.IN_PROGRESS: CtaStatus.CANCELLED,
        CtaStatus.SNOOZED: CtaStatus.CANCELLED,
        CtaStatus.DONE: None,
        CtaStatus.CANCELLED: None,
    },
    # Reassignment keeps the status ("same"); a closed CTA is nobody's to work.
    CtaChange.ASSIGN: {
        CtaStatus.OPEN: "same",
        CtaStatus.IN_PROGRESS: "same",
        CtaStatus.SNOOZED: "same",
        CtaStatus.DONE: None,
        CtaStatus.CANCELLED: None,
    },
    # A note may be added at any time, closed CTAs included (what happened after).
    CtaChange.NOTE: dict.fromkeys(CtaStatus, "same"),
}


def test_the_table_covers_every_change_and_status() -> None:
    assert set(EXPECTED) == set(CtaChange)
    assert all(set(row) == set(CtaStatus) for row in EXPECTED.values())


@pytest.mark.parametrize(
    ("change", "status"), [(change, status) for change in CtaChange for status in CtaStatus]
)
def test_each_change_from_each_status(change: CtaChange, status: CtaStatus) -> None:
    expected = EXPECTED[change][status]
    if expected is None:
        with pytest.raises(CtaRuleError) as refused:
            check_change(change, status)
        message = str(refused.value)
        assert f"a CTA that is {status}" in message
        # The message names the statuses that would allow it.
        assert all(str(s) in message for s in cta_rules.ALLOWED_FROM[change])
    elif expected == "same":
        assert check_change(change, status) is None
    else:
        assert check_change(change, status) == expected


def test_refusals_read_as_english() -> None:
    with pytest.raises(CtaRuleError, match="cannot complete a CTA that is done"):
        check_change(CtaChange.DONE, CtaStatus.DONE)
    with pytest.raises(CtaRuleError, match="cannot start a CTA that is in_progress: only a CTA that is open"):
        check_change(CtaChange.START, CtaStatus.IN_PROGRESS)


def test_closed_statuses_are_final_for_every_change_but_a_note() -> None:
    for change in CtaChange:
        for status in CLOSED_CTA_STATUSES:
            if change is CtaChange.NOTE:
                assert check_change(change, status) is None
            else:
                with pytest.raises(CtaRuleError):
                    check_change(change, status)
    assert set(OPEN_CTA_STATUSES) | set(CLOSED_CTA_STATUSES) == set(CtaStatus)


def test_outcomes_per_reason_prefix_then_the_common_ones() -> None:
    assert outcomes_for("renewal_at_risk") == ("renewal_confirmed", "churn_confirmed", *COMMON_OUTCOMES)
    assert outcomes_for("advocacy_detractor")[:2] == ("advocate_agreed", "advocate_declined")
    assert outcomes_for("onboarding_no_welcome_response")[0] == "configured_together"
    assert outcomes_for("risk.call")[:2] == ("usage_plan_agreed", "churn_confirmed")
    assert outcomes_for("custom_reason") == COMMON_OUTCOMES
    assert RESOLVED_BY_CUSTOMER not in outcomes_for("renewal_at_risk")


def test_a_journeys_own_outcomes_replace_the_defaults_in_order_without_repeats() -> None:
    assert outcomes_for("renewal_at_risk", ["saved", "lost", "saved"]) == ("saved", "lost")
    assert outcomes_for("renewal_at_risk", []) == outcomes_for("renewal_at_risk")  # empty: defaults


def test_an_outcome_must_be_on_the_list_and_resolved_by_customer_is_the_runs() -> None:
    allowed = outcomes_for("renewal_at_risk")
    assert check_outcome("renewal_confirmed", allowed) == "renewal_confirmed"
    with pytest.raises(CtaRuleError) as unknown:
        check_outcome("won", allowed)
    assert "unknown outcome 'won'" in str(unknown.value)
    assert all(o in str(unknown.value) for o in allowed)
    with pytest.raises(CtaRuleError, match="set by a run"):
        check_outcome(RESOLVED_BY_CUSTOMER, [*allowed, RESOLVED_BY_CUSTOMER])


def test_a_snooze_needs_a_later_day_and_a_reason_of_bounded_length() -> None:
    check_snooze(TODAY + timedelta(days=1), TODAY, "waiting for the budget meeting")
    for until in (TODAY, TODAY - timedelta(days=3)):
        with pytest.raises(CtaRuleError, match="later day than 2027-01-04"):
            check_snooze(until, TODAY, "why")
    for reason in ("", "   \n"):
        with pytest.raises(CtaRuleError, match="needs a reason"):
            check_snooze(TODAY + timedelta(days=7), TODAY, reason)
    check_snooze(TODAY + timedelta(days=7), TODAY, "x" * REASON_MAX)
    with pytest.raises(CtaRuleError, match=f"longer than {REASON_MAX}"):
        check_snooze(TODAY + timedelta(days=7), TODAY, "x" * (REASON_MAX + 1))


def test_notes_are_stripped_empty_is_none_and_length_is_bounded() -> None:
    assert check_note(None) is None
    assert check_note("  \n ") is None
    assert check_note("  called, left a voicemail \n") == "called, left a voicemail"
    assert check_note("x" * NOTE_MAX) == "x" * NOTE_MAX
    with pytest.raises(CtaRuleError, match=f"longer than {NOTE_MAX}"):
        check_note("x" * (NOTE_MAX + 1))


def test_priorities_rank_high_first_and_an_escalation_never_lowers_one() -> None:
    assert PRIORITIES == ("high", "medium", "low")
    assert sorted(["low", "high", "medium"], key=PRIORITY_RANK.__getitem__) == ["high", "medium", "low"]
    assert higher_priority("medium", "high") == "high"
    assert higher_priority("high", "low") == "high"
    assert higher_priority("low", "low") == "low"
    assert higher_priority("bogus", "low") == "low"  # an unknown current priority ranks last


@pytest.mark.parametrize(
    ("kind", "milestone_done", "ended_by", "cleared"),
    [
        ("rung", True, None, "the milestone 'announce' got done"),
        ("personal", True, None, "the milestone 'announce' got done"),
        ("rung", False, None, None),
        ("branch", True, None, None),  # an answer's CTA is not about the milestone being done
        ("branch", False, "renewed", "the journey reached its goal 'renewed'"),
        ("goal", False, "renewed", "the journey reached its goal 'renewed'"),
        ("rung", False, "max_days", None),  # ended, but not by a goal
        ("request", True, "renewed", None),  # the customer asked for a person: a person closes it
    ],
)
def test_a_run_closes_a_cta_only_when_its_cause_went_away(
    kind: str, milestone_done: bool, ended_by: str | None, cleared: str | None
) -> None:
    cause = CtaCause(milestone="announce", kind=kind)
    got = cause_cleared(
        cause, milestone_done=milestone_done, ended_by=ended_by, goal_ids={"renewed": object()}
    )
    assert got == cleared
