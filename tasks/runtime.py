"""Settings for a flow run: the environment, plus secrets from Prefect Secret blocks.

Secrets are read at run time from blocks (`techtouch-secret-key`, `techtouch-sendgrid-api-key`,
`techtouch-twilio-auth-token`) when the worker's environment does not set them, so they never sit
in prefect.yaml or in a deployment's stored job variables.
"""

from __future__ import annotations

import os
from typing import Any, cast

from prefect.blocks.system import Secret

from techtouch import bootstrap
from techtouch.services.app import App
from techtouch.settings import Settings, load_settings

SECRET_BLOCKS = {
    "secret_key": "techtouch-secret-key",
    "sendgrid_api_key": "techtouch-sendgrid-api-key",
    "twilio_auth_token": "techtouch-twilio-auth-token",
}


def secret_from_block(name: str) -> str | None:
    try:
        # Called from sync code only, where `load` (an async_dispatch) runs the sync implementation.
        block = cast(Secret[Any], Secret.load(name, validate=False))
    except ValueError:  # no such block
        return None
    value = block.get()
    return str(value) if value else None


def runtime_settings() -> Settings:
    found: dict[str, str] = {}
    for field, block in SECRET_BLOCKS.items():
        if os.environ.get(f"TECHTOUCH_{field.upper()}"):
            continue
        value = secret_from_block(block)
        if value is not None:
            found[field] = value
    return load_settings(**found)


def runtime_app() -> App:
    """The flow run's App: one engine and one set of adapters for all of its tasks.

    The schema is checked, never migrated: `techtouch db upgrade` is a deploy step (README).
    """
    return bootstrap.build(runtime_settings())
