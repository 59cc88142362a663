"""decide() on hand-built frames with a fixed clock: the ladder rules, day by day, no database."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest

from techtouch.adapters.db.record import POSITION_FIELDS
from techtouch.domain.catalog import CompiledJourney, compile_journey
from techtouch.domain.decide import Decision, decide
from techtouch.domain.spec import parse_journey
from techtouch.domain.statuses import EnrollmentPhase, EnrollmentStatus

LADDER_JOURNEY = """
id: setup
name: Setup
enter_when: "days_since_start >= 0"
recipients: [admin]
milestones:
  - id: configure
    title: Configured
    done_when: "milestone.configured"
    ladder:
      - {id: email, channel: email, template: t/configure, sender: csm}
      - {id: email2, channel: email, template: t/configure2, sender: vp_cs, after: 3d}
      - {id: sms, channel: sms, template: t/configure, after: 2d}
      - {id: cta, channel: cta, after: 2d, title: "Call the admin", priority: high}
  - id: tips
    ladder:
      - {id: email, channel: email, template: t/tips, sender: success}
"""
DAY0 = date(2027, 1, 4)


def journey(text: str = LADDER_JOURNEY) -> CompiledJourney:
    spec, document = parse_journey(text, "test.yaml")
    return compile_journey(spec, document)


ENROLLMENT = ["id", "cycle", *POSITION_FIELDS]  # what record() writes back


def state(n: int = 1, **columns: object) -> pd.DataFrame:
    base: dict[str, object] = {
        "segment": "tech_touch",
        "paused": False,
        "days_since_start": 10,
        "n_email_ok": 1,
        "n_sms_ok": 1,
        "milestone.configured": False,
    }
    base.update(columns)
    frame = pd.DataFrame(
        {k: [v] * n if not isinstance(v, list) else v for k, v in base.items()},
        index=pd.Index([f"A{i}" for i in range(n)], name="account_id"),
    )
    for name in ENROLLMENT:
        frame[f"e_{name}"] = None
    return frame


def apply(frame: pd.DataFrame, decision: Decision) -> pd.DataFrame:
    """What record() + load_enrollments() would do between two runs."""
    frame = frame.copy()
    for row in decision.enrollments.to_dict("records"):
        account = row["account_id"]
        for name in ENROLLMENT:
            if name == "id":
                if row["is_new"]:
                    frame.loc[account, "e_id"] = hash((account, row["cycle"])) % 10_000
                continue
            frame.at[account, f"e_{name}"] = row[name]
    return frame


def run_days(
    frame: pd.DataFrame,
    spec: CompiledJourney,
    days: int,
    start: date = DAY0,
    events: dict[int, dict[str, object]] | None = None,
) -> tuple[pd.DataFrame, list[tuple[int, dict]]]:
    log: list[tuple[int, dict]] = []
    for offset in range(days):
        for column, value in (events or {}).get(offset, {}).items():
            frame[column] = value
        decision = decide(frame, spec, start + timedelta(days=offset))
        log += [(offset, a) for a in decision.actions.to_dict("records")]
        frame = apply(frame, decision)
    return frame, log


def steps(log: list[tuple[int, dict]]) -> list[tuple[int, str, str, str]]:
    return [
        (day, a["milestone"], a["rung"], a["kind"] if a["kind"] == "skip" else a["channel"]) for day, a in log
    ]


def test_a_silent_contact_climbs_the_whole_ladder_with_its_waits() -> None:
    _, log = run_days(state(), journey(), 12)
    assert steps(log) == [
        (0, "configure", "email", "email"),
        (3, "configure", "email2", "email"),
        (5, "configure", "sms", "sms"),
        (7, "configure", "cta", "cta"),
        (8, "tips", "email", "email"),  # one action per account and day
    ]
    senders = [a["sender"] for _, a in log if a["channel"] == "email"]
    assert senders[0] != senders[1]


def test_a_done_milestone_stops_its_ladder_and_the_journey_moves_on() -> None:
    _, log = run_days(state(), journey(), 8, events={4: {"milestone.configured": True}})
    assert steps(log) == [
        (0, "configure", "email", "email"),
        (3, "configure", "email2", "email"),
        (4, "tips", "email", "email"),
    ]


def test_no_phone_skips_the_sms_rung_and_the_ladder_goes_on() -> None:
    _, log = run_days(state(n_sms_ok=0), journey(), 10)
    assert steps(log) == [
        (0, "configure", "email", "email"),
        (3, "configure", "email2", "email"),
        (5, "configure", "sms", "skip"),
        (7, "configure", "cta", "cta"),
        (8, "tips", "email", "email"),
    ]


def test_a_contact_no_channel_reaches_goes_straight_to_the_cta() -> None:
    _, log = run_days(state(n_sms_ok=0, n_email_ok=0), journey(), 3)
    assert steps(log)[0] == (0, "configure", "cta", "cta")
    assert all(a["channel"] != "email" for _, a in log)


def test_paused_account_waits_and_then_resumes_one_rung_at_a_time() -> None:
    pauses = {1: {"paused": True}, 10: {"paused": False}}
    _, log = run_days(state(), journey(), 16, events=pauses)
    assert steps(log) == [
        (0, "configure", "email", "email"),
        (10, "configure", "email2", "email"),
        (12, "configure", "sms", "sms"),
        (14, "configure", "cta", "cta"),
        (15, "tips", "email", "email"),
    ]


def test_high_touch_accounts_get_a_cta_instead_of_automated_messages() -> None:
    _, log = run_days(state(segment="high_touch"), journey(), 12)
    assert {a["channel"] for _, a in log} == {"cta"}
    titles = [a["title"] for _, a in log]
    assert titles[0].startswith("Reach out personally") and "Call the admin" in titles


def test_rerunning_the_same_day_decides_nothing_new() -> None:
    spec = journey()
    frame = state(n=3)
    first = decide(frame, spec, DAY0)
    again = decide(apply(frame, first), spec, DAY0)
    assert len(first.actions) == 3
    assert again.actions.empty and again.enrollments.empty


def test_reentry_waits_for_the_configured_days() -> None:
    text = LADDER_JOURNEY.replace("recipients: [admin]", "recipients: [admin]\nreentry: {after_days: 5}")
    text = text.replace("title: Configured\n", "title: Configured\n").replace(
        "  - id: tips\n    ladder:\n      - {id: email, channel: email, template: t/tips, sender: success}\n",
        "",
    )
    spec = journey(text)
    frame, log = run_days(state(**{"milestone.configured": True}), spec, 7)
    entries = [d for d, _ in log]
    assert entries == []  # done before the first rung: no message at all
    assert frame.loc["A0", "e_cycle"] == 2  # finished on day 0, re-entered on day 5


def test_positions_are_written_in_the_enrollment_vocabularies() -> None:
    spec = journey(LADDER_JOURNEY.replace("  - id: tips\n", "  - id: tips\n    after: 2d\n"))
    frame = state(n=2, **{"milestone.configured": [False, True]})
    statuses: set[object] = set()
    phases: set[object] = set()
    for offset in range(12):
        decision = decide(frame, spec, DAY0 + timedelta(days=offset))
        statuses |= set(decision.enrollments["status"])
        phases |= set(decision.enrollments["phase"])
        frame = apply(frame, decision)
    assert statuses == {"active", "completed"} and phases == {"pending", "active"}
    # The engine writes members, not look-alike strings (a StrEnum equals its value, so check types).
    assert all(isinstance(s, EnrollmentStatus) for s in statuses)
    assert all(isinstance(p, EnrollmentPhase) for p in phases)


def test_decide_is_vectorized_over_many_accounts() -> None:
    n = 20_000
    frame = state(n=n, n_sms_ok=list(np.arange(n) % 2))
    decision = decide(frame, journey(), DAY0)
    assert len(decision.actions) == n and decision.counts["entered"] == n


@pytest.mark.parametrize("bad", ["days_since_start >=", "unknown_name > 1"])
def test_bad_conditions_are_located_in_the_file(bad: str) -> None:
    from techtouch.domain.spec import JourneyErrors

    with pytest.raises(JourneyErrors) as info:
        journey(LADDER_JOURNEY.replace('"days_since_start >= 0"', f'"{bad}"'))
    assert str(info.value).startswith("test.yaml:4:")
