"""Service layer: one daily run wired from settings (channels, renderer, link signer).

The CLI, the Prefect flows, the simulator and the tests call this, so they run the same code.
"""

from __future__ import annotations

from datetime import date

from sqlalchemy import Engine

from techtouch.journeys.catalog import CompiledJourney
from techtouch.journeys.context import context_builder
from techtouch.journeys.runner import RunReport, run_journeys
from techtouch.journeys.state import load_accounts
from techtouch.settings import Settings
from techtouch.wiring import as_of_instant, build_channels, build_renderer, link_secret


def run_day(
    engine: Engine,
    settings: Settings,
    catalog: dict[str, CompiledJourney],
    journeys: list[CompiledJourney],
    as_of: date,
    *,
    dry_run: bool = False,
) -> RunReport:
    """Decide, record and deliver `journeys` for `as_of` (a dry run writes and sends nothing)."""
    run_at = as_of_instant(settings, as_of)
    channels = None if dry_run else build_channels(settings)
    secret = link_secret(settings)
    with engine.connect() as connection:
        accounts = load_accounts(connection, as_of, run_at, settings.health)
    return run_journeys(
        engine,
        settings,
        journeys,
        as_of,
        run_at,
        dry_run=dry_run,
        channels=channels,
        renderer=build_renderer(settings),
        context_for=context_builder(settings, accounts, catalog, secret),
        accounts=accounts,
    )
