"""Shared fixtures: a real database per test on SQLite and, where a server is reachable, PostgreSQL.

PostgreSQL tests skip with a printed reason outside CI; under CI=true a missing server fails them.
Every test starts from default settings: no TECHTOUCH_* variable and no techtouch.toml of the
developer's reaches it (`isolated_settings`).
"""

from __future__ import annotations

import functools
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

from techtouch.adapters.db import migrate
from techtouch.adapters.db.engine import make_engine

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
POSTGRES_ADMIN_URL = os.environ.get(
    "TECHTOUCH_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)


# Slow tests (a Prefect server, a deploy, flow runs in worker processes) get longer than the
# default `timeout` of pyproject.toml; a test's own @pytest.mark.timeout still wins.
SLOW_TIMEOUT = 900


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker("slow") and not item.get_closest_marker("timeout"):
            item.add_marker(pytest.mark.timeout(SLOW_TIMEOUT))


@pytest.fixture(scope="session")
def no_config_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A techtouch.toml path that does not exist (one per session: a directory per test costs)."""
    return tmp_path_factory.mktemp("no-config") / "techtouch.toml"


@pytest.fixture(autouse=True)
def isolated_settings(no_config_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No TECHTOUCH_* variable of the shell and no ./config/techtouch.toml reach a test.

    Settings then are the defaults, with the journeys and templates of this repository (their
    default directories do not depend on the config file). Autouse fixtures run first, so
    fixtures and tests that set TECHTOUCH_* variables (`env`) do so afterwards. A test that
    sets TECHTOUCH_CONFIG_DIR to read a techtouch.toml there must also delete
    TECHTOUCH_CONFIG_FILE. Knobs of the test suite itself (TECHTOUCH_TEST_*) are kept.
    """
    for name in list(os.environ):
        if name.startswith("TECHTOUCH_") and not name.startswith("TECHTOUCH_TEST_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("TECHTOUCH_CONFIG_FILE", str(no_config_file))


@functools.cache
def postgres_problem() -> str | None:
    try:
        engine = create_engine(POSTGRES_ADMIN_URL, connect_args={"connect_timeout": 3})
        with engine.connect() as connection:
            connection.execute(text("select 1"))
        engine.dispose()
    except Exception as exc:
        return f"PostgreSQL not reachable at {make_url(POSTGRES_ADMIN_URL).render_as_string()}: {exc}"
    return None


def require_postgres() -> None:
    problem = postgres_problem()
    if problem is None:
        return
    if IN_CI:
        pytest.fail(f"CI=true and {problem}", pytrace=False)
    pytest.skip(problem)


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database, dropped after the test."""
    require_postgres()
    name = f"tt_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(POSTGRES_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'techtouch.db'}"


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest) -> str:
    """Every database test runs on both backends."""
    if request.param == "sqlite":
        return request.getfixturevalue("sqlite_url")
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    """An engine on a database migrated to head with Alembic (not create_all)."""
    eng = make_engine(db_url)
    migrate.upgrade(eng)
    try:
        yield eng
    finally:
        eng.dispose()


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, db_url: str) -> dict[str, str]:
    """Environment for CLI runs: this test's database (migrated, as `techtouch db upgrade` would)
    and outbox, nothing inherited."""
    upgraded = make_engine(db_url)
    migrate.upgrade(upgraded)
    upgraded.dispose()
    values = {
        "TECHTOUCH_DATABASE_URL": db_url,
        "TECHTOUCH_OUTBOX_DIR": str(tmp_path / "outbox"),
    }
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    return values
