"""PostgreSQL upserts of many rows go through COPY into a temporary table (bulk._copy_upsert): the
rows stored are those Core's executemany stores (types' bind processing, Python-side defaults
evaluated per row where they read the row), and conflicts update or are left alone the same way."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any, cast

import pytest
from sqlalchemy import Engine, Table, text

from techtouch.adapters.db import bulk, migrate
from techtouch.adapters.db.engine import make_engine
from techtouch.adapters.db.models import Account, Digest, HealthSnapshot
from techtouch.domain.health import DIMENSIONS
from techtouch.domain.shards import shard_key

ACCOUNTS = cast(Table, Account.__table__)
SNAPSHOTS = cast(Table, HealthSnapshot.__table__)


@pytest.fixture
def pg(postgres_url: str) -> Iterator[Engine]:
    engine = make_engine(postgres_url)
    migrate.upgrade(engine)
    yield engine
    engine.dispose()


def accounts(n: int, arr: float = 1000.0) -> list[dict[str, Any]]:
    return [
        {
            "id": f"A{i:05d}",
            "name": f"Account {i} — “quoted”, tab\there",  # COPY's special characters
            "segment": "tech_touch",
            "arr": arr + i / 3,
            "start_date": date(2026, 1, 1) + timedelta(days=i),
            "renewal_date": None if i % 2 else date(2027, 1, 1),
            "csm_email": None,
            "timezone": "Europe/Paris" if i % 3 else None,
            "paused_until": None,
            "is_advocate": bool(i % 2),
        }
        for i in range(n)
    ]


def stored(engine: Engine, table: str, order: str) -> list[tuple[Any, ...]]:
    with engine.connect() as connection:
        return [tuple(r) for r in connection.execute(text(f"SELECT * FROM {table} ORDER BY {order}"))]


def upsert(engine: Engine, table: Table, rows: list[dict[str, Any]], key: tuple[str, ...], **kw: Any) -> None:
    with engine.begin() as connection:
        bulk.upsert_rows(connection, table, rows, key, **kw)


def test_copy_stores_what_core_stores(pg: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    rows = accounts(50)
    upsert(pg, ACCOUNTS, rows, ("id",))  # 50 rows: below COPY_MIN, Core's executemany
    by_core = stored(pg, "accounts", "id")
    with pg.begin() as connection:
        connection.execute(text("DELETE FROM accounts"))

    monkeypatch.setattr(bulk, "COPY_MIN", 1)
    copied: list[str] = []
    real = bulk._copy_upsert

    def counted(*args: Any, **kwargs: Any) -> int:
        copied.append("yes")
        return real(*args, **kwargs)

    monkeypatch.setattr(bulk, "_copy_upsert", counted)
    upsert(pg, ACCOUNTS, rows, ("id",))
    by_copy = stored(pg, "accounts", "id")

    assert copied == ["yes"]
    columns = [c.name for c in ACCOUNTS.columns]
    stamp = columns.index("updated_at")
    assert [r[:stamp] + r[stamp + 1 :] for r in by_copy] == [r[:stamp] + r[stamp + 1 :] for r in by_core]
    assert all(r[columns.index("shard_key")] == shard_key(r[0]) for r in by_copy)  # per-row default
    now = datetime.now(UTC).replace(tzinfo=None)
    assert all(abs(r[stamp] - now) < timedelta(minutes=5) for r in by_copy)  # stored as naive UTC


def test_copy_upserts_update_on_conflict_or_leave_rows_alone(
    pg: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bulk, "COPY_MIN", 1)
    upsert(pg, ACCOUNTS, accounts(3), ("id",))
    day = date(2027, 3, 1)
    first = [
        {
            "account_id": f"A{i:05d}",
            "as_of": day,
            "score": 50.0 + i,
            "color": "yellow",
            "usage_change_30d": None,
        }
        | {f"{dimension}_score": 40.0 for dimension in DIMENSIONS}
        | {"logins_14d": 3, "active_users_7d": 2.5, "key_actions_30d": 7, "key_actions_7d": None}
        for i in range(3)
    ]
    upsert(pg, SNAPSHOTS, first, ("account_id", "as_of"))
    again = [dict(r, score=90.0, color="green", usage_change_30d=0.25) for r in first]
    upsert(pg, SNAPSHOTS, again[:2], ("account_id", "as_of"))  # a rerun of the day replaces its rows
    upsert(pg, SNAPSHOTS, [dict(r, score=1.0) for r in again], ("account_id", "as_of"), update=False)
    with pg.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT account_id, score, color, usage_change_30d FROM health_snapshots ORDER BY account_id"
            )
        ).all()
    assert [tuple(r) for r in rows] == [
        ("A00000", 90.0, "green", 0.25),
        ("A00001", 90.0, "green", 0.25),
        ("A00002", 52.0, "yellow", None),
    ]
    with pg.connect() as connection:  # the staging table is gone with its statement
        assert connection.execute(text("SELECT to_regclass('staged_health_snapshots')")).scalar() is None


def test_unnest_inserts_and_updates_carry_json_lists_dicts_and_nulls(engine: Engine) -> None:
    """insert_returning and update_rows (PostgreSQL: arrays unnest()ed, a JSON column's values as
    their JSON text) store what Core stores, on both backends: a JSON list is one value, not one
    more dimension of the array."""
    digests = cast(Table, Digest.__table__)
    rows = [
        {"key": f"d{i}", "recipient": "csm@vendor.example", "as_of": date(2027, 3, 1), "counts": counts}
        for i, counts in enumerate([[1, 2], {"open": [3, 4]}, [], {"nested": {"x": None}}])
    ]
    with engine.begin() as connection:
        inserted = bulk.insert_returning(connection, digests, rows, ["key"], ["id", "key"])
        again = bulk.insert_returning(connection, digests, rows[:1], ["key"], ["id", "key"])
        assert sorted(r.key for r in inserted) == ["d0", "d1", "d2", "d3"] and again == []
        bulk.update_rows(
            connection, digests, "key", [{"key": "d0", "counts": ["x", {"y": 1}], "status": "sent"}]
        )
        stored = {
            r.key: (r.counts, r.status)
            for r in connection.execute(text("SELECT key, counts, status FROM digests ORDER BY key"))
        }
    decoded = {k: (json.loads(v) if isinstance(v, str) else v, s) for k, (v, s) in stored.items()}
    assert decoded == {
        "d0": (["x", {"y": 1}], "sent"),
        "d1": ({"open": [3, 4]}, "pending"),
        "d2": ([], "pending"),
        "d3": ({"nested": {"x": None}}, "pending"),
    }
