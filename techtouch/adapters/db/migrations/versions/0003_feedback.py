"""provider and link feedback: delivery and comment event types, events.detail, contacts by phone

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24 10:00:00

Changing a CHECK constraint on SQLite rebuilds the events table (batch mode: copy and swap), so
this upgrade takes time proportional to the events table there; PostgreSQL alters in place.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

OLD_TYPES = (
    "milestone",
    "survey",
    "renewal_signed",
    "unsubscribed",
    "sms_stop",
    "sms_start",
    "email_bounced",
    "email_opened",
    "email_clicked",
)
NEW_TYPES = (*OLD_TYPES, "email_delivered", "sms_delivered", "survey_comment")


def _type_check(types: tuple[str, ...]) -> str:
    return f"type IN ({', '.join(repr(t) for t in types)})"


def upgrade() -> None:
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_events_type"), type_="check")
        batch_op.create_check_constraint(op.f("ck_events_type"), _type_check(NEW_TYPES))
        batch_op.add_column(sa.Column("detail", sa.Text(), nullable=True))
    with op.batch_alter_table("contacts", schema=None) as batch_op:
        batch_op.create_index("ix_contacts_phone", ["phone"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("contacts", schema=None) as batch_op:
        batch_op.drop_index("ix_contacts_phone")
    new = ", ".join(repr(t) for t in NEW_TYPES if t not in OLD_TYPES)
    op.execute(f"DELETE FROM events WHERE type IN ({new})")
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_column("detail")
        batch_op.drop_constraint(op.f("ck_events_type"), type_="check")
        batch_op.create_check_constraint(op.f("ck_events_type"), _type_check(OLD_TYPES))
