"""Is a URL on this machine? Plain http and test servers are allowed there and nowhere else."""

from __future__ import annotations

from ipaddress import ip_address
from urllib.parse import urlsplit


def is_loopback_url(url: str) -> bool:
    """True for http(s)://localhost…, 127.0.0.0/8 and [::1]."""
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ip_address(host).is_loopback
    except ValueError:
        return False
