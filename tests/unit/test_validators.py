from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from techtouch.domain import validators as v


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("jo@example.com", "jo@example.com"),
        ("Jo.Smith@Example.COM", "Jo.Smith@example.com"),  # domain lower-cased, local part kept
        ("ana@bücher.example", "ana@bücher.example"),
    ],
)
def test_parse_email_normalizes(raw: str, expected: str) -> None:
    assert v.parse_email(raw) == expected


@pytest.mark.parametrize(
    "raw", ["jo", "jo@", "@example.com", "jo@@example.com", "jo@example", "jo smith@x.com"]
)
def test_parse_email_rejects(raw: str) -> None:
    with pytest.raises(ValueError, match=r"^not a valid email address: "):
        v.parse_email(raw)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("+14155552671", "+14155552671"),
        ("+1 (415) 555-2671", "+14155552671"),
        ("+44 20 7946 0958", "+442079460958"),
        ("+49 30 901820", "+4930901820"),
    ],
)
def test_parse_phone_e164_formats(raw: str, expected: str) -> None:
    assert v.parse_phone_e164(raw) == expected


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("4155552671", "not an E.164 phone number"),
        ("(415) 555-2671", "not an E.164 phone number"),
        ("+1 555", "not a valid phone number"),
        ("+1 415 555 2671 ext. 12", "extensions"),
        ("+abc", "not a phone number"),
        ("+999 1234567", "not a phone number"),
    ],
)
def test_parse_phone_e164_rejects(raw: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        v.parse_phone_e164(raw)


@pytest.mark.parametrize("raw", ["UTC", "Europe/Berlin", "America/Argentina/Buenos_Aires", "Asia/Kolkata"])
def test_parse_timezone_accepts_iana_names(raw: str) -> None:
    assert v.parse_timezone(raw) == raw


@pytest.mark.parametrize(
    "raw", ["Europe/Berln", "CEST", "europe/berlin", "localtime", "../etc/passwd", "+02:00"]
)
def test_parse_timezone_rejects(raw: str) -> None:
    with pytest.raises(ValueError, match=r"^unknown IANA timezone: "):
        v.parse_timezone(raw)


@pytest.mark.parametrize(
    ("raw", "expected"), [("true", True), ("TRUE", True), ("False", False), ("false", False)]
)
def test_parse_bool(raw: str, expected: bool) -> None:
    assert v.parse_bool(raw) is expected


@pytest.mark.parametrize("raw", ["yes", "no", "1", "0", "t", "f", "tru"])
def test_parse_bool_rejects_everything_else(raw: str) -> None:
    with pytest.raises(ValueError, match=r"^not true or false: "):
        v.parse_bool(raw)


def test_parse_iso_date() -> None:
    assert v.parse_iso_date("2026-02-28") == date(2026, 2, 28)
    assert v.parse_iso_date("2024-02-29") == date(2024, 2, 29)


@pytest.mark.parametrize(
    "raw", ["2026-13-40", "2026-02-29", "2026-1-5", "20260105", "05/01/2026", "2026-01-05T10:00"]
)
def test_parse_iso_date_rejects(raw: str) -> None:
    with pytest.raises(ValueError, match=rf"^not an ISO date: '{raw}'$"):
        v.parse_iso_date(raw)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2026-01-05", datetime(2026, 1, 5, tzinfo=UTC)),
        ("2026-01-05T10:30", datetime(2026, 1, 5, 10, 30, tzinfo=UTC)),
        ("2026-01-05 10:30:15", datetime(2026, 1, 5, 10, 30, 15, tzinfo=UTC)),
        ("2026-01-05T10:30:15.250Z", datetime(2026, 1, 5, 10, 30, 15, 250_000, tzinfo=UTC)),
        ("2026-01-05T10:30:00+02:00", datetime(2026, 1, 5, 8, 30, tzinfo=UTC)),
        ("2026-01-05T00:30:00-05:00", datetime(2026, 1, 5, 5, 30, tzinfo=UTC)),
    ],
)
def test_parse_iso_datetime_returns_aware_utc(raw: str, expected: datetime) -> None:
    parsed = v.parse_iso_datetime(raw)
    assert parsed == expected
    assert parsed.utcoffset() == timedelta(0)
    assert parsed.tzinfo in (UTC, timezone.utc)  # noqa: UP017


@pytest.mark.parametrize(
    "raw", ["2026-01-32", "2026-01-05T25:00", "2026-01-05Z", "yesterday", "1736070000", "2026-01-05T10"]
)
def test_parse_iso_datetime_rejects(raw: str) -> None:
    with pytest.raises(ValueError, match=r"^not an ISO datetime: "):
        v.parse_iso_datetime(raw)


def test_parse_non_negative_int() -> None:
    assert v.parse_non_negative_int("0") == 0
    assert v.parse_non_negative_int("042") == 42
    assert v.parse_non_negative_int(str(v.INT32_MAX)) == v.INT32_MAX


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("-1", "must not be negative: '-1'"),
        ("1.5", "not a whole number: '1.5'"),
        ("1e3", "not a whole number"),
        ("+3", "not a whole number"),
        ("١٢", "not a whole number"),  # Arabic-Indic digits: int() would take them
        (str(v.INT32_MAX + 1), "too large"),
    ],
)
def test_parse_non_negative_int_rejects(raw: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        v.parse_non_negative_int(raw)


def test_parse_non_negative_number() -> None:
    assert v.parse_non_negative_number("12000") == 12000.0
    assert v.parse_non_negative_number("12000.50") == 12000.5
    assert v.parse_non_negative_number("0") == 0.0


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("-5", "must not be negative: '-5'"),
        ("1,000", "not a number"),
        ("$100", "not a number"),
        ("nan", "not a number"),
        ("inf", "not a number"),
        ("1e6", "not a number"),
    ],
)
def test_parse_non_negative_number_rejects(raw: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        v.parse_non_negative_number(raw)


def test_parse_choice() -> None:
    assert v.parse_choice("admin", ("admin", "user"), "role") == "admin"
    with pytest.raises(ValueError, match=r"^unknown role 'Admin'; expected one of admin, user$"):
        v.parse_choice("Admin", ("admin", "user"), "role")


def test_parse_slug() -> None:
    assert v.parse_slug("go_live_2") == "go_live_2"
    for bad in ("Live", "go-live", "go live", ""):
        with pytest.raises(ValueError, match="lower-case letters"):
            v.parse_slug(bad, "milestone")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("nps:9", "nps:9"),
        ("nps:0", "nps:0"),
        ("nps:010", "nps:10"),
        ("csat:5", "csat:5"),
        ("renewal:likely", "renewal:likely"),
        ("renewal:Not_Likely", "renewal:not_likely"),
        ("advocate: yes", "advocate:yes"),
        ("onboarding_feedback:Loved the webinar", "onboarding_feedback:Loved the webinar"),
        ("q3_pulse:a:b", "q3_pulse:a:b"),
    ],
)
def test_parse_survey_value(raw: str, expected: str) -> None:
    assert v.parse_survey_value(raw) == expected


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("9", "must look like <survey>:<answer>"),
        ("nps:", "must look like <survey>:<answer>"),
        (":9", "must look like <survey>:<answer>"),
        ("NPS:9", "survey name must be lower-case letters"),
        ("nps:11", "nps answer must be a whole number from 0 to 10: 'nps:11'"),
        ("nps:-1", "nps answer must be a whole number from 0 to 10"),
        ("nps:7.5", "nps answer must be a whole number from 0 to 10"),
        ("csat:0", "csat answer must be a whole number from 1 to 5"),
        ("renewal:maybe", "renewal answer must be one of likely, unsure, not_likely: 'renewal:maybe'"),
        ("advocate:sure", "advocate answer must be one of yes, no"),
    ],
)
def test_parse_survey_value_rejects(raw: str, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        v.parse_survey_value(raw)
