"""Delivery asks a channel whether it can hold a message not due yet once per distinct send time,
and decides each row exactly as asking it row by row would."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd

from techtouch.services.delivery import _schedulable


class Holds:
    """Holds messages up to three hours ahead, and counts the questions."""

    def __init__(self) -> None:
        self.asked = 0

    def can_schedule(self, send_at: datetime, now: datetime) -> bool:
        self.asked += 1
        return timedelta(0) < send_at - now <= timedelta(hours=3)


def test_per_channel_and_send_time_as_row_by_row() -> None:
    now = datetime(2027, 3, 1, 9, tzinfo=UTC)
    moments = [now + timedelta(hours=h) for h in (-2, 0, 1, 1, 2, 5, 1, 4, 2, -1)]
    channel = pd.Series(["email", "sms", "email", "email", "sms", "email", "sms", "sms", "email", "pigeon"])
    channel.index = range(10, 20)  # a filtered frame's index
    send_at = pd.Series(pd.to_datetime(moments, utc=True), index=channel.index)
    ahead = send_at > pd.Timestamp(now)
    email, sms = Holds(), Holds()
    channels = {"email": email, "sms": sms, "pigeon": object()}

    got = _schedulable(channel, send_at, ahead, channels, now)

    expected = [
        bool(a) and getattr(channels[c], "can_schedule", lambda s, n: False)(s.to_pydatetime(), now)
        for c, s, a in zip(channel, send_at, ahead, strict=True)
    ]
    assert got.tolist() == expected
    assert got.index.equals(channel.index)
    assert got.tolist() == [False, False, True, True, True, False, True, False, True, False]
    email.asked = sms.asked = 0
    _schedulable(channel, send_at, ahead, channels, now)
    assert (email.asked, sms.asked) == (3, 3)  # email: +1h, +5h, +2h; sms: +2h, +1h, +4h
