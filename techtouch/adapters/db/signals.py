"""Per-account signals read from the database as pandas frames, one row per account.

Aggregation happens in SQL (one GROUP BY over a 60-day window) so that a run reads
one row per account, not one per account-day.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pandas as pd
from sqlalchemy import Connection, DateTime, TextClause, bindparam, text

from techtouch.adapters.db.sharding import and_in_shard
from techtouch.domain.shards import ALL, Shard

# The window sums a run reads. Each is a sum over whole days before `as_of`, so a day's sums
# follow from an earlier day's by adding the days that entered each window and taking out the
# days that left it: the incremental path below.
SUMS = (
    "key_actions_30d",  # [as_of - 30, as_of)
    "key_actions_prev_30d",  # [as_of - 60, as_of - 30)
    "logins_14d",  # [as_of - 14, as_of)
    "active_users_sum_7d",  # [as_of - 7, as_of)
    "key_actions_7d",  # [as_of - 7, as_of)
    "active_days_30d",  # days with a login in [as_of - 30, as_of)
)
# Kept with each day's health snapshot: a later day's run starts from them.
ROLLUP_COLUMNS = ("key_actions_prev_30d", "key_actions_7d", "active_users_sum_7d", "active_days_30d")
INCREMENTAL_DAYS = 7  # a snapshot up to a week old is a base; an older one, or none: from the raw rows

USAGE_SQL = """
    SELECT u.account_id,
           SUM(CASE WHEN u.date >= :d30 THEN u.key_actions ELSE 0 END)        AS key_actions_30d,
           SUM(CASE WHEN u.date < :d30 THEN u.key_actions ELSE 0 END)         AS key_actions_prev_30d,
           SUM(CASE WHEN u.date >= :d14 THEN u.logins ELSE 0 END)             AS logins_14d,
           SUM(CASE WHEN u.date >= :d7 THEN u.active_users ELSE 0 END)        AS active_users_sum_7d,
           SUM(CASE WHEN u.date >= :d7 THEN u.key_actions ELSE 0 END)         AS key_actions_7d,
           SUM(CASE WHEN u.date >= :d30 AND u.logins > 0 THEN 1 ELSE 0 END)   AS active_days_30d
    FROM {source}
    WHERE {day} >= :d60 AND {day} < :as_of{shard}
    GROUP BY u.account_id
    """
# The accounts a base snapshot does not cover (new since, or their usage changed after it was
# taken: the importer cleared its sums), from their own rows: accounts first, then each one's rows
# by the (account_id, date) key, never a scan of every account's usage.
BASE_SNAPSHOT = (
    "SELECT 1 FROM health_snapshots h WHERE h.account_id = a.id AND h.as_of = :base "
    "AND h.active_days_30d IS NOT NULL"
)
UNCOVERED_SOURCE = "accounts a CROSS JOIN usage_daily u"
# Per account: what entered each window since the base day and what left it (bands of k days).
DELTA_SQL = """
    SELECT h.account_id,
           h.key_actions_30d + COALESCE(d.key_actions_in - d.key_actions_out30, 0)      AS key_actions_30d,
           h.key_actions_prev_30d + COALESCE(d.key_actions_out30 - d.key_actions_out60, 0)
                                                                                     AS key_actions_prev_30d,
           h.logins_14d + COALESCE(d.logins_in - d.logins_out14, 0)                       AS logins_14d,
           h.active_users_sum_7d + COALESCE(d.active_users_in - d.active_users_out7, 0)
                                                                                     AS active_users_sum_7d,
           h.key_actions_7d + COALESCE(d.key_actions_in - d.key_actions_out7, 0)          AS key_actions_7d,
           h.active_days_30d + COALESCE(d.active_in - d.active_out30, 0)                  AS active_days_30d
    FROM health_snapshots h
    LEFT JOIN (
        SELECT u.account_id,
               SUM(CASE WHEN {band_in} THEN u.key_actions ELSE 0 END)                 AS key_actions_in,
               SUM(CASE WHEN {band_out7} THEN u.key_actions ELSE 0 END)               AS key_actions_out7,
               SUM(CASE WHEN {band_out30} THEN u.key_actions ELSE 0 END)              AS key_actions_out30,
               SUM(CASE WHEN {band_out60} THEN u.key_actions ELSE 0 END)              AS key_actions_out60,
               SUM(CASE WHEN {band_in} THEN u.logins ELSE 0 END)                      AS logins_in,
               SUM(CASE WHEN {band_out14} THEN u.logins ELSE 0 END)                   AS logins_out14,
               SUM(CASE WHEN {band_in} THEN u.active_users ELSE 0 END)                AS active_users_in,
               SUM(CASE WHEN {band_out7} THEN u.active_users ELSE 0 END)              AS active_users_out7,
               SUM(CASE WHEN {band_in} AND u.logins > 0 THEN 1 ELSE 0 END)            AS active_in,
               SUM(CASE WHEN {band_out30} AND u.logins > 0 THEN 1 ELSE 0 END)         AS active_out30
        FROM usage_daily u{date_index}
        WHERE u.date IN :days{usage_shard}
        GROUP BY u.account_id
    ) d ON d.account_id = h.account_id
    WHERE h.as_of = :base AND h.active_days_30d IS NOT NULL{shard}
    """


def usage_signals(connection: Connection, as_of: date, shard: Shard = ALL) -> pd.DataFrame:
    """Usage over the days before `as_of` (the run happens before the day's usage exists), of the
    shard's accounts: from the latest health snapshot of the week before plus the days that entered
    and left each window since (a few days of rows, not 60), and from the raw rows for the accounts
    it does not cover; from the raw rows alone when there is no such snapshot."""
    base = _base_day(connection, as_of, shard)
    if base is None:
        sums = _full_sums(connection, as_of, shard)
    else:
        sums = pd.concat(
            [_delta_sums(connection, as_of, base, shard), _uncovered_sums(connection, as_of, base, shard)]
        )
    return _derived(sums)


def usage_signals_from_rows(connection: Connection, as_of: date, shard: Shard = ALL) -> pd.DataFrame:
    """The same from the raw rows alone (60 days of every account): the reference of the
    incremental path, and its fallback."""
    return _derived(_full_sums(connection, as_of, shard))


def forget_window_sums(connection: Connection, account_ids: Iterable[str], first: date, last: date) -> int:
    """Usage of these accounts between `first` and `last` was written (imported again, or late):
    the snapshots whose windows hold those days are no base any more (their sums are cleared).

    A day d lies in the windows of the snapshots of d + 1 .. d + 60. The usual morning import of
    yesterday finds no such snapshot yet, so this is one indexed probe that changes nothing.
    """
    statement = text(
        f"UPDATE health_snapshots SET {', '.join(f'{c} = NULL' for c in ROLLUP_COLUMNS)} "
        "WHERE as_of > :first AND as_of <= :last AND active_days_30d IS NOT NULL "
        "AND account_id IN :ids"
    ).bindparams(bindparam("ids", expanding=True))
    ids = sorted(set(account_ids))
    changed = 0
    for start in range(0, len(ids), FORGET_BATCH):
        params = {"first": first, "last": last + timedelta(days=60), "ids": ids[start : start + FORGET_BATCH]}
        changed += connection.execute(statement, params).rowcount
    return changed


FORGET_BATCH = 5_000  # ids per statement (SQLite allows 32,766 parameters)


def _derived(sums: pd.DataFrame) -> pd.DataFrame:
    frame = sums.astype("int64")
    frame["active_users_7d"] = frame["active_users_sum_7d"] / 7.0
    prev = frame["key_actions_prev_30d"].where(frame["key_actions_prev_30d"] > 0)
    frame["usage_change_30d"] = frame["key_actions_30d"] / prev - 1.0
    return frame


def _windows(as_of: date) -> dict[str, date]:
    return {f"d{n}": as_of - timedelta(days=n) for n in (7, 14, 30, 60)} | {"as_of": as_of}


def _full_sums(connection: Connection, as_of: date, shard: Shard) -> pd.DataFrame:
    # SQLite would pick the date index and fetch 6M rows one by one; `+date` keeps it on the
    # clustered (account_id, date) scan, which is ~5x faster and needs no sort for the GROUP BY.
    day = "+u.date" if connection.dialect.name == "sqlite" else "u.date"
    sql = USAGE_SQL.format(source="usage_daily u", day=day, shard=and_in_shard(shard, "u.account_id"))
    return pd.read_sql_query(text(sql), connection, params=_windows(as_of), index_col="account_id")


def _base_day(connection: Connection, as_of: date, shard: Shard) -> date | None:
    """The latest day of the week before `as_of` with a snapshot (of the shard's accounts) that
    keeps its window sums: one indexed probe per day, newest first."""
    probe = text(
        "SELECT 1 FROM health_snapshots WHERE as_of = :day AND active_days_30d IS NOT NULL"
        f"{and_in_shard(shard, 'account_id')} LIMIT 1"
    )
    for back in range(1, INCREMENTAL_DAYS + 1):
        day = as_of - timedelta(days=back)
        if connection.execute(probe, {"day": day}).first() is not None:
            return day
    return None


def _delta_sums(connection: Connection, as_of: date, base: date, shard: Shard) -> pd.DataFrame:
    k = (as_of - base).days
    bands = {"in": 0, "out7": 7, "out14": 14, "out30": 30, "out60": 60}
    params: dict[str, Any] = {"base": base}
    conditions = {}
    days: set[date] = set()
    for name, back in bands.items():
        start, end = base - timedelta(days=back), as_of - timedelta(days=back)  # k days: [start, end)
        params[f"{name}_start"], params[f"{name}_end"] = start, end
        conditions[f"band_{name}"] = f"(u.date >= :{name}_start AND u.date < :{name}_end)"
        days.update(start + timedelta(days=i) for i in range(k))
    params["days"] = sorted(days)
    # SQLite: the date index finds these few days' rows (its clustered scan would read all 60).
    date_index = " INDEXED BY ix_usage_daily_date" if connection.dialect.name == "sqlite" else ""
    # The shard filters the days' rows too: otherwise each shard sums every account's (at 1M
    # accounts and 4 shards, a 1M-group aggregate that spilled to disk, four times a day).
    sql = DELTA_SQL.format(
        date_index=date_index,
        shard=and_in_shard(shard, "h.account_id"),
        usage_shard=and_in_shard(shard, "u.account_id"),
        **conditions,
    )
    statement = text(sql).bindparams(bindparam("days", expanding=True))
    frame = pd.read_sql_query(statement, connection, params=params, index_col="account_id")
    return frame[list(SUMS)]


def _uncovered_sums(connection: Connection, as_of: date, base: date, shard: Shard) -> pd.DataFrame:
    sql = USAGE_SQL.format(
        source=UNCOVERED_SOURCE,
        day="u.date",
        shard=f" AND u.account_id = a.id AND NOT EXISTS ({BASE_SNAPSHOT}){and_in_shard(shard, 'a.id')}",
    )
    params: dict[str, Any] = {**_windows(as_of), "base": base}
    return pd.read_sql_query(text(sql), connection, params=params, index_col="account_id")


MILESTONES_SQL = """
    SELECT account_id, value, MIN(occurred_at) AS first_at
    FROM events WHERE type = 'milestone' AND occurred_at < :cutoff{shard}
    GROUP BY account_id, value
    """
SURVEYS_SQL = """
    SELECT account_id, value, MAX(occurred_at) AS last_at
    FROM events WHERE type = 'survey' AND occurred_at < :cutoff{shard}
    GROUP BY account_id, value
    """
OTHER_SQL = """
    SELECT account_id,
           MAX(CASE WHEN type = 'renewal_signed' THEN occurred_at END)                   AS renewal_signed_at,
           SUM(CASE WHEN type = 'email_opened' AND occurred_at >= :since THEN 1 ELSE 0 END) AS opened_30d,
           SUM(CASE WHEN type = 'email_clicked' AND occurred_at >= :since THEN 1 ELSE 0 END) AS clicked_30d
    FROM events
    WHERE type IN ('renewal_signed', 'email_opened', 'email_clicked') AND occurred_at < :cutoff{shard}
    GROUP BY account_id
    """


def _events_sql(sql: str, shard: Shard, *names: str) -> TextClause:
    statement = text(sql.format(shard=and_in_shard(shard, "account_id")))
    return statement.bindparams(*(bindparam(name, type_=DateTime()) for name in names))


def latest_events(connection: Connection, cutoff: datetime, shard: Shard = ALL) -> pd.DataFrame:
    """Milestones, latest survey answers, renewal signature and recent engagement per account
    (of the shard).

    Columns: `milestone.<name>` (bool), `milestone_at.<name>` (first time reached, naive UTC),
    `survey.<name>` (latest answer, str), `survey_at.<name>` (its time), `renewal_signed_at`,
    `opened_30d`, `clicked_30d`.
    Grouping happens in SQL, so a run reads a few rows per account, not its whole history.
    """
    naive_cutoff = cutoff.astimezone(UTC).replace(tzinfo=None)  # stored as naive UTC
    params = {"cutoff": naive_cutoff, "since": naive_cutoff - timedelta(days=30)}
    one = {"cutoff": naive_cutoff}
    parts: list[pd.DataFrame | pd.Series] = []

    milestones = pd.read_sql_query(_events_sql(MILESTONES_SQL, shard, "cutoff"), connection, params=one)
    if not milestones.empty:
        first = milestones.pivot(index="account_id", columns="value", values="first_at")
        first = first.apply(pd.to_datetime)
        parts.append(first.notna().rename(columns=lambda name: f"milestone.{name}"))
        parts.append(first.rename(columns=lambda name: f"milestone_at.{name}"))

    surveys = pd.read_sql_query(_events_sql(SURVEYS_SQL, shard, "cutoff"), connection, params=one)
    if not surveys.empty:
        split = surveys["value"].str.split(":", n=1, expand=True)
        surveys["survey"], surveys["answer"] = split[0], split[1]
        surveys["last_at"] = pd.to_datetime(surveys["last_at"])
        ordered = surveys.sort_values(["last_at", "answer"]).groupby(["account_id", "survey"])
        answers = ordered["answer"].last().unstack("survey")
        answers.columns = [f"survey.{name}" for name in answers.columns]
        parts.append(answers)
        # When the latest answer came: a customer's request counts once per answer given during
        # an enrollment (techtouch.domain.decide: requests).
        answered_at = ordered["last_at"].last().unstack("survey")
        answered_at.columns = [f"survey_at.{name}" for name in answered_at.columns]
        parts.append(answered_at)

    other = pd.read_sql_query(
        _events_sql(OTHER_SQL, shard, "cutoff", "since"), connection, params=params, index_col="account_id"
    )
    if not other.empty:
        other["renewal_signed_at"] = pd.to_datetime(other["renewal_signed_at"])
        parts.append(other)

    if not parts:
        return pd.DataFrame(index=pd.Index([], name="account_id"))
    frame = pd.concat(parts, axis=1)
    frame.index.name = "account_id"
    return frame
