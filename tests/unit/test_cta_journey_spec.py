"""Journey files that read CTAs: `cta.<reason>.<field>` names, `wait_for`, `requests`, `outcomes`
(issue 12, points 3 and 4), checked where a journey file is loaded, with file, line and field."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

from techtouch.domain.catalog import compile_journey
from techtouch.domain.conditions import ConditionError, compile_condition
from techtouch.domain.decide import decide
from techtouch.domain.spec import JourneyErrors, parse_journey

HEAD = """\
id: j
name: J
enter_when: "arr > 0"
"""


def compiled(text: str):  # type: ignore[no-untyped-def]
    journey, document = parse_journey(HEAD + text, "j.yaml")
    return compile_journey(journey, document)


def errors(text: str) -> list[str]:
    with pytest.raises(JourneyErrors) as caught:
        compiled(text)
    return [str(e) for e in caught.value.errors]


WAITING = """\
milestones:
  - id: call
    wait_for: {cta: churn_risk}
    ladder:
      - {id: nudge, channel: cta, after: 7d, title: "Still open", reason: churn_risk, priority: high}
    branches:
      - id: lost
        when: "cta.churn_risk.outcome == 'churn_confirmed'"
        then: exit
"""


def test_a_cta_field_is_a_name_and_a_missing_field_is_refused_with_the_fields() -> None:
    vocabulary = compiled(WAITING).milestones[0].done_when
    assert vocabulary is not None and vocabulary.columns == {"cta.churn_risk.status"}
    problems = errors(WAITING.replace("cta.churn_risk.outcome", "cta.churn_risk.result"))
    assert len(problems) == 1 and problems[0].startswith("j.yaml:")
    assert "milestones.0.branches.0.when: 'cta.churn_risk.result' must name a field" in problems[0]
    assert problems[0].endswith("fields: status, outcome, priority, days_open")


def test_wait_for_is_done_when_the_cta_is_closed_and_skipped_when_there_is_none() -> None:
    milestone = compiled(WAITING).milestones[0]
    assert milestone.done_when is not None and milestone.skip_when is not None
    frame = pd.DataFrame({"cta.churn_risk.status": ["open", "done", "cancelled", None]})
    assert milestone.done_when.evaluate(frame).tolist() == [False, True, True, False]
    assert milestone.skip_when.evaluate(frame).tolist() == [False, False, False, True]


def test_wait_for_with_its_own_done_when_is_refused() -> None:
    problems = errors(WAITING.replace("    wait_for:", '    done_when: "arr > 1"\n    wait_for:'))
    assert len(problems) == 1 and "wait_for decides done_when" in problems[0]


def test_outcomes_must_be_unique_slugs_and_not_the_system_outcome() -> None:
    base = WAITING.replace(
        "reason: churn_risk, priority: high}", "reason: churn_risk, priority: high, outcomes: OUTCOMES}"
    )
    assert "outcomes must be unique: won" in errors(base.replace("OUTCOMES", "[won, won]"))[0]
    assert "set by a run" in errors(base.replace("OUTCOMES", "[resolved_by_customer]"))[0]
    journey = compiled(base.replace("OUTCOMES", "[won, lost]"))
    assert journey.milestones[0].spec.ladder[0].outcomes == ["won", "lost"]


REQUESTS = """\
milestones:
  - id: only
    ladder: [{id: email, channel: email, template: t/x, sender: csm}]
requests:
  - id: call_me
    when: "survey.call_me == 'yes'"
    cta: {title: "Call them", reason: call_request, priority: high, due_in: 1d}
"""


def frame_for(journey, **columns) -> pd.DataFrame:  # type: ignore[no-untyped-def]
    """One enrolled account (entered 2027-01-01), its columns as given."""
    base = {
        "segment": "tech_touch",
        "arr": 100.0,
        "paused": False,
        "n_email_ok": 1,
        "n_sms_ok": 0,
        "e_id": 1,
        "e_status": "active",
        "e_cycle": 1,
        "e_milestone": "only",
        "e_phase": "active",
        "e_step": 1,
        "e_next_due": None,
        "e_milestone_since": date(2027, 1, 1),
        "e_entered_as_of": date(2027, 1, 1),
        "e_exited_as_of": None,
        "e_last_touch_as_of": date(2027, 1, 1),
        "e_exit_reason": None,
        "e_entry": {},
    }
    return pd.DataFrame([base | columns], index=pd.Index(["a1"], name="account_id"))


def test_a_request_fires_once_per_enrollment_for_an_answer_since_it_entered() -> None:
    journey = compiled(REQUESTS)
    answered = pd.Timestamp("2027-01-03 10:00")
    fresh = frame_for(journey, **{"survey.call_me": "yes", "survey_at.call_me": answered})
    actions = decide(fresh, journey, date(2027, 1, 4)).actions
    assert actions[["milestone", "rung", "kind", "channel", "reason"]].values.tolist() == [
        ["request", "call_me", "request", "cta", "call_request"]
    ]
    why = actions["why"].iloc[0]
    assert why == {
        "condition": "survey.call_me == 'yes'",
        "values": {"survey.call_me": "yes"},
        "request": "call_me",
    }
    raised = fresh.assign(**{"requested@call_me": True})
    assert decide(raised, journey, date(2027, 1, 4)).actions.empty
    before_entry = fresh.assign(**{"survey_at.call_me": pd.Timestamp("2026-12-20")})
    assert decide(before_entry, journey, date(2027, 1, 4)).actions.empty


def test_a_cta_raised_before_the_enrollment_entered_is_not_seen() -> None:
    journey = compiled(
        WAITING.replace(
            "milestones:", "goals:\n  - {id: won, when: \"cta.churn_risk.outcome == 'won'\"}\nmilestones:"
        )
    )
    old = frame_for(
        journey,
        e_milestone="call",
        **{
            "cta.churn_risk.outcome": "won",
            "cta.churn_risk.status": "done",
            "cta_created.churn_risk": pd.Timestamp("2026-06-01"),
        },
    )
    # Last year's CTA is not this enrollment's: no goal; the wait is skipped (no CTA raised) instead.
    assert decide(old, journey, date(2027, 1, 4)).enrollments["exit_reason"].tolist() == ["finished"]
    new = old.assign(**{"cta_created.churn_risk": pd.Timestamp("2027-01-02")})
    ended = decide(new, journey, date(2027, 1, 4)).enrollments
    assert ended[["status", "exit_reason"]].values.tolist() == [["completed", "won"]]


def test_cta_names_outside_the_record_family_keep_their_errors() -> None:
    with pytest.raises(ConditionError, match="must name a field"):
        compile_condition("cta.churn == 'x'", _vocabulary())


def _vocabulary():  # type: ignore[no-untyped-def]
    from techtouch.domain.catalog import vocabulary
    from techtouch.domain.spec import parse_journey as parse

    journey, _ = parse(HEAD + REQUESTS)
    return vocabulary(journey)


def test_explain_rows_gives_plain_values() -> None:
    condition = compile_condition("arr > 10 and survey.nps <= 6", _vocabulary())
    frame = pd.DataFrame({"arr": [12.123456, 5.0], "survey.nps": ["3", None]})
    assert condition.explain_rows(frame, np.array([True, True])) == [
        {"arr": 12.1235, "survey.nps": "3"},
        {"arr": 5.0, "survey.nps": None},
    ]
