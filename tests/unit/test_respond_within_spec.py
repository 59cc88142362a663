"""`respond_within` (issue 13, point 3): a milestone's response window, validated with located errors."""

from __future__ import annotations

import pytest

from techtouch.domain.catalog import compile_journey
from techtouch.domain.spec import JourneyErrors, parse_journey

SURVEY = """\
id: survey
name: Survey
enter_when: "days_since_start >= 0"
milestones:
  - id: nps
    done_when: "survey.nps is answered"
    ladder:
      - {id: email, channel: email, template: advocacy/nps, sender: csm}
      - {id: email2, channel: email, template: advocacy/nps_reminder, sender: success, after: 4d}
    branches:
      - {id: detractor, when: "survey.nps <= 6", cta: {title: "Detractor: follow up"}}
WINDOW
  - id: tips
    ladder:
      - {id: email, channel: email, template: onboarding/tips, sender: success}
"""


def journey(window: str = "", tips_window: str = "") -> str:
    text = SURVEY.replace("WINDOW\n", f"    respond_within: {window}\n" if window else "")
    if tips_window:
        text += f"    respond_within: {tips_window}\n"
    return text


def errors(text: str) -> list[str]:
    with pytest.raises(JourneyErrors) as info:
        parse_journey(text, "survey.yaml")
    return [str(e) for e in info.value.errors]


def test_a_milestone_keeps_its_branches_armed_for_14_days_by_default() -> None:
    spec, document = parse_journey(journey(), "survey.yaml")
    compiled = compile_journey(spec, document)
    assert spec.milestones[0].respond_within == 14
    assert compiled.milestones[0].response_window == 14
    # Nothing to arm without branches: the default is there, but no window.
    assert compiled.milestones[1].response_window is None


@pytest.mark.parametrize(("value", "days"), [("3w", 21), ("10d", 10), ("0", 0), ("30", 30), ("365d", 365)])
def test_respond_within_takes_days_or_weeks(value: str, days: int) -> None:
    spec, _ = parse_journey(journey(value), "survey.yaml")
    assert spec.milestones[0].respond_within == days


@pytest.mark.parametrize("value", ["-1", "-2d", "soon", "1.5", "true", "366", "60w", "[14]", "{days: 14}"])
def test_a_bad_window_is_refused_at_its_line_with_what_is_accepted(value: str) -> None:
    found = errors(journey(value))
    assert len(found) == 1
    assert found[0].startswith("survey.yaml:12:"), found  # the respond_within line
    assert "milestones.0.respond_within:" in found[0]
    assert "a response window like 14d or 2w, from 0 to 365 days" in found[0]


def test_a_window_on_a_milestone_with_nothing_to_arm_is_refused() -> None:
    found = errors(journey(tips_window="7d"))
    assert len(found) == 1
    assert found[0].startswith("survey.yaml:15:"), found
    assert "milestones.1.respond_within: only a milestone with done_when and branches" in found[0]


def test_branches_without_done_when_have_nothing_to_wait_for() -> None:
    text = journey("7d").replace('    done_when: "survey.nps is answered"\n', "")
    found = errors(text)
    assert any("respond_within: only a milestone with done_when and branches" in e for e in found)


def test_the_shipped_journeys_name_their_windows() -> None:
    from techtouch.domain.catalog import load_catalog
    from techtouch.settings import PROJECT_ROOT

    catalog = load_catalog([PROJECT_ROOT / "config" / "journeys"])
    windows = {
        (j.id, m.spec.id): m.response_window
        for j in catalog.values()
        for m in j.milestones
        if m.response_window is not None
    }
    assert windows == {
        ("advocacy", "nps"): 14,
        ("advocacy", "ask"): 14,
        ("onboarding", "csat"): 14,
        ("renewal", "announce"): 14,
        ("renewal", "at_risk_call"): 30,  # waits on the CSM's at-risk CTA
        ("risk", "call"): 14,  # waits on the CSM's call
    }
