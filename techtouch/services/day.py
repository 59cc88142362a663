"""The steps of a daily run against an App: load state, run journeys, deliver what is due.

The CLI, the Prefect tasks, the simulator and the tests call these, so they run the same code.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import date, timedelta

from techtouch.adapters.render.context import context_builder
from techtouch.domain.catalog import CompiledJourney
from techtouch.domain.shards import ALL, Shard
from techtouch.services.app import App
from techtouch.services.delivery import DeliveryReport, deliver
from techtouch.services.runner import RunReport, RunState, load_run_state, run_journeys

CHANNEL_NAMES = ("email", "sms")


def load_state(app: App, as_of: date, shard: Shard = ALL) -> RunState:
    return load_run_state(app.engine, app.settings, as_of, app.instant(as_of), shard=shard)


def deliver_pending(app: App, state: RunState, channels: Sequence[str] = CHANNEL_NAMES) -> DeliveryReport:
    """Render and send what is due for the state's accounts on the named channels."""
    email, sms = app.channels
    by_name = {"email": email, "sms": sms}
    settings = app.settings
    return deliver(
        app.engine,
        app.renderer,
        {name: by_name[name] for name in channels},
        context_builder(settings, state.accounts, app.catalog, app.link_secret),
        accounts=None if state.shard.everything else state.accounts.index,
        reconcile_after=timedelta(minutes=settings.delivery.reconcile_after_minutes),
        lease=timedelta(minutes=settings.delivery.claim_lease_minutes),
    )


def run_day(
    app: App,
    journeys: list[CompiledJourney],
    as_of: date,
    *,
    dry_run: bool = False,
    shard: Shard = ALL,
) -> RunReport:
    """Decide, record and deliver `journeys` for `as_of` (a dry run writes and sends nothing)."""
    # Checked first: a misconfigured channel or link secret fails the run before anything is recorded.
    if not dry_run:
        _ = app.channels
    _ = app.link_secret
    state = load_state(app, as_of, shard)
    report = run_journeys(
        app.engine, app.settings, journeys, as_of, app.instant(as_of), dry_run=dry_run, state=state
    )
    if not dry_run:
        started = time.perf_counter()
        report.delivery = deliver_pending(app, state)
        report.delivery_seconds = time.perf_counter() - started
        report.seconds += report.delivery_seconds
    return report
