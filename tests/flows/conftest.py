"""One Prefect test harness (a temporary API server and database) for every flow test.

Starting it costs seconds, so it is shared by the session; each test brings its own techtouch
database and outbox through the environment, which flows read at run time.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine

from techtouch.services.seed import seed

AS_OF = date(2026, 11, 2)  # a Monday
# The flows deliver as at this instant of AS_OF (`deliver_at`: the outbox's replay clock), with
# business hours all day: what a run records for AS_OF is due then, whenever the suite runs.
AT = datetime(2026, 11, 2, 14, 0, tzinfo=UTC)
ALL_DAY = {
    "TECHTOUCH_DELIVERY__BUSINESS_START": "00:00",
    "TECHTOUCH_DELIVERY__BUSINESS_END": "23:59",
    "TECHTOUCH_DELIVERY__BUSINESS_DAYS": "[0,1,2,3,4,5,6]",
}
ACCOUNTS = 150


@pytest.fixture(scope="session")
def prefect_api() -> Iterator[None]:
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture
def seeded(engine: Engine, env: dict[str, str], prefect_api: None, monkeypatch: pytest.MonkeyPatch) -> Engine:
    """A seeded customer base; the flows find it (and this test's outbox) through the environment."""
    for name, value in ALL_DAY.items():
        monkeypatch.setenv(name, value)
    seed(engine, accounts=ACCOUNTS, seed=5, days=90, as_of=AS_OF, high_touch_arr=100_000)
    return engine


@pytest.fixture
def outbox(env: dict[str, str]) -> Path:
    return Path(env["TECHTOUCH_OUTBOX_DIR"])
