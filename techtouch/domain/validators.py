"""Field validators for data that people type or export: CSV imports now, webhooks and forms later.

Each parser takes the text of one field (already stripped, never empty) and returns the value to
store, or raises ValueError with a message meant for the person who wrote the file; the caller adds
where it was ("FILE:ROW: column: "). They are pure functions with no I/O, so they are cheap to call
once per distinct value of a column.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime
from functools import lru_cache
from zoneinfo import available_timezones

import phonenumbers
from email_validator import EmailNotValidError, validate_email

SLUG = re.compile(r"[a-z0-9_]+")
INT32_MAX = 2_147_483_647

_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_ISO_DATETIME = re.compile(
    r"(?P<date>\d{4}-\d{2}-\d{2})"
    r"(?:[T ](?P<time>\d{2}:\d{2}(?::\d{2}(?:\.\d{1,6})?)?)(?P<offset>Z|[+-]\d{2}:?\d{2})?)?"
)
_DIGITS = re.compile(r"[0-9]+")
_DECIMAL = re.compile(r"-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)")


def parse_email(value: str) -> str:
    """A syntactically valid address, normalized by email-validator (lower-case domain, IDNA, NFC).

    No DNS lookup (check_deliverability=False): an import must work offline and give the same
    answer every time; bounces tell us later whether the mailbox exists.
    """
    try:
        return validate_email(value, check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise ValueError(f"not a valid email address: {value!r} ({exc})") from None


def parse_phone_e164(value: str) -> str:
    """An E.164 number (`+` and country code), returned as `+14155552671`.

    Without the country code a number is ambiguous and SMS providers reject it, so we never guess
    a region; spaces, dashes and brackets are accepted and dropped, extensions are refused.
    """
    if not value.startswith("+"):
        raise ValueError(f"not an E.164 phone number (must start with + and the country code): {value!r}")
    try:
        number = phonenumbers.parse(value, None)
    except phonenumbers.NumberParseException:
        raise ValueError(f"not a phone number: {value!r}") from None
    if number.extension:
        raise ValueError(f"phone extensions cannot receive SMS: {value!r}")
    if not phonenumbers.is_valid_number(number):
        raise ValueError(f"not a valid phone number: {value!r}")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


@lru_cache(maxsize=1)
def _zones() -> frozenset[str]:
    # Some systems list their own /usr/share/zoneinfo/localtime link: not a zone name.
    return frozenset(available_timezones()) - {"localtime", "posixrules", "Factory"}


def parse_timezone(value: str) -> str:
    """An IANA zone name such as `Europe/Berlin`: send times are computed in it, so typos must fail
    here and not at 7 am local time. Checked against the list of tz database names, which keeps out
    paths and links that ZoneInfo() alone would open on some systems."""
    if value not in _zones():
        raise ValueError(f"unknown IANA timezone: {value!r}")
    return value


def parse_bool(value: str) -> bool:
    """`true` or `false` in any case, nothing else: `yes`/`1`/`x` in a consent column is too easy
    to get wrong, and consent must be explicit."""
    lowered = value.lower()
    if lowered == "true":
        return True
    if lowered == "false":
        return False
    raise ValueError(f"not true or false: {value!r}")


def parse_iso_date(value: str) -> date:
    """YYYY-MM-DD only: other spellings (01/02/2026) are ambiguous between locales."""
    if _ISO_DATE.fullmatch(value):
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    raise ValueError(f"not an ISO date: {value!r}")


def parse_iso_datetime(value: str) -> datetime:
    """ISO-8601 date or date and time (`T` or a space), returned as an aware UTC datetime.

    `Z` and offsets such as `+02:00` are honoured; a date alone or a time without an offset means
    UTC, so the same file gives the same instants on every machine.
    """
    match = _ISO_DATETIME.fullmatch(value)
    if match:
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            pass
        else:
            if parsed.tzinfo is None:
                return parsed.replace(tzinfo=UTC)
            return parsed.astimezone(UTC)
    raise ValueError(f"not an ISO datetime: {value!r}")


def parse_non_negative_int(value: str) -> int:
    """Digits only (no sign, decimals or exponent), at most 2**31-1 so that INTEGER columns hold it
    on every backend."""
    if _DIGITS.fullmatch(value):
        number = int(value)
        if number <= INT32_MAX:
            return number
        raise ValueError(f"too large: {value!r}")
    if value.startswith("-") and _DIGITS.fullmatch(value[1:]):
        raise ValueError(f"must not be negative: {value!r}")
    raise ValueError(f"not a whole number: {value!r}")


def parse_non_negative_number(value: str) -> float:
    """A plain decimal such as `12000` or `12000.50`; no thousands separators, currency signs,
    exponents, `nan` or `inf`, which float() alone would let through."""
    if not _DECIMAL.fullmatch(value):
        raise ValueError(f"not a number: {value!r}")
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"not a number: {value!r}")
    if number < 0:
        raise ValueError(f"must not be negative: {value!r}")
    return number


def parse_choice(value: str, choices: Iterable[str], what: str) -> str:
    """One of a closed set (segments, roles, event types): the database checks it too, but here the
    message can say which values are allowed."""
    allowed = tuple(choices)
    if value in allowed:
        return value
    raise ValueError(f"unknown {what} {value!r}; expected one of {', '.join(allowed)}")


def parse_slug(value: str, what: str = "value") -> str:
    """A machine name `[a-z0-9_]+` (milestones, survey names): journeys match on it exactly."""
    if SLUG.fullmatch(value):
        return value
    raise ValueError(f"{what} must be lower-case letters, digits and _: {value!r}")


def _int_between(low: int, high: int) -> Callable[[str], str]:
    def parse(answer: str) -> str:
        if _DIGITS.fullmatch(answer) and low <= int(answer) <= high:
            return str(int(answer))
        raise ValueError(f"a whole number from {low} to {high}")

    return parse


def _one_of(*answers: str) -> Callable[[str], str]:
    def parse(answer: str) -> str:
        if answer.lower() in answers:
            return answer.lower()
        raise ValueError(f"one of {', '.join(answers)}")

    return parse


# The surveys the health score and journeys read; their answers are checked and normalized.
KNOWN_SURVEYS: dict[str, Callable[[str], str]] = {
    "renewal": _one_of("likely", "unsure", "not_likely"),
    "nps": _int_between(0, 10),
    "csat": _int_between(1, 5),
    "advocate": _one_of("yes", "no"),
}


def parse_survey_value(value: str) -> str:
    """`<survey>:<answer>`, e.g. `nps:9` or `renewal:likely`, returned normalized (`nps:09` → `nps:9`).

    Known surveys (KNOWN_SURVEYS) feed the health score, so their answers are validated; any other
    survey slug takes any non-empty answer, so new surveys can be imported before they are scored.
    """
    survey, colon, answer = value.partition(":")
    survey, answer = survey.strip(), answer.strip()
    if not colon or not survey or not answer:
        raise ValueError(f"survey value must look like <survey>:<answer>, e.g. nps:9: {value!r}")
    parse_slug(survey, "survey name")
    check = KNOWN_SURVEYS.get(survey)
    if check is None:
        return f"{survey}:{answer}"
    try:
        return f"{survey}:{check(answer)}"
    except ValueError as exc:
        raise ValueError(f"{survey} answer must be {exc}: {value!r}") from None
