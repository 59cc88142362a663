"""opt-outs follow the person: email_suppressions by address, and the `email_resubscribed` event

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23 21:00:00

An unsubscribe or bounce suppresses the address for every contact that has it, including contacts
imported later: the addresses are kept in `email_suppressions` (lower-cased), apart from the
contacts. The upgrade fills it from the email suppressions already recorded (per address, the
earliest one) and extends them to every other contact with the same address. Changing the events
CHECK constraint rebuilds the events table on SQLite (batch mode), as 0003 did. The downgrade
drops the table and the `email_resubscribed` events; the suppressions it extended stay (an opt-out
is never lost by a downgrade).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import techtouch.adapters.db.models

revision = "0005"
down_revision = "0004"
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
    "email_delivered",
    "sms_delivered",
    "survey_comment",
)
NEW_TYPES = (*OLD_TYPES, "email_resubscribed")


def _type_check(types: tuple[str, ...]) -> str:
    return f"type IN ({', '.join(repr(t) for t in types)})"


def upgrade() -> None:
    op.create_table(
        "email_suppressions",
        sa.Column("address", sa.String(length=254), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.Column("since", techtouch.adapters.db.models.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("address", name=op.f("pk_email_suppressions")),
    )
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_events_type"), type_="check")
        batch_op.create_check_constraint(op.f("ck_events_type"), _type_check(NEW_TYPES))
    # Per address, its earliest email suppression (ties: the smallest reason, to be deterministic).
    op.execute(
        sa.text(
            """
            INSERT INTO email_suppressions (address, reason, since)
            SELECT address, MIN(reason), since FROM (
                SELECT LOWER(c.email) AS address, s.reason AS reason, s.since AS since
                FROM suppressions s JOIN contacts c ON c.id = s.contact_id
                WHERE s.channel = 'email'
            ) found
            WHERE since = (
                SELECT MIN(s2.since) FROM suppressions s2 JOIN contacts c2 ON c2.id = s2.contact_id
                WHERE s2.channel = 'email' AND LOWER(c2.email) = found.address
            )
            GROUP BY address, since
            """
        )
    )
    op.execute(
        sa.text(
            """
            INSERT INTO suppressions (contact_id, channel, reason, since)
            SELECT c.id, 'email', e.reason, e.since
            FROM contacts c JOIN email_suppressions e ON LOWER(c.email) = e.address
            WHERE NOT EXISTS (
                SELECT 1 FROM suppressions s WHERE s.contact_id = c.id AND s.channel = 'email'
            )
            """
        )
    )


def downgrade() -> None:
    op.execute("DELETE FROM events WHERE type = 'email_resubscribed'")
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_events_type"), type_="check")
        batch_op.create_check_constraint(op.f("ck_events_type"), _type_check(OLD_TYPES))
    op.drop_table("email_suppressions")
