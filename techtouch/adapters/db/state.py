"""Load state: SQL → pandas frames that `decide` reads, one row per account (or contact).

Account state is loaded once per run and shared by every journey; only enrollment
position and engagement are per journey.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta

import pandas as pd
from sqlalchemy import Connection, Select, String, and_, or_, select, text, type_coerce

from techtouch.adapters.db.bulk import one_of
from techtouch.adapters.db.models import Account, Cta, Enrollment, HealthSnapshot, Touch, sql_in
from techtouch.adapters.db.sharding import account_in_shard, and_in_shard, in_shard
from techtouch.adapters.db.signals import SUMS as USAGE_SUMS
from techtouch.adapters.db.signals import latest_events, usage_signals
from techtouch.domain.decide import BRANCH_PREFIX, GOAL_MILESTONE, REQUEST_MILESTONE
from techtouch.domain.health import DIMENSIONS, score_health
from techtouch.domain.plan import cap_ledger
from techtouch.domain.policy import HealthModel
from techtouch.domain.shards import ALL, Shard
from techtouch.domain.statuses import (
    ENGAGED_DELIVERY_STATUSES,
    ENGAGED_TOUCH_STATUSES,
    UNSENT_TOUCH_STATUSES,
    UNSETTLED_TOUCH_STATUSES,
    DeliveryStatus,
    EnrollmentStatus,
    TouchStatus,
)


def load_accounts(
    connection: Connection, as_of: date, cutoff: datetime, model: HealthModel, shard: Shard = ALL
) -> pd.DataFrame:
    """Every account (of the shard) with its signals, health and derived day counts, by account_id."""
    accounts = pd.read_sql_query(
        select(
            Account.id.label("account_id"),
            Account.name,
            Account.segment,
            Account.arr,
            Account.start_date,
            Account.renewal_date,
            Account.csm_email,
            Account.timezone,
            Account.paused_until,
            Account.is_advocate,
        ).where(account_in_shard(shard)),
        connection,
        index_col="account_id",
    )
    frame = accounts.join(usage_signals(connection, as_of, shard), how="left").join(
        latest_events(connection, cutoff, shard), how="left"
    )
    today = pd.Timestamp(as_of)
    naive_cutoff = pd.Timestamp(cutoff.astimezone(UTC).replace(tzinfo=None))
    start = pd.to_datetime(frame["start_date"])
    renewal = pd.to_datetime(frame["renewal_date"])
    paused_until = pd.to_datetime(frame["paused_until"])
    frame["days_since_start"] = (today - start).dt.days
    frame["days_to_renewal"] = (renewal - today).dt.days
    frame["paused"] = paused_until.notna() & (paused_until > today)
    frame["has_csm"] = frame["csm_email"].notna()
    frame["is_advocate"] = frame["is_advocate"].astype(bool)
    for column in USAGE_SUMS:
        frame[column] = frame[column].fillna(0).astype("int64") if column in frame else 0
    frame["active_users_7d"] = frame["active_users_7d"].fillna(0.0) if "active_users_7d" in frame else 0.0
    frame["baseline_key_actions_7d"] = frame["key_actions_prev_30d"] * 7.0 / 30.0
    live_at = frame["milestone_at.live"] if "milestone_at.live" in frame else pd.Series(pd.NaT, frame.index)
    frame["days_since_live"] = (naive_cutoff - pd.to_datetime(live_at)).dt.days
    signed_at = frame.get("renewal_signed_at", pd.Series(pd.NaT, index=frame.index))
    # A signature counts for the renewal it precedes (within the year before renewal_date).
    frame["renewal_signed"] = signed_at.notna() & (
        pd.to_datetime(signed_at) >= renewal - pd.Timedelta(days=365)
    )
    health = score_health(frame, model)
    frame["health"] = health["score"]
    frame["health_color"] = health["color"]
    for dimension in DIMENSIONS:  # kept for the day's snapshot (services.health), not for conditions
        frame[f"health_{dimension}_score"] = health[f"{dimension}_score"]
    return frame


def load_delivery_accounts(connection: Connection, as_of: date, shard: Shard = ALL) -> pd.DataFrame | None:
    """The accounts (of the shard) with an unsettled message, with what a message's context reads
    of them (render.context.ACCOUNT_COLUMNS), from the accounts and the day's health snapshot,
    which the day's run wrote from the very frame it ran on (services.health.health_of_run): the
    hourly delivery then reads a few columns of the accounts it delivers to, not every account's
    signals (at 1M accounts, 80 s and 2 GB every hour). None when an account it would deliver to
    has no snapshot of the day (the day's run has not run yet): the caller loads the state."""
    unsettled = (
        select(Touch.account_id)
        .where(
            Touch.status.in_(UNSETTLED_TOUCH_STATUSES),
            Touch.channel.in_(("email", "sms")),
            in_shard(shard, Touch.account_id),
        )
        .distinct()
    )
    frame = pd.read_sql_query(
        select(
            Account.id.label("account_id"),
            Account.name,
            Account.segment,
            Account.arr,
            Account.renewal_date,
            Account.csm_email,
            HealthSnapshot.score.label("health"),
            HealthSnapshot.color.label("health_color"),
            HealthSnapshot.usage_change_30d,
            HealthSnapshot.key_actions_30d,
            HealthSnapshot.logins_14d,
            HealthSnapshot.active_users_7d,
        )
        .outerjoin(
            HealthSnapshot, and_(HealthSnapshot.account_id == Account.id, HealthSnapshot.as_of == as_of)
        )
        .where(Account.id.in_(unsettled)),
        connection,
        index_col="account_id",
    )
    if frame["health"].isna().any():
        return None
    frame["days_to_renewal"] = (pd.to_datetime(frame["renewal_date"]) - pd.Timestamp(as_of)).dt.days
    frame["key_actions_30d"] = frame["key_actions_30d"].astype("int64")
    frame["logins_14d"] = frame["logins_14d"].astype("int64")
    frame["active_users_7d"] = frame["active_users_7d"].astype(float)
    return frame


CONTACTS_SQL = """
    SELECT c.id AS contact_id, c.account_id, c.role, c.timezone,
           c.email_consent, c.sms_consent, c.phone IS NOT NULL AS has_phone,
           se.channel IS NOT NULL AS email_suppressed,
           ss.channel IS NOT NULL AS sms_suppressed
    FROM contacts c
    LEFT JOIN suppressions se ON se.contact_id = c.id AND se.channel = 'email'
    LEFT JOIN suppressions ss ON ss.contact_id = c.id AND ss.channel = 'sms'
    WHERE 1 = 1{shard}
    """


def load_contacts(connection: Connection, shard: Shard = ALL) -> pd.DataFrame:
    """Contacts (of the shard's accounts) and whether each channel may reach them today (consent,
    phone, suppressions).

    No names, addresses or numbers here: decisions need reachability only, and frames end up in logs.
    """
    sql = text(CONTACTS_SQL.format(shard=and_in_shard(shard, "c.account_id")))
    frame = pd.read_sql_query(sql, connection)
    for column in ("email_consent", "sms_consent", "has_phone", "email_suppressed", "sms_suppressed"):
        frame[column] = frame[column].astype(bool)
    frame["email_ok"] = frame["email_consent"] & ~frame["email_suppressed"]
    frame["sms_ok"] = frame["sms_consent"] & frame["has_phone"] & ~frame["sms_suppressed"]
    return frame[["contact_id", "account_id", "role", "timezone", "email_ok", "sms_ok"]]


def reachability(contacts: pd.DataFrame, roles: list[str]) -> pd.DataFrame:
    """Per account: how many of the journey's recipients each channel reaches."""
    chosen = contacts[contacts["role"].isin(roles)]
    counts = chosen.groupby("account_id")[["email_ok", "sms_ok"]].sum()
    counts.columns = ["n_email_ok", "n_sms_ok"]
    counts["n_recipients"] = chosen.groupby("account_id").size()
    return counts


ENROLLMENT_COLUMNS = [
    "id",
    "account_id",
    "cycle",
    "status",
    "entered_as_of",
    "exited_as_of",
    "exit_reason",
    "milestone",
    "phase",
    "step",
    "next_due",
    "milestone_since",
    "last_touch_as_of",
    "entry",
]


def load_enrollments(connection: Connection, journey: str, shard: Shard = ALL) -> pd.DataFrame:
    """The latest enrollment of each account (of the shard) in `journey`, indexed by account_id."""
    columns = [getattr(Enrollment, c) for c in ENROLLMENT_COLUMNS]
    query = select(*columns).where(Enrollment.journey == journey, in_shard(shard, Enrollment.account_id))
    frame = pd.read_sql_query(query, connection)
    frame = frame.sort_values(["account_id", "cycle"]).drop_duplicates("account_id", keep="last")
    return frame.set_index("account_id")


# The touch's own status (the simulator's), its provider verdict (delivery_status) or an event naming it:
# a verdict comes from such an event, so counting it changes nothing where the events are kept.
# Per milestone also the day its ladder last took a rung (`last_rung`: a message, a skipped rung or
# a CTA) and whether a branch fired (`branched`): a milestone whose ladder ran out keeps its branches
# armed for `respond_within` days after that day (techtouch.domain.decide), derived from the touches
# themselves, so no column remembers it.
ENGAGEMENT_SQL = f"""
    SELECT t.enrollment_id, t.milestone,
           MAX(CASE WHEN t.channel = 'email'
                     AND ({sql_in("t.status", ENGAGED_TOUCH_STATUSES)}
                          OR {sql_in("t.delivery_status", ENGAGED_DELIVERY_STATUSES)}
                          OR e.type IN ('email_opened', 'email_clicked')) THEN 1 ELSE 0 END) AS opened,
           MAX(CASE WHEN t.channel = 'email'
                     AND (t.status = '{TouchStatus.CLICKED}'
                          OR t.delivery_status = '{DeliveryStatus.CLICKED}'
                          OR e.type = 'email_clicked')
                    THEN 1 ELSE 0 END) AS clicked,
           MAX(CASE WHEN SUBSTR(t.rung, 1, {len(BRANCH_PREFIX)}) <> '{BRANCH_PREFIX}'
                    THEN t.as_of END) AS last_rung,
           MAX(CASE WHEN SUBSTR(t.rung, 1, {len(BRANCH_PREFIX)}) = '{BRANCH_PREFIX}'
                    THEN 1 ELSE 0 END) AS branched
    FROM touches t
    JOIN enrollments n ON n.id = t.enrollment_id AND n.status = '{EnrollmentStatus.ACTIVE}'
    LEFT JOIN events e ON e.value = t.key AND e.type IN ('email_opened', 'email_clicked')
    WHERE t.journey = :journey AND t.milestone NOT IN ('{GOAL_MILESTONE}', '{REQUEST_MILESTONE}'){{shard}}
    GROUP BY t.enrollment_id, t.milestone
    """


def load_engagement(connection: Connection, journey: str, shard: Shard = ALL) -> pd.DataFrame:
    """Per active enrollment (of the shard) and milestone: opened/clicked (touch status, verdict or
    an event naming it), the day of its last ladder rung (`last_rung`, NaT if none) and whether a
    branch fired."""
    sql = text(ENGAGEMENT_SQL.format(shard=and_in_shard(shard, "n.account_id")))
    frame = pd.read_sql_query(sql, connection, params={"journey": journey})
    frame[["opened", "clicked", "branched"]] = frame[["opened", "clicked", "branched"]].astype(bool)
    frame["last_rung"] = pd.to_datetime(frame["last_rung"], errors="coerce")
    return frame


def load_requests(
    connection: Connection, journey: str, enrollments: pd.DataFrame, shard: Shard = ALL
) -> pd.DataFrame:
    """`requested@<id>` per account: the account's current enrollment (`enrollments`, by
    account_id, with its `cycle`) already raised that customer request (a touch of it exists)."""
    rows = pd.read_sql_query(
        select(Touch.account_id, Enrollment.cycle, Touch.rung)
        .join(Enrollment, Enrollment.id == Touch.enrollment_id)
        .where(
            Touch.journey == journey,
            Touch.milestone == REQUEST_MILESTONE,
            in_shard(shard, Touch.account_id),
        )
        .distinct(),
        connection,
    )
    if rows.empty or enrollments.empty:
        return pd.DataFrame(index=pd.Index([], name="account_id"))
    current = rows["cycle"].to_numpy() == rows["account_id"].map(enrollments["cycle"]).to_numpy()
    rows = rows[current]
    if rows.empty:
        return pd.DataFrame(index=pd.Index([], name="account_id"))
    wide = pd.crosstab(rows["account_id"], rows["rung"]).astype(bool)
    wide.columns = [f"requested@{rung}" for rung in wide.columns]
    return wide


def load_cta_state(
    connection: Connection, reasons: list[str], as_of: date, shard: Shard = ALL
) -> pd.DataFrame:
    """Per account, its latest CTA of each reason in `reasons`: `cta.<reason>.status`, `.outcome`,
    `.priority`, `.days_open` (to its closing day once closed, else to `as_of`) and
    `cta_created.<reason>` (its creation day; decide hides a CTA older than the enrollment)."""
    if not reasons:
        return pd.DataFrame(index=pd.Index([], name="account_id"))
    frame = pd.read_sql_query(
        select(
            Cta.id,
            Cta.account_id,
            Cta.reason,
            Cta.status,
            Cta.outcome,
            Cta.priority,
            Cta.created_as_of,
            Cta.closed_as_of,
        ).where(Cta.reason.in_(reasons), in_shard(shard, Cta.account_id)),
        connection,
    )
    if frame.empty:
        return pd.DataFrame(index=pd.Index([], name="account_id"))
    latest = frame.sort_values("id").drop_duplicates(["account_id", "reason"], keep="last")
    created = pd.to_datetime(latest["created_as_of"])
    until = pd.to_datetime(latest["closed_as_of"]).fillna(pd.Timestamp(as_of))
    latest = latest.assign(days_open=(until - created).dt.days.astype(float), created=created)
    parts = []
    for field, prefix in (
        ("status", "cta.{}.status"),
        ("outcome", "cta.{}.outcome"),
        ("priority", "cta.{}.priority"),
        ("days_open", "cta.{}.days_open"),
        ("created", "cta_created.{}"),
    ):
        wide = latest.pivot(index="account_id", columns="reason", values=field)
        wide.columns = [prefix.format(reason) for reason in wide.columns]
        parts.append(wide)
    return pd.concat(parts, axis=1)


# Every message recorded for the contact counts, whatever became of it, except those that reached
# nobody (a capped message is not recorded at all: it waits for a later day). The caps count on the
# recipient's local day of `send_at` (techtouch.domain.plan), so this loads each message's send time,
# not counts: every one that can share a 7-day window with a message planned today. A run schedules
# at most a week ahead, so from 8 days before `as_of` to 16 after covers it with a day to spare for
# time zones. A message without a send time (none is written so) counts at noon UTC of its `as_of`.
def _caps_query(as_of: date, shard: Shard) -> Select[tuple[str | None, str, date]]:
    start = datetime.combine(as_of - timedelta(days=8), time(0), tzinfo=UTC)
    end = datetime.combine(as_of + timedelta(days=16), time(0), tzinfo=UTC)
    # send_at as stored (naive UTC; text on SQLite), not one aware datetime per row: pandas parses
    # the column in one pass (load_cap_counts).
    stored = type_coerce(Touch.send_at, String)
    return select(Touch.contact_id, stored, Touch.as_of).where(
        Touch.contact_id.is_not(None),
        Touch.channel.in_(("email", "sms")),
        Touch.status.not_in(UNSENT_TOUCH_STATUSES),
        in_shard(shard, Touch.account_id),
        or_(
            and_(Touch.send_at >= start, Touch.send_at < end),
            and_(Touch.send_at.is_(None), Touch.as_of > as_of - timedelta(days=7), Touch.as_of <= as_of),
        ),
    )


CAPS_BATCH = 5_000  # account ids per query (SQLite allows 32,766 parameters)
CAPS_BATCH_POSTGRES = 100_000  # account ids per query on PostgreSQL (one array parameter)


def load_cap_counts(
    connection: Connection, as_of: date, shard: Shard = ALL, accounts: Sequence[str] | None = None
) -> pd.DataFrame:
    """What the frequency caps count (domain.plan.cap_ledger): contact_id and send_at (aware UTC) of
    every automated message planned for a day near `as_of` (to the shard's accounts: a contact
    belongs to one account, so to one shard), to be counted by the recipient's day.

    `accounts`: only these accounts' contacts (a journey's candidates today, a few thousand at
    most), instead of every message of the last weeks."""
    if accounts is None:
        rows = list(connection.execute(_caps_query(as_of, shard)).all())
    else:
        ids = sorted(set(accounts))
        rows = []
        # PostgreSQL: `= ANY(array)` (bulk.one_of), one parameter, so batches can be large.
        postgres = connection.dialect.name == "postgresql"
        size = CAPS_BATCH_POSTGRES if postgres else CAPS_BATCH
        for start in range(0, len(ids), size):
            chunk = ids[start : start + size]
            where = one_of(connection, Touch.account_id, chunk)
            rows += connection.execute(_caps_query(as_of, ALL).where(where)).all()
    columns = list(zip(*rows, strict=True))  # column-wise: fast
    if not columns:
        return cap_ledger()
    frame = pd.DataFrame(dict(zip(["contact_id", "send_at", "as_of"], columns, strict=True)))
    noon = pd.to_datetime(frame["as_of"]) + pd.Timedelta(hours=12)
    send_at = pd.to_datetime(frame["send_at"], utc=True, format="ISO8601").fillna(noon.dt.tz_localize(UTC))
    return cap_ledger(frame.assign(send_at=send_at))
