"""Send each CSM (and the queue's owner) one digest of new, due and overdue CTAs."""

from __future__ import annotations

from datetime import date

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from sqlalchemy import Engine

from tasks.deliver import BACKOFF
from techtouch.bootstrap import build_channels, build_renderer
from techtouch.services.digest import DigestReport, send_digests
from techtouch.settings import Settings


@task(name="send_digests", tags=["email"], retries=3, retry_delay_seconds=BACKOFF, cache_policy=NO_CACHE)
def send_csm_digests(engine: Engine, settings: Settings, as_of: date, dry_run: bool) -> DigestReport:
    email, _ = build_channels(settings)
    report = send_digests(engine, settings, build_renderer(settings), email, as_of, dry_run=dry_run)
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
