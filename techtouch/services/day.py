"""The steps of a daily run against an App: load state, run journeys, deliver what is due.

The CLI, the Prefect tasks, the simulator and the tests call these, so they run the same code.

Delivery keeps the recipient's window (techtouch.services.delivery): a channel that can hold a
message (SendGrid, Twilio with a Messaging Service) gets it ahead of its `send_at`; one that cannot
(the outbox, Twilio with a from-number) gets only what is due, and `deliver_due` (the hourly
`deliver` flow) sends the rest when it falls due. `now` is the delivery's clock: the current time,
except in the simulator, which plays deliveries at the due times of simulated days
(`play_deliveries`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pandas as pd
from sqlalchemy import func, select

from techtouch.adapters.db.models import Account, Contact, Touch
from techtouch.adapters.db.state import load_delivery_accounts
from techtouch.adapters.render.context import context_builder
from techtouch.domain.catalog import CompiledJourney
from techtouch.domain.plan import send_time
from techtouch.domain.shards import ALL, Shard
from techtouch.domain.statuses import UNSETTLED_TOUCH_STATUSES, TouchStatus
from techtouch.services.app import App
from techtouch.services.delivery import DeliveryReport, Window, deliver
from techtouch.services.runner import RunReport, RunState, load_run_state, run_journeys
from techtouch.services.users import people

CHANNEL_NAMES = ("email", "sms")


def load_state(app: App, as_of: date, shard: Shard = ALL) -> RunState:
    return load_run_state(app.engine, app.settings, as_of, app.instant(as_of), shard=shard)


def window(app: App) -> Window:
    """The recipients' business hours and the expiry grace, from the settings."""
    return Window(app.settings.delivery, app.settings.timezone)


def deliver_pending(
    app: App,
    state: RunState,
    channels: Sequence[str] = CHANNEL_NAMES,
    *,
    now: datetime | None = None,
) -> DeliveryReport:
    """Render and send what may go out at `now` (default: the current time) for the state's accounts
    on the named channels; expire what is past its day (see the module docstring)."""
    return deliver_to(app, state.accounts, state.shard, channels, now=now)


def deliver_to(
    app: App,
    accounts: pd.DataFrame,
    shard: Shard = ALL,
    channels: Sequence[str] = CHANNEL_NAMES,
    *,
    now: datetime | None = None,
) -> DeliveryReport:
    """Deliver the shard's due messages, their contexts built from `accounts` (a run's accounts
    frame, or the hourly delivery's `load_delivery_accounts`)."""
    email, sms = app.channels
    by_name = {"email": email, "sms": sms}
    settings = app.settings
    with app.engine.connect() as connection:
        signers = people(connection)  # a CSM's emails sign with their user's name and title
    return deliver(
        app.engine,
        app.renderer,
        {name: by_name[name] for name in channels},
        context_builder(settings, accounts, app.catalog, app.link_secret, signers),
        shard=shard,
        reconcile_after=timedelta(minutes=settings.delivery.reconcile_after_minutes),
        lease=timedelta(minutes=settings.delivery.claim_lease_minutes),
        now=(lambda: datetime.now(UTC)) if now is None else (lambda: now),
        window=window(app),
        workers=settings.render_workers,
    )


class ReplayRefused(ValueError):
    """A delivery clock other than now was asked of a channel that sends at the real time."""


def replay_clock(app: App, at: datetime) -> datetime:
    """`at` as a delivery's clock (a replay or a test of a past or future day), checked: aware, and
    only with the outbox on both channels, since a provider sends at its own, real time."""
    if at.tzinfo is None or at.utcoffset() is None:
        raise ReplayRefused("a delivery instant needs an offset or Z, e.g. 2027-01-04T15:00+01:00")
    if app.settings.email_channel != "outbox" or app.settings.sms_channel != "outbox":
        raise ReplayRefused("delivering at another instant works with the outbox only: a provider sends now")
    return at


def unsettled_messages(app: App) -> int:
    """Email and SMS touches still `pending` or `sending` (what a delivery would look at)."""
    with app.engine.connect() as connection:
        return connection.execute(
            select(func.count())
            .select_from(Touch)
            .where(Touch.channel.in_(CHANNEL_NAMES), Touch.status.in_(UNSETTLED_TOUCH_STATUSES))
        ).scalar_one()


def deliver_due(
    app: App,
    *,
    shard: Shard = ALL,
    channels: Sequence[str] = CHANNEL_NAMES,
    now: datetime | None = None,
) -> DeliveryReport:
    """The hourly delivery (`techtouch deliver`, the `deliver` flow): what has fallen due since the
    daily run, inside each recipient's business hours, and expiry. The messages' accounts are read
    with the day's health snapshot (`load_delivery_accounts`: only the accounts with something
    unsettled); before the day's run has written it, the accounts' state is loaded as a run does."""
    if unsettled_messages(app) == 0:
        return DeliveryReport()
    _ = app.channels  # a misconfigured channel fails before anything is read
    moment = now or datetime.now(UTC)
    day = moment.astimezone(app.settings.zone).date()
    with app.engine.connect() as connection:
        accounts = load_delivery_accounts(connection, day, shard)
    if accounts is None:
        accounts = load_state(app, day, shard).accounts
    return deliver_to(app, accounts, shard, channels, now=moment)


def play_deliveries(
    app: App, state: RunState, start: datetime, until: datetime, channels: Sequence[str] = CHANNEL_NAMES
) -> DeliveryReport:
    """Deliver as a delivery running at `start` and then at each due time up to `until` would: the
    simulator's clock (simulated days are delivered at their own times, not at today's)."""
    report = deliver_pending(app, state, channels, now=start)
    moment: datetime | None = start
    while moment is not None and (moment := _next_due(app, moment, until)) is not None:
        report.add(deliver_pending(app, state, channels, now=moment))
    return report


def _next_due(app: App, after: datetime, until: datetime) -> datetime | None:
    """The next moment in (`after`, `until`] at which a delivery has something to hand over: the
    earliest `send_at` of a pending message still ahead, or the next opening of business hours in
    the zone of a message already due but held (outside its recipient's hours at `after`)."""
    held = (
        select(func.coalesce(Contact.timezone, Account.timezone))
        .distinct()
        .select_from(Touch)
        .join(Contact, Contact.id == Touch.contact_id)
        .join(Account, Account.id == Touch.account_id)
        .where(
            Touch.status == TouchStatus.PENDING,
            Touch.channel.in_(CHANNEL_NAMES),
            Touch.send_at <= after,
        )
    )
    with app.engine.connect() as connection:
        ahead: datetime | None = connection.execute(
            select(func.min(Touch.send_at)).where(
                Touch.status == TouchStatus.PENDING,
                Touch.channel.in_(CHANNEL_NAMES),
                Touch.send_at > after,
                Touch.send_at <= until,
            )
        ).scalar_one()
        held_zones = {zone or app.settings.timezone for zone in connection.execute(held).scalars()}
    candidates = [ahead] if ahead is not None else []
    for zone in held_zones:
        # A zone open at `after` had its due messages handed over then (one left pending there
        # failed transiently: the next run retries it); a closed zone's next opening is a stop.
        opening = send_time(after, ZoneInfo(zone), app.settings.delivery)
        if after < opening <= until:
            candidates.append(opening)
    return min(candidates, default=None)


def run_day(
    app: App,
    journeys: list[CompiledJourney],
    as_of: date,
    *,
    dry_run: bool = False,
    shard: Shard = ALL,
    now: datetime | None = None,
    play_until: datetime | None = None,
    state: RunState | None = None,
) -> RunReport:
    """Decide, record and deliver `journeys` for `as_of` (a dry run writes and sends nothing).

    Delivery runs at `now` (default: the current time). `play_until` (the simulator) goes on
    delivering at each due time up to that instant, as the hourly `deliver` flow would have.
    `state`: the day's state when the caller loaded it already (for the health snapshot too).
    """
    # Checked first: a misconfigured channel or link secret fails the run before anything is recorded.
    if not dry_run:
        _ = app.channels
    _ = app.link_secret
    if state is None:
        state = load_state(app, as_of, shard)
    report = run_journeys(
        app.engine, app.settings, journeys, as_of, app.instant(as_of), dry_run=dry_run, state=state
    )
    if not dry_run:
        started = time.perf_counter()
        if play_until is not None:
            report.delivery = play_deliveries(app, state, now or app.instant(as_of), play_until)
        else:
            report.delivery = deliver_pending(app, state, now=now)
        report.delivery_seconds = time.perf_counter() - started
        report.seconds += report.delivery_seconds
    return report


__all__ = [
    "CHANNEL_NAMES",
    "ReplayRefused",
    "deliver_due",
    "deliver_pending",
    "deliver_to",
    "load_state",
    "play_deliveries",
    "replay_clock",
    "run_day",
    "unsettled_messages",
    "window",
]
