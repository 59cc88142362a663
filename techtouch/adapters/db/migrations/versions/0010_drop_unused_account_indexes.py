"""drop the accounts' renewal_date and start_date indexes: no query filters or sorts by them

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-24 13:55:00

Journeys read every account of a run (or of its shard) and test renewal and start dates in pandas;
no page, command or report selects accounts by either date. The 1M benchmark's index statistics
showed both never scanned, while every account import and the seed kept them up to date (about
9 MB each per million accounts). `ix_accounts_csm_email` stays: a CSM's accounts are found by it.
"""

from __future__ import annotations

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

INDEXES = ("ix_accounts_renewal_date", "ix_accounts_start_date")


def upgrade() -> None:
    for name in INDEXES:
        op.drop_index(name, table_name="accounts")


def downgrade() -> None:
    op.create_index("ix_accounts_renewal_date", "accounts", ["renewal_date"], unique=False)
    op.create_index("ix_accounts_start_date", "accounts", ["start_date"], unique=False)
