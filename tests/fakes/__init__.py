"""Loopback fake providers: stdlib HTTP servers on 127.0.0.1 that speak the documented APIs,
validate every request against the official OpenAPI specs (a copy in tests/fakes/specs), and can be told
to answer 429, 5xx or nothing (a timeout)."""
