"""the provider's verdict on a touch: touches.delivery_status and delivery_status_at

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26 10:00:00

Two nullable columns and an index (`techtouch touches --status delivered` filters on it). Adding
a column does not rebuild the table, not even on SQLite. The upgrade then fills the verdict of
touches that already have provider events, so that the listing agrees with the events recorded
before it (the engagement the journeys read does not change: it counts those events already):
in rank order, each verdict overwriting the lower ones, with the time of its first event.
Recorded events cannot tell a SendGrid `dropped` from a `bounce` (both are `email_bounced`), nor
name Twilio's undelivered/failed (no event was recorded for them): such touches get `bounced`, or
keep NULL. The downgrade drops the columns, verdicts included.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import techtouch.adapters.db.models

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

# (verdict, event type, channel), lowest rank first (techtouch.domain.statuses.DELIVERY_RANK,
# spelled out: a migration must not change when the code does).
BACKFILL = (
    ("delivered", "email_delivered", "email"),
    ("delivered", "sms_delivered", "sms"),
    ("opened", "email_opened", "email"),
    ("clicked", "email_clicked", "email"),
    ("bounced", "email_bounced", "email"),
)


def upgrade() -> None:
    with op.batch_alter_table("touches", schema=None) as batch_op:
        batch_op.add_column(sa.Column("delivery_status", sa.String(length=16), nullable=True))
        batch_op.add_column(
            sa.Column("delivery_status_at", techtouch.adapters.db.models.UTCDateTime(), nullable=True)
        )
        batch_op.create_index("ix_touches_delivery_status", ["delivery_status"], unique=False)
    for verdict, event_type, channel in BACKFILL:
        op.execute(
            sa.text(
                """
                UPDATE touches SET
                    delivery_status = :verdict,
                    delivery_status_at = (
                        SELECT MIN(e.occurred_at) FROM events e
                        WHERE e.type = :event_type AND e.value = touches.key
                    )
                WHERE channel = :channel
                  AND key IN (SELECT e.value FROM events e WHERE e.type = :event_type)
                """
            ).bindparams(verdict=verdict, event_type=event_type, channel=channel)
        )


def downgrade() -> None:
    with op.batch_alter_table("touches", schema=None) as batch_op:
        batch_op.drop_index("ix_touches_delivery_status")
        batch_op.drop_column("delivery_status_at")
        batch_op.drop_column("delivery_status")
