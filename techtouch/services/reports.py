"""Read-side views for people: health distribution, account detail, portfolio summary."""

from __future__ import annotations

from typing import Any

import pandas as pd
from sqlalchemy import Engine, select

from techtouch.adapters.db.models import Account, Contact, HealthSnapshot, Suppression

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
    with engine.connect() as connection:
        account = connection.execute(select(Account).where(Account.id == account_id)).mappings().first()
        if account is None:
            return None
        contacts = connection.execute(
            select(Contact).where(Contact.account_id == account_id).order_by(Contact.id)
        ).mappings()
        suppressed: dict[str, list[str]] = {}
        for row in connection.execute(
            select(Suppression.contact_id, Suppression.channel)
            .join(Contact, Contact.id == Suppression.contact_id)
            .where(Contact.account_id == account_id)
        ):
            suppressed.setdefault(row.contact_id, []).append(row.channel)
        trend = connection.execute(
            select(HealthSnapshot)
            .where(HealthSnapshot.account_id == account_id)
            .order_by(HealthSnapshot.as_of.desc())
            .limit(TREND_DAYS)
        ).mappings()
        trend_rows = [_plain(row, exclude={"account_id"}) for row in trend]
    contact_rows = [
        _plain(c, exclude={"account_id", "updated_at"}) | {"suppressed": sorted(suppressed.get(c["id"], []))}
        for c in contacts
    ]
    return {
        "account": _plain(account, exclude={"updated_at"}),
        "contacts": contact_rows,
        "health": trend_rows[0] if trend_rows else None,
        "trend": list(reversed(trend_rows)),
    }


def _plain(row: Any, exclude: set[str]) -> dict[str, Any]:
    return {
        key: value.isoformat() if hasattr(value, "isoformat") else value
        for key, value in dict(row).items()
        if key not in exclude
    }


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
