"""The Twilio SMS channel: the official `twilio` library against the loopback fake Twilio.

Time is a fake clock shared by the channel (pacing, backoff sleeps) and the fake (arrival stamps),
so pacing and Retry-After are measured exactly; only the timeout test waits on real sockets.
"""

from __future__ import annotations

import logging
import random
import socket
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from twilio.request_validator import RequestValidator
from twilio.rest import Client

from techtouch.adapters.channels.base import OutboundSms, Receipt, SmsChannel
from techtouch.adapters.channels.twilio import Pacer, RedirectingHttpClient, TwilioChannel, TwilioChannelError
from tests.fakes.twilio_api import (
    DEFAULT_ACCOUNT_SID,
    DEFAULT_AUTH_TOKEN,
    DEFAULT_SERVICE_SID,
    FakeTwilio,
    max_in_window,
    specs_dir,
    twilio_spec,
)

NOW = datetime(2027, 3, 1, 14, 0, tzinfo=UTC)
FROM_NUMBER = "+15005550006"
CALLBACK = "https://hooks.techtouch.example/webhooks/twilio/status"
OPTED_OUT = "+15555550177"
INVALID = "+15555550199"


class FakeClock:
    """Monotonic time that only moves when someone sleeps; records every sleep."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def time(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def long_sleeps(self, over: float = 0.1) -> list[float]:
        """Backoff / Retry-After sleeps, not the pacing ones (which are 1/mps, short here)."""
        return [round(s, 6) for s in self.sleeps if s > over]


class Ceiling(random.Random):
    """Jitter drawn at the top of its window: the backoff's exponential bounds show exactly."""

    def uniform(self, a: float, b: float) -> float:
        return b


class WallClock:
    def __init__(self, start: datetime = NOW) -> None:
        self.moment = start

    def __call__(self) -> datetime:
        return self.moment


def phone(i: int) -> str:
    return f"+1555555{i:04d}"


def sms(i: int, *, to: str | None = None, body: str | None = None, send_at: datetime = NOW) -> OutboundSms:
    return OutboundSms(
        key=f"{i}:renewal:sms",
        to_phone=to or phone(i),
        body=body or f"Hi Ada #{i}, your renewal is on 2027-04-01. Reply STOP to opt out.",
        send_at=send_at,
    )


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def wall() -> WallClock:
    return WallClock()


@pytest.fixture
def fake(clock: FakeClock, wall: WallClock) -> Iterator[FakeTwilio]:
    with FakeTwilio(clock=clock.time, now=wall, opted_out={OPTED_OUT}, invalid_numbers={INVALID}) as server:
        yield server
        assert server.spec_errors == [], "every request the channel sends must satisfy Twilio's spec"


@pytest.fixture
def make_channel(fake: FakeTwilio, clock: FakeClock, wall: WallClock) -> Callable[..., TwilioChannel]:
    def make(**overrides: Any) -> TwilioChannel:
        options: dict[str, Any] = {
            "messaging_service_sid": DEFAULT_SERVICE_SID,
            "status_callback_url": CALLBACK,
            "base_url": fake.base_url,
            "mps": 1000.0,
            "timeout": 5,
            "clock": clock.time,
            "sleep": clock.sleep,
            "now": wall,
            "concurrency": 1,  # one sender thread: the fake clock then orders everything exactly
            "rng": Ceiling(),  # exact backoff waits; test_backoff_waits_are_jittered... checks the spread
        }
        options.update(overrides)
        return TwilioChannel(
            options.pop("account_sid", DEFAULT_ACCOUNT_SID),
            options.pop("auth_token", DEFAULT_AUTH_TOKEN),
            **options,
        )

    return make


def test_the_fake_finds_the_official_spec() -> None:
    _, document = twilio_spec()
    assert (specs_dir() / "twilio_api_v2010.json").is_file()
    assert document["info"]["title"] == "Twilio - Api"
    assert "/2010-04-01/Accounts/{AccountSid}/Messages.json" in document["paths"]


def test_it_is_an_sms_channel_and_makes_no_client_until_used(make_channel: Callable[..., TwilioChannel]):
    channel = make_channel()
    assert isinstance(channel, SmsChannel)
    assert channel.name == "twilio" and channel.reconcile_is_authoritative is True
    assert channel._client is None
    assert DEFAULT_AUTH_TOKEN not in repr(channel)


def test_sends_through_the_messaging_service(make_channel: Callable[..., TwilioChannel], fake: FakeTwilio):
    batch = [sms(1), sms(2), sms(3)]
    receipts = make_channel().send(batch)

    assert [r.status for r in receipts] == ["sent"] * 3
    assert [r.key for r in receipts] == [m.key for m in batch]
    assert [r.provider_id for r in receipts] == [m.sid for m in fake.messages]
    for message, accepted in zip(batch, fake.messages, strict=True):
        assert accepted.sid.startswith("SM") and len(accepted.sid) == 34
        assert (accepted.to, accepted.body) == (message.to_phone, message.body)
        assert accepted.messaging_service_sid == DEFAULT_SERVICE_SID
        assert "From" not in accepted.params and "ScheduleType" not in accepted.params
        assert accepted.status == "queued"


def test_sends_from_a_number_and_never_schedules_without_a_service(
    make_channel: Callable[..., TwilioChannel], fake: FakeTwilio
):
    channel = make_channel(messaging_service_sid=None, from_number=FROM_NUMBER)
    receipts = channel.send([sms(1, send_at=NOW + timedelta(hours=2))])

    assert receipts[0].status == "sent"
    (accepted,) = fake.messages
    assert accepted.params["From"] == FROM_NUMBER
    assert "MessagingServiceSid" not in accepted.params
    assert "ScheduleType" not in accepted.params and "SendAt" not in accepted.params


def test_the_status_callback_url_carries_the_touch_key(
    make_channel: Callable[..., TwilioChannel], fake: FakeTwilio
):
    odd_key = "42:welcome:sms/1 &x=y"
    receipts = make_channel(status_callback_url=CALLBACK + "?v=2").send([sms(1), sms(2)])
    receipts += make_channel(status_callback_url=CALLBACK + "?v=2").send(
        [OutboundSms(odd_key, phone(3), "Welcome!", NOW)]
    )

    callbacks = fake.status_callbacks("delivered")
    assert len(callbacks) == 3
    validator = RequestValidator(DEFAULT_AUTH_TOKEN)
    for receipt, (url, params) in zip(receipts, callbacks, strict=True):
        parts = urlsplit(url)
        assert f"{parts.scheme}://{parts.netloc}{parts.path}" == CALLBACK
        assert parse_qs(parts.query) == {"v": ["2"], "touch_key": [receipt.key]}
        assert params["MessageSid"] == receipt.provider_id and params["MessageStatus"] == "delivered"
        assert params["AccountSid"] == DEFAULT_ACCOUNT_SID and "ErrorCode" not in params
        assert validator.validate(url, params, fake.signature(url, params))
    failed = fake.status_callbacks("undelivered")
    assert {params["ErrorCode"] for _, params in failed} == {"30003"}


def test_schedules_only_inside_twilios_window(make_channel: Callable[..., TwilioChannel], fake: FakeTwilio):
    batch = [
        sms(1, send_at=NOW + timedelta(hours=2)),
        sms(2, send_at=NOW + timedelta(minutes=10)),  # too soon for Twilio: sent now
        sms(3, send_at=NOW + timedelta(days=40)),  # beyond 35 days: sent now
        sms(4, send_at=NOW - timedelta(hours=1)),  # overdue: sent now
    ]
    receipts = make_channel().send(batch)

    assert [r.status for r in receipts] == ["sent"] * 4
    scheduled, *immediate = fake.messages
    assert scheduled.params["ScheduleType"] == "fixed"
    assert scheduled.params["SendAt"] == "2027-03-01T16:00:00Z"
    assert scheduled.status == "scheduled" and scheduled.date_sent is None
    assert all("ScheduleType" not in m.params and m.status == "queued" for m in immediate)


def test_pacing_never_exceeds_mps_and_stays_within_five_percent(
    make_channel: Callable[..., TwilioChannel], fake: FakeTwilio
):
    mps = 10.0
    channel = make_channel(mps=mps)
    channel.send([sms(i) for i in range(40)])
    channel.send([sms(i) for i in range(40, 60)])  # the pace holds across batches

    stamps = fake.accepted_at
    assert len(stamps) == 60
    assert max_in_window(stamps) <= mps
    assert max_in_window(stamps, width=1 / mps) <= 2  # a late slot may be caught up, no more
    achieved = (len(stamps) - 1) / (stamps[-1] - stamps[0])
    assert mps * 0.95 <= achieved <= mps


def test_the_pacer_catches_up_late_wake_ups_without_exceeding_mps():
    """A busy machine wakes sleepers late; spacing from the last dispatch would lose that time."""

    class Oversleeping(FakeClock):
        def sleep(self, seconds: float) -> None:
            super().sleep(seconds + 0.004)  # 4 ms late, every time

    mps = 50.0
    clock = Oversleeping()
    pacer = Pacer(mps, clock=clock.time, sleep=clock.sleep)
    stamps = [pacer.wait() for _ in range(500)]

    assert max_in_window(stamps) <= mps
    achieved = (len(stamps) - 1) / (stamps[-1] - stamps[0])
    assert mps * 0.95 <= achieved <= mps  # fixed spacing from the last dispatch: 41/s here


def test_concurrent_senders_keep_the_pace_when_twilio_is_slow(wall: WallClock):
    """Real clock: Twilio's answer takes 0.15 s, so one request at a time would manage 6.7/s.

    The window cap is asserted on dispatch times (what the channel controls); arrival times at
    the fake add this machine's scheduling jitter, which the benchmark reports separately.
    """
    mps = 20.0
    batch = [sms(i) for i in range(30)]
    with FakeTwilio(now=wall, latency=0.15) as slow:
        channel = TwilioChannel(
            DEFAULT_ACCOUNT_SID,
            DEFAULT_AUTH_TOKEN,
            messaging_service_sid=DEFAULT_SERVICE_SID,
            base_url=slow.base_url,
            mps=mps,
            now=wall,
        )
        assert channel.concurrency == 10
        dispatched: list[float] = []
        pace = channel.pacer.wait
        channel.pacer.wait = lambda: dispatched.append(pace()) or dispatched[-1]  # type: ignore[method-assign]
        receipts = channel.send(batch)
        stamps, accepted = slow.accepted_at, {m.to: m.sid for m in slow.messages}
        assert slow.spec_errors == []

    assert [r.key for r in receipts] == [m.key for m in batch]
    assert [r.provider_id for r in receipts] == [accepted[m.to_phone] for m in batch]
    assert len(dispatched) == 30 and max_in_window(dispatched) <= mps
    assert (len(stamps) - 1) / (stamps[-1] - stamps[0]) >= mps * 0.9  # ±5 %: the benchmark


def test_a_429_waits_for_retry_after(
    make_channel: Callable[..., TwilioChannel], fake: FakeTwilio, clock: FakeClock
):
    fake.fail_next(429, retry_after=7)
    receipts = make_channel().send([sms(1)])

    assert receipts[0].status == "sent"
    assert clock.long_sleeps() == [7.0]  # Retry-After, not the 0.5 s backoff
    first, second = fake.posts()
    assert (first.status, second.status) == (429, 201)
    assert second.at - first.at >= 7.0
    assert len(fake.messages) == 1


def test_a_429_without_retry_after_backs_off_exponentially(
    make_channel: Callable[..., TwilioChannel], fake: FakeTwilio, clock: FakeClock
):
    fake.fail_next(429, times=3)
    receipts = make_channel(backoff=0.5).send([sms(1)])

    assert receipts[0].status == "sent"
    assert clock.long_sleeps() == [0.5, 1.0, 2.0]
    assert [p.status for p in fake.posts()] == [429, 429, 429, 201]


def test_backoff_waits_are_jittered_within_their_windows(
    make_channel: Callable[..., TwilioChannel], fake: FakeTwilio, clock: FakeClock
):
    fake.fail_next(503, times=4)
    receipts = make_channel(backoff=0.5, rng=random.Random(11)).send([sms(1)])

    assert receipts[0].status == "sent"
    waits = clock.long_sleeps(over=0.0)
    assert len(waits) == 4 and len(set(waits)) == 4
    assert all(0 <= wait <= 0.5 * 2**n for n, wait in enumerate(waits))
    assert waits != [0.5, 1.0, 2.0, 4.0]  # spread, not the bare exponential sequence
    assert [p.status for p in fake.posts()] == [503] * 4 + [201]


def test_a_retry_after_beyond_the_cap_is_waited_for_the_cap(
    make_channel: Callable[..., TwilioChannel], fake: FakeTwilio, clock: FakeClock
):
    fake.fail_next(429, retry_after=86_400)
    receipts = make_channel().send([sms(1)])

    assert receipts[0].status == "sent"
    assert clock.long_sleeps() == [300.0]


def test_5xx_is_retried(make_channel: Callable[..., TwilioChannel], fake: FakeTwilio, clock: FakeClock):
    fake.fail_next(500)
    fake.fail_next(503)
    receipts = make_channel().send([sms(1), sms(2)])

    assert [r.status for r in receipts] == ["sent", "sent"]
    assert [p.status for p in fake.posts()] == [500, 503, 201, 201]
    assert clock.long_sleeps() == [0.5, 1.0]
    assert len(fake.messages) == 2


def test_retries_run_out_and_fail_that_message_only(
    make_channel: Callable[..., TwilioChannel], fake: FakeTwilio, clock: FakeClock
):
    fake.fail_next(502, times=3)
    receipts = make_channel(max_retries=2).send([sms(1), sms(2)])

    assert [r.status for r in receipts] == ["failed", "sent"]
    assert receipts[0].error is not None
    assert "HTTP 502" in receipts[0].error and "3 attempts" in receipts[0].error
    assert clock.long_sleeps() == [0.5, 1.0]
    assert [p.status for p in fake.posts()] == [502, 502, 502, 201]


def test_an_invalid_number_fails_only_that_message(
    make_channel: Callable[..., TwilioChannel], fake: FakeTwilio
):
    batch = [sms(1), sms(2, to=INVALID), sms(3, to="555-0100"), sms(4)]
    receipts = make_channel().send(batch)

    assert [r.status for r in receipts] == ["sent", "failed", "failed", "sent"]
    for receipt in receipts[1:3]:
        assert receipt.error is not None and receipt.error.startswith("Twilio error 21211")
        assert "5555550199" not in receipt.error and "555-0100" not in receipt.error
        assert "<number>" in receipt.error  # Twilio's text quoted the number; it is redacted
    assert len(fake.posts()) == 4  # no retry
    assert [m.to for m in fake.messages] == [phone(1), phone(4)]


def test_an_opted_out_recipient_is_reported_and_never_retried(
    make_channel: Callable[..., TwilioChannel], fake: FakeTwilio, clock: FakeClock
):
    receipts = make_channel().send([sms(1, to=OPTED_OUT), sms(2)])

    assert receipts[0] == Receipt(
        "1:renewal:sms", "opted_out", error="Twilio error 21610: Attempt to send to unsubscribed recipient"
    )
    assert receipts[1].status == "sent"
    assert [p.status for p in fake.posts()] == [400, 201]
    assert clock.long_sleeps() == []


def test_rejected_credentials_stop_the_batch_without_failing_it(
    make_channel: Callable[..., TwilioChannel], fake: FakeTwilio
):
    receipts = make_channel(auth_token="not-the-token").send([sms(1), sms(2), sms(3)])

    assert [r.status for r in receipts] == ["unknown"] * 3
    assert all("credentials" in (r.error or "") for r in receipts)
    assert [p.status for p in fake.posts()] == [401]
    assert fake.messages == []


def test_a_connection_that_never_opened_is_retried_then_failed(clock: FakeClock, wall: WallClock):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    channel = TwilioChannel(
        DEFAULT_ACCOUNT_SID,
        DEFAULT_AUTH_TOKEN,
        from_number=FROM_NUMBER,
        base_url=f"http://127.0.0.1:{closed_port}",
        max_retries=1,
        clock=clock.time,
        sleep=clock.sleep,
        now=wall,
        rng=Ceiling(),
    )
    (receipt,) = channel.send([sms(1)])
    assert receipt.status == "failed" and "ConnectionError" in (receipt.error or "")
    assert clock.long_sleeps() == [0.5]
    with pytest.raises(TwilioChannelError, match="ConnectionError after 2 attempts"):
        channel.reconcile([sms(1)], since=NOW)
    assert clock.long_sleeps() == [0.5, 0.5]  # the listing was retried once too


def test_a_timeout_is_unknown_and_reconcile_finds_what_twilio_got(
    make_channel: Callable[..., TwilioChannel], fake: FakeTwilio
):
    channel = make_channel(timeout=0.3)
    fake.timeout_next()
    ambiguous, clear = sms(1), sms(2)
    receipts = channel.send([ambiguous, clear])

    assert [r.status for r in receipts] == ["unknown", "sent"]
    assert [m.to for m in fake.messages] == [ambiguous.to_phone, clear.to_phone]  # Twilio got both
    assert len(fake.posts()) == 2  # the ambiguous one was not resent

    never_sent = sms(3)
    same_recipient = sms(4, to=ambiguous.to_phone, body="A different text to the same person.")
    found = channel.reconcile([ambiguous, never_sent, same_recipient], since=NOW - timedelta(minutes=1))

    assert found == {ambiguous.key: Receipt(ambiguous.key, "sent", provider_id=fake.messages[0].sid)}
    gets = [r for r in fake.requests if r.method == "GET"]
    assert len(gets) == 2  # one listing per distinct recipient
    assert all(dict(r.params)["To"] in (ambiguous.to_phone, never_sent.to_phone) for r in gets)


def test_reconcile_ignores_older_identical_messages_and_matches_each_once(
    make_channel: Callable[..., TwilioChannel], fake: FakeTwilio, wall: WallClock
):
    channel = make_channel()
    weekly = "Your weekly usage summary is ready: https://techtouch.example/s/abc"
    last_week = sms(1, body=weekly)
    channel.send([last_week])

    wall.moment = NOW + timedelta(days=7)
    this_week, twin = sms(2, to=last_week.to_phone, body=weekly), sms(3, to=last_week.to_phone, body=weekly)
    assert channel.reconcile([this_week], since=wall.moment) == {}

    (receipt,) = channel.send([this_week])
    found = channel.reconcile([this_week, twin], since=wall.moment - timedelta(seconds=30))
    assert found == {this_week.key: Receipt(this_week.key, "sent", provider_id=receipt.provider_id)}


def test_reconcile_finds_a_scheduled_message(make_channel: Callable[..., TwilioChannel], fake: FakeTwilio):
    channel = make_channel()
    later = sms(1, send_at=NOW + timedelta(days=2))
    (receipt,) = channel.send([later])
    assert fake.message(receipt.provider_id or "").status == "scheduled"

    assert channel.reconcile([later], since=NOW) == {later.key: receipt}


def test_logs_carry_no_phone_numbers_bodies_or_token(
    make_channel: Callable[..., TwilioChannel], fake: FakeTwilio, caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.DEBUG, logger="techtouch")
    caplog.set_level(logging.DEBUG, logger="twilio")
    caplog.set_level(logging.INFO)
    channel = make_channel(timeout=0.3)
    batch = [sms(1), sms(2, to=INVALID), sms(3, to=OPTED_OUT), sms(4), sms(5)]
    fake.fail_next(429, retry_after=1)
    fake.timeout_next()
    channel.send(batch)
    channel.reconcile(batch, since=NOW - timedelta(minutes=1))

    records = [r for r in caplog.records if r.name.startswith(("techtouch", "twilio")) or r.levelno >= 20]
    text = "\n".join(f"{r.name} {r.getMessage()} {r.exc_text or ''}" for r in records)
    assert "1:renewal:sms" in text and "opted out" in text  # keys and counts are logged
    for message in batch:
        assert message.to_phone.lstrip("+") not in text
        assert message.body not in text and "renewal is on" not in text
    assert DEFAULT_AUTH_TOKEN not in text


# -- the fake itself ------------------------------------------------------------------------------


def _sdk(fake: FakeTwilio) -> Client:
    http = RedirectingHttpClient(fake.base_url, timeout=5)
    return Client(DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN, http_client=http)


def test_the_fake_rejects_what_the_spec_or_twilio_rejects(fake: FakeTwilio):
    url = f"{fake.base_url}/2010-04-01/Accounts/{DEFAULT_ACCOUNT_SID}/Messages.json"
    auth = (DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN)
    base = {"To": phone(1), "Body": "hi", "MessagingServiceSid": DEFAULT_SERVICE_SID}
    with requests.Session() as session:
        session.trust_env = False
        assert session.post(url, data=base, auth=(DEFAULT_ACCOUNT_SID, "wrong")).json()["code"] == 20003
        bad_date = session.post(url, data=base | {"ScheduleType": "fixed", "SendAt": "tomorrow"}, auth=auth)
        unknown = session.post(url, data=base | {"from_": FROM_NUMBER}, auth=auth)
        bad_enum = session.post(url, data=base | {"ScheduleType": "sometimes"}, auth=auth)
        too_soon = session.post(
            url, data=base | {"ScheduleType": "fixed", "SendAt": "2027-03-01T14:05:00Z"}, auth=auth
        )
        created = session.post(url, data=base, auth=auth)
    assert [r.status_code for r in (bad_date, unknown, bad_enum)] == [400, 400, 400]
    assert len(fake.spec_errors) == 3 and "from_" in fake.spec_errors[1]
    assert too_soon.status_code == 400 and too_soon.json() == {
        "code": 35114,
        "message": "Scheduling does not support this timestamp",
        "more_info": "https://www.twilio.com/docs/errors/35114",
        "status": 400,
    }
    assert created.status_code == 201 and created.json()["sid"] == fake.messages[0].sid
    fake.spec_errors.clear()


def test_the_fake_lists_with_the_specs_filters_and_pages(fake: FakeTwilio, wall: WallClock):
    client = _sdk(fake)
    for day in range(3):
        wall.moment = NOW + timedelta(days=day)
        for i in (1, 2):
            client.messages.create(to=phone(i), body=f"day {day}", from_=FROM_NUMBER)

    assert len(client.messages.list(to=phone(1))) == 3
    recent = client.messages.list(to=phone(2), date_sent_after=NOW + timedelta(days=1, hours=5))
    assert [m.body for m in recent] == ["day 2", "day 1"]  # whole GMT dates, newest first
    assert [m.body for m in client.messages.list(date_sent=NOW + timedelta(days=2))] == ["day 2"] * 2
    paged = list(client.messages.stream(page_size=2))
    assert len(paged) == 6 and len({m.sid for m in paged}) == 6
    assert len([r for r in fake.requests if r.method == "GET"]) == 3 + 3  # three lists + three pages
