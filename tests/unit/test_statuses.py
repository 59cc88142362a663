"""The status vocabularies: what each one holds, that members behave as the strings the database
stores, and that the CTA CHECK constraint and partial index stay byte-identical to the migrations
(alembic's autogenerate does not compare CHECK constraints, so test_migrations cannot see them)."""

from __future__ import annotations

import ast
import importlib
import itertools
import json
from enum import StrEnum
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import CheckConstraint, Index

from techtouch.adapters.db.models import CTA_STATUSES, Cta
from techtouch.domain import statuses
from techtouch.domain.statuses import (
    CLOSED_CTA_STATUSES,
    DELIVERY_RANK,
    ENDED_ENROLLMENT_STATUSES,
    ENGAGED_DELIVERY_STATUSES,
    ENGAGED_TOUCH_STATUSES,
    FINAL_DIGEST_STATUSES,
    NO_DELIVERY_RANK,
    OPEN_CTA_STATUSES,
    TERMINAL_DELIVERY_STATUSES,
    UNSENT_TOUCH_STATUSES,
    UNSETTLED_TOUCH_STATUSES,
    CtaStatus,
    DeliveryStatus,
    DigestStatus,
    EnrollmentPhase,
    EnrollmentStatus,
    ReceiptStatus,
    TouchListingStatus,
    TouchStatus,
    advances,
    delivery_rank,
)
from techtouch.services.claims import DIGESTS, TOUCHES

ROOT = Path(__file__).parents[2]
MIGRATION = ROOT / "techtouch/adapters/db/migrations/versions/0001_initial_schema.py"


@pytest.mark.parametrize(
    ("vocabulary", "values"),
    [
        (
            TouchStatus,
            [
                "pending",
                "skipped",
                "created",
                "deduplicated",
                "sending",
                "sent",
                "failed",
                "suppressed",
                "opened",
                "clicked",
                "expired",
            ],
        ),
        (DeliveryStatus, ["delivered", "opened", "clicked", "bounced", "dropped", "undelivered", "failed"]),
        (DigestStatus, ["pending", "sending", "sent", "failed"]),
        (CtaStatus, ["open", "in_progress", "done", "snoozed", "cancelled"]),
        (EnrollmentStatus, ["active", "completed", "exited"]),
        (EnrollmentPhase, ["pending", "active"]),
        (ReceiptStatus, ["sent", "failed", "opted_out", "unknown"]),
    ],
)
def test_each_vocabulary_holds_exactly_the_values_written(
    vocabulary: type[StrEnum], values: list[str]
) -> None:
    assert [member.value for member in vocabulary] == values


def test_values_nothing_writes_are_not_members() -> None:
    for gone in ("planned", "deferred", "delivered", "bounced"):
        assert gone not in set(TouchStatus)
    assert "closed" not in set(CtaStatus)  # done or cancelled: there is no third way to close


def test_groups_partition_as_documented() -> None:
    assert set(OPEN_CTA_STATUSES) == set(CtaStatus) - {CtaStatus.DONE, CtaStatus.CANCELLED}
    assert set(CLOSED_CTA_STATUSES) == {CtaStatus.DONE, CtaStatus.CANCELLED}
    assert set(FINAL_DIGEST_STATUSES) == set(DigestStatus) - {DigestStatus.PENDING, DigestStatus.SENDING}
    assert set(ENDED_ENROLLMENT_STATUSES) == set(EnrollmentStatus) - {EnrollmentStatus.ACTIVE}
    touch_groups = (UNSETTLED_TOUCH_STATUSES, UNSENT_TOUCH_STATUSES, ENGAGED_TOUCH_STATUSES)
    assert sum(len(g) for g in touch_groups) == len(set().union(*touch_groups))  # disjoint
    assert TouchStatus.SENT not in UNSENT_TOUCH_STATUSES  # a sent message counts for the cap


def test_members_are_the_strings_the_database_stores() -> None:
    assert TouchStatus.SENT == "sent" and hash(TouchStatus.SENT) == hash("sent")
    assert {"sent": 1}[TouchStatus.SENT] == 1 and "sent" in set(TouchStatus)
    assert f"{TouchStatus.SENT}" == str(TouchStatus.SENT) == "sent"
    assert json.dumps({"status": CtaStatus.IN_PROGRESS}) == '{"status": "in_progress"}'
    frame = pd.DataFrame({"status": ["pending", "sent"]})
    assert (frame["status"] == TouchStatus.PENDING).tolist() == [True, False]
    assert frame["status"].isin(UNSETTLED_TOUCH_STATUSES).tolist() == [True, False]


def _check_in_migration(name: str) -> str:
    """The SQL text of `sa.CheckConstraint("...", name=op.f(name))` in the first migration."""
    for node in ast.walk(ast.parse(MIGRATION.read_text())):
        if not (isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "CheckConstraint"):
            continue
        named = next(k.value for k in node.keywords if k.arg == "name")
        if isinstance(named, ast.Call) and ast.literal_eval(named.args[0]) == name:
            return str(ast.literal_eval(node.args[0]))
    raise AssertionError(f"{name} not in {MIGRATION.name}")


def test_the_cta_status_constraint_and_open_index_match_the_migration() -> None:
    table = Cta.__table__
    check = next(
        c for c in table.constraints if isinstance(c, CheckConstraint) and c.name == "ck_ctas_status"
    )
    # 0001 created it without `cancelled`; 0006 rebuilt it from its NEW_STATUSES.
    assert _check_in_migration("ck_ctas_status") == "status IN ('open', 'in_progress', 'done', 'snoozed')"
    workspace = importlib.import_module("techtouch.adapters.db.migrations.versions.0006_csm_workspace")
    assert tuple(CtaStatus) == workspace.NEW_STATUSES
    assert str(check.sqltext) == "status IN ('open', 'in_progress', 'done', 'snoozed', 'cancelled')"
    assert tuple(CTA_STATUSES) == tuple(CtaStatus)
    index = next(i for i in table.indexes if isinstance(i, Index) and i.name == "uq_ctas_open_account_reason")
    for dialect in ("sqlite", "postgresql"):
        where = index.dialect_options[dialect]["where"]
        assert str(where) == "status IN ('open', 'in_progress', 'snoozed')"
    assert "status IN ('open', 'in_progress', 'snoozed')" in MIGRATION.read_text()


def test_both_ledgers_speak_the_claim_machine_states() -> None:
    for ledger in (TOUCHES, DIGESTS):
        assert list(ledger.unsettled) == ["pending", "sending"]
        assert {"sent", "failed"} <= set(ledger.statuses)
        assert ledger.stamp in ledger.table.c


def test_the_vocabulary_module_is_pure() -> None:
    tree = ast.parse(Path(statuses.__file__).read_text())
    imported = {
        alias.name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in (node.names if isinstance(node, ast.Import) else [ast.alias(node.module or "")])
    }
    assert imported <= {"__future__", "enum"}


def test_the_listing_accepts_exactly_every_touch_status_and_every_verdict() -> None:
    union = list(dict.fromkeys([*TouchStatus, *DeliveryStatus]))
    assert [member.value for member in TouchListingStatus] == [str(v) for v in union]


def test_verdicts_rank_forward_and_terminal_ones_are_the_last_word() -> None:
    assert set(DELIVERY_RANK) == set(DeliveryStatus)
    assert delivery_rank(None) == NO_DELIVERY_RANK < min(DELIVERY_RANK.values())
    forward = ["delivered", "opened", "clicked"]
    for lower, higher in [(None, "delivered"), *itertools.pairwise(forward)]:
        assert advances(lower, higher)
        assert lower is None or not advances(higher, lower)  # a late `delivered` after `opened`
    for terminal in TERMINAL_DELIVERY_STATUSES:
        for before in (None, "delivered", "opened", "clicked"):
            assert advances(before, terminal)  # a late, asynchronous bounce is taken
            assert before is None or not advances(terminal, before)
        for other in DeliveryStatus:  # nothing replaces a terminal verdict, another terminal included
            assert not advances(terminal, other)
    for verdict in DeliveryStatus:
        assert not advances(verdict, verdict)  # a replay changes nothing
    assert set(ENGAGED_DELIVERY_STATUSES) == {DeliveryStatus.OPENED, DeliveryStatus.CLICKED}
    with pytest.raises(ValueError):
        delivery_rank("planned")


def test_feedback_maps_provider_events_onto_the_verdicts() -> None:
    from techtouch.services.feedback.sendgrid_events import SENDGRID_EFFECTS, SENDGRID_VERDICTS
    from techtouch.services.feedback.twilio_events import TWILIO_KNOWN, TWILIO_VERDICTS

    assert set(SENDGRID_VERDICTS) <= set(SENDGRID_EFFECTS)
    assert set(TWILIO_VERDICTS) <= set(TWILIO_KNOWN)
    assert set(SENDGRID_VERDICTS.values()) | set(TWILIO_VERDICTS.values()) == set(DeliveryStatus)
