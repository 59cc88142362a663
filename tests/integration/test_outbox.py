"""The outbox channel on a real filesystem: parseable .eml files, JSON lines, exactly once."""

from __future__ import annotations

import email
import functools
import json
from datetime import UTC, datetime, timedelta, timezone
from email import policy
from email.message import EmailMessage
from pathlib import Path

import pytest

from techtouch.adapters.channels import (
    EmailChannel,
    OutboundEmail,
    OutboundSms,
    OutboxEmailChannel,
    OutboxSmsChannel,
    Receipt,
    SmsChannel,
)
from techtouch.adapters.channels.outbox import build_eml, safe_key
from techtouch.adapters.render.renderer import RenderedEmail, Renderer, sample_context

ROOT = Path(__file__).resolve().parents[2]
SEND_AT = datetime(2026, 11, 23, 7, 0, tzinfo=UTC)
UNSUBSCRIBE = "https://cs.example.com/u/abc.def"


@functools.cache
def rendered() -> RenderedEmail:
    return Renderer(ROOT / "templates").email("renewal/announce", sample_context())


def outbound(key: str = "17:announce:email", **changes: object) -> OutboundEmail:
    email_ = rendered()
    values: dict[str, object] = {
        "key": key,
        "to_email": "sam.okafor@northwind.example",
        "to_name": "Sam Okafor",
        "from_email": "dana.reyes@cs.example.com",
        "from_name": "Dana Reyes",
        "subject": email_.subject,
        "html": email_.html,
        "text": email_.text,
        "send_at": SEND_AT,
        "headers": {
            "List-Unsubscribe": f"<{UNSUBSCRIBE}>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        },
        "categories": ("renewal", "announce"),
        "custom_args": {"touch_key": key, "account_id": "acc_000123"},
    }
    values.update(changes)
    return OutboundEmail(**values)  # type: ignore[arg-type]


def sms(key: str, body: str = "Hi Sam, it's Dana. Reply STOP to opt out") -> OutboundSms:
    return OutboundSms(key=key, to_phone="+15551234567", body=body, send_at=SEND_AT)


EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


def _keyed(keys: list[str]) -> list[OutboundSms]:
    """reconcile() reads only the keys of the messages it is given."""
    return [sms(key) for key in keys]


def parse(path: Path) -> EmailMessage:
    message = email.message_from_bytes(path.read_bytes(), policy=policy.default)
    assert isinstance(message, EmailMessage)
    return message


def test_the_outbox_channels_satisfy_the_protocols(tmp_path: Path):
    assert isinstance(OutboxEmailChannel(tmp_path), EmailChannel)
    assert isinstance(OutboxSmsChannel(tmp_path), SmsChannel)
    assert OutboxEmailChannel(tmp_path).name == OutboxSmsChannel(tmp_path).name == "outbox"


def test_an_email_becomes_a_parseable_eml_with_both_parts(tmp_path: Path):
    channel = OutboxEmailChannel(tmp_path)
    message = outbound()
    (receipt,) = channel.send([message])

    path = tmp_path / "email" / f"{safe_key(message.key)}.eml"
    assert receipt == Receipt(message.key, "sent", provider_id=path.name)
    assert path.is_file()
    assert b"\r\n" in path.read_bytes()
    parsed = parse(path)
    assert parsed.get_content_type() == "multipart/alternative"
    assert [part.get_content_type() for part in parsed.iter_parts()] == ["text/plain", "text/html"]
    # RFC 5322 lines end in CRLF on disk as on the wire
    text = parsed.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert text.replace("\r\n", "\n") == message.text
    html = parsed.get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert html.replace("\r\n", "\n").rstrip("\n") == message.html.rstrip("\n")
    assert 'href="https://example.invalid/s/renewal/likely"' in html

    assert parsed["From"] == "Dana Reyes <dana.reyes@cs.example.com>"
    assert parsed["To"] == "Sam Okafor <sam.okafor@northwind.example>"
    assert parsed["Subject"] == message.subject
    assert parsed["Date"].datetime == SEND_AT
    assert parsed["Message-ID"].startswith("<tt.") and parsed["Message-ID"].endswith("@cs.example.com>")
    assert parsed["List-Unsubscribe"] == f"<{UNSUBSCRIBE}>"
    assert parsed["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert parsed["X-Techtouch-Key"] == message.key
    assert datetime.fromisoformat(parsed["X-Techtouch-Send-At"]) == SEND_AT
    assert parsed["X-Techtouch-Categories"] == "renewal, announce"
    assert json.loads(parsed["X-Techtouch-Custom-Args"]) == {
        "account_id": "acc_000123",
        "touch_key": message.key,
    }
    assert not list(tmp_path.glob("email/.tmp-*"))  # no temporary file left behind


def test_non_ascii_names_and_subjects_survive(tmp_path: Path):
    channel = OutboxEmailChannel(tmp_path)
    message = outbound(to_name="Zoë Ångström", from_name="Dana Réyes", subject="Ça va, Zoë? Your renewal")
    channel.send([message])
    parsed = parse(channel.path_for(message.key))
    assert parsed["To"].addresses[0].display_name == "Zoë Ångström"
    assert parsed["From"].addresses[0].display_name == "Dana Réyes"
    assert parsed["Subject"] == "Ça va, Zoë? Your renewal"


def test_the_same_message_gives_the_same_bytes():
    assert build_eml(outbound()) == build_eml(outbound())
    assert build_eml(outbound("a")) != build_eml(outbound("b"))


def test_resending_a_key_does_not_rewrite_the_file(tmp_path: Path):
    channel = OutboxEmailChannel(tmp_path)
    first = channel.send([outbound()])
    path = channel.path_for(outbound().key)
    before = (path.stat().st_mtime_ns, path.stat().st_ino, path.read_bytes())

    again = channel.send([outbound(subject="A different subject"), outbound()])
    assert again == first * 2
    assert (path.stat().st_mtime_ns, path.stat().st_ino, path.read_bytes()) == before
    assert len(list((tmp_path / "email").iterdir())) == 1


def test_reconcile_reports_only_what_is_there(tmp_path: Path):
    channel = OutboxEmailChannel(tmp_path)
    assert channel.reconcile(_keyed(["1:a:email"]), EPOCH) == {}
    channel.send([outbound("1:a:email"), outbound("2:a:email")])
    found = OutboxEmailChannel(tmp_path).reconcile(_keyed(["1:a:email", "3:a:email", "2:a:email"]), EPOCH)
    assert set(found) == {"1:a:email", "2:a:email"}
    assert found["1:a:email"] == Receipt("1:a:email", "sent", provider_id=channel.path_for("1:a:email").name)


def test_keys_that_differ_only_in_unsafe_characters_get_different_files(tmp_path: Path):
    keys = ["1:a/b", "1:a\\b", "1:a b", "../1:a_b", "plain-key_1"]
    stems = {safe_key(key) for key in keys}
    assert len(stems) == len(keys)
    assert safe_key("plain-key_1") == "plain-key_1"
    assert all("/" not in stem and "\\" not in stem and not stem.startswith(".") for stem in stems)
    channel = OutboxEmailChannel(tmp_path)
    assert all(r.status == "sent" for r in channel.send([outbound(key) for key in keys]))
    assert len(list((tmp_path / "email").glob("*.eml"))) == len(keys)
    assert not (tmp_path / "1:a").exists()


def test_a_bad_message_fails_alone(tmp_path: Path):
    channel = OutboxEmailChannel(tmp_path)
    receipts = channel.send(
        [
            outbound("ok:1"),
            outbound("bad:header", headers={"X-Evil": "a\r\nBcc: victim@example.com"}),
            outbound("bad:naive", send_at=datetime(2026, 11, 23, 7, 0)),
            outbound("bad:reserved", headers={"Subject": "override"}),
            outbound("ok:2"),
        ]
    )
    assert [r.status for r in receipts] == ["sent", "failed", "failed", "failed", "sent"]
    assert "timezone-aware" in (receipts[2].error or "")
    assert "set by the channel" in (receipts[3].error or "")
    assert sorted(p.name for p in (tmp_path / "email").glob("*.eml")) == sorted(
        [channel.path_for("ok:1").name, channel.path_for("ok:2").name]
    )


def test_a_crash_and_rerun_sends_nothing_twice(tmp_path: Path):
    """Send part of a batch, 'crash' (drop the channel), rerun the whole batch on a fresh instance."""
    batch = [outbound(f"{n}:announce:email") for n in range(5)]
    OutboxEmailChannel(tmp_path).send(batch[:3])
    # a crashed writer leaves a temporary file behind; it must not count as a message
    (tmp_path / "email" / ".tmp-crashed.part").write_bytes(b"From: half a message")

    rerun = OutboxEmailChannel(tmp_path)
    already = rerun.reconcile(batch, EPOCH)
    assert set(already) == {m.key for m in batch[:3]}
    receipts = rerun.send(batch)
    assert [r.status for r in receipts] == ["sent"] * 5
    assert len(list((tmp_path / "email").glob("*.eml"))) == 5
    assert {parse(p)["X-Techtouch-Key"] for p in (tmp_path / "email").glob("*.eml")} == {m.key for m in batch}


def read_lines(path: Path) -> list[dict[str, str]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_sms_become_json_lines(tmp_path: Path):
    channel = OutboxSmsChannel(tmp_path)
    local = datetime(2026, 11, 23, 9, 30, tzinfo=timezone(timedelta(hours=2)))
    receipts = channel.send(
        [
            sms("1:configure:sms", "Hi Zoë,\nsetup help? Reply STOP to opt out"),
            OutboundSms("2:x:sms", "+4470", "b", local),
        ]
    )
    assert receipts == [
        Receipt("1:configure:sms", "sent", provider_id="sms.jsonl:1"),
        Receipt("2:x:sms", "sent", provider_id="sms.jsonl:2"),
    ]
    lines = read_lines(tmp_path / "sms.jsonl")
    assert lines == [
        {
            "key": "1:configure:sms",
            "to": "+15551234567",
            "body": "Hi Zoë,\nsetup help? Reply STOP to opt out",
            "send_at": "2026-11-23T07:00:00+00:00",
        },
        {"key": "2:x:sms", "to": "+4470", "body": "b", "send_at": "2026-11-23T09:30:00+02:00"},
    ]


def test_sms_resend_and_reconcile(tmp_path: Path):
    channel = OutboxSmsChannel(tmp_path)
    assert channel.reconcile(_keyed(["a"]), EPOCH) == {}
    first = channel.send([sms("a"), sms("b"), sms("a")])
    assert first[0] == first[2] == Receipt("a", "sent", provider_id="sms.jsonl:1")
    assert channel.send([sms("b"), sms("c")]) == [first[1], Receipt("c", "sent", provider_id="sms.jsonl:3")]
    assert [line["key"] for line in read_lines(tmp_path / "sms.jsonl")] == ["a", "b", "c"]
    assert channel.reconcile(_keyed(["c", "z", "a"]), EPOCH) == {
        "c": Receipt("c", "sent", provider_id="sms.jsonl:3"),
        "a": Receipt("a", "sent", provider_id="sms.jsonl:1"),
    }


def test_sms_crash_and_rerun_on_a_new_instance(tmp_path: Path):
    batch = [sms(f"{n}:announce:sms") for n in range(4)]
    OutboxSmsChannel(tmp_path).send(batch[:2])
    path = tmp_path / "sms.jsonl"
    # the crash tore the third line mid-write: it was never sent, so the rerun writes it
    with path.open("ab") as handle:
        handle.write(b'{"key": "2:announce:sms", "to": "+1555')

    rerun = OutboxSmsChannel(tmp_path)
    assert set(rerun.reconcile(batch, EPOCH)) == {"0:announce:sms", "1:announce:sms"}
    receipts = rerun.send(batch)
    assert [r.status for r in receipts] == ["sent"] * 4
    assert receipts[2].provider_id == "sms.jsonl:4"  # line 3 is the torn one
    valid = []
    for line in path.read_text().splitlines():
        try:
            valid.append(json.loads(line)["key"])
        except json.JSONDecodeError:
            continue
    assert valid == [m.key for m in batch]
    assert OutboxSmsChannel(tmp_path).send(batch) == receipts  # and again: nothing appended
    assert len(path.read_text().splitlines()) == 5


def test_two_sms_instances_on_one_outbox_do_not_duplicate(tmp_path: Path):
    first, second = OutboxSmsChannel(tmp_path), OutboxSmsChannel(tmp_path)
    first.send([sms("a")])
    second.send([sms("a"), sms("b")])  # second read the file when it sent, and again under the lock
    first.send([sms("b"), sms("c")])  # first's index catches up with second's line
    assert [line["key"] for line in read_lines(tmp_path / "sms.jsonl")] == ["a", "b", "c"]


def test_a_bad_sms_fails_alone(tmp_path: Path):
    receipts = OutboxSmsChannel(tmp_path).send(
        [
            sms("ok"),
            OutboundSms("naive", "+1555", "x", datetime(2026, 1, 1)),
            OutboundSms("nophone", "", "x", SEND_AT),
        ]
    )
    assert [r.status for r in receipts] == ["sent", "failed", "failed"]
    assert [line["key"] for line in read_lines(tmp_path / "sms.jsonl")] == ["ok"]


@pytest.mark.parametrize("channel_type", [OutboxEmailChannel, OutboxSmsChannel])
def test_an_empty_batch_writes_nothing(tmp_path: Path, channel_type: type):
    assert channel_type(tmp_path / "outbox").send([]) == []
    assert not (tmp_path / "outbox").exists()


def _send_all(directory: str, keys: list[str]) -> list[str]:
    emails = OutboxEmailChannel(Path(directory)).send([outbound(key) for key in keys])
    texts = OutboxSmsChannel(Path(directory)).send([sms(key) for key in keys])
    return [r.status for r in emails + texts]


def test_concurrent_processes_write_each_key_once(tmp_path: Path):
    """Overlapping runs (say, a retried flow and its original) share one outbox."""
    from concurrent.futures import ProcessPoolExecutor

    keys = [f"{n}:announce:x" for n in range(30)]
    batches = [keys, list(reversed(keys)), keys[10:], keys[::2]]
    with ProcessPoolExecutor(max_workers=4) as pool:
        statuses = list(pool.map(_send_all, [str(tmp_path)] * 4, batches))
    assert all(status == "sent" for run in statuses for status in run)
    assert sorted(line["key"] for line in read_lines(tmp_path / "sms.jsonl")) == sorted(keys)
    assert len(list((tmp_path / "email").glob("*.eml"))) == len(keys)
    assert not list((tmp_path / "email").glob(".tmp-*"))
