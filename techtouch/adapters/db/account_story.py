"""Read queries behind `techtouch accounts show` and the workspace's account and CTA pages
(techtouch.services.account_view): one account's journeys, touches, CTAs, survey answers,
suppressions, events, CTA history, health and usage. One query per section, rows as plain dicts (no
ORM objects), newest first; the pages pass a `limit`, so that an old account costs the same as a
new one.

No contact email or phone leaves here except through `contacts` (the pages show them to the people
allowed to see the account): elsewhere contacts are named by their id only.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import date
from typing import Any

from sqlalchemy import Connection, Select, case, select

from techtouch.adapters.db.models import (
    Contact,
    Cta,
    CtaHistory,
    EmailSuppression,
    Enrollment,
    Event,
    HealthSnapshot,
    Suppression,
    Touch,
    UsageDaily,
    User,
)
from techtouch.domain.statuses import OPEN_CTA_STATUSES

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
# What the workspace's timeline adds: the key (provider events name it), the template, the sender
# and the provider's verdict.
TIMELINE_TOUCH_FIELDS = (*TOUCH_FIELDS, "key", "template", "sender", "delivery_status")
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


def touches(
    connection: Connection,
    account_id: str,
    *,
    limit: int | None = None,
    fields: tuple[str, ...] = TOUCH_FIELDS,
) -> list[dict[str, Any]]:
    """The account's touches (every one, or the latest `limit`), newest first (by run day, then by
    creation)."""
    statement = (
        select(*(getattr(Touch, f) for f in fields))
        .where(Touch.account_id == account_id)
        .order_by(Touch.as_of.desc(), Touch.id.desc())
        .limit(limit)
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


def ctas_with_scope(connection: Connection, account_id: str, *, limit: int | None) -> list[dict[str, Any]]:
    """The account's CTAs, open ones first, then the newest (the first `limit`; None: all), each
    with what the access rules need (`assignee_team`: the team of the assignee's user, None for no
    user) and its snooze date."""
    statement = (
        select(
            *(getattr(Cta, f) for f in CTA_FIELDS),
            Cta.snoozed_until,
            User.team.label("assignee_team"),
        )
        .outerjoin(User, User.email == Cta.assignee)
        .where(Cta.account_id == account_id)
        .order_by(
            case((Cta.status.in_(OPEN_CTA_STATUSES), 0), else_=1), Cta.created_as_of.desc(), Cta.id.desc()
        )
        .limit(limit)
    )
    return _rows(connection, statement)


def cta_history(connection: Connection, account_id: str, *, limit: int) -> list[dict[str, Any]]:
    """The latest `limit` changes of the account's CTAs, newest first, each with its CTA's title
    and what the access rules need (`assignee`, `assignee_team`)."""
    statement = (
        select(
            CtaHistory.id,
            CtaHistory.cta_id,
            CtaHistory.at,
            CtaHistory.as_of,
            CtaHistory.actor,
            CtaHistory.action,
            CtaHistory.from_status,
            CtaHistory.to_status,
            CtaHistory.from_assignee,
            CtaHistory.to_assignee,
            CtaHistory.outcome,
            CtaHistory.note,
            Cta.title,
            Cta.assignee,
            User.team.label("assignee_team"),
        )
        .join(Cta, Cta.id == CtaHistory.cta_id)
        .outerjoin(User, User.email == Cta.assignee)
        .where(Cta.account_id == account_id)
        .order_by(CtaHistory.id.desc())
        .limit(limit)
    )
    return _rows(connection, statement)


def survey_events(
    connection: Connection, account_id: str, *, limit: int | None = None
) -> list[dict[str, Any]]:
    """The account's survey answers and comments (every one, or the latest `limit`), latest first."""
    statement = (
        select(*(getattr(Event, f) for f in ANSWER_FIELDS))
        .where(Event.account_id == account_id, Event.type.in_(SURVEY_EVENT_TYPES))
        .order_by(Event.occurred_at.desc(), Event.id.desc())
        .limit(limit)
    )
    return _rows(connection, statement)


def events(connection: Connection, account_id: str, *, limit: int) -> list[dict[str, Any]]:
    """The account's latest `limit` events of every type (engagement, answers, comments, opt-outs,
    milestones), latest first."""
    statement = (
        select(*(getattr(Event, f) for f in ANSWER_FIELDS))
        .where(Event.account_id == account_id)
        .order_by(Event.occurred_at.desc(), Event.id.desc())
        .limit(limit)
    )
    return _rows(connection, statement)


def contacts(connection: Connection, account_id: str, *, limit: int) -> list[dict[str, Any]]:
    """The account's contacts (with their email and phone: for the people who may see the account)."""
    statement = (
        select(
            Contact.id,
            Contact.name,
            Contact.email,
            Contact.phone,
            Contact.role,
            Contact.email_consent,
            Contact.sms_consent,
        )
        .where(Contact.account_id == account_id)
        .order_by(Contact.id)
        .limit(limit)
    )
    return _rows(connection, statement)


def address_suppressions(connection: Connection, addresses: Collection[str]) -> list[dict[str, Any]]:
    """The suppressed addresses among `addresses` (already lower-cased, as the table keeps them)."""
    if not addresses:
        return []
    statement = select(EmailSuppression.address, EmailSuppression.reason, EmailSuppression.since).where(
        EmailSuppression.address.in_(sorted(addresses))
    )
    return _rows(connection, statement)


def health_trend(
    connection: Connection, account_id: str, *, since: date, until: date
) -> list[dict[str, Any]]:
    """The account's health snapshots from `since` to `until` (inclusive), oldest first."""
    statement = (
        select(
            HealthSnapshot.as_of,
            HealthSnapshot.score,
            HealthSnapshot.color,
            HealthSnapshot.usage_score,
            HealthSnapshot.engagement_score,
            HealthSnapshot.sentiment_score,
            HealthSnapshot.renewal_score,
            HealthSnapshot.usage_change_30d,
            HealthSnapshot.logins_14d,
        )
        .where(
            HealthSnapshot.account_id == account_id,
            HealthSnapshot.as_of >= since,
            HealthSnapshot.as_of <= until,
        )
        .order_by(HealthSnapshot.as_of)
    )
    return _rows(connection, statement)


def usage(connection: Connection, account_id: str, *, since: date, until: date) -> list[dict[str, Any]]:
    """The account's daily usage from `since` to `until` (inclusive), oldest first."""
    statement = (
        select(UsageDaily.date, UsageDaily.active_users, UsageDaily.logins, UsageDaily.key_actions)
        .where(UsageDaily.account_id == account_id, UsageDaily.date >= since, UsageDaily.date <= until)
        .order_by(UsageDaily.date)
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
