"""Per-account signals read from the database as pandas frames, one row per account.

Aggregation happens in SQL (one GROUP BY over a 60-day window) so that a run reads
one row per account, not one per account-day.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pandas as pd
from sqlalchemy import Connection, text

USAGE_SQL = text(
    """
    SELECT account_id,
           SUM(CASE WHEN date >= :d30 THEN key_actions ELSE 0 END)        AS key_actions_30d,
           SUM(CASE WHEN date < :d30 THEN key_actions ELSE 0 END)         AS key_actions_prev_30d,
           SUM(CASE WHEN date >= :d14 THEN logins ELSE 0 END)             AS logins_14d,
           SUM(CASE WHEN date >= :d7 THEN active_users ELSE 0 END)        AS active_users_sum_7d,
           SUM(CASE WHEN date >= :d7 THEN key_actions ELSE 0 END)         AS key_actions_7d,
           SUM(CASE WHEN date >= :d30 AND logins > 0 THEN 1 ELSE 0 END)   AS active_days_30d
    FROM usage_daily
    WHERE date >= :d60 AND date < :as_of
    GROUP BY account_id
    """
)


def usage_signals(connection: Connection, as_of: date) -> pd.DataFrame:
    """Usage over the days before `as_of` (the run happens before the day's usage exists)."""
    params = {f"d{n}": as_of - timedelta(days=n) for n in (7, 14, 30, 60)} | {"as_of": as_of}
    frame = pd.read_sql_query(USAGE_SQL, connection, params=params, index_col="account_id")
    frame = frame.astype("int64")
    frame["active_users_7d"] = frame.pop("active_users_sum_7d") / 7.0
    prev = frame["key_actions_prev_30d"].where(frame["key_actions_prev_30d"] > 0)
    frame["usage_change_30d"] = frame["key_actions_30d"] / prev - 1.0
    return frame


EVENTS_SQL = text(
    """
    SELECT e.account_id, e.type, e.value, e.occurred_at
    FROM events e
    WHERE e.occurred_at < :cutoff
      AND e.type IN ('milestone', 'survey', 'renewal_signed', 'email_opened', 'email_clicked')
    """
)


def latest_events(connection: Connection, cutoff: datetime) -> pd.DataFrame:
    """Milestone flags, latest survey answers and last renewal signature per account.

    Columns: `milestone.<name>` (bool), `survey.<name>` (latest answer, str),
    `renewal_signed_at` (naive UTC datetime or NaT), `opened_30d` and `clicked_30d` (counts).
    """
    naive_cutoff = cutoff.astimezone(UTC).replace(tzinfo=None)  # stored as naive UTC
    events = pd.read_sql_query(EVENTS_SQL, connection, params={"cutoff": naive_cutoff})
    events["occurred_at"] = pd.to_datetime(events["occurred_at"])
    parts: list[pd.DataFrame | pd.Series] = []

    milestones = events[events["type"] == "milestone"]
    if not milestones.empty:
        flags = pd.crosstab(milestones["account_id"], milestones["value"]).gt(0)
        flags.columns = [f"milestone.{name}" for name in flags.columns]
        parts.append(flags)

    surveys = events[events["type"] == "survey"].copy()
    if not surveys.empty:
        split = surveys["value"].str.split(":", n=1, expand=True)
        surveys["survey"], surveys["answer"] = split[0], split[1]
        latest = surveys.sort_values("occurred_at").groupby(["account_id", "survey"])["answer"].last()
        answers = latest.unstack("survey")
        answers.columns = [f"survey.{name}" for name in answers.columns]
        parts.append(answers)

    signed = events[events["type"] == "renewal_signed"]
    if not signed.empty:
        parts.append(signed.groupby("account_id")["occurred_at"].max().rename("renewal_signed_at"))

    recent = events[events["occurred_at"] >= pd.Timestamp(naive_cutoff) - pd.Timedelta(days=30)]
    for kind in ("email_opened", "email_clicked"):
        hits = recent[recent["type"] == kind]
        if not hits.empty:
            parts.append(hits.groupby("account_id").size().rename(f"{kind.removeprefix('email_')}_30d"))

    if not parts:
        return pd.DataFrame(index=pd.Index([], name="account_id"))
    frame = pd.concat(parts, axis=1)
    frame.index.name = "account_id"
    return frame
