"""The body every journey flow shares: load state once, advance each journey, deliver, report.

A plain function (not a flow) so that `daily` and the `journey` flow show the same tasks in the
Prefect UI without a nested flow run per journey.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from prefect import get_run_logger

from tasks.advance import advance
from tasks.deliver import deliver_email, deliver_sms
from tasks.health import score_health
from tasks.load_state import load_state
from tasks.report import publish_report
from tasks.reports import refresh_reports
from tasks.runtime import runtime_app
from techtouch.domain.clock import today
from techtouch.domain.shards import Shard
from techtouch.services.day import replay_clock
from techtouch.services.runner import select_journeys


class EmptyDatabase(RuntimeError):
    """A whole-database run found no account: the flow run fails with this reason."""


def run_cycle(
    journeys: list[str] | None,
    as_of: date | None,
    dry_run: bool,
    shard: int,
    shards: int,
    *,
    with_health: bool = False,
    deliver_at: datetime | None = None,
) -> dict[str, Any]:
    part = Shard(shard, shards)  # a bad shard fails the run before anything is read
    app = runtime_app()
    try:
        now = None if deliver_at is None else replay_clock(app, deliver_at)
        day = as_of or today(app.settings.zone)
        chosen = select_journeys(app.catalog, app.settings, journeys)
        logger = get_run_logger()
        logger.info("running %s for %s on %s", ", ".join(j.id for j in chosen), day, part)
        state = load_state(app, day, part)  # the accounts' signals and health, read once
        if with_health and not dry_run:
            score_health(app, day, state)
        if state.accounts.empty:
            where = app.engine.url.render_as_string(hide_password=True)
            if part.everything:
                # A green run that did nothing hides a worker pointed at the wrong database.
                raise EmptyDatabase(
                    f"no accounts in {where}: check the worker's TECHTOUCH_DATABASE_URL, "
                    "or import accounts first"
                )
            logger.warning("shard %s of %s holds no accounts", part, where)
        reports = [advance(app, journey, state, dry_run) for journey in chosen]
        deliveries = {}
        if not dry_run:
            email = deliver_email.submit(app, state, now)
            sms = deliver_sms.submit(app, state, now)
            deliveries = {"email": email.result(), "sms": sms.result()}
            if part.everything:  # a sharded cycle: `techtouch reports refresh` once all shards ran
                refresh_reports(app, day)
        return publish_report(day.isoformat(), dry_run, part, reports, deliveries)
    finally:
        app.close()
