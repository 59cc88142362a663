"""What a route raises instead of answering itself; create_app()'s handlers turn it into the response.

Two families, because the callers differ: providers read a JSON `{"error": reason}` and retry on 503,
people read an HTML page. Raising keeps every refusal a single line in the route (and in the
dependencies, which cannot return a response), and keeps the answer to a given refusal the same
wherever it comes from.
"""

from __future__ import annotations


class Problem(Exception):
    """A webhook request we refuse: `{"error": reason}` with `status` (403, 413, 503...)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class PageError(Exception):
    """A link page that is not the one asked for: message.html with `title`, `message` and `status`."""

    def __init__(self, status: int, title: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.title = title
        self.message = message


class BadLink(PageError):
    """The token does not verify, or does not name what the page needs (400); `reason` says which."""

    def __init__(self, reason: str) -> None:
        super().__init__(400, "This link is not valid", reason)


class LinkGone(PageError):
    """The token is genuine but what it names (account, contact) no longer exists (404)."""

    def __init__(self) -> None:
        super().__init__(404, "This link has expired", "We no longer hold what it refers to.")
