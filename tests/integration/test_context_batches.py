"""Account contexts are built from the accounts frame's columns, a batch at a time (delivery) or one
account at a time (anything else): both give exactly what reading the account's row gives, so the
messages stay byte-identical whichever way their context was made."""

from __future__ import annotations

from typing import Any, cast

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import Engine

from techtouch import bootstrap
from techtouch.adapters.render.context import account_context, context_builder
from techtouch.services import day as service
from techtouch.settings import Settings
from tests.crash_trials import AS_OF, build_base


def exactly(context: dict[str, Any]) -> list[tuple[str, str, str]]:
    """Each value with its type: 1 and 1.0, a date and a Timestamp, None and NaN all differ."""
    return [(key, type(value).__name__, repr(value)) for key, value in context.items()]


@pytest.fixture
def accounts(engine: Engine, db_url: str) -> pd.DataFrame:
    build_base(engine, accounts=12)
    app = bootstrap.build(Settings(database_url=db_url, timezone="Europe/Paris"), engine=engine)
    frame = service.load_state(app, AS_OF).accounts.copy()
    # What a real run also holds: accounts without a CSM, a usage trend or a health score yet.
    frame.loc[frame.index[::3], "csm_email"] = np.nan
    frame.loc[frame.index[1::3], "usage_change_30d"] = np.nan
    frame.loc[frame.index[2::4], "health"] = np.nan
    return frame


def test_batches_and_single_accounts_read_what_the_row_holds(accounts: pd.DataFrame, db_url: str) -> None:
    settings = Settings(database_url=db_url, timezone="Europe/Paris")
    ids = [str(i) for i in accounts.index]
    from_rows = {i: exactly(account_context(cast(pd.Series, accounts.loc[i]), i)) for i in ids}

    batched = context_builder(settings, accounts, {}, b"k" * 32)
    batched.prepare([{"account_id": i} for i in [*reversed(ids), ids[0]]])  # any order, repeats
    single = context_builder(settings, accounts, {}, b"k" * 32)

    assert {i: exactly(batched.accounts[i]) for i in ids} == from_rows
    assert {i: exactly(single.account(i)) for i in ids} == from_rows
    assert any(a[-1][2] == "None" for a in from_rows.values())  # the missing CSM was covered


def test_an_unknown_account_is_an_error(accounts: pd.DataFrame, db_url: str) -> None:
    build = context_builder(Settings(database_url=db_url), accounts, {}, b"k" * 32)
    with pytest.raises(KeyError):
        build.prepare([{"account_id": "no-such-account"}])
    with pytest.raises(KeyError):
        build.account("no-such-account")
