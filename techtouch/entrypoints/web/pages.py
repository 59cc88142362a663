"""The HTML pages behind the one-click links, rendered with the headers every such page needs.

The URL of each page holds a capability token, so every page (including error pages) is sent with
the same protective headers: not cached, never framed, and its address never passed on as a referrer.
"""

from __future__ import annotations

from typing import Any

from fastapi.responses import HTMLResponse
from jinja2 import Environment, PackageLoader

PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",  # the URL holds a capability token: never pass it on
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'",
}


class Pages:
    """The templates in techtouch/entrypoints/web/templates, autoescaped (comments and answers are echoed)."""

    def __init__(self) -> None:
        self._templates = Environment(
            loader=PackageLoader("techtouch.entrypoints.web", "templates"), autoescape=True
        )

    def render(self, name: str, status: int = 200, **context: Any) -> HTMLResponse:
        html = self._templates.get_template(name).render(**context)
        return HTMLResponse(html, status_code=status, headers=PAGE_HEADERS)

    def message(self, status: int, title: str, message: str) -> HTMLResponse:
        """A page that only says something: errors, and thanks for a comment."""
        return self.render("message.html", status, title=title, message=message)
