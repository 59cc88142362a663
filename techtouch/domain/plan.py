"""Turn account-level actions into touches per contact: recipients, caps, send times, CTAs.

Vectorized too: a merge of actions with contacts, one send time per timezone (the run instant
is the same for everyone), and the caps as day histograms per message.

The frequency cap counts on the day the customer receives a message: the local date of its
`send_at` in the recipient's timezone, not the run's `as_of`. A weekend run schedules for Monday,
so Monday's run finds that message on Monday and the contact's next one waits; the rolling 7 days
are 7 local days too, and every 7-day window that holds the new message's day counts (messages
already scheduled for a later day included).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from techtouch.domain.decide import Decision
from techtouch.domain.policy import Delivery
from techtouch.domain.statuses import EnrollmentPhase, EnrollmentStatus, TouchStatus

MESSAGE_CHANNELS = ("email", "sms")


@dataclass
class Plan:
    touches: (
        pd.DataFrame
    )  # key, account_id, cycle, contact_id, milestone, rung, channel, sender, template, status, send_at
    ctas: pd.DataFrame  # touch_key, account_id, cycle, reason, title, priority, assignee, due_date, why, …
    # Accounts whose message waits for a later day (frequency cap): nothing is recorded for them,
    # so "deferred" is never a touch status; their positions are put back (revert_deferred).
    deferred: set[str]


def touch_key(
    journey: str,
    account_id: pd.Series,
    cycle: pd.Series,
    milestone: pd.Series,
    rung: pd.Series,
    contact: pd.Series,
) -> pd.Series:
    """(enrollment, milestone, rung, contact): the enrollment is (journey, account, cycle)."""
    return (
        journey
        + "/"
        + account_id.astype(str)
        + "/"
        + cycle.astype(str)
        + "/"
        + milestone.astype(str)
        + "/"
        + rung.astype(str)
        + "/"
        + contact.fillna("-").astype(str)
    )


def send_time(run_at: datetime, zone: ZoneInfo, delivery: Delivery) -> datetime:
    """The first instant at or after `run_at` inside the recipient's local business hours."""
    start, end = time.fromisoformat(delivery.business_start), time.fromisoformat(delivery.business_end)
    local = run_at.astimezone(zone)
    for offset in range(8):
        day = local.date() + timedelta(days=offset)
        if day.weekday() not in delivery.business_days:
            continue
        opens = datetime.combine(day, start, tzinfo=zone)
        closes = datetime.combine(day, end, tzinfo=zone)
        candidate = max(opens, local)
        if candidate < closes:
            return candidate.astimezone(UTC)
    raise ValueError("no business day within a week: check delivery.business_days")  # pragma: no cover


def plan_touches(
    decision: Decision,
    accounts: pd.DataFrame,
    contacts: pd.DataFrame,
    roles: list[str],
    caps: pd.DataFrame,
    delivery: Delivery,
    run_at: datetime,
    default_zone: str,
    team_queue: str,
) -> Plan:
    actions = decision.actions
    journey = decision.journey
    messages = actions[actions["channel"].isin(MESSAGE_CHANNELS) & (actions["kind"] != "skip")]
    recipients = contacts[contacts["role"].isin(roles)]
    expanded = messages.merge(recipients, on="account_id", how="inner")
    ok = np.where(expanded["channel"] == "email", expanded["email_ok"], expanded["sms_ok"])
    expanded = expanded[ok.astype(bool)].copy()

    # Send time first: the cap counts on the recipient's local day of it (module docstring).
    zones = expanded["timezone"].fillna(expanded["account_id"].map(accounts["timezone"])).fillna(default_zone)
    send_at = {z: send_time(run_at, ZoneInfo(z), delivery) for z in zones.unique()}
    expanded = expanded.assign(send_at=zones.map(send_at), status=TouchStatus.PENDING)

    # Frequency cap: what each contact already has on that day / in any 7 days around it, plus this message.
    today, week = day_counts(expanded["contact_id"], expanded["send_at"], zones, caps)
    over = (today + 1 > delivery.max_per_day) | (week + 1 > delivery.max_per_7d)
    deferred = set(expanded.loc[over, "account_id"])
    expanded = expanded[~expanded["account_id"].isin(deferred)]

    skipped = actions[actions["kind"] == "skip"].assign(
        contact_id=None, send_at=None, status=TouchStatus.SKIPPED
    )
    # CREATED until record() finds an open CTA for the same reason (then DEDUPLICATED).
    ctas = actions[actions["channel"] == "cta"].assign(
        contact_id=None, send_at=None, status=TouchStatus.CREATED
    )
    touches = (
        pd.concat([frame for frame in (expanded, skipped, ctas) if not frame.empty], ignore_index=True)
        if not (expanded.empty and skipped.empty and ctas.empty)
        else pd.DataFrame(columns=_TOUCH_COLUMNS)
    )
    touches = touches[~touches["account_id"].isin(deferred)]
    if not touches.empty:
        touches["key"] = touch_key(
            journey,
            touches["account_id"],
            touches["cycle"],
            touches["milestone"],
            touches["rung"],
            touches["contact_id"],
        )
        touches.loc[touches["channel"] == "cta", "sender"] = None
        csm = touches["account_id"].map(accounts["csm_email"])
        is_csm = touches["sender"] == "csm"
        touches.loc[is_csm, "sender"] = np.where(csm[is_csm].notna(), "csm", "success")
    touches = touches.reindex(columns=_TOUCH_COLUMNS)

    cta_touches = touches[touches["channel"] == "cta"]
    due_days = cta_touches["priority"].map(delivery.cta_due_days).fillna(3)
    due_days = cta_touches["due_in"].fillna(due_days).astype(int)
    cta_rows = pd.DataFrame(
        {
            "touch_key": cta_touches["key"],
            "account_id": cta_touches["account_id"],
            "cycle": cta_touches["cycle"],
            "milestone": cta_touches["milestone"],
            "rung": cta_touches["rung"],
            "reason": cta_touches["reason"],
            "title": cta_touches["title"],
            "priority": cta_touches["priority"].fillna("medium"),
            "assignee": cta_touches["account_id"].map(accounts["csm_email"]).fillna(team_queue),
            "due_date": [decision.as_of + timedelta(days=int(d)) for d in due_days],
            "kind": cta_touches["kind"],
            "why": cta_touches["why"],
            "outcomes": cta_touches["outcomes"],
        }
    )
    return Plan(
        touches=touches.reset_index(drop=True), ctas=cta_rows.reset_index(drop=True), deferred=deferred
    )


_TOUCH_COLUMNS = [
    "key",
    "account_id",
    "cycle",
    "contact_id",
    "milestone",
    "rung",
    "kind",
    "channel",
    "sender",
    "template",
    "status",
    "send_at",
    "title",
    "reason",
    "priority",
    "due_in",
    "why",
    "outcomes",
]


WEEK = 7  # the rolling window of `max_per_7d`, in local days


def cap_ledger(frame: pd.DataFrame | None = None) -> pd.DataFrame:
    """What the caps count: one row per automated message (contact_id, send_at as aware UTC)."""
    if frame is None or frame.empty:
        return pd.DataFrame(
            {"contact_id": pd.Series(dtype=object), "send_at": pd.Series(dtype="datetime64[ns, UTC]")}
        )
    return pd.DataFrame(
        {
            "contact_id": frame["contact_id"].to_numpy(dtype=object),
            "send_at": pd.to_datetime(frame["send_at"], utc=True).reset_index(drop=True),
        }
    )


def local_days(instants: pd.Series, zones: pd.Series) -> np.ndarray:
    """The local calendar day (days since 1970-01-01) of each instant in its zone; one pass per zone."""
    stamps = pd.to_datetime(instants, utc=True).reset_index(drop=True)
    out = np.zeros(len(stamps), dtype=np.int64)
    for zone, positions in pd.Series(zones.to_numpy()).groupby(zones.to_numpy()).indices.items():
        wall = stamps.iloc[positions].dt.tz_convert(str(zone)).dt.tz_localize(None)
        out[positions] = wall.to_numpy().astype("datetime64[D]").astype(np.int64)
    return out


def day_counts(
    contact_id: pd.Series, send_at: pd.Series, zones: pd.Series, ledger: pd.DataFrame
) -> tuple[np.ndarray, np.ndarray]:
    """For each new message: the contact's messages on its local send day, and the most in any
    7 local days that include that day (the rolling window may lie before or after it).

    Vectorized: the ledger rows of each message's contact, as offsets in days from its send day,
    go into a (messages x 13 days) histogram whose 7-day sums are read off its cumulative sum.
    """
    n = len(contact_id)
    if n == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    days = local_days(send_at, zones)
    messages = pd.DataFrame(
        {
            "row": np.arange(n),
            "contact_id": contact_id.to_numpy(dtype=object),
            "zone": zones.to_numpy(dtype=object),
            "day": days,
        }
    )
    pairs = messages.merge(cap_ledger(ledger), on="contact_id", how="inner")
    span = 2 * WEEK - 1  # offsets -6 … +6
    histogram = np.zeros((n, span), dtype=np.int64)
    if not pairs.empty:
        offset = local_days(pairs["send_at"], pairs["zone"]) - pairs["day"].to_numpy()
        near = np.abs(offset) < WEEK
        np.add.at(histogram, (pairs["row"].to_numpy()[near], offset[near] + WEEK - 1), 1)
    cumulative = np.concatenate([np.zeros((n, 1), dtype=np.int64), histogram.cumsum(axis=1)], axis=1)
    windows = cumulative[:, WEEK:] - cumulative[:, :WEEK]  # windows starting 6 … 0 days before
    return histogram[:, WEEK - 1], windows.max(axis=1)


def add_to_caps(caps: pd.DataFrame, touches: pd.DataFrame) -> pd.DataFrame:
    """The cap ledger after this journey's messages: later journeys in the same run see them."""
    sent = touches[touches["channel"].isin(MESSAGE_CHANNELS) & (touches["status"] == TouchStatus.PENDING)]
    if sent.empty:
        return caps
    return pd.concat([cap_ledger(caps), cap_ledger(sent)], ignore_index=True)


def revert_deferred(decision: Decision, deferred: set[str], as_of: date) -> pd.DataFrame:
    """Positions with the deferred accounts put back: existing ones unchanged, new ones just entered."""
    positions = decision.enrollments
    if not deferred:
        return positions
    mask = positions["account_id"].isin(deferred)
    keep_new = positions[mask & positions["is_new"]].copy()
    if not keep_new.empty:
        keep_new = keep_new.assign(
            phase=EnrollmentPhase.PENDING,
            step=0,
            next_due=as_of,
            last_touch_as_of=None,
            status=EnrollmentStatus.ACTIVE,
            exited_as_of=None,
            exit_reason=None,
        )
        first = decision.first_milestone
        keep_new["milestone"] = first
        keep_new["milestone_since"] = as_of
    return pd.concat([positions[~mask], keep_new], ignore_index=True)
