"""What a newcomer trips over, through the real command: a preview of an account outside the
journey, listing filters and orders, and the simulator's temporary copy of every contact's data."""

from __future__ import annotations

import json
import re
import tempfile
from datetime import date, timedelta
from pathlib import Path

import pytest
from sqlalchemy import insert, text

from techtouch import bootstrap
from techtouch.adapters.db import migrate
from techtouch.adapters.db.engine import make_engine
from techtouch.adapters.db.models import Cta
from techtouch.services.app import App
from techtouch.services.seed import seed
from techtouch.services.simulate import ResponseModel, simulate_days
from techtouch.settings import load_settings
from tests.integration.test_cli import D0, cli_env, imported, listing, techtouch

__all__ = ["cli_env", "imported"]  # fixtures, used by name

JOURNEYS = ("advocacy", "onboarding", "renewal", "risk")  # config/journeys
NAN = re.compile(r"\bnan\b|\bNaT\b|\bNone\b", re.IGNORECASE)


def test_preview_of_an_account_not_enrolled_says_so_and_what_would_make_it_enter(
    cli_env: dict[str, str], imported: dict[str, str]
) -> None:
    wide = cli_env | {"COLUMNS": "200"}
    # a0 renews on D0 + 90: 150 days out two months before, outside the 120-day lead.
    early = techtouch(wide, "preview", "renewal", "--account", "a0", "--as-of", str(D0 - timedelta(days=60)))

    assert early.returncode == 0, early.stderr
    assert not NAN.search(early.stdout), early.stdout
    assert "position:" not in early.stdout
    assert (
        "not enrolled in renewal: enters when "
        "`days_to_renewal <= 120 and days_to_renewal > 0 and not renewal_signed`" in early.stdout
    )
    assert "today days_to_renewal = 150, renewal_signed = False → would not enter" in early.stdout
    assert "nothing happens today" in early.stdout

    due = techtouch(wide, "preview", "renewal", "--account", "a0", "--as-of", str(D0))

    assert due.returncode == 0, due.stderr
    assert not NAN.search(due.stdout.split("╭")[0]), due.stdout  # before the rendered messages
    assert "today days_to_renewal = 90, renewal_signed = False → would enter today" in due.stdout
    assert "→ rung announce.email via email" in due.stdout

    # Enrolled: the position line of before, with no missing value shown as nan.
    assert techtouch(cli_env, "run", "--all", "--as-of", str(D0)).returncode == 0
    enrolled = techtouch(
        wide, "preview", "renewal", "--account", "a0", "--as-of", str(D0 + timedelta(days=1))
    )
    assert enrolled.returncode == 0, enrolled.stderr
    assert "position: active; milestone announce; phase active; step 1; next due" in enrolled.stdout
    assert "not enrolled" not in enrolled.stdout and not NAN.search(enrolled.stdout.split("╭")[0])


def test_an_unknown_journey_filter_is_a_usage_error_listing_the_known_ones(cli_env: dict[str, str]) -> None:
    wide = cli_env | {"COLUMNS": "400"}  # one line per message: no wrapping inside the error box
    for command in ("touches", "ctas"):
        result = techtouch(wide, command, "--journey", "nope")

        assert result.returncode == 2, result.stderr
        message = " ".join(result.stderr.replace("│", " ").split())
        assert "Invalid value for '--journey': unknown journey 'nope'; known:" in message, message
        assert all(f"'{journey}'" in message for journey in JOURNEYS), message
        assert "Traceback" not in result.stderr
        assert listing(cli_env, command, "--journey", "renewal") == []


def test_ctas_come_most_urgent_first_and_touches_oldest_first(
    cli_env: dict[str, str], imported: dict[str, str]
) -> None:
    engine = make_engine(cli_env["TECHTOUCH_DATABASE_URL"])
    rows = [  # (priority, due in days, journey), inserted in this order
        ("low", 1, "renewal"),
        ("medium", 5, "risk"),
        ("high", 9, "renewal"),
        ("medium", 2, "renewal"),
        ("high", 3, "risk"),
        ("low", 1, "risk"),
        ("high", 3, "renewal"),
    ]
    with engine.begin() as connection:
        for n, (priority, due, journey) in enumerate(rows):
            connection.execute(
                insert(Cta).values(
                    account_id=f"a{n % 6}",
                    journey=journey,
                    reason=f"reason_{n}",
                    title=f"CTA {n}",
                    priority=priority,
                    assignee="casey.morgan@vendor.example",
                    status="open",
                    due_date=D0 + timedelta(days=due),
                    created_as_of=D0,
                    context={},
                )
            )

    ctas = listing(cli_env, "ctas")

    assert [(c["priority"], c["due_date"], c["title"]) for c in ctas] == [
        ("high", str(D0 + timedelta(days=3)), "CTA 4"),  # same priority and day: by id
        ("high", str(D0 + timedelta(days=3)), "CTA 6"),
        ("high", str(D0 + timedelta(days=9)), "CTA 2"),
        ("medium", str(D0 + timedelta(days=2)), "CTA 3"),
        ("medium", str(D0 + timedelta(days=5)), "CTA 1"),
        ("low", str(D0 + timedelta(days=1)), "CTA 0"),
        ("low", str(D0 + timedelta(days=1)), "CTA 5"),
    ]
    assert [c["title"] for c in listing(cli_env, "ctas", "--journey", "risk")] == ["CTA 4", "CTA 1", "CTA 5"]
    table = techtouch(cli_env | {"COLUMNS": "200"}, "ctas")
    assert table.returncode == 0, table.stderr
    assert table.stdout.index("CTA 4") < table.stdout.index("CTA 2") < table.stdout.index("CTA 0")

    for offset in range(2):
        assert techtouch(cli_env, "run", "--all", "--as-of", str(D0 + timedelta(days=offset))).returncode == 0
    with engine.begin() as connection:  # a touch recorded first but for a later day lists last
        first = connection.execute(text("SELECT MIN(id) FROM touches")).scalar_one()
        connection.execute(
            text("UPDATE touches SET as_of = :d WHERE id = :i"), {"d": D0 + timedelta(days=9), "i": first}
        )
    engine.dispose()
    touches = listing(cli_env, "touches")
    assert [t["as_of"] for t in touches] == sorted(t["as_of"] for t in touches)
    assert touches[-1]["as_of"] == str(D0 + timedelta(days=9))


def sim_dirs(folder: Path) -> list[Path]:
    return sorted(folder.glob("techtouch-sim-*"))


def test_simulate_removes_its_temporary_copy_unless_kept(cli_env: dict[str, str], tmp_path: Path) -> None:
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    env = cli_env | {"TMPDIR": str(scratch), "COLUMNS": "200"}
    args = ("simulate", "--from", str(D0), "--days", "3", "--accounts", "30")

    removed = techtouch(env, *args)

    assert removed.returncode == 0, removed.stderr
    assert sim_dirs(scratch) == []
    assert "simulated database" not in removed.stdout and "kept" not in removed.stdout
    assert "CTAs per CSM per ISO week" in removed.stdout or "no CTAs created" in removed.stdout

    kept = techtouch(env, *args, "--keep")

    assert kept.returncode == 0, kept.stderr
    [folder] = sim_dirs(scratch)
    assert (folder / "simulation.db").is_file()
    assert f"kept the simulation's copy in {folder}" in kept.stdout
    assert json.loads(techtouch(env, *args, "--json").stdout)["database"] is None
    assert sim_dirs(scratch) == [folder]


def test_simulate_copying_the_configured_database_leaves_no_copy(
    cli_env: dict[str, str], imported: dict[str, str], tmp_path: Path
) -> None:
    scratch = tmp_path / "tmp"
    scratch.mkdir()

    result = techtouch(cli_env | {"TMPDIR": str(scratch)}, "simulate", "--from", str(D0), "--days", "2")

    assert result.returncode == 0, result.stderr
    assert sim_dirs(scratch) == []


@pytest.fixture
def seeded_app(sqlite_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> App:
    engine = make_engine(sqlite_url)
    migrate.upgrade(engine)
    monkeypatch.setenv("TECHTOUCH_DATABASE_URL", sqlite_url)
    monkeypatch.setenv("TECHTOUCH_OUTBOX_DIR", str(tmp_path / "outbox"))
    settings = load_settings()
    seed(engine, accounts=20, seed=3, days=90, as_of=D0, high_touch_arr=settings.high_touch_arr)
    return bootstrap.build(settings, engine=engine)


def test_the_temporary_copy_goes_even_when_the_simulation_fails(
    seeded_app: App, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))  # where mkdtemp makes the copy's folder
    seen: list[Path] = []

    def fail(day: date) -> None:
        seen.extend(sim_dirs(scratch))
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        simulate_days(seeded_app, list(seeded_app.catalog.values()), D0, 3, ResponseModel(), progress=fail)

    assert seen and sim_dirs(scratch) == []  # it existed while the simulation ran


def test_the_demo_simulation_in_place_keeps_its_database_and_folder(seeded_app: App, tmp_path: Path) -> None:
    workdir = tmp_path / "demo"

    result = simulate_days(
        seeded_app,
        list(seeded_app.catalog.values()),
        D0,
        2,
        ResponseModel(seed=7),
        in_place=True,
        workdir=workdir,
    )

    assert result.database == seeded_app.settings.database_url and result.kept is None
    assert workdir.is_dir()
    database = Path(seeded_app.settings.database_url.removeprefix("sqlite:///"))
    assert database.is_file()
    with seeded_app.engine.connect() as connection:
        assert connection.execute(text("SELECT COUNT(*) FROM touches")).scalar_one() > 0
