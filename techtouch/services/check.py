"""`techtouch check`: the same loading code as a run, plus every template rendered on sample data.

Beyond what loading refuses, check holds journeys to rules a run cannot see:

- every template a journey sends renders (Renderer.check: files, syntax, variables, subject, SMS
  length, GSM-7 and STOP);
- every email a journey sends carries the unsubscribe link in both parts
  (Renderer.unsubscribe_problems). The rule is for what journeys send, i.e. mail to customers. The
  CSM digest (templates/digest/, sent by techtouch.services.digest) is exempt on purpose: it is
  internal mail from the system to the team's own CSMs about their accounts, not a message to a
  customer, so there is no consent to withdraw and its footer has no unsubscribe link; it is not a
  journey message, so this rule never sees it (a journey that did send it would be held to it);
- every `survey.<name>` and `milestone.<name>` a condition reads is a name something produces
  (known_names); any other is a typo that would silently never match, reported at its file, line
  and column with the nearest known name;
- no promise without a follow-up: every one-click answer a template offers is read by some
  journey (a condition on that survey holds for that answer: a request, a branch, a goal, a
  done_when) or declared in a journey's `informational_answers` (unread_answers).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from techtouch.adapters.render.renderer import EMAIL_SUFFIXES, SMS_SUFFIXES, Renderer, sample_context
from techtouch.domain.catalog import CompiledJourney, journey_files, load_catalog
from techtouch.domain.conditions import Condition
from techtouch.domain.spec import JourneyErrors
from techtouch.domain.validators import KNOWN_SURVEYS
from techtouch.domain.vocabulary import MILESTONES
from techtouch.domain.yamlsource import Document, Loc
from techtouch.settings import Settings


def referenced_templates(journey: CompiledJourney) -> list[tuple[str, str, tuple[str | int, ...]]]:
    """(template, channel, YAML location) for every message the journey can send."""
    found: list[tuple[str, str, tuple[str | int, ...]]] = []
    for gi, goal in enumerate(journey.spec.goals):
        if goal.message:
            found.append((goal.message.template, goal.message.channel, ("goals", gi, "message", "template")))
    for mi, m in enumerate(journey.milestones):
        for ri, rung in enumerate(m.spec.ladder):
            if rung.channel in ("email", "sms") and rung.template:
                found.append((rung.template, rung.channel, ("milestones", mi, "ladder", ri, "template")))
        for bi, (branch, _) in enumerate(m.branches):
            if branch.message:
                found.append(
                    (
                        branch.message.template,
                        branch.message.channel,
                        ("milestones", mi, "branches", bi, "message", "template"),
                    )
                )
    return found


def conditions_of(journey: CompiledJourney) -> list[tuple[Loc, Condition]]:
    """Every condition of the journey with its YAML location."""
    found: list[tuple[Loc, Condition]] = [(("enter_when",), journey.enter_when)]
    found += [(("goals", gi, "when"), condition) for gi, (_, condition) in enumerate(journey.goals)]
    found += [(("requests", ri, "when"), condition) for ri, (_, condition) in enumerate(journey.requests)]
    for mi, m in enumerate(journey.milestones):
        for name, condition in (
            ("start_when", m.start_when),
            ("skip_when", m.skip_when),
            ("done_when", m.done_when),
        ):
            if condition is not None:
                found.append((("milestones", mi, name), condition))
        found += [
            (("milestones", mi, "branches", bi, "when"), condition)
            for bi, (_, condition) in enumerate(m.branches)
        ]
    return found


def known_names(offered_surveys: Iterable[str]) -> dict[str, set[str]]:
    """The names each checked family can take, because something produces them.

    - `survey.<name>`: an answer is recorded when a contact opens a survey link, so a survey exists
      when a template a journey sends offers it (`offered_surveys`), or when it is one of the surveys
      the events import validates and the health score reads (KNOWN_SURVEYS). An imported answer to
      any other survey is possible, but nothing declares it: a condition on it is refused.
    - `milestone.<name>`: imported `milestone` events only (vocabulary.MILESTONES).
    """
    return {"survey": set(KNOWN_SURVEYS) | set(offered_surveys), "milestone": set(MILESTONES)}


_PRODUCERS = {
    "survey": "no template a journey sends offers it and no import brings it",
    "milestone": "no import brings it (a journey's own milestone ids are not account milestones)",
}


def unknown_names(journey: CompiledJourney, document: Document, known: dict[str, set[str]]) -> list[str]:
    """`file:line:col: field: ...` for each `survey.<name>` / `milestone.<name>` nothing produces."""
    problems: list[str] = []
    for loc, condition in conditions_of(journey):
        for column in sorted(condition.columns):
            family, _, name = column.partition(".")
            if family not in known or name in known[family]:
                continue
            field = ".".join(str(part) for part in loc)
            message = f"{field}: unknown {family} {name!r}: {_PRODUCERS[family]}"
            close = difflib.get_close_matches(name, sorted(known[family]), n=1, cutoff=0.6)
            if close:
                message += f"; did you mean {close[0]!r}?"
            else:
                message += f"; known: {', '.join(sorted(known[family]))}"
            where = re.search(rf"(?<![\w.]){re.escape(column)}(?![\w.])", condition.source)
            offset = where.start() if where else 0
            problems.append(str(document.error(loc, message, offset=offset)))
    return problems


def reads_answer(condition: Condition, survey: str, answer: str) -> bool:
    """Whether `condition` holds when the only thing known is that `survey` was answered `answer`."""
    column = f"survey.{survey}"
    if column not in condition.columns:
        return False
    frame = pd.DataFrame({c: [None] for c in condition.columns}, dtype=object)
    frame[column] = [answer]
    return bool(condition.evaluate(frame).iloc[0])


def _declared(informational: set[str], survey: str, answer: str) -> bool:
    return bool({survey, f"{survey}:*", f"{survey}:{answer}"} & informational)


def unread_answers(
    catalog: dict[str, CompiledJourney], offered: dict[tuple[str, str], tuple[str, Document, Loc]]
) -> list[str]:
    """`file:line:col: ...` for each offered answer that no condition reads and no journey declares
    informational: the customer was promised something ("Yes, let's talk") that nothing acts on."""
    conditions = [c for journey in catalog.values() for _, c in conditions_of(journey)]
    informational = {a for journey in catalog.values() for a in journey.spec.informational_answers}
    problems: list[str] = []
    for (survey, answer), (template, document, loc) in sorted(offered.items()):
        if _declared(informational, survey, answer):
            continue
        if any(reads_answer(c, survey, answer) for c in conditions):
            continue
        message = (
            f"template {template} offers the answer {survey}:{answer} but no journey acts on it: add a "
            f"request (requests: - when: \"survey.{survey} == '{answer}'\", cta: ...) or a branch that "
            f"reads it, or declare it in informational_answers if nobody needs to act"
        )
        problems.append(str(document.error(loc, message)))
    return problems


def check_journeys(settings: Settings, paths: list[Path]) -> tuple[list[str], dict[str, CompiledJourney]]:
    """Problems as `file:line:col: message` lines (empty when all is well) and the catalog."""
    from techtouch.domain.spec import load_journey

    try:
        catalog = load_catalog(paths)
    except JourneyErrors as exc:
        return [str(e) for e in exc.errors], {}
    renderer = Renderer(settings.templates_dir)
    problems: list[str] = []
    senders = set(settings.senders) | {"csm"}
    rendered_surveys: set[str] = set()
    rendered_answers: set[tuple[str, str]] = set()

    def recording_survey_url(survey: str, answer: str | int) -> str:
        rendered_surveys.add(str(survey))
        rendered_answers.add((str(survey), str(answer)))
        return f"https://example.invalid/s/{survey}/{answer}"

    offered: dict[tuple[str, str], tuple[str, Document, Loc]] = {}
    documents: dict[str, Document] = {}
    sent: set[str] = set()  # the template files journeys send (absent ones are skipped)
    for journey in catalog.values():
        _, document = load_journey(Path(journey.path))
        documents[journey.id] = document
        for template, channel, loc in referenced_templates(journey):
            context = sample_context(survey_url=recording_survey_url)
            rendered_answers.clear()
            found = renderer.check(template, channel, context)  # type: ignore[arg-type]
            for pair in rendered_answers:
                offered.setdefault(pair, (template, document, loc))
            if not found and channel == "email":
                found = renderer.unsubscribe_problems(template, context)
            for problem in found:
                problems.append(f"{document.error(loc, '')}".rstrip(": ") + f": {problem}")
            sent.update(f"{template}.{suffix}" for suffix in (*EMAIL_SUFFIXES, *SMS_SUFFIXES))
        for mi, m in enumerate(journey.milestones):
            for ri, rung in enumerate(m.spec.ladder):
                if rung.sender and rung.sender not in senders:
                    loc = ("milestones", mi, "ladder", ri, "sender")
                    known = ", ".join(sorted(senders))
                    problems.append(
                        str(document.error(loc, f"sender: unknown sender {rung.sender!r}; known: {known}"))
                    )
    names = known_names(renderer.offered_surveys(sent) | rendered_surveys)
    for journey in catalog.values():
        problems += unknown_names(journey, documents[journey.id], names)
    problems += unread_answers(catalog, offered)
    return problems, catalog


__all__ = [
    "check_journeys",
    "conditions_of",
    "journey_files",
    "known_names",
    "reads_answer",
    "referenced_templates",
    "unknown_names",
    "unread_answers",
]
