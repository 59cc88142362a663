"""Prefect flows: one per journey, `health`, `daily` (health, then every journey) and `csm_digest`.

Flows read top to bottom and compose tasks; business rules live in the `techtouch` library.
"""
