"""The webhook and link service (`techtouch serve`); see techtouch.entrypoints.web.app."""

from __future__ import annotations

from techtouch.entrypoints.web.app import create_app

__all__ = ["create_app"]
