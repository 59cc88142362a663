"""What `--as-of DATE` means: that date at the configured run time in the CS team's timezone."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo


def parse_run_time(value: str) -> time:
    try:
        return time.fromisoformat(value)
    except ValueError:
        raise ValueError(f"run_time must be HH:MM, got {value!r}") from None


def run_instant(as_of: date, zone: ZoneInfo, run_time: str = "07:00") -> datetime:
    """The aware UTC instant a daily run for `as_of` stands for."""
    local = datetime.combine(as_of, parse_run_time(run_time), tzinfo=zone)
    return local.astimezone(UTC)


def today(zone: ZoneInfo) -> date:
    return datetime.now(zone).date()
