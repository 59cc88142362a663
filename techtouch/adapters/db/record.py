"""Record a decision: enrollments, touches and CTAs in one transaction, keyed for exactly-once.

Touches are inserted with ON CONFLICT (key) DO NOTHING. A CTA is only written for a CTA touch
whose key is new (a rerun adds nothing): against the partial unique index (account, reason) of
open CTAs, so an escalation for an account and reason that already has an open CTA is not a
second CTA but `joined` to that one (the caller adds the history row and raises its priority:
techtouch.services.ctas.join_escalations), and its touch says DEDUPLICATED.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any, cast

import pandas as pd
from sqlalchemy import Connection, Engine, Table, select, text, tuple_, update

from techtouch.adapters.db.bulk import insert_ignore, insert_returning, update_rows
from techtouch.adapters.db.engine import analyze
from techtouch.adapters.db.models import Account, Cta, Enrollment, Touch, sql_in
from techtouch.domain.plan import Plan
from techtouch.domain.statuses import OPEN_CTA_STATUSES, CtaStatus, TouchStatus

POSITION_FIELDS = (
    "status",
    "milestone",
    "phase",
    "step",
    "next_due",
    "milestone_since",
    "entered_as_of",
    "exited_as_of",
    "exit_reason",
    "last_touch_as_of",
    "entry",
)


@dataclass
class Recorded:
    touches: int
    ctas: int
    deduplicated_ctas: int
    created_ids: list[int] = field(default_factory=list)
    # (id of the open CTA, the escalation that joined it: priority, title, why, touch_key)
    joined: list[tuple[int, dict[str, Any]]] = field(default_factory=list)


def _records(frame: pd.DataFrame, columns: list[str]) -> list[dict[str, Any]]:
    records = frame[columns].astype(object).where(frame[columns].notna(), None).to_dict("records")
    return [{str(k): v for k, v in row.items()} for row in records]


def record(
    connection: Connection,
    journey: str,
    as_of: date,
    positions: pd.DataFrame,
    plan: Plan,
    context: dict[str, dict[str, Any]],
) -> Recorded:
    """Write everything of one journey run; the caller owns the transaction (and the lock)."""
    # Enrollment ids by (account, cycle): the moved ones' come with their positions, the new
    # ones' from the INSERT's RETURNING; only what neither gives is looked up (a conflict).
    ids: dict[tuple[str, int], int] = {}
    new = positions[positions["is_new"]]
    if not new.empty:
        rows = _records(new, ["account_id", "cycle", *POSITION_FIELDS])
        for row in rows:
            row["journey"] = journey
        inserted_rows = insert_returning(
            connection,
            cast(Table, Enrollment.__table__),
            rows,
            ["account_id", "journey", "cycle"],
            ["id", "account_id", "cycle"],
        )
        ids.update({(r.account_id, int(r.cycle)): int(r.id) for r in inserted_rows})
    old = positions[~positions["is_new"]]
    if not old.empty:
        ids.update(
            {
                (str(a), int(c)): int(e)
                for a, c, e in zip(old["account_id"], old["cycle"], old["enrollment_id"], strict=True)
            }
        )
        rows = _records(old, ["enrollment_id", *POSITION_FIELDS])
        for row in rows:
            row["id"] = int(row.pop("enrollment_id"))
        update_rows(connection, cast(Table, Enrollment.__table__), "id", rows)

    touches = plan.touches
    if touches.empty:
        return Recorded(0, 0, 0)
    pairs = list({(a, int(c)) for a, c in zip(touches["account_id"], touches["cycle"], strict=True)})
    pairs = [pair for pair in pairs if pair not in ids]
    for start in range(0, len(pairs), 500):
        chunk = pairs[start : start + 500]
        result = connection.execute(
            select(Enrollment.account_id, Enrollment.cycle, Enrollment.id).where(
                Enrollment.journey == journey, tuple_(Enrollment.account_id, Enrollment.cycle).in_(chunk)
            )
        )
        ids.update({(r.account_id, r.cycle): r.id for r in result})

    ctas = plan.ctas.set_index("touch_key") if not plan.ctas.empty else plan.ctas
    open_ctas = _existing_open_ctas(connection, ctas)
    seen = _existing_keys(connection, list(ctas.index)) if not ctas.empty else set()
    touch_rows = _records(
        touches,
        [
            "key",
            "account_id",
            "cycle",
            "contact_id",
            "milestone",
            "rung",
            "channel",
            "sender",
            "template",
            "status",
            "send_at",
        ],
    )
    for row in touch_rows:
        row["enrollment_id"] = ids[(row["account_id"], int(row.pop("cycle")))]
        row["journey"] = journey
        row["as_of"] = as_of
        if row["channel"] == "cta":
            reason = ctas.at[row["key"], "reason"]
            duplicate = (row["account_id"], reason) in open_ctas
            row["status"] = TouchStatus.DEDUPLICATED if duplicate else TouchStatus.CREATED
    inserted = insert_ignore(connection, cast(Table, Touch.__table__), touch_rows, ["key"])

    created: list[int] = []
    joined: list[tuple[int, dict[str, Any]]] = []
    fresh = plan.ctas[~plan.ctas["touch_key"].isin(seen)] if not plan.ctas.empty else plan.ctas
    if not fresh.empty:
        cta_rows = _records(
            fresh,
            [
                "touch_key",
                "account_id",
                "cycle",
                "reason",
                "title",
                "priority",
                "assignee",
                "due_date",
                "why",
                "outcomes",
            ],
        )
        unopened: list[dict[str, Any]] = []
        for row in cta_rows:
            row["enrollment_id"] = ids[(row["account_id"], int(row.pop("cycle")))]
            row["journey"] = journey
            row["status"] = CtaStatus.OPEN
            row["created_as_of"] = as_of
            row["context"] = context.get(row["account_id"], {}) | {"touch_key": row["touch_key"]}
            row["why"] = row.get("why") or {}
            row["outcomes"] = row.get("outcomes") or []
            open_id = open_ctas.get((row["account_id"], row["reason"]))
            if open_id is None:
                unopened.append(row)
            else:
                joined.append((open_id, {k: row[k] for k in ("priority", "title", "why", "touch_key")}))
        # One multi-row INSERT … RETURNING for the new ones (never a statement per CTA). A row the
        # partial unique index turned away (a CTA opened meanwhile, or two rows of this run for one
        # account and reason) joins the open CTA instead.
        inserted_ids = {
            (r.account_id, r.reason): int(r.id)
            for r in insert_returning(
                connection,
                cast(Table, Cta.__table__),
                unopened,
                ["account_id", "reason"],
                ["id", "account_id", "reason"],
                # Literals, not parameters: PostgreSQL proves that the partial unique index
                # matches from this predicate, which it cannot do from parameters once psycopg
                # prepares the statement (its fifth execution on a connection) and the plan is
                # generic ("no unique or exclusion constraint matching the ON CONFLICT").
                conflict_where=text(sql_in("status", OPEN_CTA_STATUSES)),
            )
        }
        for row in unopened:
            key = (row["account_id"], row["reason"])
            if key in inserted_ids and key not in open_ctas:
                created.append(inserted_ids[key])
                open_ctas[key] = inserted_ids[key]
                continue
            open_id = open_ctas.get(key) or _open_cta_id(connection, row["account_id"], row["reason"])
            if open_id is not None:
                joined.append((open_id, {k: row[k] for k in ("priority", "title", "why", "touch_key")}))
    return Recorded(
        touches=inserted,
        ctas=len(created),
        deduplicated_ctas=len(joined),
        created_ids=created,
        joined=joined,
    )


def _existing_keys(connection: Connection, keys: list[str]) -> set[str]:
    found: set[str] = set()
    for start in range(0, len(keys), 500):
        found |= set(
            connection.execute(select(Touch.key).where(Touch.key.in_(keys[start : start + 500]))).scalars()
        )
    return found


def _open_cta_id(connection: Connection, account_id: str, reason: str) -> int | None:
    return connection.execute(
        select(Cta.id).where(
            Cta.account_id == account_id, Cta.reason == reason, Cta.status.in_(OPEN_CTA_STATUSES)
        )
    ).scalar()


def _existing_open_ctas(connection: Connection, ctas: pd.DataFrame) -> dict[tuple[str, str], int]:
    """Open CTAs of the plan's accounts for the plan's reasons: one read of the open CTAs of those
    reasons (one scan, whatever the number of accounts: batches of account ids made a launch day
    at 1M accounts spend minutes here), kept for the plan's accounts."""
    if ctas.empty:
        return {}
    accounts = set(ctas["account_id"])
    result = connection.execute(
        select(Cta.id, Cta.account_id, Cta.reason).where(
            Cta.status.in_(OPEN_CTA_STATUSES), Cta.reason.in_(sorted(set(ctas["reason"])))
        )
    )
    return {(r.account_id, r.reason): r.id for r in result if r.account_id in accounts}


def flag_advocates(connection: Connection, account_ids: list[str]) -> None:
    if account_ids:
        connection.execute(update(Account).where(Account.id.in_(account_ids)).values(is_advocate=True))


ANALYZE_AFTER = 20_000  # rows a journey wrote before the planner's statistics are refreshed


def refresh_statistics(engine: Engine, written: int) -> None:
    """PostgreSQL: ANALYZE the tables a run writes once it wrote many rows.

    Autovacuum analyzes them minutes later; meanwhile the planner still sees the morning's sizes
    and picks plans for them (a 1M-account launch day: the claims' lookup by key went through
    the status index over 820,000 pending rows, 0.4 s a batch instead of 40 ms). Samples only,
    a fraction of a second.
    """
    if written >= ANALYZE_AFTER:
        analyze(engine, ("touches", "enrollments", "ctas"))
