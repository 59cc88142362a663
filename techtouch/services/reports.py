"""Read-side views for people: health distribution, account detail (its whole story), portfolio summary."""

from __future__ import annotations

from typing import Any

import pandas as pd
from sqlalchemy import Engine, select

from techtouch.adapters.db import account_story as story
from techtouch.adapters.db.models import Account, Contact, HealthSnapshot
from techtouch.services.listings import jsonable

TREND_DAYS = 30


def health_distribution(scored: pd.DataFrame) -> dict[str, Any]:
    colors = scored["color"].value_counts()
    change = scored.get("usage_change_30d", pd.Series(dtype=float)).astype(float)
    return {
        "accounts": len(scored),
        "colors": {c: int(colors.get(c, 0)) for c in ("green", "yellow", "red")},
        "median_score": round(float(scored["score"].median()), 1) if len(scored) else None,
        "usage_drop_30pct": int((change <= -0.30).sum()),
    }


def account_detail(engine: Engine, account_id: str) -> dict[str, Any] | None:
    """An account's whole story, or None if there is no such account.

    `account`, `contacts` (each with its suppressed channels), `health` (the latest snapshot) and
    `trend` (up to TREND_DAYS snapshots, oldest first); then, newest first: `journeys` (every
    enrollment and where it stands), `touches` (all of them), `ctas`, `answers` (survey answers
    and comments) and `suppressions`. Dates and times are ISO strings. Touches and answers name
    their contact by id only. One query per section (techtouch.adapters.db.account_story).
    """
    with engine.connect() as connection:
        account = connection.execute(select(Account).where(Account.id == account_id)).mappings().first()
        if account is None:
            return None
        contacts = list(
            connection.execute(
                select(Contact).where(Contact.account_id == account_id).order_by(Contact.id)
            ).mappings()
        )
        trend = connection.execute(
            select(HealthSnapshot)
            .where(HealthSnapshot.account_id == account_id)
            .order_by(HealthSnapshot.as_of.desc())
            .limit(TREND_DAYS)
        ).mappings()
        trend_rows = [_plain(row, exclude={"account_id"}) for row in trend]
        journeys = story.enrollments(connection, account_id)
        touches = story.touches(connection, account_id)
        ctas = story.ctas(connection, account_id)
        answers = story.survey_events(connection, account_id)
        suppressions = story.suppressions(connection, account_id)
    suppressed: dict[str, list[str]] = {}
    for row in suppressions:
        suppressed.setdefault(row["contact_id"], []).append(row["channel"])
    contact_rows = [
        _plain(c, exclude={"account_id", "updated_at"}) | {"suppressed": sorted(suppressed.get(c["id"], []))}
        for c in contacts
    ]
    return {
        "account": _plain(account, exclude={"updated_at"}),
        "contacts": contact_rows,
        "health": trend_rows[0] if trend_rows else None,
        "trend": list(reversed(trend_rows)),
        "journeys": [_plain(row, exclude=set()) for row in journeys],
        "touches": [_plain(row, exclude=set()) for row in touches],
        "ctas": [_plain(row, exclude=set()) for row in ctas],
        "answers": [_answer(row) for row in answers],
        "suppressions": [_plain(row, exclude=set()) for row in suppressions],
    }


def _answer(event: dict[str, Any]) -> dict[str, Any]:
    """A `survey` event as an answer, a `survey_comment` as a comment on one (`<survey>:<answer>`
    in `value`, the text in `detail`; an imported comment may carry its text in `value` alone)."""
    value = event["value"] or ""
    survey, colon, answer = value.partition(":")
    is_comment = event["type"] == "survey_comment"
    comment = event["detail"] if is_comment else None
    if is_comment and comment is None and not colon:
        comment = value or None
    return {
        "occurred_at": jsonable(event["occurred_at"]),
        "contact_id": event["contact_id"],
        "kind": "comment" if is_comment else "answer",
        "survey": survey if colon else None,
        "answer": answer if colon else None,
        "comment": comment,
        "source": event["source"],
    }


def _plain(row: Any, exclude: set[str]) -> dict[str, Any]:
    return {key: jsonable(value) for key, value in dict(row).items() if key not in exclude}


def portfolio(engine: Engine, as_of: Any) -> dict[str, pd.DataFrame]:
    """Accounts by segment and by CSM, with their health colors on `as_of`."""
    with engine.connect() as connection:
        frame = pd.read_sql_query(
            select(
                Account.id, Account.segment, Account.arr, Account.csm_email, HealthSnapshot.color
            ).outerjoin(
                HealthSnapshot,
                (HealthSnapshot.account_id == Account.id) & (HealthSnapshot.as_of == as_of),
            ),
            connection,
        )
    frame["csm_email"] = frame["csm_email"].fillna("(team queue)")
    frame["color"] = frame["color"].fillna("unscored")
    by_segment = frame.groupby("segment").agg(accounts=("id", "size"), arr=("arr", "sum"))
    by_csm = pd.crosstab(frame["csm_email"], frame["color"])
    by_csm["accounts"] = by_csm.sum(axis=1)
    return {"by_segment": by_segment, "by_csm": by_csm.sort_values("accounts", ascending=False)}
