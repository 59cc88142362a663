"""High-touch CTA titles name what the CSM asks for, never the milestone's outcome ("… answered")."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from techtouch.adapters.db.record import POSITION_FIELDS
from techtouch.domain.catalog import CompiledJourney, load_catalog
from techtouch.domain.decide import decide
from techtouch.domain.spec import Milestone, parse_journey

CATALOG = load_catalog([Path(__file__).parents[2] / "config" / "journeys"])
MILESTONES = [(j.id, m.spec) for j in CATALOG.values() for m in j.milestones]
# What a title may not end with: the outcome the customer produces, not the CSM's ask.
PARTICIPLES = {
    "answered",
    "clicked",
    "completed",
    "configured",
    "done",
    "finished",
    "opened",
    "reached",
    "recovered",
    "sent",
    "signed",
}
EXPECTED = {
    ("advocacy", "nps"): "Reach out personally: NPS question",
    ("advocacy", "ask"): "Reach out personally: advocate request",
    ("onboarding", "welcome"): "Reach out personally: welcome and first steps",
    ("onboarding", "training"): "Reach out personally: first training courses",
    ("onboarding", "configure"): "Reach out personally: product configuration",
    ("onboarding", "tips"): "Reach out personally: tips for the basic functions",
    ("onboarding", "live"): "Reach out personally: go-live congratulations",
    ("onboarding", "csat"): "Reach out personally: onboarding satisfaction question",
    ("renewal", "announce"): "Reach out personally: renewal likelihood question",
    ("renewal", "at_risk_call"): "Reach out personally: renewal risk call",
    ("renewal", "reminder"): "Reach out personally: 60-day renewal reminder",
    ("risk", "call"): "Reach out personally: risk call",
    ("risk", "report"): "Reach out personally: adoption report walkthrough",
    ("risk", "content"): "Reach out personally: content to bring users back",
    ("risk", "recover"): "Reach out personally: usage recovery plan",
}


def test_every_shipped_milestone_is_listed() -> None:
    assert {(journey, m.id) for journey, m in MILESTONES} == set(EXPECTED)


@pytest.mark.parametrize(("journey", "milestone"), MILESTONES, ids=[f"{j}.{m.id}" for j, m in MILESTONES])
def test_shipped_milestones_get_an_ask_not_an_outcome(journey: str, milestone: Milestone) -> None:
    title = milestone.personal_cta_title

    assert title == EXPECTED[(journey, milestone.id)]
    assert title.split()[-1].lower() not in PARTICIPLES
    assert milestone.title is None or title != f"Reach out personally: {milestone.title}"


def milestone(**fields: str) -> Milestone:
    return Milestone.model_validate(
        {"id": "renewal_check", "ladder": [{"id": "cta", "channel": "cta", "title": "Call"}], **fields}
    )


@pytest.mark.parametrize(
    ("fields", "title"),
    [
        ({"title": "Renewal likelihood answered"}, "Reach out personally: renewal likelihood"),
        ({"title": "Adoption report sent"}, "Reach out personally: adoption report"),
        ({"title": "Welcome email opened and clicked"}, "Reach out personally: welcome email"),
        ({"title": "NPS answered"}, "Reach out personally: NPS"),
        ({"title": "Kick-off done"}, "Reach out personally: kick-off"),
        ({"title": "Answered"}, "Reach out personally: renewal check"),
        ({}, "Reach out personally: renewal check"),
        (
            {"title": "Renewal likelihood answered", "ask": "Renewal call"},
            "Reach out personally: renewal call",
        ),
    ],
)
def test_without_an_ask_the_title_loses_its_outcome_words_or_the_id_stands_in(
    fields: dict[str, str], title: str
) -> None:
    assert milestone(**fields).personal_cta_title == title


def test_the_engine_gives_a_high_touch_account_the_ask_as_its_cta_title() -> None:
    journey = CATALOG["renewal"]
    frame = _high_touch_account_due_for_renewal(journey)

    actions = decide(frame, journey, date(2027, 1, 4)).actions

    assert actions[["rung", "channel", "title"]].to_dict("records") == [
        {"rung": "personal", "channel": "cta", "title": "Reach out personally: renewal likelihood question"}
    ]


def test_an_unknown_field_next_to_ask_is_still_refused() -> None:
    with pytest.raises(Exception, match="unknown field"):
        parse_journey(
            """
id: j
name: J
enter_when: "days_since_start >= 0"
milestones:
  - id: m
    ask: a call
    asks: a typo
    ladder: [{id: cta, channel: cta, title: Call}]
""",
            "test.yaml",
        )


def _high_touch_account_due_for_renewal(journey: CompiledJourney) -> pd.DataFrame:
    columns: dict[str, object] = {
        "segment": "high_touch",
        "paused": False,
        "days_to_renewal": 100,
        "renewal_signed": False,
        "survey.renewal": None,
        "n_email_ok": 1,
        "n_sms_ok": 1,
        **{f"e_{name}": None for name in ("id", "cycle", *POSITION_FIELDS)},  # never enrolled
    }
    return pd.DataFrame({k: [v] for k, v in columns.items()}, index=pd.Index(["A0"], name="account_id"))
