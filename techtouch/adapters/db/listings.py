"""Read queries behind `techtouch touches` and `techtouch ctas`: rows as plain dicts, no ORM objects."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, select

from techtouch.adapters.db.models import Cta, Touch

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
)


def touch_rows(
    connection: Connection,
    *,
    account: str | None = None,
    journey: str | None = None,
    status: str | None = None,
) -> list[dict[str, Any]]:
    """Touches, oldest first."""
    statement = select(*(getattr(Touch, f) for f in TOUCH_FIELDS)).order_by(Touch.id)
    for column, value in ((Touch.account_id, account), (Touch.journey, journey), (Touch.status, status)):
        if value:
            statement = statement.where(column == value)
    return [dict(row) for row in connection.execute(statement).mappings()]


def cta_rows(
    connection: Connection, *, assignee: str | None = None, status: str | None = None
) -> list[dict[str, Any]]:
    """CTAs, newest first."""
    statement = select(*(getattr(Cta, f) for f in CTA_FIELDS)).order_by(Cta.id.desc())
    for column, value in ((Cta.assignee, assignee), (Cta.status, status)):
        if value:
            statement = statement.where(column == value)
    return [dict(row) for row in connection.execute(statement).mappings()]
