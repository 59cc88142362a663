"""The webhook and link service (`techtouch serve`); see techtouch.web.app."""

from __future__ import annotations

from techtouch.web.app import create_app

__all__ = ["create_app"]
