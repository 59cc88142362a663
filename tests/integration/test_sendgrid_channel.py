"""The SendGrid channel with the real `sendgrid` library against the loopback fake.

The fake validates every request against SendGrid's official OpenAPI spec and SendGrid's
documented limits, so "the fake accepted it" means the request was well-formed.
"""

from __future__ import annotations

import functools
import http.client
import json
import logging
import random
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from techtouch.adapters.channels import EmailChannel, OutboundEmail
from techtouch.adapters.channels.sendgrid import (
    HTML_TAG,
    TEXT_TAG,
    SendGridChannel,
    SendGridConfigurationError,
)
from techtouch.adapters.render.renderer import RenderedEmail, Renderer, sample_context
from tests.fakes.sendgrid_api import FakeSendGrid, OpenAPIRequest

ROOT = Path(__file__).resolve().parents[2]
KEY = "SG.test-key.0123456789abcdefghij"


@functools.cache
def rendered() -> RenderedEmail:
    return Renderer(ROOT / "templates").email("renewal/announce", sample_context())


def outbound(i: int, **changes: Any) -> OutboundEmail:
    copy = rendered()
    key = f"{1000 + i}:renewal:announce:email"
    values: dict[str, Any] = {
        "key": key,
        "to_email": f"contact{i}@customer{i % 7}.example",
        "to_name": f"Contact {i}",
        "from_email": "success@techtouch.example",
        "from_name": "The Customer Success team",
        "subject": f"{copy.subject} ({i})",
        "html": copy.html.replace("</p>", f" #{i}</p>", 1),
        "text": f"{copy.text}\n#{i}",
        "send_at": datetime(2020, 1, 1, tzinfo=UTC),  # due: sent at once
        "headers": {
            "List-Unsubscribe": f"<https://cs.techtouch.example/u/{i}.sig>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        },
        "categories": ("renewal", "renewal.announce"),
        "custom_args": {"touch_key": key},
    }
    values.update(changes)
    return OutboundEmail(**values)


class Ceiling(random.Random):
    """Jitter drawn at the top of its window: the backoff's exponential bounds show exactly."""

    def uniform(self, a: float, b: float) -> float:
        return b


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """urllib honours *_proxy variables; loopback traffic must not leave the machine."""
    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def fake() -> Iterator[FakeSendGrid]:
    with FakeSendGrid(api_key=KEY, hold_seconds=5) as running:
        yield running


@pytest.fixture
def sleeps() -> list[float]:
    return []


def make_channel(fake: FakeSendGrid, sleeps: list[float], **options: Any) -> SendGridChannel:
    api_key = options.pop("api_key", KEY)
    settings: dict[str, Any] = {"host": fake.url, "sleep": sleeps.append, "timeout": 5}
    settings.update(options)
    return SendGridChannel(api_key, **settings)


def post(fake: FakeSendGrid, body: Any, key: str | None = KEY) -> tuple[int, dict[str, Any]]:
    """A raw mail/send request, to test the fake itself."""
    connection = http.client.HTTPConnection("127.0.0.1", fake.port, timeout=5)
    headers = {"Content-Type": "application/json"}
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    try:
        connection.request("POST", "/v3/mail/send", body=json.dumps(body).encode(), headers=headers)
        response = connection.getresponse()
        data = response.read()
        return response.status, json.loads(data) if data else {}
    finally:
        connection.close()


def valid_body(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "personalizations": [
            {"to": [{"email": "a@b.example"}], "subject": "Hi", "custom_args": {"touch_key": "k"}}
        ],
        "from": {"email": "success@techtouch.example", "name": "CS"},
        "content": [{"type": "text/plain", "value": "hello"}, {"type": "text/html", "value": "<p>hello</p>"}],
        "categories": ["renewal"],
    }
    body.update(changes)
    return body


# -- batching and content -----------------------------------------------------------------------


def test_a_batch_goes_out_in_requests_of_1000_each_accepted_exactly_once(
    fake: FakeSendGrid, sleeps: list[float]
) -> None:
    batch = [outbound(i) for i in range(2500)]
    receipts = make_channel(fake, sleeps).send(batch)

    assert [r.key for r in receipts] == [m.key for m in batch]
    assert {r.status for r in receipts} == {"sent"}
    requests = fake.requests
    assert [(r.status, r.personalizations, r.substituted) for r in requests] == [
        (202, 1000, True),
        (202, 1000, True),
        (202, 500, True),
    ]
    assert len({r.message_id for r in requests}) == 3
    tags = ({"type": "text/plain", "value": TEXT_TAG}, {"type": "text/html", "value": HTML_TAG})
    assert all(r.content == tags for r in requests)
    counts = Counter(fake.accepted_keys())
    assert set(counts) == {m.key for m in batch} and set(counts.values()) == {1}
    accepted = fake.by_key()
    assert all(r.provider_id == accepted[r.key].message_id for r in receipts)
    assert not sleeps


def test_requests_group_messages_that_share_sender_and_categories(
    fake: FakeSendGrid, sleeps: list[float]
) -> None:
    batch = [
        outbound(0),
        outbound(1, from_email="dana@techtouch.example", from_name="Dana"),
        outbound(2),
        outbound(3, categories=("renewal", "renewal.reminder")),
        outbound(4, from_email="dana@techtouch.example", from_name="Dana"),
        outbound(5),
    ]
    receipts = make_channel(fake, sleeps).send(batch)

    assert {r.status for r in receipts} == {"sent"}
    assert sorted(r.personalizations for r in fake.requests) == [1, 2, 3]
    accepted = fake.by_key()
    for message in batch:
        record = accepted[message.key]
        assert (record.from_email, record.from_name) == (message.from_email, message.from_name)
        assert record.categories == message.categories
    # Messages of one request share its X-Message-Id.
    assert accepted[batch[0].key].message_id == accepted[batch[5].key].message_id
    assert accepted[batch[1].key].message_id == accepted[batch[4].key].message_id
    assert accepted[batch[0].key].message_id != accepted[batch[1].key].message_id


TRICKY_SUBJECT = "Ünïcødé & <b>bold</b> 日本語 🎉 $1 \\1 \\g<0> -subject-"
TRICKY_HTML = (
    '<p style="color:#333">Tom &amp; Jerry said "hi" &amp; \'bye\' — café ✓ 😀 &lt;tag&gt; $& \\1 '
    '-text- -html- -subject- %name% {{ name }}</p>\n<a href="https://x.example/?a=1&b=2">Link</a>'
)
TRICKY_TEXT = "Línea 1 — ñ\r\nLine 2\twith tab and \\n literal, 中文, 🚀, <not a tag> & -text-"


def test_each_recipient_gets_its_own_copy_intact_after_substitution(
    fake: FakeSendGrid, sleeps: list[float]
) -> None:
    batch = [
        outbound(
            i,
            to_name=f"Zoë Ångström-Łukasz {i}",
            subject=f"{TRICKY_SUBJECT} {i}",
            html=f"{TRICKY_HTML} <p>#{i}</p>",
            text=f"{TRICKY_TEXT} #{i}",
            custom_args={"touch_key": f"{1000 + i}:renewal:announce:email", "account_id": f"acc_{i:06d}"},
        )
        for i in range(40)
    ]
    receipts = make_channel(fake, sleeps).send(batch)

    assert {r.status for r in receipts} == {"sent"}
    assert [r.personalizations for r in fake.requests] == [40]
    accepted = fake.by_key()
    for message in batch:
        record = accepted[message.key]
        assert record.substituted
        assert (record.subject, record.text, record.html) == (message.subject, message.text, message.html)
        assert (record.to_email, record.to_name) == (message.to_email, message.to_name)
        assert record.custom_args == {**message.custom_args, "touch_key": message.key}
        assert record.headers == message.headers
        assert record.categories == ("renewal", "renewal.announce")
        assert record.send_at is None  # due in the past: sent at once


def test_copy_that_contains_a_substitution_tag_goes_alone_and_literal(
    fake: FakeSendGrid, sleeps: list[float]
) -> None:
    tagged = outbound(1, text=f"Our tags look like {TEXT_TAG} and {HTML_TAG}", html=f"<p>{HTML_TAG}</p>")
    receipts = make_channel(fake, sleeps).send([outbound(0), tagged, outbound(2)])

    assert {r.status for r in receipts} == {"sent"}
    assert sorted((r.personalizations, r.substituted) for r in fake.requests) == [(1, False), (2, True)]
    record = fake.by_key()[tagged.key]
    assert (record.text, record.html, record.substituted) == (tagged.text, tagged.html, False)


def test_an_oversized_personalization_goes_alone_with_literal_content(
    fake: FakeSendGrid, sleeps: list[float]
) -> None:
    # 6,000 characters but 10,600 bytes: the limit is in bytes.
    big_html = "<p>" + "é" * 5300 + "</p>" + "x" * 693
    assert len(big_html) < 10_000 < len(big_html.encode()) + len(TEXT_TAG) + len(HTML_TAG)
    big = outbound(1, html=big_html, text="short text")
    receipts = make_channel(fake, sleeps).send([outbound(0), big, outbound(2), outbound(3)])

    assert {r.status for r in receipts} == {"sent"}
    requests = sorted(fake.requests, key=lambda r: r.personalizations)
    assert [(r.personalizations, r.substituted) for r in requests] == [(1, False), (3, True)]
    assert requests[0].content == (
        {"type": "text/plain", "value": "short text"},
        {"type": "text/html", "value": big_html},
    )
    record = fake.by_key()[big.key]
    assert (record.subject, record.text, record.html) == (big.subject, big.text, big.html)
    assert receipts[1].provider_id == record.message_id != receipts[0].provider_id


def test_send_at_is_omitted_when_due_kept_when_near_and_clamped_beyond_72_hours(
    fake: FakeSendGrid, sleeps: list[float], caplog: pytest.LogCaptureFixture
) -> None:
    now = datetime.now(UTC)
    soon, later = now + timedelta(hours=2), now + timedelta(hours=100)
    batch = [
        outbound(0, send_at=now - timedelta(hours=1)),
        outbound(1, send_at=soon),
        outbound(2, send_at=later),
    ]
    with caplog.at_level(logging.WARNING, logger="techtouch.adapters.channels.sendgrid"):
        receipts = make_channel(fake, sleeps).send(batch)

    assert {r.status for r in receipts} == {"sent"}  # the fake refuses send_at beyond 72 h
    accepted = fake.by_key()
    assert accepted[batch[0].key].send_at is None
    assert accepted[batch[1].key].send_at == int(soon.timestamp())
    clamped = accepted[batch[2].key].send_at
    assert clamped is not None
    assert now.timestamp() + 70 * 3600 <= clamped <= now.timestamp() + 72 * 3600
    assert any(batch[2].key in r.getMessage() and "72 h" in r.getMessage() for r in caplog.records)
    delivered = {e["touch_key"]: e for e in fake.events("delivered")}
    assert delivered[batch[1].key]["timestamp"] >= int(soon.timestamp())


# -- faults ---------------------------------------------------------------------------------------


def test_429_is_retried_after_the_retry_after_delay(fake: FakeSendGrid, sleeps: list[float]) -> None:
    fake.fail_next(429, retry_after=7)
    batch = [outbound(i) for i in range(3)]
    receipts = make_channel(fake, sleeps).send(batch)

    assert {r.status for r in receipts} == {"sent"}
    assert sleeps == [7.0]
    assert [r.status for r in fake.requests] == [429, 202]
    assert sorted(fake.accepted_keys()) == sorted(m.key for m in batch)  # once each


def test_5xx_is_retried_with_exponential_backoff(fake: FakeSendGrid, sleeps: list[float]) -> None:
    fake.fail_next(500)
    fake.fail_next(503)
    fake.fail_next(502)
    receipts = make_channel(fake, sleeps, backoff=0.25, rng=Ceiling()).send([outbound(0), outbound(1)])

    assert [r.status for r in receipts] == ["sent", "sent"]
    assert sleeps == [0.25, 0.5, 1.0]  # the windows: backoff * 2**n
    assert [r.status for r in fake.requests] == [500, 503, 502, 202]
    assert Counter(fake.accepted_keys()) == {outbound(0).key: 1, outbound(1).key: 1}


def test_backoff_waits_are_jittered_within_their_windows(fake: FakeSendGrid, sleeps: list[float]) -> None:
    fake.fail_next(503, times=4)
    receipts = make_channel(fake, sleeps, backoff=0.25, rng=random.Random(7)).send([outbound(0)])

    assert receipts[0].status == "sent"
    assert len(sleeps) == 4 and len(set(sleeps)) == 4
    assert all(0 <= wait <= 0.25 * 2**n for n, wait in enumerate(sleeps))
    assert sleeps != [0.25, 0.5, 1.0, 2.0]  # spread, not the bare exponential sequence


def test_a_retry_after_beyond_the_cap_is_waited_for_the_cap(fake: FakeSendGrid, sleeps: list[float]) -> None:
    fake.fail_next(429, retry_after=86_400)
    receipts = make_channel(fake, sleeps).send([outbound(0)])

    assert receipts[0].status == "sent"
    assert sleeps == [300.0]


def test_exhausted_retries_fail_the_messages_with_the_reason(fake: FakeSendGrid, sleeps: list[float]) -> None:
    fake.fail_next(503, times=4)
    receipts = make_channel(fake, sleeps, max_retries=3, rng=Ceiling()).send([outbound(0), outbound(1)])

    assert [r.status for r in receipts] == ["failed", "failed"]
    assert all("HTTP 503" in (r.error or "") and "4 attempts" in (r.error or "") for r in receipts)
    assert sleeps == [0.5, 1.0, 2.0]
    assert [r.status for r in fake.requests] == [503] * 4
    assert fake.accepted == []


def test_a_400_naming_one_personalization_fails_only_that_message(
    fake: FakeSendGrid, sleeps: list[float]
) -> None:
    batch = [outbound(i) for i in range(5)]
    fake.reject_recipients(batch[2].to_email)
    receipts = make_channel(fake, sleeps).send(batch)

    assert [r.status for r in receipts] == ["sent", "sent", "failed", "sent", "sent"]
    error = receipts[2].error or ""
    assert "personalizations.2.to.0.email" in error and "valid address" in error
    assert "@" not in error and batch[2].to_email not in error
    assert [(r.status, r.personalizations) for r in fake.requests] == [(400, 5), (202, 4)]
    assert Counter(fake.accepted_keys()) == {m.key: 1 for m in batch if m is not batch[2]}


def test_a_400_that_names_no_personalization_fails_the_request(
    fake: FakeSendGrid, sleeps: list[float]
) -> None:
    fake.fail_next(
        400,
        errors=[
            {"field": "from.email", "message": "does not match a verified Sender Identity", "help": None}
        ],
    )
    receipts = make_channel(fake, sleeps).send([outbound(0), outbound(1)])

    assert [r.status for r in receipts] == ["failed", "failed"]
    assert all("from.email: does not match a verified Sender Identity" in (r.error or "") for r in receipts)
    assert len(fake.requests) == 1 and fake.accepted == []


def test_the_rest_of_a_rejected_request_is_resent_only_once(fake: FakeSendGrid, sleeps: list[float]) -> None:
    named_first = [{"field": "personalizations.0.to.0.email", "message": "Does not contain a valid address."}]
    fake.fail_next(400, errors=named_first, times=2)
    batch = [outbound(i) for i in range(4)]
    receipts = make_channel(fake, sleeps).send(batch)

    assert [r.status for r in receipts] == ["failed"] * 4
    assert "valid address" in (receipts[0].error or "")  # named in the first answer
    assert "valid address" in (receipts[1].error or "")  # named (as personalizations.0) in the second
    assert all("rejected again after a resend" in (r.error or "") for r in receipts[2:])
    assert [(r.status, r.personalizations) for r in fake.requests] == [(400, 4), (400, 3)]
    assert fake.accepted == []


def test_a_413_splits_the_request(fake: FakeSendGrid, sleeps: list[float]) -> None:
    fake.fail_next(413)
    batch = [outbound(i) for i in range(6)]
    receipts = make_channel(fake, sleeps).send(batch)

    assert {r.status for r in receipts} == {"sent"}
    assert [r.personalizations for r in fake.requests] == [6, 3, 3]
    assert sorted(fake.accepted_keys()) == sorted(m.key for m in batch)


@pytest.mark.parametrize(
    ("fault", "provider_got_it"),
    [("timeout_next", True), ("drop_next", False), ("disconnect_next", True)],
)
def test_no_answer_after_sending_is_unknown_and_never_resent(
    fake: FakeSendGrid, sleeps: list[float], fault: str, provider_got_it: bool
) -> None:
    getattr(fake, fault)()
    batch = [outbound(i) for i in range(3)]
    started = time.monotonic()
    receipts = make_channel(fake, sleeps, timeout=0.5).send(batch)

    assert time.monotonic() - started < 4  # the client's timeout ended it, not the fake's hold
    assert [r.status for r in receipts] == ["unknown"] * 3
    assert all("ambiguous" in (r.error or "") and r.provider_id is None for r in receipts)
    assert len(fake.requests) == 1 and fake.requests[0].status is None  # exactly one attempt
    assert sorted(fake.accepted_keys()) == (sorted(m.key for m in batch) if provider_got_it else [])
    assert not sleeps


def test_an_unreachable_host_is_retried_then_the_messages_fail_as_not_sent(sleeps: list[float]) -> None:
    with FakeSendGrid(api_key=KEY) as stopped:
        url = stopped.url
    channel = SendGridChannel(KEY, host=url, sleep=sleeps.append, timeout=2, max_retries=2, rng=Ceiling())
    receipts = channel.send([outbound(0)])

    assert receipts[0].status == "failed"
    assert "not sent" in (receipts[0].error or "") and "unreachable" in (receipts[0].error or "")
    assert sleeps == [0.5, 1.0]


def test_a_wrong_api_key_raises_and_fails_no_message(fake: FakeSendGrid, sleeps: list[float]) -> None:
    wrong = "SG.wrong-key-0000"
    channel = make_channel(fake, sleeps, api_key=wrong)
    with pytest.raises(SendGridConfigurationError, match="API key") as raised:
        channel.send([outbound(0), outbound(1)])

    assert wrong not in str(raised.value) and wrong not in repr(channel)
    assert raised.value.receipts == []
    assert [r.status for r in fake.requests] == [401]
    assert fake.accepted == [] and not sleeps


def test_a_401_midway_keeps_the_receipts_of_requests_already_accepted(
    fake: FakeSendGrid, sleeps: list[float]
) -> None:
    fake.fail_next(401, after=1)
    first = [outbound(0), outbound(1)]
    second = [outbound(2, from_email="dana@techtouch.example", from_name="Dana")]
    with pytest.raises(SendGridConfigurationError) as raised:
        make_channel(fake, sleeps).send(first + second)

    assert [(r.key, r.status) for r in raised.value.receipts] == [(m.key, "sent") for m in first]
    assert sorted(fake.accepted_keys()) == sorted(m.key for m in first)


def test_messages_sendgrid_would_refuse_fail_locally_and_the_rest_go_out(
    fake: FakeSendGrid, sleeps: list[float]
) -> None:
    batch = [
        outbound(0),
        outbound(1, to_email="not an address@customer.example"),
        outbound(2, send_at=datetime(2027, 1, 1, 9, 0)),  # naive
        outbound(3, headers={"Subject": "overridden"}),
        outbound(4, subject="  "),
        outbound(5),
        outbound(0),  # the same touch twice: sent once
    ]
    receipts = make_channel(fake, sleeps).send(batch)

    assert [r.status for r in receipts] == ["sent", "failed", "failed", "failed", "failed", "sent", "sent"]
    assert "recipient address is not valid" in (receipts[1].error or "")
    assert "timezone-aware" in (receipts[2].error or "")
    assert "Subject" in (receipts[3].error or "")
    assert "subject is empty" in (receipts[4].error or "")
    assert all("@" not in (r.error or "") for r in receipts)
    assert receipts[6] == receipts[0]
    assert Counter(fake.accepted_keys()) == {batch[0].key: 1, batch[5].key: 1}


def test_the_channel_speaks_the_protocol_and_reconcile_defers_to_webhooks(
    fake: FakeSendGrid, sleeps: list[float]
) -> None:
    channel = make_channel(fake, sleeps)
    assert isinstance(channel, EmailChannel)
    assert (channel.name, channel.reconcile_is_authoritative) == ("sendgrid", False)
    batch = [outbound(0)]
    channel.send(batch)
    assert channel.reconcile(batch, datetime.now(UTC) - timedelta(hours=1)) == {}
    assert channel.send([]) == []


def test_logs_name_touch_keys_never_addresses_names_or_the_key(
    fake: FakeSendGrid, sleeps: list[float], caplog: pytest.LogCaptureFixture
) -> None:
    batch = [outbound(i) for i in range(6)] + [outbound(6, to_email="broken@@customer.example")]
    fake.reject_recipients(batch[3].to_email)
    fake.fail_next(429, retry_after=1)
    with caplog.at_level(logging.DEBUG):  # everything, the HTTP library's debug lines included
        channel = make_channel(fake, sleeps, timeout=2)
        receipts = channel.send(batch)
        fake.timeout_next()
        receipts += channel.send([outbound(7, send_at=datetime.now(UTC) + timedelta(hours=99))])

    assert [r.status for r in receipts].count("unknown") == 1
    messages = [record.getMessage() for record in caplog.records]
    ours = [m for r, m in zip(caplog.records, messages, strict=True) if r.name.startswith("techtouch")]
    assert len(ours) >= 4  # retry, rejection, local failure, clamped send_at, timeout, summaries
    assert any(batch[3].key in m for m in ours) and any(batch[6].key in m for m in ours)
    for message in messages + [r.error or "" for r in receipts]:
        assert "@" not in message
        assert KEY not in message and "Contact " not in message


# -- the fake itself ------------------------------------------------------------------------------


def test_the_fake_rejects_what_sendgrid_rejects(fake: FakeSendGrid) -> None:
    now = int(time.time())
    too_big = {"-a-": "x" * 9_990, "-b-": "y" * 10}
    cases = {
        "personalizations.0.to.0.email": valid_body(
            personalizations=[{"to": [{"email": 5}], "subject": "Hi"}]
        ),
        "categories": valid_body(categories=[f"c{i}" for i in range(11)]),
        "personalizations.0.substitutions": valid_body(
            personalizations=[{"to": [{"email": "a@b.example"}], "subject": "Hi", "substitutions": too_big}]
        ),
        "personalizations.0.send_at": valid_body(
            personalizations=[{"to": [{"email": "a@b.example"}], "subject": "Hi", "send_at": now + 73 * 3600}]
        ),
        "content": valid_body(
            content=[{"type": "text/html", "value": "<p>x</p>"}, {"type": "text/plain", "value": "x"}]
        ),
        "subject": valid_body(personalizations=[{"to": [{"email": "a@b.example"}]}]),
        "personalizations.0.headers": valid_body(
            personalizations=[{"to": [{"email": "a@b.example"}], "subject": "Hi", "headers": {"From": "x"}}]
        ),
    }
    for field, body in cases.items():
        status, answer = post(fake, body)
        assert status == 400, field
        assert field in [e["field"] for e in answer["errors"]], (field, answer)
        assert all(set(e) == {"message", "field", "help"} for e in answer["errors"])
    status, answer = post(fake, {"from": {"email": "success@techtouch.example"}})
    assert status == 400 and "'personalizations' is a required property" in answer["errors"][0]["message"]
    assert post(fake, valid_body())[0] == 202
    assert post(fake, valid_body(), key="SG.wrong")[0] == 401
    assert post(fake, valid_body(), key=None)[0] == 401
    assert [r.status for r in fake.requests].count(202) == 1 and len(fake.accepted) == 1


def test_the_compiled_body_validator_finds_what_openapi_core_finds(fake: FakeSendGrid) -> None:
    bodies = [
        valid_body(),
        valid_body(personalizations=[{"to": [{"email": 5, "name": 3}], "send_at": "soon"}]),
        valid_body(personalizations=[{"subject": ""}], categories=["a", "a", "x" * 256]),
        valid_body(content=[{"type": "", "value": 1}], asm={"groups_to_display": list(range(26))}),
        valid_body(ip_pool_name="x", mail_settings={"sandbox_mode": {"enable": "yes"}}),
        valid_body(attachments=[{"content": "", "disposition": "elsewhere"}], send_at=1.5, batch_id=7),
        valid_body(personalizations=[{"to": [{"email": "no-at-sign"}], "substitutions": {"-a-": 1}}]),
        {"personalizations": "none", "from": []},
        [],
    ]
    for body in bodies:
        request = OpenAPIRequest(
            "POST",
            "/v3/mail/send",
            {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"},
            json.dumps(body).encode(),
        )
        compiled = {(p.field, p.keyword) for p in fake.validator.body_problems(body)}
        reference = {(p.field, p.keyword) for p in fake.validator.openapi_core_body_problems(request)}
        assert compiled == reference, body
    assert sum(bool(fake.validator.body_problems(b)) for b in bodies) == len(bodies) - 1


def test_the_fake_can_validate_with_openapi_core_alone(sleeps: list[float]) -> None:
    with FakeSendGrid(api_key=KEY, full_openapi_validation=True) as strict:
        receipts = make_channel(strict, sleeps).send([outbound(i) for i in range(20)])
    assert {r.status for r in receipts} == {"sent"}
    assert [r.personalizations for r in strict.requests] == [20]


def test_the_fake_produces_event_webhook_events_for_what_it_accepted(
    fake: FakeSendGrid, sleeps: list[float]
) -> None:
    batch = [outbound(i) for i in range(3)] + [outbound(3, categories=("nps",))]
    receipts = make_channel(fake, sleeps).send(batch)
    by_key = {r.key: r for r in receipts}

    for kind in ("processed", "delivered"):
        events = fake.events(kind)
        assert [e["touch_key"] for e in events] == [m.key for m in batch]
        assert len({e["sg_event_id"] for e in events}) == 4
        for event, message in zip(events, batch, strict=True):
            assert event["event"] == kind and event["email"] == message.to_email
            assert event["sg_message_id"].startswith(f"{by_key[message.key].provider_id}.filter")
            assert isinstance(event["timestamp"], int)
        assert [e["category"] for e in events] == [["renewal", "renewal.announce"]] * 3 + ["nps"]
        assert ("response" in events[0]) == (kind == "delivered")
    assert fake.events() == fake.events()  # deterministic ids: a redelivery is recognisable
    assert {e["sg_event_id"] for e in fake.events("processed")}.isdisjoint(
        e["sg_event_id"] for e in fake.events("delivered")
    )
