"""usage window sums kept with each health snapshot: the next run starts from them

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-24 07:00:00

A run used to sum 60 days of every account's usage rows each morning. With the day's window sums
stored next to its health snapshot (three of them already were: key_actions_30d, logins_14d and
active_users_7d), the next day's run adds the day that entered each window and takes out the day
that left it (adapters.db.signals). Snapshots written before this revision have NULL sums, which
marks them as no base: the first run after the upgrade sums from the raw rows as before.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

COLUMNS = ("key_actions_prev_30d", "key_actions_7d", "active_users_sum_7d", "active_days_30d")


def upgrade() -> None:
    for name in COLUMNS:
        op.add_column("health_snapshots", sa.Column(name, sa.Integer(), nullable=True))


def downgrade() -> None:
    # In place (SQLite ≥ 3.35 drops a column without rebuilding the table).
    for name in reversed(COLUMNS):
        op.drop_column("health_snapshots", name)
