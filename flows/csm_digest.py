"""The CSM digest: each weekday morning, one email per CSM with new, due and overdue CTAs."""

from __future__ import annotations

from datetime import date
from typing import Any

from prefect import flow
from prefect.artifacts import create_table_artifact

from tasks.digest import send_csm_digests
from tasks.runtime import runtime_app
from techtouch.domain.clock import today
from techtouch.services.summary import assignee_label


@flow(name="csm_digest", flow_run_name="csm_digest {as_of}")
def csm_digest(as_of: date | None = None, dry_run: bool = False) -> dict[str, Any]:
    """Accounts without a CSM go to the team queue, whose digest goes to `queue_owner`."""
    app = runtime_app()
    day = as_of or today(app.settings.zone)
    try:
        report = send_csm_digests(app, day, dry_run)
    finally:
        app.close()
    rows = [{"assignee": assignee_label(d.assignee), **d.counts} for d in report.digests]
    create_table_artifact(
        key="csm-digest",
        table=rows or [{"assignee": "-", "overdue": 0, "due": 0, "new": 0}],
        description=f"CSM digests for {day}: {report.sent} sent, {report.already_sent} sent earlier, "
        f"{report.failed} failed, {report.unrouted} queue CTAs without a recipient",
    )
    return {
        "as_of": day.isoformat(),
        "digests": len(report.digests),
        "sent": report.sent,
        "already_sent": report.already_sent,
        "failed": report.failed,
        "unrouted": report.unrouted,
    }


if __name__ == "__main__":
    csm_digest()
