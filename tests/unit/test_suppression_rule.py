"""The STOP/START rule, decided once (domain.suppression) for the importer and the webhooks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from techtouch.domain.suppression import sms_opted_out, start_lifts

T = datetime(2027, 1, 4, 9, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("stop", "start", "suppressed"),
    [
        (None, None, False),
        (None, T, False),
        (T, None, True),
        (T, T + timedelta(seconds=1), False),
        (T + timedelta(seconds=1), T, True),
        (T, T, True),  # the tie: the opt-out wins
    ],
)
def test_the_latest_of_stop_and_start_wins_and_a_tie_keeps_the_opt_out(
    stop: datetime | None, start: datetime | None, suppressed: bool
) -> None:
    assert sms_opted_out(stop, start) is suppressed


def test_a_start_lifts_only_a_stop_strictly_before_it() -> None:
    assert start_lifts(T, T + timedelta(microseconds=1))
    assert not start_lifts(T, T)
    assert not start_lifts(T + timedelta(days=1), T)
