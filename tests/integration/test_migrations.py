from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, inspect, text
from sqlalchemy.sql.elements import ClauseElement

from techtouch.adapters.db import migrate
from techtouch.adapters.db.engine import make_engine
from techtouch.adapters.db.models import Base
from techtouch.domain.shards import Shard, shard_key


def model_diff(engine: Engine) -> list[Any]:
    """What autogenerate would put in a new migration: empty when models and migrations agree."""
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return list(compare_metadata(context, Base.metadata))


def revisions_from_base() -> list[tuple[str, str]]:
    """(revision, the revision it downgrades to, "base" for the first), oldest first."""
    script = ScriptDirectory.from_config(migrate.alembic_config())
    found = [(rev.revision, rev.down_revision or "base") for rev in script.walk_revisions("base", "heads")]
    assert all(isinstance(down, str) for _, down in found), "merge revisions: extend this test"
    return list(reversed(found))  # type: ignore[arg-type]


def plain(value: Any) -> Any:
    """Reflected items with SQL expressions as their text (a partial index's WHERE, a default)."""
    if isinstance(value, dict):
        return sorted((key, plain(item)) for key, item in value.items())
    if isinstance(value, list | tuple):
        return [plain(item) for item in value]
    if isinstance(value, ClauseElement):
        return str(value)
    return value


def schema(engine: Engine) -> dict[str, Any]:
    """Everything reflection sees of the techtouch tables, in a comparable form."""
    inspector = inspect(engine)
    found: dict[str, Any] = {}

    def named(items: list[Any]) -> list[str]:
        return sorted(repr(plain(item)) for item in items)

    for table in sorted(set(inspector.get_table_names()) - {"alembic_version"}):
        found[table] = {
            "columns": [
                (c["name"], str(c["type"]), c["nullable"], plain(c.get("default")))
                for c in inspector.get_columns(table)
            ],
            "primary_key": inspector.get_pk_constraint(table)["constrained_columns"],
            "foreign_keys": named(inspector.get_foreign_keys(table)),
            "indexes": named(inspector.get_indexes(table)),
            "unique": named(inspector.get_unique_constraints(table)),
            "checks": named(inspector.get_check_constraints(table)),
        }
    if engine.dialect.name == "postgresql":
        found["enums"] = sorted(e["name"] for e in inspector.get_enums())  # type: ignore[attr-defined]
    return found


def test_upgrade_from_empty_reaches_head_and_matches_models(engine: Engine) -> None:
    assert migrate.is_current(engine)
    tables = set(inspect(engine).get_table_names())
    assert set(Base.metadata.tables) <= tables
    diff = model_diff(engine)
    assert diff == [], f"models and migrations differ: {diff}"


def test_upgrade_is_idempotent(engine: Engine) -> None:
    before = migrate.current_revision(engine)
    migrate.upgrade(engine)
    assert migrate.current_revision(engine) == before == migrate.head_revision()


def test_head_to_base_and_back_to_head_leaves_the_schema_of_the_models(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        migrate.upgrade(engine)
        at_head = schema(engine)
        migrate.downgrade(engine, "base")
        assert migrate.current_revision(engine) is None
        assert schema(engine) in ({}, {"enums": []}), "downgrade to base must drop every table and type"
        migrate.upgrade(engine)
        assert migrate.is_current(engine)
        assert schema(engine) == at_head
        diff = model_diff(engine)
        assert diff == [], f"after a round trip, models and migrations differ: {diff}"
    finally:
        engine.dispose()


def test_each_downgrade_restores_the_schema_its_revision_upgraded_from(db_url: str) -> None:
    """Up one revision at a time, noting each schema; then down one at a time, comparing."""
    revisions = revisions_from_base()
    engine = make_engine(db_url)
    try:
        before: dict[str, dict[str, Any]] = {"base": schema(engine)}
        for revision, _ in revisions:
            migrate.upgrade(engine, revision)
            assert migrate.current_revision(engine) == revision
            before[revision] = schema(engine)
        assert migrate.is_current(engine)
        for revision, down in reversed(revisions):
            migrate.downgrade(engine, down)
            assert migrate.current_revision(engine) == (None if down == "base" else down)
            assert schema(engine) == before[down], f"downgrade of {revision} to {down}"
            migrate.upgrade(engine, revision)  # and up again works on what the downgrade left
            assert schema(engine) == before[revision], f"upgrade to {revision} after its downgrade"
            migrate.downgrade(engine, down)
    finally:
        engine.dispose()


def test_0008_gives_existing_accounts_the_shard_key_their_id_hashes_to(db_url: str) -> None:
    """Accounts written before 0008 get CRC-32 of their id, so sharded SQL selects what Shard did."""
    engine = make_engine(db_url)
    try:
        migrate.upgrade(engine, "0007")
        ids = [f"acct-{n:05d}" for n in range(1_200)] + ["ünïcode-id"]
        with engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO accounts (id, name, segment, arr, start_date, is_advocate, updated_at) "
                    "VALUES (:id, 'x', 'tech_touch', 1, '2026-01-01', false, '2026-01-01 00:00:00')"
                ),
                [{"id": i} for i in ids],
            )
        migrate.upgrade(engine)
        with engine.connect() as connection:
            stored = {
                row[0]: row[1] for row in connection.execute(text("SELECT id, shard_key FROM accounts"))
            }
        assert stored == {i: shard_key(i) for i in ids}
        for count in (2, 3, 8):
            for index in range(count):
                with engine.connect() as connection:
                    selected = set(
                        connection.execute(
                            text("SELECT id FROM accounts WHERE shard_key % :n = :i"),
                            {"n": count, "i": index},
                        ).scalars()
                    )
                shard = Shard(index, count)
                assert selected == {i for i, keep in zip(ids, shard.mask(ids), strict=True) if keep}
    finally:
        engine.dispose()
