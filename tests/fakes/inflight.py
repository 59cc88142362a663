"""Requests a fake provider is still handling, so a test can wait for them to land.

A delivery killed with SIGKILL may leave a request that the fake has received but not yet
recorded; recovery that reads the fake's records (SendGrid's `processed` events, Twilio's
message list) before that would see a message as missing that a real provider had accepted.
Real providers have the same window: that is what the grace period is for in production.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager


class InFlight:
    def __init__(self) -> None:
        self._count = 0
        self._changed = time.monotonic()
        self._condition = threading.Condition()

    @contextmanager
    def request(self) -> Iterator[None]:
        with self._condition:
            self._count += 1
            self._changed = time.monotonic()
        try:
            yield
        finally:
            with self._condition:
                self._count -= 1
                self._changed = time.monotonic()
                self._condition.notify_all()

    def wait_idle(self, quiet: float = 0.1, timeout: float = 10.0) -> bool:
        """True once no request has been in flight for `quiet` seconds (False after `timeout`)."""
        deadline = time.monotonic() + timeout
        with self._condition:
            while True:
                now = time.monotonic()
                if self._count == 0 and now - self._changed >= quiet:
                    return True
                if now >= deadline:
                    return False
                self._condition.wait(min(quiet, deadline - now))
