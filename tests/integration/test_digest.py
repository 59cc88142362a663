"""The CSM digest: what goes in which section, who gets it, and that it goes out once."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, text

from techtouch.adapters.channels.base import Receipt
from techtouch.adapters.db.bulk import insert_rows
from techtouch.adapters.db.models import Cta
from techtouch.adapters.render.renderer import Renderer
from techtouch.services import claims
from techtouch.services.claims import DIGESTS
from techtouch.services.digest import collect, send_digests
from techtouch.settings import Settings
from tests.integration.journey_base import Base, account, contact

TODAY = date(2026, 11, 24)  # a Tuesday
LEAD = "lee.lead@vendor.example"


class Channel:
    """Records what it is asked to send; `outcome` decides the receipts."""

    name = "recording"

    def __init__(self, authoritative: bool, outcome: str = "sent") -> None:
        self.reconcile_is_authoritative = authoritative
        self.outcome = outcome
        self.sent: list[Any] = []

    def send(self, batch: Sequence[Any]) -> list[Receipt]:
        self.sent += batch
        return [
            Receipt(m.key, self.outcome, provider_id="p" if self.outcome == "sent" else None) for m in batch
        ]  # type: ignore[arg-type]

    def reconcile(self, batch: Sequence[Any], since: datetime) -> dict[str, Receipt]:
        return {}


def cta(i: int, account_id: str, assignee: str, due: date, created: date, **extra: Any) -> dict[str, Any]:
    return {
        "account_id": account_id,
        "journey": "renewal",
        "reason": f"reason_{i}",
        "title": f"Call {account_id} ({i})",
        "priority": "high",
        "assignee": assignee,
        "status": "open",
        "due_date": due,
        "created_as_of": created,
        "context": {"health": 41.0, "health_color": "red", "arr": 12000.0},
    } | extra


@pytest.fixture
def settings(db_url: str) -> Settings:
    return Settings(database_url=db_url, queue_owner=LEAD, timezone="Europe/Paris")


@pytest.fixture
def ctas(engine: Engine, settings: Settings) -> Engine:
    Base(engine, settings).add(
        [
            account("a1", csm_email=LEAD),
            account("a2", csm_email="sam.csm@vendor.example"),
            account("a3", csm_email=None),
        ],
        [contact("c1", "a1")],
        usage_days=2,
        as_of=TODAY,
    )
    with engine.begin() as connection:
        insert_rows(
            connection,
            Cta.__table__,
            [
                cta(1, "a1", LEAD, TODAY - timedelta(days=2), TODAY - timedelta(days=5)),  # overdue
                cta(2, "a2", "sam.csm@vendor.example", TODAY, TODAY - timedelta(days=3)),  # due today
                cta(3, "a2", "sam.csm@vendor.example", TODAY + timedelta(days=3), TODAY),  # new
                cta(4, "a2", "sam.csm@vendor.example", TODAY + timedelta(days=5), TODAY - timedelta(days=4)),
                cta(5, "a3", "queue:cs", TODAY + timedelta(days=1), TODAY),  # new, in the queue
                cta(6, "a2", "sam.csm@vendor.example", TODAY - timedelta(days=9), TODAY - timedelta(days=9))
                | {"status": "done"},
            ],
        )
    return engine


def statuses(engine: Engine) -> list[str]:
    with engine.connect() as connection:
        return sorted(r[0] for r in connection.execute(text("SELECT status FROM digests")))


def test_sections_and_recipients(ctas: Engine, settings: Settings) -> None:
    with ctas.connect() as connection:
        report = collect(connection, settings, TODAY)
    by = {d.assignee: d for d in report.digests}
    assert set(by) == {LEAD, "sam.csm@vendor.example", "queue:cs"}
    sam = {"escalated": 0, "overdue": 0, "due": 1, "new": 1}  # 4: not new, 6: done
    assert by["sam.csm@vendor.example"].counts == sam
    assert by[LEAD].counts == {"escalated": 0, "overdue": 1, "due": 0, "new": 0}
    assert by["queue:cs"].recipient == LEAD and by["queue:cs"].counts["new"] == 1
    # The lead owns accounts and the queue: two digests, neither lost.
    assert len({d.key for d in report.digests}) == 3
    assert all("@" not in d.key for d in report.digests)


def test_a_rerun_sends_nothing_and_a_queue_without_owner_is_reported(
    ctas: Engine, settings: Settings
) -> None:
    channel = Channel(authoritative=True)
    first = send_digests(ctas, settings, Renderer(settings.templates_dir), channel, TODAY)
    assert first.sent == 3 and len(channel.sent) == 3
    to_lead = [m.text for m in channel.sent if m.to_email == LEAD]
    assert len(to_lead) == 2  # their own and the queue's
    assert any("Call a1 (1)" in t and "Overdue" in t for t in to_lead)
    assert any("Call a3 (5)" in t and "queue:cs" in t for t in to_lead)

    again = send_digests(ctas, settings, Renderer(settings.templates_dir), channel, TODAY)
    assert again.sent == 0 and again.already_sent == 3 and len(channel.sent) == 3

    no_owner = settings.model_copy(update={"queue_owner": None})
    with ctas.connect() as connection:
        assert collect(connection, no_owner, TODAY).unrouted == 1


def test_an_ambiguous_digest_is_resent_only_when_the_channel_can_tell(
    ctas: Engine, settings: Settings
) -> None:
    timeout = Channel(authoritative=False, outcome="unknown")
    send_digests(ctas, settings, Renderer(settings.templates_dir), timeout, TODAY)
    assert statuses(ctas) == ["sending"] * 3

    sendgrid_like = Channel(authoritative=False)
    report = send_digests(ctas, settings, Renderer(settings.templates_dir), sendgrid_like, TODAY)
    assert sendgrid_like.sent == [] and report.unsettled == 3

    outbox_like = Channel(authoritative=True)  # asked, and it does not have them: resend once
    report = send_digests(ctas, settings, Renderer(settings.templates_dir), outbox_like, TODAY)
    assert len(outbox_like.sent) == 3 and report.sent == 3 and statuses(ctas) == ["sent"] * 3


def test_a_digest_resend_is_compare_and_set(ctas: Engine, settings: Settings) -> None:
    """Two senders that both judged the same digests lost: only the first one resends them (the
    stamp it renews is `updated_at`, set by the claim)."""
    timeout = Channel(authoritative=False, outcome="unknown")
    send_digests(ctas, settings, Renderer(settings.templates_dir), timeout, TODAY)
    with ctas.connect() as connection:
        keys = sorted(r[0] for r in connection.execute(text("SELECT key FROM digests")))
    seen = datetime.now(UTC)  # both senders read the states here
    with ctas.begin() as connection:
        first = claims.reclaim(connection, DIGESTS, keys, seen + timedelta(seconds=1), stale_before=seen)
    with ctas.begin() as connection:
        second = claims.reclaim(connection, DIGESTS, keys, seen + timedelta(seconds=2), stale_before=seen)
    assert first == set(keys) and second == set() and statuses(ctas) == ["sending"] * 3


def test_an_escalation_joined_since_the_last_digest_is_told_and_a_snoozed_cta_is_not(
    ctas: Engine, settings: Settings
) -> None:
    with ctas.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO cta_history (cta_id, at, as_of, actor, action, detail) "
                "VALUES (4, :at, :d, 'techtouch', 'escalated', '{}')"
            ),
            {"at": datetime(2026, 1, 1, 9, 0), "d": TODAY},
        )
        connection.execute(text("UPDATE ctas SET status = 'snoozed' WHERE id = 3"))
    with ctas.connect() as connection:
        report = collect(connection, settings, TODAY)
    sam = next(d for d in report.digests if d.assignee == "sam.csm@vendor.example")
    assert [i.cta_id for i in sam.sections["escalated"]] == [4]
    assert sam.counts == {"escalated": 1, "overdue": 0, "due": 1, "new": 0}  # 3 is snoozed
