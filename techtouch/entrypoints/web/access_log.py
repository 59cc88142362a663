"""The access log without secrets: link tokens and touch keys are redacted from logged paths.

A signed unsubscribe, survey or preferences token in a log is as good as the link itself (anyone
who reads the log can unsubscribe or answer for the customer), and a touch key names an account.
uvicorn logs `"%s - "%s %s HTTP/%s" %d` with the full path as an argument: the filter rewrites
that argument and leaves the rest of the line alone.
"""

from __future__ import annotations

import logging
import re

_TOKEN_PATH = re.compile(r"^/(u|s|p)/[^/?#]+")
_SECRET_QUERY = re.compile(r"(?<=[?&])(touch_key|token)=[^&#]*")
REDACTED = "…"


def redact_path(path: str) -> str:
    """`/s/eyJhbGc…/comment?touch_key=a1` -> `/s/…/comment?touch_key=…`."""
    path = _TOKEN_PATH.sub(lambda m: f"/{m.group(1)}/{REDACTED}", path)
    return _SECRET_QUERY.sub(lambda m: f"{m.group(1)}={REDACTED}", path)


class RedactTokens(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str):
            record.args = (*args[:2], redact_path(args[2]), *args[3:])
        return True


def install() -> None:
    """Add the filter to uvicorn's access logger (idempotent)."""
    logger = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, RedactTokens) for f in logger.filters):
        logger.addFilter(RedactTokens())
