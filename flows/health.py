"""Score every account's health for a day and keep the snapshot (trends, CTAs, journeys read it)."""

from __future__ import annotations

from datetime import date
from typing import Any

from prefect import flow
from prefect.artifacts import create_table_artifact

from tasks.health import score_health
from tasks.runtime import runtime_app
from techtouch.domain.clock import today


@flow(name="health", flow_run_name="health {as_of}")
def health(as_of: date | None = None) -> dict[str, Any]:
    app = runtime_app()
    day = as_of or today(app.settings.zone)
    try:
        distribution = score_health(app, day)
    finally:
        app.close()
    create_table_artifact(
        key="health",
        table=[{"color": c, "accounts": n} for c, n in distribution["colors"].items()],
        description=f"Health on {day}: {distribution['accounts']} accounts, "
        f"median {distribution['median_score']}, {distribution['usage_drop_30pct']} with usage down 30%+",
    )
    return distribution


if __name__ == "__main__":
    health()
