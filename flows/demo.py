"""`make demo`: a seeded customer base, 60 days of history, then today's cycle as real Prefect runs.

Prefect runs on a local ephemeral API (no server to start, no cloud account); its database lives
in demo/prefect, so `prefect server start` with the same PREFECT_HOME shows these runs in the UI.
Each demo starts that database afresh, so the UI shows this run only (a PREFECT_HOME set by the
caller is used as it is, never removed).
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import sys
from pathlib import Path

DEMO_PREFECT_HOME = Path("demo") / "prefect"


class _DropShutdownNoise(logging.Filter):
    """Prefect 3.8 can log CancelledError tracebacks while its ephemeral API shuts down."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        return not isinstance(error, asyncio.CancelledError) and "CancelledError" not in record.getMessage()


def _fresh_demo_prefect_home() -> None:
    """Remove demo/prefect (runs of earlier demos), unless PREFECT_HOME points elsewhere.

    Called before Prefect is imported, so before its ephemeral API opens a database there.
    """
    own = DEMO_PREFECT_HOME.absolute()
    chosen = os.environ.get("PREFECT_HOME")
    if chosen and Path(chosen).expanduser().absolute() != own:
        return  # the caller's own Prefect home: never the demo's to clean
    if own.is_symlink() or own.is_file():
        own.unlink()
    elif own.is_dir():
        shutil.rmtree(own)


def main() -> int:
    _fresh_demo_prefect_home()
    os.environ.setdefault("PREFECT_HOME", str(DEMO_PREFECT_HOME.resolve()))
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")  # first start migrates
    for name in ("", "prefect", "uvicorn", "uvicorn.error", "asyncio"):
        logging.getLogger(name).addFilter(_DropShutdownNoise())

    from rich.console import Console

    from techtouch.domain.clock import today
    from techtouch.entrypoints.demo import prepare, print_today, sign_in_here, where_results_are
    from techtouch.settings import load_settings

    console = Console()
    database, outbox, people = prepare(console)
    day = today(load_settings().zone)

    from flows.csm_digest import csm_digest
    from flows.daily import daily

    console.rule(f"3. Today ({day}): the daily flow on Prefect (health, four journeys, delivery)")
    print_today(console, daily(as_of=day))

    console.rule(f"4. The CSM digest flow on Prefect ({day})")
    digest = csm_digest(as_of=day)
    console.print(
        f"  {digest['digests']} digests, {digest['sent']} sent (outbox: digest_*.eml)", highlight=False
    )

    console.rule("5. Where the results are")
    where_results_are(console, database, outbox)
    home = os.environ["PREFECT_HOME"]
    console.print("the Prefect runs, task runs and artifacts of today's flows:", highlight=False)
    console.print(f"  PREFECT_HOME={home} .venv/bin/prefect server start", highlight=False, soft_wrap=True)
    console.print("  then open http://127.0.0.1:4200/runs (artifacts: renewal-run, renewal-steps, …)")
    sign_in_here(console, database, outbox, people)
    return 0


if __name__ == "__main__":
    sys.exit(main())
