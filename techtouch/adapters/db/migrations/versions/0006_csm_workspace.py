"""the CSM workspace: CTA lifecycle columns and history, users, web sessions, login throttling

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-24 09:00:00

`ctas` gains the `cancelled` status, why it fired (`why`), the outcomes it may close with, a note,
the snooze date and reason, the first action and closing times; `cta_history` keeps one row per
change. `users` are the people who sign in (password hashes only), `web_sessions` their signed-in
browsers (SHA-256 of the cookie token only), `login_failures` the failed sign-ins that throttle.
Existing CTAs get a `created` history row (actor `techtouch`, their creation day), so every CTA's
timeline starts somewhere. The downgrade turns `cancelled` CTAs into `done` (the old constraint
has no `cancelled`) with their outcome kept, and drops the rest.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import techtouch.adapters.db.models

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
OLD_STATUSES = ("open", "in_progress", "done", "snoozed")
NEW_STATUSES = (*OLD_STATUSES, "cancelled")
ACTIONS = (
    "created",
    "started",
    "snoozed",
    "woke",
    "done",
    "cancelled",
    "assigned",
    "escalated",
    "auto_closed",
    "noted",
)


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def upgrade() -> None:
    with op.batch_alter_table("ctas", schema=None) as batch_op:
        batch_op.add_column(sa.Column("why", sa.JSON(), nullable=False, server_default=sa.text("'{}'")))
        batch_op.add_column(sa.Column("outcomes", sa.JSON(), nullable=False, server_default=sa.text("'[]'")))
        batch_op.add_column(sa.Column("note", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("snoozed_until", sa.Date(), nullable=True))
        batch_op.add_column(sa.Column("snooze_reason", sa.Text(), nullable=True))
        batch_op.add_column(
            sa.Column("first_action_at", techtouch.adapters.db.models.UTCDateTime(), nullable=True)
        )
        batch_op.add_column(sa.Column("closed_as_of", sa.Date(), nullable=True))
        batch_op.add_column(sa.Column("closed_at", techtouch.adapters.db.models.UTCDateTime(), nullable=True))
        batch_op.drop_constraint(op.f("ck_ctas_status"), type_="check")
        batch_op.create_check_constraint(op.f("ck_ctas_status"), _in("status", NEW_STATUSES))
        batch_op.create_index("ix_ctas_account_id_reason", ["account_id", "reason"], unique=False)
    # The server defaults only filled the rows that exist; the models give every new row its value.
    with op.batch_alter_table("ctas", schema=None) as batch_op:
        batch_op.alter_column("why", server_default=None)
        batch_op.alter_column("outcomes", server_default=None)

    op.create_table(
        "cta_history",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("cta_id", BigId, nullable=False),
        sa.Column("at", techtouch.adapters.db.models.UTCDateTime(), nullable=False),
        sa.Column("as_of", sa.Date(), nullable=True),
        sa.Column("actor", sa.String(length=254), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("from_status", sa.String(length=16), nullable=True),
        sa.Column("to_status", sa.String(length=16), nullable=True),
        sa.Column("from_assignee", sa.String(length=254), nullable=True),
        sa.Column("to_assignee", sa.String(length=254), nullable=True),
        sa.Column("outcome", sa.String(length=64), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.CheckConstraint(_in("action", ACTIONS), name=op.f("ck_cta_history_action")),
        sa.ForeignKeyConstraint(
            ["cta_id"], ["ctas.id"], name=op.f("fk_cta_history_cta_id_ctas"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cta_history")),
    )
    with op.batch_alter_table("cta_history", schema=None) as batch_op:
        batch_op.create_index("ix_cta_history_cta_id", ["cta_id", "id"], unique=False)
        batch_op.create_index("ix_cta_history_action_as_of", ["action", "as_of"], unique=False)

    op.create_table(
        "users",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("email", sa.String(length=254), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=True),
        sa.Column("team", sa.String(length=100), nullable=True),
        sa.Column("password_hash", sa.String(length=255), nullable=False),
        sa.Column("disabled", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("created_at", techtouch.adapters.db.models.UTCDateTime(), nullable=False),
        sa.Column("updated_at", techtouch.adapters.db.models.UTCDateTime(), nullable=False),
        sa.CheckConstraint("role IN ('csm', 'manager', 'ops')", name=op.f("ck_users_role")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("email", name=op.f("uq_users_email")),
    )
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.create_index("ix_users_team", ["team"], unique=False)

    op.create_table(
        "web_sessions",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("user_id", BigId, nullable=False),
        sa.Column("csrf_token", sa.String(length=64), nullable=False),
        sa.Column("created_at", techtouch.adapters.db.models.UTCDateTime(), nullable=False),
        sa.Column("expires_at", techtouch.adapters.db.models.UTCDateTime(), nullable=False),
        sa.Column("last_seen_at", techtouch.adapters.db.models.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_web_sessions_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_web_sessions")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_web_sessions_token_hash")),
    )
    with op.batch_alter_table("web_sessions", schema=None) as batch_op:
        batch_op.create_index("ix_web_sessions_user_id", ["user_id"], unique=False)

    op.create_table(
        "login_failures",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("key", sa.String(length=80), nullable=False),
        sa.Column("at", techtouch.adapters.db.models.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_login_failures")),
    )
    with op.batch_alter_table("login_failures", schema=None) as batch_op:
        batch_op.create_index("ix_login_failures_key_at", ["key", "at"], unique=False)

    # Every existing CTA's timeline starts with its creation.
    op.execute(
        "INSERT INTO cta_history (cta_id, at, as_of, actor, action, to_status, to_assignee, detail) "
        "SELECT id, created_at, created_as_of, 'techtouch', 'created', status, assignee, '{}' FROM ctas"
    )


def downgrade() -> None:
    op.drop_table("login_failures")
    op.drop_table("web_sessions")
    op.drop_table("users")
    op.drop_table("cta_history")
    op.execute("UPDATE ctas SET status = 'done' WHERE status = 'cancelled'")
    with op.batch_alter_table("ctas", schema=None) as batch_op:
        batch_op.drop_index("ix_ctas_account_id_reason")
        batch_op.drop_constraint(op.f("ck_ctas_status"), type_="check")
        batch_op.create_check_constraint(op.f("ck_ctas_status"), _in("status", OLD_STATUSES))
        for column in (
            "closed_at",
            "closed_as_of",
            "first_action_at",
            "snooze_reason",
            "snoozed_until",
            "note",
            "outcomes",
            "why",
        ):
            batch_op.drop_column(column)
