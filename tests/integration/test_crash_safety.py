"""Crash trials: delivery killed with SIGKILL at random points never duplicates or loses a message."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine

from tests.crash_trials import build_base, run_trials
from tests.fakes.sendgrid_api import FakeSendGrid
from tests.fakes.twilio_api import FakeTwilio

TRIALS = int(os.environ.get("TECHTOUCH_CRASH_TRIALS", "50"))


@pytest.fixture
def providers() -> Iterator[tuple[FakeSendGrid, FakeTwilio]]:
    # A little latency per request, like the real APIs: kills land mid-request too.
    with FakeSendGrid() as sendgrid, FakeTwilio(latency=0.003) as twilio:
        yield sendgrid, twilio


@pytest.mark.slow
def test_sigkill_during_delivery_then_recovery_sends_each_message_exactly_once(
    engine: Engine, db_url: str, providers: tuple[FakeSendGrid, FakeTwilio]
) -> None:
    sendgrid, twilio = providers
    touches = build_base(engine)
    assert touches >= 20
    trials = TRIALS if db_url.startswith("sqlite") else max(10, TRIALS // 5)

    result = run_trials(db_url, sendgrid, twilio, trials, seed_value=7)

    print(
        f"{result.trials} trials over {touches} touches: {result.killed_before_any_send} killed before any "
        f"send, {result.killed_mid_delivery} mid-delivery, {result.finished_before_kill} finished; "
        f"{result.ambiguous_recovered} ambiguous touches reconciled; "
        f"{result.duplicates} duplicates, {result.lost} lost"
    )
    assert result.problems == []
    assert result.duplicates == 0 and result.lost == 0
    assert result.trials == trials
    # The trials must really have crashed mid-way, with ambiguous attempts to reconcile.
    assert result.killed_mid_delivery >= trials // 4
    assert result.ambiguous_recovered > 0
