"""Read queries behind `techtouch accounts show`: one account's journeys, touches, CTAs, survey
answers and suppressions. One query per section, rows as plain dicts (no ORM objects), newest first.

No contact email or phone leaves here: contacts are named by their id only.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Select, select

from techtouch.adapters.db.models import Contact, Cta, Enrollment, Event, Suppression, Touch

ENROLLMENT_FIELDS = (
    "id",
    "journey",
    "cycle",
    "status",
    "milestone",
    "phase",
    "step",
    "next_due",
    "milestone_since",
    "last_touch_as_of",
    "entered_as_of",
    "exited_as_of",
    "exit_reason",
)
TOUCH_FIELDS = (
    "id",
    "journey",
    "milestone",
    "rung",
    "channel",
    "contact_id",
    "status",
    "as_of",
    "send_at",
)
CTA_FIELDS = (
    "id",
    "journey",
    "reason",
    "title",
    "priority",
    "assignee",
    "status",
    "due_date",
    "created_as_of",
    "outcome",
)
# Survey answers (`survey`, value `<survey>:<answer>`) and the comments on them (`survey_comment`,
# the text in `detail`): techtouch.services.feedback.surveys writes both, imports may too.
SURVEY_EVENT_TYPES = ("survey", "survey_comment")
ANSWER_FIELDS = ("id", "occurred_at", "contact_id", "type", "value", "detail", "source")


def enrollments(connection: Connection, account_id: str) -> list[dict[str, Any]]:
    """Every enrollment of the account (each journey, each cycle), the latest entered first."""
    statement = (
        select(*(getattr(Enrollment, f) for f in ENROLLMENT_FIELDS))
        .where(Enrollment.account_id == account_id)
        .order_by(Enrollment.entered_as_of.desc(), Enrollment.id.desc())
    )
    return _rows(connection, statement)


def touches(connection: Connection, account_id: str) -> list[dict[str, Any]]:
    """Every touch of the account, newest first (by run day, then by creation)."""
    statement = (
        select(*(getattr(Touch, f) for f in TOUCH_FIELDS))
        .where(Touch.account_id == account_id)
        .order_by(Touch.as_of.desc(), Touch.id.desc())
    )
    return _rows(connection, statement)


def ctas(connection: Connection, account_id: str) -> list[dict[str, Any]]:
    """Every CTA of the account, newest first."""
    statement = (
        select(*(getattr(Cta, f) for f in CTA_FIELDS))
        .where(Cta.account_id == account_id)
        .order_by(Cta.created_as_of.desc(), Cta.id.desc())
    )
    return _rows(connection, statement)


def survey_events(connection: Connection, account_id: str) -> list[dict[str, Any]]:
    """The account's survey answers and comments, latest first."""
    statement = (
        select(*(getattr(Event, f) for f in ANSWER_FIELDS))
        .where(Event.account_id == account_id, Event.type.in_(SURVEY_EVENT_TYPES))
        .order_by(Event.occurred_at.desc(), Event.id.desc())
    )
    return _rows(connection, statement)


def suppressions(connection: Connection, account_id: str) -> list[dict[str, Any]]:
    """The suppressed channels of the account's contacts, the latest first."""
    statement = (
        select(Suppression.contact_id, Suppression.channel, Suppression.reason, Suppression.since)
        .join(Contact, Contact.id == Suppression.contact_id)
        .where(Contact.account_id == account_id)
        .order_by(Suppression.since.desc(), Suppression.contact_id, Suppression.channel)
    )
    return _rows(connection, statement)


def _rows(connection: Connection, statement: Select[Any]) -> list[dict[str, Any]]:
    return [dict(row) for row in connection.execute(statement).mappings()]
