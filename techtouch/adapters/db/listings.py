"""Read queries behind `techtouch touches` and `techtouch ctas`: rows as plain dicts, no ORM objects."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, case, or_, select, union

from techtouch.adapters.db.models import Cta, Touch, User
from techtouch.domain.cta_rules import PRIORITY_RANK

TOUCH_FIELDS = (
    "key",
    "account_id",
    "contact_id",
    "journey",
    "milestone",
    "rung",
    "channel",
    "sender",
    "template",
    "status",
    "delivery_status",
    "delivery_status_at",
    "as_of",
    "send_at",
    "provider_id",
    "error",
)
CTA_FIELDS = (
    "id",
    "account_id",
    "journey",
    "reason",
    "title",
    "priority",
    "assignee",
    "status",
    "due_date",
    "created_as_of",
    "context",
    "outcome",
    "snoozed_until",
    "why",
)


def touch_rows(
    connection: Connection,
    *,
    account: str | None = None,
    journey: str | None = None,
    status: str | None = None,
) -> list[dict[str, Any]]:
    """Touches, oldest first (by run day `as_of`, then as recorded). `status` matches the claim state
    (`status`) or the provider's verdict (`delivery_status`): `sent` lists every sent message,
    `bounced` the sent ones that bounced."""
    statement = select(*(getattr(Touch, f) for f in TOUCH_FIELDS)).order_by(Touch.as_of, Touch.id)
    for column, value in ((Touch.account_id, account), (Touch.journey, journey)):
        if value:
            statement = statement.where(column == value)
    if status:
        statement = statement.where(or_(Touch.status == status, Touch.delivery_status == status))
    return [dict(row) for row in connection.execute(statement).mappings()]


def cta_rows(
    connection: Connection,
    *,
    assignee: str | None = None,
    journey: str | None = None,
    status: str | None = None,
    account: str | None = None,
) -> list[dict[str, Any]]:
    """CTAs, most urgent first: priority (high, medium, low), then due date, then id."""
    rank = case(PRIORITY_RANK, value=Cta.priority, else_=len(PRIORITY_RANK))
    statement = select(*(getattr(Cta, f) for f in CTA_FIELDS)).order_by(rank, Cta.due_date, Cta.id)
    filters = (
        (Cta.assignee, assignee),
        (Cta.journey, journey),
        (Cta.status, status),
        (Cta.account_id, account),
    )
    for column, value in filters:
        if value:
            statement = statement.where(column == value)
    return [dict(row) for row in connection.execute(statement).mappings()]


def user_teams(connection: Connection) -> dict[str, str | None]:
    """email → team of every user: what the access rules need to know about a CTA's assignee."""
    return dict(connection.execute(select(User.email, User.team)).tuples().all())


def journey_ids(connection: Connection) -> set[str]:
    """Every journey id that touches or CTAs were recorded under (a retired journey's too)."""
    statement = union(select(Touch.journey).distinct(), select(Cta.journey).distinct())
    return set(connection.execute(statement).scalars())
