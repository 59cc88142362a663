"""delivery attempts (touches.attempted_at) and CSM digests

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 09:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import techtouch.adapters.db.models

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("touches", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("attempted_at", techtouch.adapters.db.models.UTCDateTime(), nullable=True)
        )

    op.create_table(
        "digests",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("key", sa.String(length=300), nullable=False),
        sa.Column("recipient", sa.String(length=254), nullable=False),
        sa.Column("as_of", sa.Date(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("counts", sa.JSON(), nullable=False),
        sa.Column("provider_id", sa.String(length=200), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", techtouch.adapters.db.models.UTCDateTime(), nullable=False),
        sa.Column("updated_at", techtouch.adapters.db.models.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_digests")),
        sa.UniqueConstraint("key", name=op.f("uq_digests_key")),
    )
    with op.batch_alter_table("digests", schema=None) as batch_op:
        batch_op.create_index("ix_digests_as_of", ["as_of"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("digests", schema=None) as batch_op:
        batch_op.drop_index("ix_digests_as_of")
    op.drop_table("digests")
    with op.batch_alter_table("touches", schema=None) as batch_op:
        batch_op.drop_column("attempted_at")
