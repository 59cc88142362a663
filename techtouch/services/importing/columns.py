"""The columns of each kind of file and how each value is parsed (techtouch.domain.validators)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from techtouch.adapters.db.models import EVENT_TYPES, ROLES, SEGMENTS
from techtouch.domain import validators as v

KINDS = ("accounts", "contacts", "usage", "events")


def text(max_length: int) -> Callable[[str], str]:
    """A parser for free text that only bounds its length (the table column's length)."""

    def parse(value: str) -> str:
        if len(value) > max_length:
            raise ValueError(f"longer than {max_length} characters: {value[:20]!r}…")
        return value

    return parse


@dataclass(frozen=True)
class Column:
    """One CSV column: `parse` gets the stripped, non-blank text and raises ValueError if it is bad."""

    name: str
    parse: Callable[[str], Any]
    required: bool = False


_ID = text(64)
COLUMNS: dict[str, tuple[Column, ...]] = {
    "accounts": (
        Column("account_id", _ID, required=True),
        Column("name", text(200), required=True),
        Column("segment", partial(v.parse_choice, choices=SEGMENTS, what="segment"), required=True),
        Column("arr", v.parse_non_negative_number, required=True),
        Column("start_date", v.parse_iso_date, required=True),
        Column("renewal_date", v.parse_iso_date),
        Column("csm_email", v.parse_email),
        Column("timezone", v.parse_timezone),
        Column("paused_until", v.parse_iso_date),
    ),
    "contacts": (
        Column("contact_id", _ID, required=True),
        Column("account_id", _ID, required=True),
        Column("name", text(200), required=True),
        Column("email", v.parse_email, required=True),
        Column("phone", v.parse_phone_e164),
        Column("role", partial(v.parse_choice, choices=ROLES, what="role"), required=True),
        Column("email_consent", v.parse_bool, required=True),
        Column("sms_consent", v.parse_bool, required=True),
    ),
    "usage": (
        Column("account_id", _ID, required=True),
        Column("date", v.parse_iso_date, required=True),
        Column("active_users", v.parse_non_negative_int, required=True),
        Column("logins", v.parse_non_negative_int, required=True),
        Column("key_actions", v.parse_non_negative_int, required=True),
    ),
    "events": (
        Column("account_id", _ID, required=True),
        Column("contact_id", _ID),
        Column("occurred_at", v.parse_iso_datetime, required=True),
        Column("type", partial(v.parse_choice, choices=EVENT_TYPES, what="event type"), required=True),
        Column("value", text(200)),  # checked against the type row by row
    ),
}
