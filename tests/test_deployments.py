"""prefect.yaml loads: every entrypoint imports, every parameter exists, every cron parses."""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml
from prefect.client.schemas.schedules import CronSchedule

ROOT = Path(__file__).resolve().parents[1]
CONFIG = yaml.safe_load((ROOT / "prefect.yaml").read_text())
DEPLOYMENTS: list[dict[str, Any]] = CONFIG["deployments"]


def load_flow(entrypoint: str) -> Any:
    path, name = entrypoint.split(":")
    module = importlib.import_module(path.removesuffix(".py").replace("/", "."))
    return getattr(module, name)


def full_name(deployment: dict[str, Any]) -> str:
    return f"{load_flow(deployment['entrypoint']).name}/{deployment['name']}"


@pytest.mark.parametrize("deployment", DEPLOYMENTS, ids=lambda d: d["entrypoint"])
def test_each_deployment_loads_with_valid_parameters_and_schedules(deployment: dict[str, Any]) -> None:
    flow = load_flow(deployment["entrypoint"])
    module_file = deployment["entrypoint"].split(":")[0]
    assert (ROOT / module_file).is_file()
    assert Path(module_file).stem == flow.name  # flow name = file name = deployment prefix
    accepted = set(inspect.signature(flow.fn).parameters)
    assert set(deployment.get("parameters") or {}) <= accepted
    if full_name(deployment) == "daily_shard/shard":  # started by daily/morning, or alone to rerun one
        assert deployment["work_pool"]["name"] == "techtouch-shards"
        assert deployment["schedules"] == []
        return
    assert deployment["work_pool"]["name"] == "techtouch-process"
    assert deployment["schedules"], "every deployment has a schedule (active or not)"
    for schedule in deployment["schedules"]:
        ZoneInfo(schedule["timezone"])
        CronSchedule(cron=schedule["cron"], timezone=schedule["timezone"])


def test_names_are_unique_and_the_daily_cycle_and_digest_are_scheduled() -> None:
    names = [full_name(d) for d in DEPLOYMENTS]
    assert len(names) == len(set(names))
    assert {
        "daily/morning",
        "daily_shard/shard",
        "csm_digest/weekdays",
        "deliver/hourly",
        "health/morning",
        "journey/onboarding",
        "journey/renewal",
        "journey/risk",
        "journey/advocacy",
    } == set(names)
    active = {
        full_name(d): d["schedules"][0] for d in DEPLOYMENTS if d["schedules"] and d["schedules"][0]["active"]
    }
    assert set(active) == {"daily/morning", "csm_digest/weekdays", "deliver/hourly"}
    assert active["daily/morning"]["cron"] == "0 7 * * *"
    assert active["csm_digest/weekdays"]["cron"] == "0 8 * * 1-5"


def test_the_hourly_deliver_deployment_sends_what_falls_due_every_hour_in_the_team_zone() -> None:
    """The outbox and Twilio with a from-number only get what is due: this sends the rest in time."""
    (deployment,) = [d for d in DEPLOYMENTS if full_name(d) == "deliver/hourly"]
    (schedule,) = deployment["schedules"]
    assert schedule["active"] and schedule["timezone"] == CONFIG["definitions"]["team_zone"]
    cron = CronSchedule(cron=schedule["cron"], timezone=schedule["timezone"])
    minute, hour, *rest = schedule["cron"].split()
    assert minute.isdigit() and hour == "*" and rest == ["*", "*", "*"]  # once an hour, every day
    assert cron.timezone == "America/New_York"
    assert deployment["concurrency_limit"] == 1  # two deliveries never claim side by side
    assert set(deployment["parameters"]) == {"shard", "shards"}


def test_no_secret_is_written_in_the_file() -> None:
    text = (ROOT / "prefect.yaml").read_text().lower()
    for word in ("api_key:", "auth_token:", "secret_key:", "password"):
        assert word not in text


def test_every_shipped_journey_has_a_deployment_of_the_one_journey_flow() -> None:
    """A journey is data: its deployment only names it, and no journey has Python of its own."""
    journeys = {p.stem for p in (ROOT / "config" / "journeys").glob("*.yaml")}
    named = {d["parameters"]["name"] for d in DEPLOYMENTS if d["entrypoint"] == "flows/journey.py:journey"}
    assert named == journeys
    assert not {f"{j}.py" for j in journeys} & {p.name for p in (ROOT / "flows").glob("*.py")}


def test_the_daily_cycle_fans_out_to_the_shard_deployment_it_names() -> None:
    """`shards: N` on daily/morning starts N runs of the deployment `daily` names by default."""
    from flows.daily import daily

    (morning,) = [d for d in DEPLOYMENTS if full_name(d) == "daily/morning"]
    assert morning["parameters"]["shard"] is None and morning["parameters"]["shards"] == 1
    default = inspect.signature(daily.fn).parameters["shard_deployment"].default
    assert default in {full_name(d) for d in DEPLOYMENTS}
    pools = {p["name"] for p in CONFIG["definitions"]["work_pools"].values()}
    assert pools == {"techtouch-process", "techtouch-shards"}
