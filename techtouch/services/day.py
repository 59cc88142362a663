"""Service layer: the steps of a daily run, wired from settings (channels, renderer, link signer).

The CLI, the Prefect tasks, the simulator and the tests call these, so they run the same code.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import date, timedelta
from typing import Any

from sqlalchemy import Engine

from techtouch.adapters.render.context import context_builder
from techtouch.bootstrap import as_of_instant, build_channels, build_renderer, link_secret
from techtouch.domain.catalog import CompiledJourney
from techtouch.domain.shards import ALL, Shard
from techtouch.services.delivery import DeliveryReport, deliver
from techtouch.services.runner import RunReport, RunState, load_run_state, run_journeys
from techtouch.settings import Settings

CHANNEL_NAMES = ("email", "sms")


def load_state(engine: Engine, settings: Settings, as_of: date, shard: Shard = ALL) -> RunState:
    return load_run_state(engine, settings, as_of, as_of_instant(settings, as_of), shard=shard)


def deliver_pending(
    engine: Engine,
    settings: Settings,
    catalog: dict[str, CompiledJourney],
    state: RunState,
    channels: Sequence[str] = CHANNEL_NAMES,
    *,
    built: tuple[Any, Any] | None = None,
) -> DeliveryReport:
    """Render and send what is due for the state's accounts on the named channels.

    `built` reuses (email, SMS) channels the caller already made from these settings.
    """
    email, sms = built or build_channels(settings)
    by_name = {"email": email, "sms": sms}
    return deliver(
        engine,
        build_renderer(settings),
        {name: by_name[name] for name in channels},
        context_builder(settings, state.accounts, catalog, link_secret(settings)),
        accounts=None if state.shard.everything else state.accounts.index,
        reconcile_after=timedelta(minutes=settings.delivery.reconcile_after_minutes),
        lease=timedelta(minutes=settings.delivery.claim_lease_minutes),
    )


def run_day(
    engine: Engine,
    settings: Settings,
    catalog: dict[str, CompiledJourney],
    journeys: list[CompiledJourney],
    as_of: date,
    *,
    dry_run: bool = False,
    shard: Shard = ALL,
) -> RunReport:
    """Decide, record and deliver `journeys` for `as_of` (a dry run writes and sends nothing)."""
    # Checked first: a misconfigured channel or link secret fails the run before anything is recorded.
    built = None if dry_run else build_channels(settings)
    link_secret(settings)
    state = load_state(engine, settings, as_of, shard)
    report = run_journeys(
        engine, settings, journeys, as_of, as_of_instant(settings, as_of), dry_run=dry_run, state=state
    )
    if built is not None:
        started = time.perf_counter()
        report.delivery = deliver_pending(engine, settings, catalog, state, built=built)
        report.delivery_seconds = time.perf_counter() - started
        report.seconds += report.delivery_seconds
    return report
