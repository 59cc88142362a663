"""Malformed journey files: each gets one located `file:line:col: message` error naming the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from techtouch.domain.catalog import load_catalog
from techtouch.domain.spec import JourneyErrors

GOOD = """\
id: j
name: J
enter_when: "days_to_renewal <= 120"
milestones:
  - id: m
    done_when: "survey.renewal is answered"
    ladder:
      - {id: email, channel: email, template: renewal/announce, sender: csm}
      - {id: email2, channel: email, template: renewal/announce_2, sender: vp_cs, after: 3d}
"""


def variant(old: str, new: str) -> str:
    assert old in GOOD
    return GOOD.replace(old, new)


CASES = [
    # (file text, line, column, words the message must contain)
    ("id: [unclosed\n", 2, 1, "invalid YAML"),
    ("- just\n- a list\n", 1, 1, "mapping"),
    (variant("id: j\n", ""), 1, 1, "id: required field is missing"),
    (variant("id: j", "id: J-bad"), 1, 5, "id: String should match pattern"),
    (variant("name: J\n", "name: J\ncolour: blue\n"), 3, 9, "colour: unknown field"),
    (
        variant('enter_when: "days_to_renewal <= 120"', 'enter_when: "days_to_renewal <="'),
        3,
        32,
        "enter_when: unexpected end",
    ),
    (
        variant('enter_when: "days_to_renewal <= 120"', 'enter_when: "days_to_renewl <= 120"'),
        3,
        14,
        "unknown name 'days_to_renewl'",
    ),
    (variant('enter_when: "days_to_renewal <= 120"', 'enter_when: "segment > 3"'), 3, 22, "needs numbers"),
    (variant('enter_when: "days_to_renewal <= 120"', 'enter_when: "arr"'), 3, 14, "true or false"),
    (variant('enter_when: "days_to_renewal <= 120"', "enter_when: __import__('os')"), 3, 13, "enter_when"),
    (
        variant('done_when: "survey.renewal is answered"', 'done_when: "survey.renewal is anwsered"'),
        6,
        35,
        "milestones.0.done_when",
    ),
    (
        variant(
            "channel: email, template: renewal/announce, sender: csm",
            "channel: fax, template: renewal/announce",
        ),
        8,
        30,
        "milestones.0.ladder.0.channel: Input should be 'email', 'sms' or 'cta'",
    ),
    (
        variant(
            "{id: email, channel: email, template: renewal/announce, sender: csm}",
            "{id: email, channel: email, template: renewal/announce}",
        ),
        8,
        9,
        "needs a sender",
    ),
    (variant("sender: vp_cs, after: 3d", "sender: csm, after: 3d"), 5, 5, "different person"),
    (variant("after: 3d", "after: soon"), 9, 90, "milestones.0.ladder.1.after: a duration like 3d or 2w"),
    (variant("id: email2", "id: email"), 5, 5, "rung ids must be unique"),
    (
        variant(
            "    ladder:\n      - {id: email, channel: email, template: renewal/announce, sender: csm}\n"
            "      - {id: email2, channel: email, template: renewal/announce_2, sender: vp_cs, after: 3d}\n",
            "    ladder: []\n",
        ),
        7,
        13,
        "milestones.0.ladder: List should have at least 1 item",
    ),
    (variant("milestones:", "milestones: 3\nx:"), 4, 13, "milestones: Input should be a valid list"),
    (
        GOOD + "  - id: m\n    ladder:\n      - {id: c, channel: cta, title: T}\n",
        5,
        3,
        "milestones: milestone ids must be unique: m",
    ),
    (GOOD + "recipients: [admins]\n", 10, 14, "recipients.0: Input should be"),
    (GOOD + 'goals:\n  - {id: g, when: "renewal_signed and"}\n', 11, 38, "goals.0.when: unexpected end"),
    (GOOD + "audience: {segments: [mid_touch]}\n", 10, 23, "audience.segments.0"),
    (GOOD + "reentry: {after_days: -3}\n", 10, 23, "reentry.after_days"),
    (
        variant("      - {id: email2", "      - {id: cta, channel: cta}\n      - {id: email2"),
        9,
        9,
        "a cta rung needs a title",
    ),
    (GOOD + "name: again\n", 10, 1, "duplicate key 'name'"),
    (GOOD + "params: {Drop: -30%}\n", 10, 16, "params.Drop"),
]


@pytest.mark.parametrize(("text", "line", "column", "words"), CASES)
def test_malformed_journey_gets_a_located_error(
    tmp_path: Path, text: str, line: int, column: int, words: str
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(JourneyErrors) as info:
        load_catalog([path])
    first = str(info.value.errors[0])
    assert first.startswith(f"{path}:{line}:{column}: "), first
    assert words in first, first


def test_every_problem_of_every_file_is_reported_and_duplicate_ids_across_files(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(GOOD)
    (tmp_path / "b.yaml").write_text(GOOD)
    (tmp_path / "c.yaml").write_text(variant('enter_when: "days_to_renewal <= 120"', 'enter_when: "x > 1"'))
    with pytest.raises(JourneyErrors) as info:
        load_catalog([tmp_path])
    messages = [str(e) for e in info.value.errors]
    assert any("b.yaml:1:5: id: journey 'j' is also defined" in m for m in messages), messages
    assert any("c.yaml:3:14:" in m for m in messages), messages


def test_the_shipped_journeys_load() -> None:
    catalog = load_catalog([Path(__file__).parents[2] / "config" / "journeys"])
    assert set(catalog) == {"onboarding", "renewal", "risk", "advocacy"}
    assert [m.spec.id for m in catalog["renewal"].milestones] == ["announce", "at_risk_call", "reminder"]
