"""The `techtouch` command: a stable contract that users and scripts rely on (DESIGN.md §5)."""

from __future__ import annotations

from techtouch.entrypoints.cli.app import app, main

__all__ = ["app", "main"]
