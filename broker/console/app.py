"""``console_app``: the web console as one ASGI app, which ``broker.api.compose`` mounts at
``CONSOLE_PATH`` beside the API.

Its own app rather than routes of the API's, so that what goes wrong under ``/console``
is answered as a GOV.UK page (``Page not found``, or a generic problem page), while the
API keeps its JSON error table (``broker.api.errors``). It has no OpenAPI document: the
pages are not part of the API's contract. Its static files (GOV.UK Frontend's CSS and
JavaScript, ``console.js`` and the favicon) are served from ``static/``, from this origin
only; nothing is fetched from a CDN.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from broker.api.errors import status_for
from broker.console.administration import administration_pages
from broker.console.agency import agency_pages
from broker.console.context import BackendSource
from broker.console.coordination import coordination_pages
from broker.console.governance import governance_pages
from broker.console.oidc_sign_in import oidc_router
from broker.console.pages import console_router, page_context
from broker.console.signing_in import IdentitySource, console_path
from broker.console.templating import templates
from broker.errors import MappaError

CONSOLE_PATH = "/console"
STATIC = Path(__file__).resolve().parent / "static"


def console_app(*, identity: IdentitySource, backend: BackendSource) -> FastAPI:
    """The console: its pages (``pages.py``, ``agency.py``, ``coordination.py``,
    ``governance.py``) over the running server's ``identity`` and ``backend``
    (users, sessions; it raises ``ServiceStarting`` until the server runs), its static
    files at ``/static``, and GOV.UK error pages for any HTTP error under it. Returns the
    app; raises nothing of its own."""
    rendered = templates()
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    ctx = page_context(rendered, identity=identity, backend=backend)
    app.include_router(console_router(ctx))
    app.include_router(oidc_router(ctx))
    # Each group of pages for its roles (their routes check the role and the agency).
    for pages in (agency_pages, coordination_pages, governance_pages, administration_pages):
        app.include_router(pages(ctx))

    async def error_page(request: Request, exc: Exception) -> HTMLResponse:
        assert isinstance(exc, StarletteHTTPException)  # noqa: S101
        page = "not_found.html" if exc.status_code == 404 else "problem.html"
        context = {"console": console_path(request), "status": exc.status_code}
        return rendered.TemplateResponse(
            request, page, context, status_code=exc.status_code, headers=exc.headers
        )

    async def mappa_error_page(request: Request, exc: Exception) -> HTMLResponse:
        # Our errors (a store locked, the service still starting) at their API status,
        # as a page: a 503 says to try again later, never a traceback.
        assert isinstance(exc, MappaError)  # noqa: S101
        status = status_for(exc)
        context = {"console": console_path(request), "status": status}
        return rendered.TemplateResponse(request, "problem.html", context, status_code=status)

    app.add_exception_handler(StarletteHTTPException, error_page)
    app.add_exception_handler(MappaError, mappa_error_page)
    return app
