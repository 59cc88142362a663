"""Alembic environment: the engine comes from the caller (adapters.db.migrate), never from an ini URL."""

from __future__ import annotations

from alembic import context

from techtouch.adapters.db.models import Base

config = context.config
target_metadata = Base.metadata


def run_migrations_online() -> None:
    connection = config.attributes["connection"]
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    raise SystemExit("techtouch migrations run online only: use `techtouch db upgrade`")
run_migrations_online()
