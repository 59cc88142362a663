"""A shard of accounts as SQL: every query of a sharded run reads only its shard's rows.

`accounts.shard_key` holds CRC-32 of the id (domain.shards.shard_key), so `shard_key % count =
index` is exactly `Shard.mask`. Rows of other tables belong to the shard of their account; the
filters below keep them with a semi-join on `accounts`, which PostgreSQL runs as a hash join and
SQLite as a lookup in a temporary index of the shard's ids.

The numbers go into the SQL as literals: `Shard` checks they are integers in range, and a literal
lets the planner see the shard (a prepared statement's generic plan would not).
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, select, true
from sqlalchemy.orm import InstrumentedAttribute

from techtouch.adapters.db.models import Account
from techtouch.domain.shards import Shard


def shard_ids_sql(shard: Shard) -> str:
    """SELECT of the shard's account ids."""
    return f"SELECT id FROM accounts WHERE shard_key % {int(shard.count)} = {int(shard.index)}"


def and_in_shard(shard: Shard, column: str) -> str:
    """` AND <column> IN (the shard's ids)` to append to a WHERE clause; empty for every account."""
    return "" if shard.everything else f" AND {column} IN ({shard_ids_sql(shard)})"


def in_shard(shard: Shard, column: ColumnElement[str] | InstrumentedAttribute[str]) -> ColumnElement[bool]:
    """The same test for Core queries: `column` holds an account id."""
    if shard.everything:
        return true()
    return column.in_(select(Account.id).where(Account.shard_key % shard.count == shard.index))


def account_in_shard(shard: Shard) -> ColumnElement[bool]:
    """The test on `accounts` itself."""
    return true() if shard.everything else Account.shard_key % shard.count == shard.index
