"""The columns of each kind of file and how each value is parsed (techtouch.domain.validators)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from techtouch.adapters.db.models import EVENT_TYPES, ROLES, SEGMENTS
from techtouch.domain import validators as v

KINDS = ("accounts", "contacts", "usage", "events")


# Characters refused in ids, names and event values: they are invisible or move text around when
# printed (a terminal, a CTA title, a spreadsheet), so what people read would not be what is stored.
BIDI_CONTROLS = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
LINE_SEPARATORS = frozenset("\u2028\u2029")


def refuse_hidden_characters(value: str) -> None:
    """ValueError naming the first control (C0, DEL, C1), bidirectional control or line separator.

    The message gives the code point and position, never the value itself (printing it would
    reorder the line it is printed on).
    """
    for position, char in enumerate(value, start=1):
        code = ord(char)
        if code < 0x20 or 0x7F <= code <= 0x9F:
            raise ValueError(f"control character U+{code:04X} at character {position}; not allowed here")
        if char in BIDI_CONTROLS:
            raise ValueError(
                f"bidirectional control U+{code:04X} at character {position} "
                "(it makes text display differently from what it is); not allowed here"
            )
        if char in LINE_SEPARATORS:
            raise ValueError(f"line separator U+{code:04X} at character {position}; not allowed here")


def text(max_length: int) -> Callable[[str], str]:
    """A parser for ids, names and short free text: bounded length, no hidden characters."""

    def parse(value: str) -> str:
        if len(value) > max_length:
            raise ValueError(f"longer than {max_length} characters ({len(value)})")
        refuse_hidden_characters(value)
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
