"""GET /healthz: the service is up and its database answers (what a load balancer or a test polls)."""

from __future__ import annotations

import logging

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text

from techtouch.entrypoints.web.deps import AppDep

log = logging.getLogger(__name__)

router = APIRouter()


@router.get("/healthz")
def healthz(tt: AppDep) -> JSONResponse:
    """503 when the database does not answer, so traffic goes elsewhere; only the error's type is logged
    (a driver's message can hold the database URL)."""
    try:
        with tt.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception as exc:
        log.error("health check: database unreachable: %s", type(exc).__name__)
        return JSONResponse({"status": "database unreachable"}, status_code=503)
    return JSONResponse({"status": "ok"})
