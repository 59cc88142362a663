"""Per-kind validation and writes beyond single values: duplicates, references, and the upsert.

Each kind is checked and written chunk by chunk inside the file's one transaction. Accounts and
contacts are upserted by id and usage by (account_id, date), so importing a file twice changes
nothing; events (techtouch.services.importing.events) are keyed by their content.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pandas as pd
from sqlalchemy import Connection

from techtouch.adapters.db.bulk import upsert_rows
from techtouch.adapters.db.models import Account, Contact, UsageDaily
from techtouch.adapters.db.signals import forget_window_sums
from techtouch.services.importing.csvfile import ParsedChunk
from techtouch.services.importing.duplicates import SeenKeys, check_duplicates
from techtouch.services.importing.lookups import existing_accounts
from techtouch.services.importing.suppressions import suppress_known_addresses

KNOWN_ACCOUNTS = 100_000  # account ids remembered between chunks (a few MB at most)


class Kind:
    """Validation and writes of one kind of file, chunk by chunk, inside the file's transaction."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        # Account ids found so far, so that a file sorted by day asks once per account, not once per
        # chunk; emptied when it reaches KNOWN_ACCOUNTS, so memory stays bounded.
        self.known_accounts: set[str] = set()

    def check(self, parsed: ParsedChunk) -> None:
        """Add this chunk's row-level problems to `parsed.problems` (values are parsed already)."""
        raise NotImplementedError

    def check_accounts_exist(self, parsed: ParsedChunk) -> None:
        """Unknown account_id values become problems; one IN query per IN_BATCH ids not yet known."""
        rows_ok = parsed.ok["account_id"] & parsed.keep
        ids = parsed.values["account_id"]
        codes, uniques = pd.factorize(ids[rows_ok])
        ask = [u for u in uniques if u not in self.known_accounts]
        found = existing_accounts(self.connection, ask)
        if len(self.known_accounts) + len(found) > KNOWN_ACCOUNTS:
            self.known_accounts.clear()
        self.known_accounts.update(found)
        unknown = set(ask) - found
        if not unknown:
            return
        unknown_code = np.array([u in unknown for u in uniques], dtype=bool)
        position = parsed.column_position("account_id")
        rows = np.flatnonzero(rows_ok)[unknown_code[codes]]
        for row in rows:
            parsed.problems.append(
                (int(parsed.lines[row]), position, "account_id", f"unknown account {ids[row]!r}")
            )
        parsed.ok["account_id"][rows] = False

    def write(self, parsed: ParsedChunk) -> None:
        """Write a chunk; called only while the file has no problem at all."""
        raise NotImplementedError

    def finish(self) -> None:
        """After the last chunk, when every chunk was good."""


class Accounts(Kind):
    NAMES: ClassVar[dict[str, str]] = {
        "account_id": "id",
        "name": "name",
        "segment": "segment",
        "arr": "arr",
        "start_date": "start_date",
        "renewal_date": "renewal_date",
        "csm_email": "csm_email",
        "timezone": "timezone",  # blank stays NULL: the engine falls back to the default zone
        "paused_until": "paused_until",
    }

    def __init__(self, connection: Connection) -> None:
        super().__init__(connection)
        self.seen = SeenKeys()

    def check(self, parsed: ParsedChunk) -> None:
        check_duplicates(parsed, self.seen, ["account_id"], "account_id", "")

    def write(self, parsed: ParsedChunk) -> None:
        upsert_rows(self.connection, Account.__table__, parsed.records_as(self.NAMES), ["id"])


class Contacts(Kind):
    NAMES: ClassVar[dict[str, str]] = {
        "contact_id": "id",
        "account_id": "account_id",
        "name": "name",
        "email": "email",
        "phone": "phone",
        "role": "role",
        "email_consent": "email_consent",
        "sms_consent": "sms_consent",
    }

    def __init__(self, connection: Connection) -> None:
        super().__init__(connection)
        self.seen = SeenKeys()

    def check(self, parsed: ParsedChunk) -> None:
        check_duplicates(parsed, self.seen, ["contact_id"], "contact_id", "")
        self.check_accounts_exist(parsed)

    def write(self, parsed: ParsedChunk) -> None:
        records = parsed.records_as(self.NAMES)
        upsert_rows(self.connection, Contact.__table__, records, ["id"])
        # Opt-outs follow the person: a contact whose address is suppressed is suppressed too.
        suppress_known_addresses(self.connection, [str(record["id"]) for record in records])


class Usage(Kind):
    NAMES: ClassVar[dict[str, str]] = {
        name: name for name in ("account_id", "date", "active_users", "logins", "key_actions")
    }

    def __init__(self, connection: Connection) -> None:
        super().__init__(connection)
        self.seen = SeenKeys()

    def check(self, parsed: ParsedChunk) -> None:
        check_duplicates(parsed, self.seen, ["account_id", "date"], "date", " (same account_id and date)")
        self.check_accounts_exist(parsed)

    def write(self, parsed: ParsedChunk) -> None:
        # The hot path of big files: a dict display is twice as fast as dict(zip(...)).
        rows = [
            {"account_id": a, "date": d, "active_users": u, "logins": n, "key_actions": k}
            for a, d, u, n, k in zip(*parsed.columns(self.NAMES), strict=True)
        ]
        upsert_rows(self.connection, UsageDaily.__table__, rows, ["account_id", "date"])
        if rows:
            days = [row["date"] for row in rows]
            forget_window_sums(self.connection, {row["account_id"] for row in rows}, min(days), max(days))
