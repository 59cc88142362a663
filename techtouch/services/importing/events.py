"""Events files: each row checked against its contact and type, keyed by content, then suppressions.

An event is identified by what it says (`event_key`), so identical rows are one event and never a
duplicate, and importing the same file twice changes nothing. Contacts that got a (un)suppressing
event have their suppressions recomputed once the whole file is written.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

import numpy as np
from sqlalchemy import Connection

from techtouch.adapters.db.bulk import upsert_rows
from techtouch.adapters.db.models import Event
from techtouch.domain import validators as v
from techtouch.services.importing.csvfile import ParsedChunk
from techtouch.services.importing.kinds import Kind
from techtouch.services.importing.lookups import contact_accounts
from techtouch.services.importing.suppressions import SUPPRESSING, UNSUPPRESSING, update_suppressions


def event_key(
    account_id: str, contact_id: str | None, occurred_at: datetime, type_: str, value: str | None
) -> str:
    """sha256 hex of what makes an event the same event: re-importing it is then a no-op."""
    return event_key_from_iso(account_id, contact_id, occurred_at.astimezone(UTC).isoformat(), type_, value)


def event_key_from_iso(
    account_id: str, contact_id: str | None, utc_iso: str, type_: str, value: str | None
) -> str:
    """event_key of a time already written as `datetime.isoformat()` in UTC (the seed has strings)."""
    text = json.dumps(
        [account_id, contact_id, utc_iso, type_, value], ensure_ascii=False, separators=(",", ":")
    )
    return hashlib.sha256(text.encode()).hexdigest()


def event_value(type_: str, value: str | None) -> str | None:
    """The value checked against the type: a milestone slug, a `<survey>:<answer>`, or free text."""
    if type_ == "milestone":
        if value is None:
            raise ValueError("required for milestone (e.g. configured, trained, live)")
        return v.parse_slug(value, "milestone")
    if type_ == "survey":
        if value is None:
            raise ValueError("required for survey (<survey>:<answer>, e.g. nps:9)")
        return v.parse_survey_value(value)
    return value


class Events(Kind):
    """Events are keyed by content (event_key): identical rows are one event, never a duplicate."""

    def __init__(self, connection: Connection) -> None:
        super().__init__(connection)
        self.touched: set[str] = set()  # contacts with (un)suppressing events: bounded by contacts
        self.rows: list[dict[str, Any]] = []

    def check(self, parsed: ParsedChunk) -> None:
        self.check_accounts_exist(parsed)
        values, ok = parsed.values, parsed.ok
        contact_ids = values["contact_id"]
        given = np.fromiter((c is not None for c in contact_ids), dtype=bool, count=len(contact_ids))
        with_contact = parsed.keep & ok["contact_id"] & given
        owners = contact_accounts(self.connection, contact_ids[with_contact])
        position = {name: parsed.column_position(name) for name in ("contact_id", "value")}
        self.rows = []
        for row in np.flatnonzero(parsed.keep):
            line = int(parsed.lines[row])
            account_id, contact_id = values["account_id"][row], values["contact_id"][row]
            type_, value = values["type"][row], values["value"][row]
            problems: list[tuple[str, str]] = []
            if ok["contact_id"][row] and contact_id is not None:
                owner = owners.get(contact_id)
                if owner is None:
                    problems.append(("contact_id", f"unknown contact {contact_id!r}"))
                elif ok["account_id"][row] and owner != account_id:
                    problems.append(
                        (
                            "contact_id",
                            f"contact {contact_id!r} belongs to account {owner!r}, not {account_id!r}",
                        )
                    )
            if ok["type"][row] and ok["value"][row]:
                if contact_id is None and ok["contact_id"][row] and type_ in (*SUPPRESSING, *UNSUPPRESSING):
                    problems.append(("contact_id", f"required for {type_}"))
                try:
                    value = event_value(type_, value)
                except ValueError as exc:
                    problems.append(("value", str(exc)))
            for column, message in problems:
                parsed.problems.append((line, position[column], column, message))
            if problems or not all(ok[name][row] for name in ok):
                continue
            occurred_at = values["occurred_at"][row]
            self.rows.append(
                {
                    "key": event_key(account_id, contact_id, occurred_at, type_, value),
                    "account_id": account_id,
                    "contact_id": contact_id,
                    "occurred_at": occurred_at,
                    "type": type_,
                    "value": value,
                    "source": "import",
                }
            )
            if contact_id is not None and (type_ in SUPPRESSING or type_ in UNSUPPRESSING):
                self.touched.add(contact_id)

    def write(self, parsed: ParsedChunk) -> None:
        upsert_rows(self.connection, Event.__table__, self.rows, ["key"], update=False)

    def finish(self) -> None:
        update_suppressions(self.connection, sorted(self.touched))
