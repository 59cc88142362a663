"""Survey answers and their optional comments, from the signed links in our messages.

Answers are `survey` events, read by journeys like imported ones (techtouch.adapters.db.signals
takes the latest per account and survey), so they are checked and normalized the same way.

Safe from mail scanners: a corporate scanner opens every link of a message, so opening a survey
link records nothing. It shows the question with the clicked answer selected (`survey_question`,
a read), and only the confirming POST records (`confirmed_answer`, then `record_survey_answer`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine, func, select

from techtouch.adapters.db.models import Account, Contact, Event
from techtouch.domain import validators
from techtouch.services.feedback.errors import BadAnswer
from techtouch.services.feedback.recording import (
    Applied,
    aware_now,
    hash_key,
    record,
    retry_transient,
    writing,
)
from techtouch.services.importer import event_key

log = logging.getLogger(__name__)

COMMENT_MAX = 2_000  # characters of a survey comment

MAX_VALUE_LENGTH = 200  # events.value is String(200) (adapters/db/models.py)


def survey_value(survey: str, answer: str) -> str:
    """`<survey>:<answer>` checked and normalized like an imported event (BadAnswer if not valid)."""
    try:
        value = validators.parse_survey_value(f"{survey}:{answer}")
    except ValueError as exc:
        raise BadAnswer(str(exc)) from None
    if len(value) > MAX_VALUE_LENGTH:
        raise BadAnswer("survey answer too long")
    return value


# The answers of the surveys on a fixed scale (the ones techtouch.domain.validators.KNOWN_SURVEYS
# checks), in the order a page offers them. Any other survey takes the answer its link names.
SURVEY_CHOICES: dict[str, tuple[str, ...]] = {
    "renewal": ("likely", "unsure", "not_likely"),
    "nps": tuple(str(n) for n in range(11)),
    "csat": tuple(str(n) for n in range(1, 6)),
    "advocate": ("yes", "no"),
}


@dataclass(frozen=True)
class SurveyQuestion:
    """What the confirmation page of a survey link offers: the answers, the clicked one selected."""

    survey: str
    answer: str  # the link's answer, normalized
    choices: tuple[str, ...]  # the answers the POST may carry (the link's own for a free survey)


def survey_question(survey: str, answer: str) -> SurveyQuestion:
    """The question a survey link stands for; BadAnswer when its answer is not one the survey takes."""
    clicked = survey_value(survey, answer).split(":", 1)[1]
    return SurveyQuestion(survey, clicked, SURVEY_CHOICES.get(survey, (clicked,)))


def confirmed_answer(question: SurveyQuestion, posted: str) -> str:
    """The answer a confirmation POST carries, normalized; BadAnswer unless the survey offers it."""
    try:
        answer = survey_value(question.survey, posted).split(":", 1)[1]
    except BadAnswer:
        answer = ""
    if answer not in question.choices:
        raise BadAnswer(f"not an answer to {question.survey}: choose one of those offered")
    return answer


def account_exists(engine: Engine, account_id: str) -> bool:
    """Whether a link's account is still there (the confirmation page of a deleted one is a 404)."""
    with engine.connect() as connection:
        return connection.scalar(select(Account.id).where(Account.id == account_id)) is not None


@dataclass(frozen=True)
class SurveyAnswer:
    """The stored answer, and whether this click changed anything (for the thank-you page)."""

    value: str  # `<survey>:<answer>`
    recorded: bool  # False: the contact's latest answer to this survey was already this one


@retry_transient
def record_survey_answer(
    engine: Engine, account_id: str, contact_id: str, survey: str, answer: str, *, now: datetime | None = None
) -> SurveyAnswer | None:
    """Record a confirmed answer as a `survey` event; None when the account no longer exists.

    Confirming the same answer again records nothing. A different answer is a new event, placed
    after every earlier answer of the account to this survey so that it is the one journeys read
    (techtouch.adapters.db.signals takes the latest per account and survey).
    """
    value = survey_value(survey, answer)
    occurred_at = aware_now(now)
    prefix = value.split(":", 1)[0] + ":"
    with writing(engine) as connection:
        if connection.scalar(select(Account.id).where(Account.id == account_id)) is None:
            return None
        known = connection.scalar(
            select(Contact.id).where(Contact.id == contact_id, Contact.account_id == account_id)
        )
        answers = (
            Event.account_id == account_id,
            Event.type == "survey",
            Event.value.startswith(prefix, autoescape=True),
        )
        contact = (Event.contact_id == known) if known else Event.contact_id.is_(None)
        mine = connection.scalar(
            select(Event.value)
            .where(*answers, contact)
            .order_by(Event.occurred_at.desc(), Event.id.desc())
            .limit(1)
        )
        if mine == value:
            return SurveyAnswer(value, recorded=False)
        latest = connection.scalar(select(func.max(Event.occurred_at)).where(*answers))
        if latest is not None and latest >= occurred_at:
            occurred_at = latest + timedelta(microseconds=1)
        row = {
            "key": event_key(account_id, known, occurred_at, "survey", value),
            "account_id": account_id,
            "contact_id": known,
            "occurred_at": occurred_at,
            "type": "survey",
            "value": value,
            "source": "web",
        }
        record(connection, [row], Applied())
    log.info("survey answer recorded: %s", value)
    return SurveyAnswer(value, recorded=True)


@retry_transient
def record_survey_comment(
    engine: Engine,
    account_id: str,
    contact_id: str,
    survey: str,
    answer: str,
    comment: str,
    *,
    now: datetime | None = None,
) -> bool | None:
    """Store a free-text comment on an answer (`survey_comment`, value `<survey>:<answer>`, text in
    `detail`). The same comment submitted twice is stored once. None when the account is gone."""
    value = survey_value(survey, answer)
    text = comment.strip()
    if not text:
        raise BadAnswer("the comment is empty")
    if len(text) > COMMENT_MAX:
        raise BadAnswer(f"the comment is longer than {COMMENT_MAX} characters")
    occurred_at = aware_now(now)
    with writing(engine) as connection:
        if connection.scalar(select(Account.id).where(Account.id == account_id)) is None:
            return None
        known = connection.scalar(
            select(Contact.id).where(Contact.id == contact_id, Contact.account_id == account_id)
        )
        row = {
            "key": hash_key("survey-comment", account_id, known or "", value, text),
            "account_id": account_id,
            "contact_id": known,
            "occurred_at": occurred_at,
            "type": "survey_comment",
            "value": value,
            "source": "web",
            "detail": text,
        }
        return bool(record(connection, [row], Applied()))
