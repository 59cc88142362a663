"""`techtouch serve`: the webhook and link service (techtouch.entrypoints.web) under uvicorn."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlsplit

import typer

from techtouch.adapters.loopback import is_loopback_url
from techtouch.bootstrap import ConfigurationError
from techtouch.entrypoints.cli.app import UserError, app, application, err
from techtouch.settings import Settings


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

    from techtouch.entrypoints.web import access_log, create_app

    tt = application()
    cfg = tt.settings
    refuse_unsafe(cfg)
    try:
        service = create_app(tt)
    except (ConfigurationError, ValueError) as exc:
        raise UserError(str(exc)) from None
    err.print(f"serving {cfg.public_url} on http://{host}:{port}", highlight=False)
    err.print(
        f"CSM workspace: {cfg.public_url.rstrip('/')}/inbox (sign in as a user of `techtouch users add`)",
        highlight=False,
        soft_wrap=True,  # a URL cut at the terminal's width cannot be clicked or copied
    )
    config = uvicorn.Config(service, host=host, port=port, proxy_headers=True, log_level="info")
    server = uvicorn.Server(config)
    access_log.install()  # after uvicorn configured its loggers: tokens never reach the access log
    server.run()


def refuse_unsafe(cfg: Settings) -> None:
    """A service on the network signs and verifies real links: no development key, no plain http.

    Without TECHTOUCH_SECRET_KEY links would be signed with the development key that anybody can
    read in this repository; with a provider channel, links in real mail must be https (a
    plain-http public URL is accepted only on loopback, for local trials).
    """
    if cfg.secret_key is None:
        raise UserError(
            "techtouch serve needs TECHTOUCH_SECRET_KEY (a long random string; "
            "python -c 'import secrets; print(secrets.token_urlsafe(32))')"
        )
    provider = cfg.email_channel != "outbox" or cfg.sms_channel != "outbox"
    if provider and urlsplit(cfg.public_url).scheme != "https" and not is_loopback_url(cfg.public_url):
        raise UserError(
            f"TECHTOUCH_PUBLIC_URL {cfg.public_url!r} is plain http: links in real messages must use https"
        )
