"""`techtouch serve`: the webhook and link service (techtouch.entrypoints.web) under uvicorn."""

from __future__ import annotations

from typing import Annotated

import typer

from techtouch.bootstrap import ConfigurationError
from techtouch.entrypoints.cli.app import UserError, app, application, err


@app.command("serve")
def serve_command(
    host: Annotated[str, typer.Option("--host", help="interface to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="TCP port")] = 8000,
) -> None:
    """Serve provider webhooks (SendGrid, Twilio) and the unsubscribe, survey and preference links.

    Put it behind HTTPS and set TECHTOUCH_PUBLIC_URL to the address providers and recipients use:
    Twilio signatures are checked against it.
    """
    import uvicorn

    from techtouch.entrypoints.web import create_app

    tt = application()
    cfg = tt.settings
    try:
        service = create_app(tt)
    except (ConfigurationError, ValueError) as exc:
        raise UserError(str(exc)) from None
    err.print(f"serving {cfg.public_url} on http://{host}:{port}", highlight=False)
    uvicorn.run(service, host=host, port=port, proxy_headers=True, log_level="info")
