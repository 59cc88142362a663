"""Channels: one batch interface (base.py), one adapter per provider; `outbox` writes files."""

from techtouch.adapters.channels.base import EmailChannel, OutboundEmail, OutboundSms, Receipt, SmsChannel
from techtouch.adapters.channels.outbox import OutboxEmailChannel, OutboxSmsChannel

__all__ = [
    "EmailChannel",
    "OutboundEmail",
    "OutboundSms",
    "OutboxEmailChannel",
    "OutboxSmsChannel",
    "Receipt",
    "SmsChannel",
]
