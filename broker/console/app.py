"""``console_app``: the web console as one ASGI app, which ``broker.api.compose`` mounts at
``CONSOLE_PATH`` beside the API.

Its own app rather than routes of the API's, so that what goes wrong under ``/console``
is answered as a GOV.UK page (``Page not found``, or a generic problem page), while the
API keeps its JSON error table (``broker.api.errors``). It has no OpenAPI document: the
pages are not part of the API's contract. Its static files (GOV.UK Frontend's CSS,
JavaScript, fonts and images, and ``console.js``) are served from ``static/``, from this
origin only; nothing is fetched from a CDN.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from broker.console.pages import (
    CsrfTokenFor,
    console_path,
    console_router,
    placeholder_csrf_token,
)
from broker.console.templating import templates

CONSOLE_PATH = "/console"
STATIC = Path(__file__).resolve().parent / "static"


def console_app(*, csrf_token: CsrfTokenFor = placeholder_csrf_token) -> FastAPI:
    """The console: its pages (``pages.py``), its static files at ``/static``, and GOV.UK
    error pages for any HTTP error under it. ``csrf_token`` fills the sign-in form's
    hidden field (``pages.placeholder_csrf_token`` until issue 17's identity work).
    Returns the app; raises nothing of its own."""
    rendered = templates()
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.include_router(console_router(rendered, csrf_token=csrf_token))

    async def error_page(request: Request, exc: Exception) -> HTMLResponse:
        assert isinstance(exc, StarletteHTTPException)  # noqa: S101
        page = "not_found.html" if exc.status_code == 404 else "problem.html"
        context = {"console": console_path(request), "status": exc.status_code}
        return rendered.TemplateResponse(
            request, page, context, status_code=exc.status_code, headers=exc.headers
        )

    app.add_exception_handler(StarletteHTTPException, error_page)
    return app
