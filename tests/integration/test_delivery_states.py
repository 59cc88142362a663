"""The delivery state machine's edges: in-flight claims, compare-and-set resends, opt-outs after an
ambiguous attempt, and SendGrid's scheduled sends. A recording channel stands in for a provider."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, text

from techtouch import bootstrap
from techtouch.adapters.channels.base import Receipt
from techtouch.adapters.render.context import context_builder
from techtouch.adapters.render.renderer import Renderer
from techtouch.domain.statuses import TouchStatus
from techtouch.services import claims
from techtouch.services import day as service
from techtouch.services.claims import TOUCHES
from techtouch.services.delivery import deliver
from techtouch.settings import Settings
from tests.crash_trials import AS_OF, build_base


class RecordingChannel:
    """Accepts everything and remembers it; `authoritative` says whether reconcile can be trusted."""

    name = "recording"

    def __init__(self, authoritative: bool) -> None:
        self.reconcile_is_authoritative = authoritative
        self.sent: list[str] = []

    def send(self, batch: Sequence[Any]) -> list[Receipt]:
        self.sent += [m.key for m in batch]
        return [Receipt(m.key, "sent", provider_id=f"id-{m.key}") for m in batch]

    def reconcile(self, batch: Sequence[Any], since: datetime) -> dict[str, Receipt]:
        return {}


@pytest.fixture
def setup(engine: Engine, db_url: str) -> tuple[Engine, Settings, Any]:
    build_base(engine, accounts=12)
    settings = Settings(database_url=db_url, timezone="Europe/Paris")
    app = bootstrap.build(settings, engine=engine)
    state = service.load_state(app, AS_OF)
    context_for = context_builder(settings, state.accounts, app.catalog, app.link_secret)
    return engine, settings, context_for


def one_email(engine: Engine) -> tuple[str, str]:
    with engine.connect() as connection:
        key, contact = connection.execute(
            text("SELECT key, contact_id FROM touches WHERE channel = 'email' ORDER BY key LIMIT 1")
        ).one()
    return key, contact


def only(engine: Engine, key: str, **values: Any) -> None:
    """Leave `key` in the given state and every other touch sent, so deliveries see only it."""
    with engine.begin() as connection:
        connection.execute(text("UPDATE touches SET status = 'sent' WHERE key <> :key"), {"key": key})
        sets = ", ".join(f"{column} = :{column}" for column in values)
        # Raw SQL bypasses the UTCDateTime type: store naive UTC as it does.
        values = {
            k: v.astimezone(UTC).replace(tzinfo=None) if isinstance(v, datetime) and v.tzinfo else v
            for k, v in values.items()
        }
        connection.execute(text(f"UPDATE touches SET {sets} WHERE key = :key"), {"key": key, **values})


def status(engine: Engine, key: str) -> str:
    with engine.connect() as connection:
        return str(
            connection.execute(text("SELECT status FROM touches WHERE key = :k"), {"k": key}).scalar_one()
        )


def run(setup: tuple[Engine, Settings, Any], channel: RecordingChannel, **options: Any) -> Any:
    engine, settings, context_for = setup
    return deliver(engine, Renderer(settings.templates_dir), {"email": channel}, context_for, **options)


def test_an_attempt_younger_than_the_lease_is_left_to_the_delivery_that_made_it(setup: Any) -> None:
    NOW = datetime.now(UTC)  # at run time: a long suite must not age the attempts
    engine = setup[0]
    key, _ = one_email(engine)
    only(engine, key, status="sending", attempted_at=NOW - timedelta(minutes=2))
    channel = RecordingChannel(authoritative=True)

    report = run(setup, channel, lease=timedelta(minutes=10))
    assert channel.sent == [] and report.awaiting == 1 and status(engine, key) == "sending"

    report = run(setup, channel, lease=timedelta(minutes=1))  # now older than the lease: reconciled
    assert channel.sent == [key] and report.retried == 1 and status(engine, key) == "sent"


def reclaim(engine: Engine, key: str, at: datetime) -> set[str]:
    with engine.begin() as connection:
        return claims.reclaim(connection, TOUCHES, [key], at, stale_before=at - timedelta(minutes=10))


def test_a_resend_claim_is_compare_and_set(setup: Any) -> None:
    NOW = datetime.now(UTC)  # at run time: a long suite must not age the attempts
    engine = setup[0]
    key, _ = one_email(engine)
    only(engine, key, status="sending", attempted_at=NOW - timedelta(hours=1))
    first = reclaim(engine, key, NOW)
    second = reclaim(engine, key, NOW + timedelta(seconds=1))
    assert first == {key} and second == set()


def test_a_fresh_claim_is_compare_and_set_and_a_final_status_is_never_overwritten(setup: Any) -> None:
    NOW = datetime.now(UTC)  # at run time: a long suite must not age the attempts
    engine = setup[0]
    key, _ = one_email(engine)
    only(engine, key, status="pending")
    with engine.begin() as connection:
        assert claims.claim(connection, TOUCHES, [key], NOW) == {key}
        assert claims.claim(connection, TOUCHES, [key], NOW) == set()  # already `sending`
        claims.mark(connection, TOUCHES, [claims.Mark(key, TouchStatus.SENT, provider_id="p1")])
        claims.mark(connection, TOUCHES, [claims.Mark(key, TouchStatus.FAILED, error="late receipt")])
    assert status(engine, key) == "sent"


def test_marks_settle_a_batch_in_one_go_and_leave_final_rows_alone(
    setup: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`claims.mark` settles many rows per statement (PostgreSQL: UPDATE … FROM unnest): each row
    takes its own status, provider id and error (NULLs included), a key marked twice keeps its
    first mark, and a row already final is not changed, also across statement batches."""
    from techtouch.adapters.db import bulk

    monkeypatch.setattr(bulk, "BATCH", 2)  # several statements for one call
    engine = setup[0]
    with engine.begin() as connection:
        keys = list(connection.execute(text("SELECT key FROM touches ORDER BY key LIMIT 5")).scalars())
        connection.execute(text("UPDATE touches SET status = 'sending'"))
        connection.execute(
            text("UPDATE touches SET status = 'failed', error = 'earlier' WHERE key = :k"), {"k": keys[4]}
        )
    a, b, c, d, settled = keys
    with engine.begin() as connection:
        claims.mark(
            connection,
            TOUCHES,
            [
                claims.Mark(a, TouchStatus.SENT, provider_id="p-a"),
                claims.Mark(b, TouchStatus.FAILED, error="bounced"),
                claims.Mark(a, TouchStatus.FAILED, error="a second mark of a"),
                claims.Mark(c, TouchStatus.SUPPRESSED, error="suppressed at send time"),
                claims.Mark(settled, TouchStatus.SENT, provider_id="late"),
            ],
        )
    with engine.connect() as connection:
        rows = {
            r.key: (r.status, r.provider_id, r.error)
            for r in connection.execute(
                text("SELECT key, status, provider_id, error FROM touches WHERE key IN (:a, :b, :c, :d, :s)"),
                {"a": a, "b": b, "c": c, "d": d, "s": settled},
            )
        }
    assert rows == {
        a: ("sent", "p-a", None),
        b: ("failed", None, "bounced"),
        c: ("suppressed", None, "suppressed at send time"),
        d: ("sending", None, None),
        settled: ("failed", None, "earlier"),
    }


def test_an_ambiguous_attempt_is_not_resent_after_the_contact_opts_out(setup: Any) -> None:
    NOW = datetime.now(UTC)  # at run time: a long suite must not age the attempts
    engine = setup[0]
    key, contact = one_email(engine)
    only(engine, key, status="sending", attempted_at=NOW - timedelta(hours=2))
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO suppressions (contact_id, channel, reason, since) "
                "VALUES (:c, 'email', 'unsubscribed', :t)"
            ),
            {"c": contact, "t": NOW.replace(tzinfo=None)},
        )
    channel = RecordingChannel(authoritative=True)

    report = run(setup, channel)

    assert channel.sent == [] and status(engine, key) == "suppressed" and report.suppressed == 1


def test_a_scheduled_email_waits_for_its_send_time_before_it_counts_as_lost(setup: Any) -> None:
    NOW = datetime.now(UTC)  # at run time: a long suite must not age the attempts
    engine = setup[0]
    key, _ = one_email(engine)
    channel = RecordingChannel(authoritative=False)  # SendGrid: only webhook events can tell
    only(
        engine,
        key,
        status="sending",
        attempted_at=NOW - timedelta(hours=3),
        send_at=(NOW + timedelta(days=1)).replace(tzinfo=None),
    )
    report = run(setup, channel, reconcile_after=timedelta(hours=1))
    assert channel.sent == [] and report.awaiting == 1

    only(engine, key, send_at=(NOW - timedelta(hours=2)).replace(tzinfo=None))
    report = run(setup, channel, reconcile_after=timedelta(hours=1))
    assert channel.sent == [key] and report.retried == 1


class Asked:
    """A channel that has `has` and says whether its answer can be trusted."""

    def __init__(self, authoritative: bool, has: set[str]) -> None:
        self.reconcile_is_authoritative = authoritative
        self.has = has

    def reconcile(self, batch: Sequence[Any], since: datetime) -> dict[str, Receipt]:
        return {m.key: Receipt(m.key, "sent", provider_id="p") for m in batch if m.key in self.has}


def test_the_ambiguity_rule() -> None:
    """Found: marked from the receipt. Lacking: resent if the channel's answer is authoritative, or
    once the grace period of silence has passed; never when there is no grace period (digests)."""
    NOW = datetime.now(UTC)  # at run time: a long suite must not age the attempts

    class Message:
        def __init__(self, key: str) -> None:
            self.key = key

    batch: Any = [Message("found"), Message("old"), Message("recent")]
    settles_at = {"found": NOW, "old": NOW - timedelta(hours=2), "recent": NOW - timedelta(minutes=5)}
    hour = timedelta(hours=1)

    asked = claims.judge(Asked(True, {"found"}), batch, NOW, now=NOW, grace=None)
    assert set(asked.found) == {"found"} and asked.resend == ["old", "recent"] and asked.waiting == []
    silent = claims.judge(Asked(False, {"found"}), batch, NOW, now=NOW, grace=hour, settles_at=settles_at)
    assert silent.resend == ["old"] and silent.waiting == ["recent"]
    never = claims.judge(Asked(False, set()), batch, NOW, now=NOW, grace=None)
    assert never.found == {} and never.resend == [] and never.waiting == ["found", "old", "recent"]


def test_a_receipt_status_outside_the_vocabulary_reads_as_ambiguous() -> None:
    odd: Any = Receipt("k", "delivered")  # type: ignore[arg-type]
    assert claims.receipt_status(odd) == "unknown" and TOUCHES.outcome(odd) is None
    assert TOUCHES.outcome(Receipt("k", "failed", error="bad")) == claims.Mark("k", "failed", None, "bad")
