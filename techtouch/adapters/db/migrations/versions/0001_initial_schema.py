"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-23 12:16:55.962293
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import techtouch.adapters.db.models

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "accounts",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("segment", sa.String(length=16), nullable=False),
        sa.Column("arr", sa.Float(), nullable=False),
        sa.Column("start_date", sa.Date(), nullable=False),
        sa.Column("renewal_date", sa.Date(), nullable=True),
        sa.Column("csm_email", sa.String(length=254), nullable=True),
        sa.Column("timezone", sa.String(length=64), nullable=True),
        sa.Column("paused_until", sa.Date(), nullable=True),
        sa.Column("is_advocate", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("updated_at", techtouch.adapters.db.models.UTCDateTime(), nullable=False),
        sa.CheckConstraint("segment IN ('tech_touch', 'high_touch')", name=op.f("ck_accounts_segment")),
        sa.CheckConstraint("arr >= 0", name=op.f("ck_accounts_arr_not_negative")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_accounts")),
    )
    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.create_index("ix_accounts_csm_email", ["csm_email"], unique=False)
        batch_op.create_index("ix_accounts_renewal_date", ["renewal_date"], unique=False)
        batch_op.create_index("ix_accounts_start_date", ["start_date"], unique=False)

    op.create_table(
        "contacts",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("account_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=False),
        sa.Column("phone", sa.String(length=20), nullable=True),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("email_consent", sa.Boolean(), nullable=False),
        sa.Column("sms_consent", sa.Boolean(), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=True),
        sa.Column("updated_at", techtouch.adapters.db.models.UTCDateTime(), nullable=False),
        sa.CheckConstraint(
            "role IN ('admin', 'champion', 'executive', 'user')", name=op.f("ck_contacts_role")
        ),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_contacts_account_id_accounts"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_contacts")),
    )
    with op.batch_alter_table("contacts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_contacts_account_id"), ["account_id"], unique=False)

    op.create_table(
        "enrollments",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("account_id", sa.String(length=64), nullable=False),
        sa.Column("journey", sa.String(length=64), nullable=False),
        sa.Column("cycle", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("entered_as_of", sa.Date(), nullable=False),
        sa.Column("exited_as_of", sa.Date(), nullable=True),
        sa.Column("exit_reason", sa.String(length=64), nullable=True),
        sa.Column("milestone", sa.String(length=64), nullable=True),
        sa.Column("phase", sa.String(length=16), nullable=False),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("next_due", sa.Date(), nullable=True),
        sa.Column("milestone_since", sa.Date(), nullable=True),
        sa.Column("last_touch_as_of", sa.Date(), nullable=True),
        sa.Column("entry", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_enrollments_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_enrollments")),
        sa.UniqueConstraint(
            "account_id", "journey", "cycle", name=op.f("uq_enrollments_account_id_journey_cycle")
        ),
    )
    with op.batch_alter_table("enrollments", schema=None) as batch_op:
        batch_op.create_index("ix_enrollments_journey_status", ["journey", "status"], unique=False)

    op.create_table(
        "health_snapshots",
        sa.Column("account_id", sa.String(length=64), nullable=False),
        sa.Column("as_of", sa.Date(), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("color", sa.String(length=8), nullable=False),
        sa.Column("usage_score", sa.Float(), nullable=False),
        sa.Column("engagement_score", sa.Float(), nullable=False),
        sa.Column("sentiment_score", sa.Float(), nullable=False),
        sa.Column("renewal_score", sa.Float(), nullable=False),
        sa.Column("usage_change_30d", sa.Float(), nullable=True),
        sa.Column("logins_14d", sa.Integer(), nullable=False),
        sa.Column("active_users_7d", sa.Float(), nullable=False),
        sa.Column("key_actions_30d", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_health_snapshots_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("account_id", "as_of", name=op.f("pk_health_snapshots")),
    )
    with op.batch_alter_table("health_snapshots", schema=None) as batch_op:
        batch_op.create_index("ix_health_snapshots_as_of", ["as_of"], unique=False)

    op.create_table(
        "usage_daily",
        sa.Column("account_id", sa.String(length=64), nullable=False),
        sa.Column("date", sa.Date(), nullable=False),
        sa.Column("active_users", sa.Integer(), nullable=False),
        sa.Column("logins", sa.Integer(), nullable=False),
        sa.Column("key_actions", sa.Integer(), nullable=False),
        sa.CheckConstraint(
            "active_users >= 0 AND logins >= 0 AND key_actions >= 0", name=op.f("ck_usage_daily_not_negative")
        ),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_usage_daily_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("account_id", "date", name=op.f("pk_usage_daily")),
        sqlite_with_rowid=False,
    )
    with op.batch_alter_table("usage_daily", schema=None) as batch_op:
        batch_op.create_index("ix_usage_daily_date", ["date"], unique=False)

    op.create_table(
        "ctas",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("account_id", sa.String(length=64), nullable=False),
        sa.Column("enrollment_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("touch_key", sa.String(length=200), nullable=True),
        sa.Column("journey", sa.String(length=64), nullable=False),
        sa.Column("reason", sa.String(length=200), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("priority", sa.String(length=8), nullable=False),
        sa.Column("assignee", sa.String(length=254), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("due_date", sa.Date(), nullable=False),
        sa.Column("created_as_of", sa.Date(), nullable=False),
        sa.Column("context", sa.JSON(), nullable=False),
        sa.Column("outcome", sa.Text(), nullable=True),
        sa.Column("created_at", techtouch.adapters.db.models.UTCDateTime(), nullable=False),
        sa.Column("updated_at", techtouch.adapters.db.models.UTCDateTime(), nullable=False),
        sa.CheckConstraint("priority IN ('low', 'medium', 'high')", name=op.f("ck_ctas_priority")),
        sa.CheckConstraint(
            "status IN ('open', 'in_progress', 'done', 'snoozed')", name=op.f("ck_ctas_status")
        ),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_ctas_account_id_accounts"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["enrollment_id"],
            ["enrollments.id"],
            name=op.f("fk_ctas_enrollment_id_enrollments"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ctas")),
    )
    with op.batch_alter_table("ctas", schema=None) as batch_op:
        batch_op.create_index("ix_ctas_assignee_status", ["assignee", "status"], unique=False)
        batch_op.create_index(
            "uq_ctas_open_account_reason",
            ["account_id", "reason"],
            unique=True,
            sqlite_where=sa.text("status IN ('open', 'in_progress', 'snoozed')"),
            postgresql_where=sa.text("status IN ('open', 'in_progress', 'snoozed')"),
        )

    op.create_table(
        "events",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("account_id", sa.String(length=64), nullable=False),
        sa.Column("contact_id", sa.String(length=64), nullable=True),
        sa.Column("occurred_at", techtouch.adapters.db.models.UTCDateTime(), nullable=False),
        sa.Column("type", sa.String(length=32), nullable=False),
        sa.Column("value", sa.String(length=200), nullable=True),
        sa.Column("source", sa.String(length=32), server_default="import", nullable=False),
        sa.CheckConstraint(
            "type IN ('milestone', 'survey', 'renewal_signed', 'unsubscribed', 'sms_stop', 'sms_start', 'email_bounced', 'email_opened', 'email_clicked')",
            name=op.f("ck_events_type"),
        ),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_events_account_id_accounts"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["contact_id"], ["contacts.id"], name=op.f("fk_events_contact_id_contacts"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_events")),
        sa.UniqueConstraint("key", name=op.f("uq_events_key")),
    )
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.create_index(
            "ix_events_account_id_type", ["account_id", "type", "occurred_at"], unique=False
        )
        batch_op.create_index("ix_events_contact_id", ["contact_id"], unique=False)
        batch_op.create_index("ix_events_type_value", ["type", "value"], unique=False)

    op.create_table(
        "suppressions",
        sa.Column("contact_id", sa.String(length=64), nullable=False),
        sa.Column("channel", sa.String(length=8), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.Column("since", techtouch.adapters.db.models.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["contact_id"],
            ["contacts.id"],
            name=op.f("fk_suppressions_contact_id_contacts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("contact_id", "channel", name=op.f("pk_suppressions")),
    )
    op.create_table(
        "touches",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("enrollment_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("account_id", sa.String(length=64), nullable=False),
        sa.Column("contact_id", sa.String(length=64), nullable=True),
        sa.Column("journey", sa.String(length=64), nullable=False),
        sa.Column("milestone", sa.String(length=64), nullable=False),
        sa.Column("rung", sa.String(length=64), nullable=False),
        sa.Column("channel", sa.String(length=8), nullable=False),
        sa.Column("sender", sa.String(length=254), nullable=True),
        sa.Column("template", sa.String(length=200), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("as_of", sa.Date(), nullable=False),
        sa.Column("send_at", techtouch.adapters.db.models.UTCDateTime(), nullable=True),
        sa.Column("provider_id", sa.String(length=200), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", techtouch.adapters.db.models.UTCDateTime(), nullable=False),
        sa.Column("updated_at", techtouch.adapters.db.models.UTCDateTime(), nullable=False),
        sa.CheckConstraint("channel IN ('email', 'sms', 'cta')", name=op.f("ck_touches_channel")),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_touches_account_id_accounts"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["contact_id"], ["contacts.id"], name=op.f("fk_touches_contact_id_contacts"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["enrollment_id"],
            ["enrollments.id"],
            name=op.f("fk_touches_enrollment_id_enrollments"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_touches")),
        sa.UniqueConstraint("key", name=op.f("uq_touches_key")),
    )
    with op.batch_alter_table("touches", schema=None) as batch_op:
        batch_op.create_index("ix_touches_account_id", ["account_id"], unique=False)
        batch_op.create_index("ix_touches_contact_id_send_at", ["contact_id", "send_at"], unique=False)
        batch_op.create_index("ix_touches_journey_as_of", ["journey", "as_of"], unique=False)
        batch_op.create_index("ix_touches_status", ["status"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("touches", schema=None) as batch_op:
        batch_op.drop_index("ix_touches_status")
        batch_op.drop_index("ix_touches_journey_as_of")
        batch_op.drop_index("ix_touches_contact_id_send_at")
        batch_op.drop_index("ix_touches_account_id")

    op.drop_table("touches")
    op.drop_table("suppressions")
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_index("ix_events_type_value")
        batch_op.drop_index("ix_events_contact_id")
        batch_op.drop_index("ix_events_account_id_type")

    op.drop_table("events")
    with op.batch_alter_table("ctas", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_ctas_open_account_reason",
            sqlite_where=sa.text("status IN ('open', 'in_progress', 'snoozed')"),
            postgresql_where=sa.text("status IN ('open', 'in_progress', 'snoozed')"),
        )
        batch_op.drop_index("ix_ctas_assignee_status")

    op.drop_table("ctas")
    with op.batch_alter_table("usage_daily", schema=None) as batch_op:
        batch_op.drop_index("ix_usage_daily_date")

    op.drop_table("usage_daily")
    with op.batch_alter_table("health_snapshots", schema=None) as batch_op:
        batch_op.drop_index("ix_health_snapshots_as_of")

    op.drop_table("health_snapshots")
    with op.batch_alter_table("enrollments", schema=None) as batch_op:
        batch_op.drop_index("ix_enrollments_journey_status")

    op.drop_table("enrollments")
    with op.batch_alter_table("contacts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_contacts_account_id"))

    op.drop_table("contacts")
    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.drop_index("ix_accounts_start_date")
        batch_op.drop_index("ix_accounts_renewal_date")
        batch_op.drop_index("ix_accounts_csm_email")

    op.drop_table("accounts")
