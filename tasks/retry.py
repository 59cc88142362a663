"""Retry policy shared by tasks: retry transient database and network errors, nothing else."""

from __future__ import annotations

from typing import Any

from techtouch.adapters.db.engine import is_transient


def transient_error(task: Any, task_run: Any, state: Any) -> bool:
    """`retry_condition_fn`: a bad journey file or a failed template must fail at once."""
    try:
        state.result()
    except Exception as exc:
        return is_transient(exc)
    return False
