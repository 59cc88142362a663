"""What `make demo` and `techtouch run` report: held back means another day, rows are explained."""

from __future__ import annotations

import io
from datetime import UTC, date, datetime
from pathlib import Path

import pandas as pd
import pytest
from rich.console import Console

from techtouch.entrypoints.cli.views import print_simulation
from techtouch.services.runner import held_for_quiet_hours
from techtouch.services.simulate import SimulationResult

SATURDAY = date(2027, 1, 2)
MONDAY = date(2027, 1, 4)


def frames(send_at: list[datetime], contact_zone: str | None, account_zone: str | None) -> tuple:
    touches = pd.DataFrame(
        {
            "account_id": ["a1"] * len(send_at),
            "contact_id": ["c1"] * len(send_at),
            "send_at": [s.replace(tzinfo=None) for s in send_at],
        }
    )
    accounts = pd.DataFrame({"timezone": [account_zone]}, index=pd.Index(["a1"], name="account_id"))
    contacts = pd.DataFrame({"contact_id": ["c1"], "account_id": ["a1"], "timezone": [contact_zone]})
    return touches, accounts, contacts


def test_a_message_waiting_for_business_hours_the_same_day_is_scheduled_not_held_back() -> None:
    run_at = datetime(2027, 1, 4, 12, 0, tzinfo=UTC)  # Monday 07:00 in New York
    touches, accounts, contacts = frames([datetime(2027, 1, 4, 14, 0, tzinfo=UTC)], "America/New_York", None)
    assert held_for_quiet_hours(touches, accounts, contacts, "UTC", MONDAY, run_at) == 0


def test_a_weekend_run_holds_messages_back_to_monday() -> None:
    run_at = datetime(2027, 1, 2, 12, 0, tzinfo=UTC)
    touches, accounts, contacts = frames([datetime(2027, 1, 4, 14, 0, tzinfo=UTC)], None, "America/New_York")
    assert held_for_quiet_hours(touches, accounts, contacts, "UTC", SATURDAY, run_at) == 1


@pytest.mark.parametrize(("contact_zone", "account_zone", "held"), [("Asia/Tokyo", None, 0), (None, None, 1)])
def test_the_recipient_s_zone_decides_which_day_a_message_lands_on(
    contact_zone: str | None, account_zone: str | None, held: int
) -> None:
    """09:00 Tuesday in Tokyo is 00:00 UTC Tuesday: the same local day as a Monday-evening UTC run
    seen from Tokyo (already Tuesday there), but the next day in the team's zone (UTC)."""
    run_at = datetime(2027, 1, 4, 20, 0, tzinfo=UTC)
    touches, accounts, contacts = frames([datetime(2027, 1, 5, 0, 0, tzinfo=UTC)], contact_zone, account_zone)
    assert held_for_quiet_hours(touches, accounts, contacts, "UTC", MONDAY, run_at) == held


def test_the_funnel_explains_personal_and_goal_rows_and_never_cuts_a_rung_name() -> None:
    rung = "branch_incentive_for_unsure_customers"
    result = SimulationResult(
        start=MONDAY,
        days=7,
        funnel=pd.DataFrame(
            [
                {
                    "journey": "renewal",
                    "milestone": "announce",
                    "rung": rung,
                    "channel": "email",
                    "touches": 3,
                    "skipped": 0,
                    "opened": 1,
                }
            ]
        ),
        cta_load=pd.DataFrame(),
        exits=pd.DataFrame(columns=["journey", "exit_reason", "count"]),
        database=None,
    )
    out = io.StringIO()
    print_simulation(Console(file=out, width=100, force_terminal=False), result)
    text = out.getvalue()
    assert rung in text
    assert "personal rows:" in text and "goal rows:" in text
    assert "{" not in text and "simulated database" not in text


def test_make_demo_clears_only_its_own_prefect_history(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flows.demo import DEMO_PREFECT_HOME, _fresh_demo_prefect_home

    monkeypatch.chdir(tmp_path)
    (tmp_path / DEMO_PREFECT_HOME).mkdir(parents=True)
    (tmp_path / DEMO_PREFECT_HOME / "prefect.db").write_text("old runs")
    elsewhere = tmp_path / "mine"
    elsewhere.mkdir()
    monkeypatch.setenv("PREFECT_HOME", str(elsewhere))
    _fresh_demo_prefect_home()
    assert (tmp_path / DEMO_PREFECT_HOME / "prefect.db").exists() and elsewhere.exists()

    monkeypatch.delenv("PREFECT_HOME")
    _fresh_demo_prefect_home()
    assert not (tmp_path / DEMO_PREFECT_HOME).exists()
