"""`techtouch simulate` lists weeks in time order, also across New Year (ISO weeks, ISO years)."""

from __future__ import annotations

import random
from datetime import date, timedelta

import pandas as pd
from rich.console import Console

from techtouch.entrypoints.cli.views import print_simulation
from techtouch.services.simulate import SimulationResult, cta_load, iso_week, week_order


def days(first: date, last: date) -> list[date]:
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


def test_iso_week_labels_carry_the_iso_year() -> None:
    assert iso_week(date(2026, 12, 31)) == "2026-W53"  # 2026 has 53 ISO weeks
    assert iso_week(date(2027, 1, 3)) == "2026-W53"  # a Sunday: still the last week of ISO 2026
    assert iso_week(date(2027, 1, 4)) == "2027-W01"
    assert iso_week(date(2025, 12, 29)) == "2026-W01"  # a Monday of December opens ISO 2026
    assert iso_week(date(2027, 3, 1)) == "2027-W09"  # zero-padded: W09 sorts before W10


def test_weeks_across_a_year_boundary_come_in_time_order() -> None:
    span = days(date(2026, 12, 14), date(2027, 1, 20))
    shuffled = random.Random(0).sample(span, len(span))

    weeks = week_order(shuffled)

    assert weeks == ["2026-W51", "2026-W52", "2026-W53", "2027-W01", "2027-W02", "2027-W03"]
    # What the bare `W%V` labels of before gave: W01 first, and two different weeks merged.
    assert sorted({d.strftime("W%V") for d in span})[0] == "W01"


def test_weeks_of_a_52_week_year_and_of_several_years() -> None:
    assert week_order(days(date(2025, 12, 20), date(2026, 1, 6))) == [
        "2025-W51",
        "2025-W52",
        "2026-W01",
        "2026-W02",
    ]
    assert week_order([date(2028, 1, 5), date(2026, 6, 1), date(2027, 12, 31), date(2026, 6, 2)]) == [
        "2026-W23",
        "2027-W52",
        "2028-W01",
    ]
    assert week_order([]) == []


def test_cta_load_has_weeks_as_rows_in_time_order_and_assignees_as_sorted_columns() -> None:
    ctas = pd.DataFrame(
        {
            "assignee": ["zoe@v.example", "queue:success", "ada@v.example", "zoe@v.example", "ada@v.example"],
            "created_as_of": [
                date(2027, 1, 5),
                date(2026, 12, 29),
                date(2026, 12, 22),
                date(2026, 12, 22),
                date(2027, 1, 5),
            ],
        }
    )

    load = cta_load(ctas)

    assert list(load.index) == ["2026-W52", "2026-W53", "2027-W01"]
    assert list(load.columns) == ["ada@v.example", "queue:success", "zoe@v.example"]
    assert list(load.loc["2027-W01"]) == [1, 0, 1]
    assert cta_load(pd.DataFrame(columns=["assignee", "created_as_of"])).empty


def test_the_simulation_view_prints_weeks_top_down_in_time_order() -> None:
    """Always weeks as rows, whatever the shape (before, a wide frame was turned around)."""
    ctas = pd.DataFrame(
        {
            "assignee": [f"csm{n:02d}@v.example" for n in range(6)],
            "created_as_of": [date(2027, 1, 4)] * 3 + [date(2026, 12, 28)] * 3,
        }
    )
    result = SimulationResult(
        start=date(2026, 12, 28),
        days=14,
        funnel=pd.DataFrame(
            columns=["journey", "milestone", "rung", "channel", "touches", "skipped", "opened"]
        ),
        cta_load=cta_load(ctas),
        exits=pd.DataFrame(),
        database=None,
    )
    console = Console(width=300, record=True)

    print_simulation(console, result)

    text = console.export_text()
    assert text.index("2026-W53") < text.index("2027-W01")
    header = next(line for line in text.splitlines() if "week" in line and "total" in line)
    assert all(f"csm{n:02d}@v.example" in header for n in range(6))  # assignees are the columns
    assert "simulated database" not in text  # a removed temporary copy is not named
