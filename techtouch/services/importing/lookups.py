"""Accounts and contacts a file refers to, looked up with batched IN queries, never by loading every id."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

from sqlalchemy import Connection, select

from techtouch.adapters.db.models import Account, Contact

IN_BATCH = 5_000  # ids per IN (...) query: well under SQLite's and PostgreSQL's parameter limits


def batched(items: Sequence[str], size: int = IN_BATCH) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def existing_accounts(connection: Connection, ids: Iterable[str]) -> set[str]:
    """The ids among `ids` that name an account."""
    found: set[str] = set()
    for batch in batched(sorted(set(ids))):
        found.update(connection.scalars(select(Account.id).where(Account.id.in_(batch))))
    return found


def contact_accounts(connection: Connection, ids: Iterable[str]) -> dict[str, str]:
    """contact id -> its account id, for the ids among `ids` that name a contact."""
    found: dict[str, str] = {}
    for batch in batched(sorted(set(ids))):
        rows = connection.execute(select(Contact.id, Contact.account_id).where(Contact.id.in_(batch)))
        found.update((contact_id, account_id) for contact_id, account_id in rows)
    return found
