"""``create_app``: the FastAPI application for agency systems and, through routers that
other modules supply, for information-governance officers and transfers.

The backend (gateways, adapters, credentials) is entered in the app's lifespan and
left on shutdown, so whatever runs the app (uvicorn, a test client) starts and stops
it with the app. Extra routers are included as given; they protect themselves with
``broker.api.auth.require_officer`` or ``require_agency``. Liveness and readiness
(``health.py``) need no token.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI

from broker.api.backend import BackendFactory
from broker.api.errors import documented, install_error_handlers
from broker.api.headers import SecurityHeaders
from broker.api.health import health_router
from broker.api.limits import BodyLimit, FailureLimiter
from broker.api.request_ids import RequestIds
from broker.api.routes import agency_router

API_VERSION = "1.0.0"
DESCRIPTION = """The MAPPA broker's API for agency systems.

Each agency system authenticates with its own bearer token (`mappa api token issue`) and
reaches only its own agency's records. Every error is `{"error": code, "detail": text}`.
`/healthz` and `/readyz` (liveness and readiness) need no token.

A request body is at most 1 MiB (413 `request.too-large`) and must arrive without a pause
of 5 s or more, and within 30 s in all (408 `request.timeout`). After 10 failed
authentications from one address, or for one credential, the next attempts are answered
429 `auth.rate-limited` with `Retry-After` (one more attempt every 6 s).
"""


def create_app(
    backend: BackendFactory,
    *,
    routers: Sequence[APIRouter] = (),
    title: str = "mappa-broker",
    description: str = DESCRIPTION,
    agency_routes: bool = True,
) -> FastAPI:
    """The app over ``backend``, which is entered for the app's lifespan: the agency
    routes (unless ``agency_routes`` is false: the ledger's own service), then
    ``routers`` as given, liveness and readiness, and the one error table. Returns the
    app; raises nothing of its own."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with backend() as running:
            app.state.backend = running
            try:
                yield
            finally:
                app.state.backend = None

    # No /docs or /redoc: FastAPI's pages load Swagger UI and ReDoc from a CDN and start
    # them with an inline script, which the Content-Security-Policy (``headers.py``) forbids.
    # The contract is /openapi.json (checked in as docs/openapi.json) for any OpenAPI viewer.
    app = FastAPI(
        title=title,
        version=API_VERSION,
        description=description,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    install_error_handlers(app)
    # Bounds on what one request may cost (``broker.api.limits``).
    app.add_middleware(BodyLimit)
    # Outermost of ours, so that the limits' own answers carry the headers too.
    app.add_middleware(SecurityHeaders)
    # Outermost: every log line of a request, the limits' answers' too, has its id.
    app.add_middleware(RequestIds)
    app.state.auth_failures = FailureLimiter()
    # Any request may meet the limits: a body too slow or too large, too many failures.
    limits = documented(408, 413, 429)
    if agency_routes:
        app.include_router(agency_router(), responses=limits)
    for router in routers:
        # Every route answers errors in the one shape; say so in the document.
        app.include_router(router, responses=documented(401, 403, 404, 409, 422, 503) | limits)
    app.include_router(health_router())
    return app


def openapi_json(app: FastAPI) -> str:
    """The document served at /openapi.json, as checked in at docs/openapi.json."""
    return json.dumps(app.openapi(), indent=2, ensure_ascii=False) + "\n"
