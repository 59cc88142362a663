"""What every page test needs: Debian's Chromium (skipped outside CI with the reason, a failure
under CI=true), a free loopback port, and a way to tell that `techtouch serve` answers."""

from __future__ import annotations

import os
import shutil
import socket
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import IN_CI


@pytest.fixture(scope="module")
def chromium() -> str:
    path = os.environ.get("TECHTOUCH_TEST_CHROMIUM") or shutil.which("chromium") or ""
    if not path or not Path(path).exists():
        problem = "Chromium is not installed (apt-get install -y chromium)"
        if IN_CI:
            pytest.fail(f"CI=true and {problem}", pytrace=False)
        pytest.skip(problem)
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/healthz", timeout=1) as response:
            return response.status == 200
    except OSError:
        return False
