"""The two ways feedback input is refused; the web layer turns them into HTTP 400 and a message."""

from __future__ import annotations


class BadPayload(ValueError):
    """A payload that is not what the provider sends; the message says what is wrong (HTTP 400)."""


class BadAnswer(ValueError):
    """A survey answer or comment that cannot be stored; the message is shown to the person."""
