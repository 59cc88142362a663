"""`techtouch check` rules beyond rendering: every email a journey sends carries the unsubscribe
link, and every `survey.<name>` / `milestone.<name>` a condition reads is one something produces.

Each test checks a copy of the shipped journeys and templates with one thing changed, and expects
the problem at its file, line and column.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from techtouch.services.check import check_journeys
from techtouch.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
UNSUBSCRIBE = "an email must carry the unsubscribe link"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    shutil.copytree(ROOT / "config" / "journeys", tmp_path / "journeys")
    shutil.copytree(ROOT / "templates", tmp_path / "templates")
    return tmp_path


def check(project: Path) -> list[str]:
    problems, _ = check_journeys(Settings(templates_dir=project / "templates"), [project / "journeys"])
    return problems


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert text.count(old) == 1, f"{old!r} is not once in {path}"
    path.write_text(text.replace(old, new))


def where(path: Path, text: str) -> str:
    """`path:line:column` of the first `text` in the file (1-based), read from the raw text."""
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if text in line:
            return f"{path}:{number}:{line.index(text) + 1}"
    raise AssertionError(f"{text!r} not in {path}")


# --- the unsubscribe link --------------------------------------------------------------------------


def test_an_email_that_leaves_the_layout_needs_the_link_of_its_own(project: Path):
    assert check(project) == []
    html = project / "templates" / "renewal" / "reminder.email.html"
    html.write_text(
        "<html><body><p>Hi {{ contact.first_name }}, your renewal is coming up.</p>\n"
        '<p><a href="{{ links.preferences }}">Email preferences</a></p></body></html>\n'
    )
    journey = project / "journeys" / "renewal.yaml"
    assert check(project) == [
        f"{where(journey, 'renewal/reminder')}: {html}: {UNSUBSCRIBE}, "
        '<a href="{{ links.unsubscribe }}">: extend _layout.email.html, whose footer has it'
    ]
    html.write_text(
        '<html><body><p>Hi</p><p><a href="{{ links.unsubscribe }}">Stop these</a></p></body></html>\n'
    )
    assert check(project) == []


def test_the_link_must_be_a_link_in_html_and_present_in_the_text_part(project: Path):
    templates = project / "templates"
    edit(
        templates / "_layout.email.html",
        '<a href="{{ links.unsubscribe }}">Unsubscribe</a>',
        "<!-- {{ links.unsubscribe }} -->",
    )
    edit(templates / "_layout.email.txt", "Unsubscribe: {{ links.unsubscribe }}\n", "")
    problems = check(project)
    # every email rung, goal and branch message of every journey, on both parts
    html = [p for p in problems if ".email.html: " + UNSUBSCRIBE in p]
    text = [p for p in problems if ".email.txt: " + UNSUBSCRIBE in p]
    assert len(html) == len(text) == len(problems) / 2 >= 20
    first = where(project / "journeys" / "risk.yaml", "risk/recovered_survey")
    assert html[0].startswith(f"{first}: {templates}/risk/recovered_survey.email.html: {UNSUBSCRIBE}")
    assert text[0].startswith(f"{first}: {templates}/risk/recovered_survey.email.txt: {UNSUBSCRIBE}")


# --- names in conditions ---------------------------------------------------------------------------


def test_a_misspelt_survey_is_located_with_the_name_a_template_offers(project: Path):
    announce = project / "templates" / "renewal" / "announce.email.html"
    # offered only to executives: the sample contact is an admin, so the source says it, not a render
    edit(
        announce,
        "{% block body %}\n",
        "{% block body %}\n{% if contact.role == 'executive' %}"
        '{{ ui.choices("qbr_topic", [("pricing", "Pricing"), ("roadmap", "Roadmap")]) }}{% endif %}\n',
    )
    journey = project / "journeys" / "renewal.yaml"
    edit(
        journey,
        '"survey.renewal is answered"',
        '"survey.renewal is answered or survey.qbr_topc is answered"',
    )
    assert check(project) == [
        f"{where(journey, 'survey.qbr_topc')}: milestones.0.done_when: unknown survey 'qbr_topc': "
        "no template a journey sends offers it and no import brings it; did you mean 'qbr_topic'?"
    ]
    edit(journey, "survey.qbr_topc", "survey.qbr_topic")
    assert check(project) == []


def test_a_survey_name_a_template_computes_counts_once_rendered(project: Path):
    edit(
        project / "templates" / "renewal" / "announce.email.html",
        "{% block body %}\n",
        '{% block body %}\n{{ ui.choices("health_" ~ "check", [("ok", "OK")]) }}\n',
    )
    journey = project / "journeys" / "renewal.yaml"
    edit(
        journey,
        '"survey.renewal is answered"',
        '"survey.health_check is answered or survey.renewal is answered"',
    )
    assert check(project) == []
    edit(journey, "survey.health_check", "survey.health_chek")
    problems = check(project)
    assert problems[0] == (
        f"{where(journey, 'survey.health_chek')}: milestones.0.done_when: unknown survey 'health_chek': "
        "no template a journey sends offers it and no import brings it; did you mean 'health_check'?"
    )
    assert len(problems) == 2 and "offers the answer health_check:ok" in problems[1]  # nothing reads it now


def test_a_survey_nothing_offers_is_refused_with_the_known_names(project: Path):
    journey = project / "journeys" / "risk.yaml"
    edit(journey, "logins_14d == 0)", "logins_14d == 0) and not (survey.zzz == 'x')")
    (problem,) = check(project)
    assert problem.startswith(f"{where(journey, 'survey.zzz')}: enter_when: unknown survey 'zzz': ")
    assert "; known: advocate, csat, " in problem and "renewal, setup_help" in problem

    # renewal, nps, csat and advocate come from imports too: a condition on them needs no template
    for template in ("announce", "announce_2"):
        for suffix in ("email.html", "email.txt"):
            path = project / "templates" / "renewal" / f"{template}.{suffix}"
            lines = path.read_text().splitlines()
            path.write_text("\n".join(line for line in lines if "ui.choices" not in line) + "\n")
    edit(journey, " and not (survey.zzz == 'x')", "")
    assert check(project) == []


def test_a_journey_milestone_id_is_not_an_account_milestone(project: Path):
    journey = project / "journeys" / "onboarding.yaml"
    edit(journey, 'start_when: "milestone.live"', 'start_when: "milestone.liev"')
    edit(journey, 'done_when: "milestone.configured"', 'done_when: "milestone.configure"')
    assert check(project) == [
        f"{where(journey, 'milestone.configure')}: milestones.2.done_when: unknown milestone 'configure': "
        "no import brings it (a journey's own milestone ids are not account milestones); "
        "did you mean 'configured'?",
        f"{where(journey, 'milestone.liev')}: milestones.4.start_when: unknown milestone 'liev': "
        "no import brings it (a journey's own milestone ids are not account milestones); "
        "did you mean 'live'?",
    ]


# --- no promise without a follow-up (issue 12, point 4) ----------------------------------------


def test_the_shipped_journeys_act_on_every_answer_they_offer(project: Path) -> None:
    assert check(project) == []


def test_an_offered_request_that_no_journey_reads_is_refused_at_the_template_reference(project: Path):
    risk = project / "journeys" / "risk.yaml"
    edit(risk, "    when: \"survey.talk_to_csm == 'yes'\"", "    when: \"survey.talk_to_csm == 'no'\"")
    problems = check(project)
    assert len(problems) == 1, problems
    assert "offers the answer talk_to_csm:yes but no journey acts on it" in problems[0]
    assert problems[0].startswith(f"{risk}:")  # located at the rung that sends the template


def test_an_answer_declared_informational_needs_no_reader(project: Path) -> None:
    onboarding = project / "journeys" / "onboarding.yaml"
    edit(onboarding, '["setup_help:done", "setup_owner:*"]', '["setup_help:done"]')
    problems = check(project)
    assert sorted(p.split("offers the answer ")[1].split(" ")[0] for p in problems) == [
        "setup_owner:colleague",
        "setup_owner:me",
    ]


def test_a_scale_is_read_answer_by_answer(project: Path) -> None:
    """NPS offers 0 to 10, and each answer must hold in some condition: with done_when narrowed to
    0-8 and the ask's skip_when holding up to 9 only, nothing reads a 10."""
    advocacy = project / "journeys" / "advocacy.yaml"
    edit(advocacy, 'done_when: "survey.nps is answered"', 'done_when: "survey.nps <= 8"')
    edit(advocacy, 'skip_when: "not (survey.nps >= 9)"', 'skip_when: "not (survey.nps >= 10)"')
    problems = check(project)
    assert [p.split("offers the answer ")[1].split(" ")[0] for p in problems] == ["nps:10"]
