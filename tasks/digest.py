"""Send each CSM (and the queue's owner) one digest of new, due and overdue CTAs."""

from __future__ import annotations

from datetime import date

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from tasks.deliver import BACKOFF
from techtouch.services.app import App
from techtouch.services.digest import DigestReport, send_digests


@task(name="send_digests", tags=["email"], retries=3, retry_delay_seconds=BACKOFF, cache_policy=NO_CACHE)
def send_csm_digests(app: App, as_of: date, dry_run: bool) -> DigestReport:
    email, _ = app.channels
    report = send_digests(app.engine, app.settings, app.renderer, email, as_of, dry_run=dry_run)
    logger = get_run_logger()
    logger.info(
        "%d digests for %s: %d sent, %d sent by an earlier run, %d failed%s",
        len(report.digests),
        as_of,
        report.sent,
        report.already_sent,
        report.failed,
        " (dry run: nothing sent)" if dry_run else "",
    )
    if report.unrouted:
        logger.warning("%d queue CTAs have no digest recipient: set TECHTOUCH_QUEUE_OWNER", report.unrouted)
    return report
