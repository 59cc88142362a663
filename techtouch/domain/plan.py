"""Turn account-level actions into touches per contact: recipients, caps, send times, CTAs.

Vectorized too: a merge of actions with contacts, group counts for the caps, and one
send time per timezone (the run instant is the same for everyone).
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
    ctas: pd.DataFrame  # touch_key, account_id, cycle, reason, title, priority, assignee, due_date
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

    # Frequency cap: count what each contact already has today / this week, plus this message.
    counts = caps.reindex(expanded["contact_id"]).fillna(0).to_numpy()
    over = (counts[:, 0] + 1 > delivery.max_per_day) | (counts[:, 1] + 1 > delivery.max_per_7d)
    deferred = set(expanded.loc[over, "account_id"])
    expanded = expanded[~expanded["account_id"].isin(deferred)]

    zones = expanded["timezone"].fillna(expanded["account_id"].map(accounts["timezone"])).fillna(default_zone)
    send_at = {z: send_time(run_at, ZoneInfo(z), delivery) for z in zones.unique()}
    expanded = expanded.assign(send_at=zones.map(send_at), status=TouchStatus.PENDING)

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
]


def add_to_caps(caps: pd.DataFrame, touches: pd.DataFrame) -> pd.DataFrame:
    """Caps after this journey's messages: later journeys in the same run see them."""
    sent = touches[touches["channel"].isin(MESSAGE_CHANNELS) & (touches["status"] == TouchStatus.PENDING)]
    if sent.empty:
        return caps
    extra = sent.groupby("contact_id").size()
    merged = caps.reindex(caps.index.union(extra.index)).fillna(0)
    merged["today"] += extra.reindex(merged.index).fillna(0)
    merged["week"] += extra.reindex(merged.index).fillna(0)
    return merged.astype(np.int64)


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
