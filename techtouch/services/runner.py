"""One daily run: load state once, then per journey (in priority order, under a lock)
decide → plan → record; then deliver what is pending. CLI, flows and simulator share it."""

from __future__ import annotations

import hashlib
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import pandas as pd
from sqlalchemy import Connection, Engine, text

from techtouch.adapters.db.record import flag_advocates, record, refresh_statistics
from techtouch.adapters.db.state import (
    load_accounts,
    load_cap_counts,
    load_contacts,
    load_cta_state,
    load_engagement,
    load_enrollments,
    load_requests,
    reachability,
)
from techtouch.domain.catalog import CompiledJourney
from techtouch.domain.decide import Decision, decide
from techtouch.domain.plan import (
    MESSAGE_CHANNELS,
    Plan,
    add_to_caps,
    cap_ledger,
    plan_touches,
    revert_deferred,
)
from techtouch.domain.shards import ALL, Shard
from techtouch.domain.statuses import EnrollmentStatus
from techtouch.services import cta_sync, ctas
from techtouch.services.delivery import DeliveryReport
from techtouch.settings import Settings


@dataclass
class JourneyReport:
    journey: str
    entered: int = 0
    active: int = 0
    exits: Counter[str] = field(default_factory=Counter)
    steps: pd.DataFrame = field(default_factory=pd.DataFrame)  # milestone, rung, channel, status, count
    ctas_created: int = 0
    ctas_by_assignee: Counter[str] = field(default_factory=Counter)
    ctas_joined: int = 0  # escalations added to a CTA already open for that account and reason
    ctas_closed: int = 0  # open CTAs closed because their cause went away
    skipped: dict[str, int] = field(default_factory=dict)  # paused, unreachable, sms_unreachable, cap
    # Messages whose send time is later than the run: `after_hours` counts them all (the JSON
    # report's key since the start); of those, `quiet_hours_held` wait for a later day than the
    # run's in the recipient's timezone (a weekend, or business hours already over there): the
    # only ones held back. The rest go out later the same day (`scheduled_later_today`).
    after_hours: int = 0
    seconds: float = 0.0
    quiet_hours_held: int = 0

    @property
    def scheduled_later_today(self) -> int:
        """Messages scheduled for the recipient's business hours later on the run's day: not held back."""
        return self.after_hours - self.quiet_hours_held


@dataclass
class RunReport:
    as_of: date
    dry_run: bool
    journeys: list[JourneyReport]
    delivery: DeliveryReport | None
    seconds: float = 0.0
    delivery_seconds: float = 0.0
    reports_seconds: float = 0.0  # bringing everyone's /reports rollup up to date (report_rollup)
    decisions: dict[str, tuple[Decision, Plan]] = field(default_factory=dict, repr=False)
    accounts: int = 0  # accounts loaded (of the shard): 0 means an empty or wrong database

    @property
    def empty(self) -> bool:
        return self.accounts == 0


def ordered(catalog: dict[str, CompiledJourney], settings: Settings) -> list[CompiledJourney]:
    """Journey priority (config overrides the file) decides who gets a contact on a capped day."""
    return sorted(
        catalog.values(), key=lambda j: (settings.journey_priority.get(j.id, j.spec.priority), j.id)
    )


class UnknownJourney(ValueError):
    pass


def select_journeys(
    catalog: dict[str, CompiledJourney], settings: Settings, names: list[str] | None = None
) -> list[CompiledJourney]:
    """The named journeys (all when `names` is None), in priority order; unknown names are an error."""
    unknown = [n for n in names or [] if n not in catalog]
    if unknown:
        raise UnknownJourney(f"unknown journey(s) {', '.join(unknown)}; known: {', '.join(catalog)}")
    return ordered(catalog if names is None else {n: catalog[n] for n in names}, settings)


def _lock_key(name: str) -> int:
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


def journey_lock(connection: Connection, journey: str, shard: Shard = ALL) -> None:
    """Serialize planning for the rest of the transaction, per shard.

    One lock for every journey, not one each: the frequency cap spans journeys, so two runs
    planning different journeys at once could both give a contact today's only message. A
    contact's account lives in one shard, so shards of one split plan at the same time: a shard
    holds the whole-run lock shared and its own exclusively; a whole run holds it exclusively.
    (The shards of one cycle use one `count`: two splits of different counts overlap.)
    PostgreSQL: transaction-level advisory locks. SQLite: the transaction was opened with BEGIN
    IMMEDIATE (db.py), which already holds the database's write lock. (`journey` is kept for
    the call sites' sake: a finer lock may come back with per-journey caps.)
    """
    if connection.dialect.name != "postgresql":
        return
    whole = _lock_key("techtouch:planning")
    if shard.everything:
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": whole})
        return
    connection.execute(text("SELECT pg_advisory_xact_lock_shared(:key)"), {"key": whole})
    part = _lock_key(f"techtouch:planning:{shard.index}/{shard.count}")
    connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": part})


def build_frame(
    accounts: pd.DataFrame, enrollments: pd.DataFrame, engagement: pd.DataFrame, reach: pd.DataFrame
) -> pd.DataFrame:
    """Accounts x this journey's latest enrollment x engagement per milestone x reachability."""
    frame = accounts.join(enrollments.add_prefix("e_"), how="left").join(reach, how="left")
    if not engagement.empty and not enrollments.empty:
        by_enrollment = enrollments.reset_index()[["id", "account_id"]].rename(
            columns={"id": "enrollment_id"}
        )
        engaged = engagement.merge(by_enrollment, on="enrollment_id")
        flags = ["opened", "clicked", "branched"]  # `last_rung` (a day, NaT when none): response windows
        values = [c for c in (*flags, "last_rung") if c in engaged]
        wide = engaged.pivot_table(index="account_id", columns="milestone", values=values, aggfunc="max")
        wide.columns = [f"{column[0]}@{column[1]}" for column in wide.columns]  # (kind, milestone)
        frame = frame.join(wide, how="left")
        engaged_columns = [c for c in wide.columns if c.split("@", 1)[0] in flags]
        frame[engaged_columns] = frame[engaged_columns].fillna(False).astype(bool)
    return frame


@dataclass
class RunState:
    """What every journey of one run reads: accounts (of the shard) and contacts, loaded once.

    `caps`: the messages this run's journeys planned so far, for a dry run's caps (a run that
    records reads them back from the database with everyone else's).
    """

    as_of: date
    run_at: datetime
    accounts: pd.DataFrame
    contacts: pd.DataFrame
    caps: pd.DataFrame = field(default_factory=cap_ledger)
    shard: Shard = ALL


def load_run_state(
    engine: Engine,
    settings: Settings,
    as_of: date,
    run_at: datetime,
    *,
    shard: Shard = ALL,
    accounts: pd.DataFrame | None = None,
) -> RunState:
    """Read the shard's accounts and contacts (only the shard's rows leave the database)."""
    with engine.connect() as connection:
        if accounts is None:
            accounts = load_accounts(connection, as_of, run_at, settings.health, shard)
        else:
            accounts = shard.select(accounts)
        contacts = load_contacts(connection, shard)
    return RunState(as_of, run_at, accounts, contacts, shard=shard)


def advance_journey(
    engine: Engine, settings: Settings, journey: CompiledJourney, state: RunState, *, dry_run: bool = False
) -> tuple[JourneyReport, Decision, Plan]:
    """Decide, plan and record one journey in one transaction under the journey's lock.

    Deciding inside the lock means a concurrent run can never record from a stale position; a
    rerun of the same day finds the positions already moved and records nothing new.
    """
    t0 = time.perf_counter()
    as_of, run_at, accounts, contacts = state.as_of, state.run_at, state.accounts, state.contacts
    with engine.connect().execution_options(immediate=True) as connection, connection.begin():
        journey_lock(connection, journey.id, state.shard)
        enrollments = load_enrollments(connection, journey.id, state.shard)
        engagement = load_engagement(connection, journey.id, state.shard)
        reach = reachability(contacts, list(journey.spec.recipients))
        frame = build_frame(accounts, enrollments, engagement, reach)
        cta_state = load_cta_state(connection, sorted(journey.cta_reasons()), as_of, state.shard)
        if not cta_state.empty:
            frame = frame.join(cta_state, how="left")
        if journey.requests:
            requests = load_requests(connection, journey.id, enrollments, state.shard)
            frame = frame.join(requests, how="left")
        decision = decide(frame, journey, as_of)
        # Under the lock, from the database: a run of another journey may have recorded since
        # this run loaded its state. Only today's candidates' contacts matter. A dry run records
        # nothing, so it adds what its earlier journeys planned.
        messages = decision.actions
        messages = messages[messages["channel"].isin(MESSAGE_CHANNELS) & (messages["kind"] != "skip")]
        candidates = messages["account_id"].unique().tolist()
        caps = load_cap_counts(connection, as_of, state.shard, accounts=candidates)
        if dry_run:
            caps = pd.concat([caps, state.caps], ignore_index=True)
        plan = plan_touches(
            decision,
            accounts,
            contacts,
            list(journey.spec.recipients),
            caps,
            settings.delivery,
            run_at,
            settings.timezone,
            settings.team_queue,
        )
        positions = revert_deferred(decision, plan.deferred, as_of)
        joined = closed = 0
        if not plan.ctas.empty:
            plan.ctas = cta_sync.explain(connection, journey, plan.ctas)
        if not dry_run:
            recorded = record(connection, journey.id, as_of, positions, plan, _cta_context(accounts, plan))
            flag_advocates(connection, _advocates(journey, plan))
            joined, closed = cta_sync.after_record(
                connection, journey, decision, recorded, as_of, state.shard
            )
    if dry_run:
        state.caps = add_to_caps(state.caps, plan.touches)
    else:
        refresh_statistics(engine, len(plan.touches))
    held = held_for_quiet_hours(plan.touches, accounts, contacts, settings.timezone, as_of, run_at)
    report = _report(journey.id, decision, plan, positions, run_at, time.perf_counter() - t0, held)
    report.ctas_joined, report.ctas_closed = joined, closed
    return report, decision, plan


def run_journeys(
    engine: Engine,
    settings: Settings,
    journeys: list[CompiledJourney],
    as_of: date,
    run_at: datetime,
    *,
    dry_run: bool = False,
    state: RunState | None = None,
    shard: Shard = ALL,
) -> RunReport:
    """Advance `journeys` in order (records, never sends: services.day.run_day adds delivery).

    `state` may be passed in when the caller already loaded it.
    """
    started = time.perf_counter()
    if not dry_run:  # a CTA snoozed until today is back in its owner's inbox (and in conditions)
        with engine.begin() as connection:
            ctas.wake_snoozed(connection, as_of)
    if state is None:
        state = load_run_state(engine, settings, as_of, run_at, shard=shard)
    reports: list[JourneyReport] = []
    decisions: dict[str, tuple[Decision, Plan]] = {}
    for journey in journeys:
        report, decision, plan = advance_journey(engine, settings, journey, state, dry_run=dry_run)
        decisions[journey.id] = (decision, plan)
        reports.append(report)
    seconds = time.perf_counter() - started
    return RunReport(
        as_of, dry_run, reports, None, seconds, 0.0, decisions=decisions, accounts=len(state.accounts)
    )


def _advocates(journey: CompiledJourney, plan: Plan) -> list[str]:
    flagged = {f"branch_{b.id}" for m in journey.milestones for b, _ in m.branches if b.mark_advocate}
    if not flagged or plan.touches.empty:
        return []
    return sorted(set(plan.touches.loc[plan.touches["rung"].isin(flagged), "account_id"]))


def _cta_context(accounts: pd.DataFrame, plan: Plan) -> dict[str, dict[str, Any]]:
    """What a CSM needs to act: why, health, ARR, renewal date, usage trend."""
    if plan.ctas.empty:
        return {}
    rows = accounts.loc[plan.ctas["account_id"].unique()]
    context = {}
    for account_id, row in rows.iterrows():
        context[str(account_id)] = {
            "account_name": row["name"],
            "health": None if pd.isna(row["health"]) else float(row["health"]),
            "health_color": row["health_color"],
            "arr": float(row["arr"]),
            "renewal_date": None if pd.isna(row["renewal_date"]) else str(row["renewal_date"]),
            "usage_change_30d": None
            if pd.isna(row["usage_change_30d"])
            else round(float(row["usage_change_30d"]), 3),
            "logins_14d": int(row["logins_14d"]),
        }
    return context


def held_for_quiet_hours(
    touches: pd.DataFrame,
    accounts: pd.DataFrame,
    contacts: pd.DataFrame,
    default_zone: str,
    as_of: date,
    run_at: datetime,
) -> int:
    """Messages the recipient's business hours hold back to a later day than the run's.

    A message is held back when its send time is after the run and falls, in the recipient's
    timezone (contact, else account, else the team's: as plan_touches chose it), on a later date
    than both the run's day and the local date at run time. A message that simply waits for
    business hours to open later the same day is scheduled, not held back.
    """
    if touches.empty:
        return 0
    messages = touches[touches["send_at"].notna()]
    send_at = pd.to_datetime(messages["send_at"], utc=True)
    later = messages[send_at > pd.Timestamp(run_at)]
    if later.empty:
        return 0
    zones = (
        later["contact_id"]
        .map(contacts.drop_duplicates("contact_id").set_index("contact_id")["timezone"])
        .fillna(later["account_id"].map(accounts["timezone"]))
        .fillna(default_zone)
    )
    held = 0
    for zone, rows in later.groupby(zones.to_numpy()):
        local_send = pd.to_datetime(rows["send_at"], utc=True).dt.tz_convert(str(zone)).dt.date
        run_day = max(as_of, pd.Timestamp(run_at).tz_convert(str(zone)).date())
        held += int((local_send > run_day).sum())
    return held


def _report(
    journey: str,
    decision: Decision,
    plan: Plan,
    positions: pd.DataFrame,
    run_at: datetime,
    seconds: float,
    quiet_hours_held: int = 0,
) -> JourneyReport:
    touches = plan.touches
    steps = (
        touches.groupby(["milestone", "rung", "channel", "status"]).size().rename("count").reset_index()
        if not touches.empty
        else pd.DataFrame(columns=["milestone", "rung", "channel", "status", "count"])
    )
    ctas = plan.ctas
    exits = positions.loc[positions["status"] != EnrollmentStatus.ACTIVE, "exit_reason"].value_counts()
    send_at = pd.to_datetime(touches["send_at"], utc=True) if not touches.empty else pd.Series(dtype=object)
    return JourneyReport(
        journey=journey,
        entered=decision.counts["entered"],
        active=decision.counts["active"],
        exits=Counter({str(k): int(v) for k, v in exits.items()}),
        steps=steps,
        ctas_created=len(ctas),
        ctas_by_assignee=Counter(ctas["assignee"]) if not ctas.empty else Counter(),
        skipped={k: v for k, v in decision.counts.items() if k not in ("entered", "active")}
        | {"cap": len(plan.deferred)},
        after_hours=int((send_at > pd.Timestamp(run_at)).sum()) if len(send_at) else 0,
        seconds=seconds,
        quiet_hours_held=quiet_hours_held,
    )
