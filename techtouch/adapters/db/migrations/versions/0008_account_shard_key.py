"""account shard key: CRC-32 of the id stored with each account, so a sharded run selects in SQL

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-24 06:00:00

A sharded run used to load every account and keep its shard in pandas. With `shard_key` stored,
`shard_key % count = index` selects the same accounts (domain.shards) in every query of the run.
The upgrade adds the column with a server default of 0 (SQLite can add a NOT NULL column only with
a default, and cannot drop it without rebuilding `accounts`, whose children cascade), then writes
every account's key. On PostgreSQL the default is dropped again: every insert goes through the
model, whose Python-side default computes the key from the id.
"""

from __future__ import annotations

import zlib
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

CHUNK = 50_000


def upgrade() -> None:
    op.add_column(
        "accounts", sa.Column("shard_key", sa.BigInteger(), nullable=False, server_default=sa.text("0"))
    )
    connection = op.get_bind()
    if connection.dialect.name == "sqlite":
        raw: Any = connection.connection.driver_connection
        raw.create_function("techtouch_crc32", 1, _crc32, deterministic=True)
        connection.execute(sa.text("UPDATE accounts SET shard_key = techtouch_crc32(id)"))
        return
    ids = list(connection.execute(sa.text("SELECT id FROM accounts")).scalars())
    update = sa.text(
        "UPDATE accounts a SET shard_key = v.key "
        "FROM (SELECT unnest(CAST(:ids AS text[])) AS id, unnest(CAST(:keys AS bigint[])) AS key) v "
        "WHERE a.id = v.id"
    )
    for start in range(0, len(ids), CHUNK):
        chunk = ids[start : start + CHUNK]
        connection.execute(update, {"ids": chunk, "keys": [_crc32(i) for i in chunk]})
    op.alter_column("accounts", "shard_key", server_default=None)


def downgrade() -> None:
    # Not a batch (a rebuild of `accounts` would cascade to its children): SQLite ≥ 3.35 drops a
    # column in place.
    op.drop_column("accounts", "shard_key")


def _crc32(account_id: str) -> int:
    """domain.shards.shard_key, copied: a migration must not change when the code moves on."""
    return zlib.crc32(account_id.encode())
