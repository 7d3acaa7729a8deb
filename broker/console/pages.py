"""The console's pages, as routes of one router (mounted under ``/console``).

- ``GET /``: the start page: what the service is, who uses it, a start button to sign in.
- ``GET /sign-in``: the sign-in form: username, password and the code from an
  authenticator app, posted (never in the URL) back to ``/sign-in`` with the session's
  CSRF token in a hidden field. Answering the POST is the identity work's (issue 17).

Every page is rendered on the server and works without JavaScript. No route takes
personal data in its path or query.
"""

# No ``from __future__ import annotations``: FastAPI reads each route's ``Annotated``
# dependency when the route is declared, and ``sign_in``'s names a local (``csrf_token``).

from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse
from starlette.templating import Jinja2Templates

# The CSRF token to put in a page's form, for the request's session.
CsrfTokenFor = Callable[[Request], str]


def placeholder_csrf_token(request: Request) -> str:
    """No token: an empty field, which no sign-in can pass.

    TODO(issue 17): the identity work (``broker/identity``: server-side sessions with CSRF
    tokens) provides the real ``CsrfTokenFor``; ``broker.api.compose`` passes it to
    ``console_app`` in place of this placeholder."""
    return ""


def console_path(request: Request) -> str:
    """Where the console is mounted, as seen by the browser (with any proxy's prefix):
    the base of every link and form action on its pages."""
    root: str = request.scope.get("root_path", "")
    return root.rstrip("/")


def console_router(templates: Jinja2Templates, *, csrf_token: CsrfTokenFor) -> APIRouter:
    """The pages, rendered with ``templates``; the sign-in form's token from
    ``csrf_token``. Returns the router; its routes raise nothing of their own."""
    router = APIRouter(include_in_schema=False, default_response_class=HTMLResponse)

    @router.get("/")
    async def start(request: Request) -> HTMLResponse:
        return templates.TemplateResponse(request, "start.html", {"console": console_path(request)})

    @router.get("/sign-in")
    async def sign_in(request: Request, token: Annotated[str, Depends(csrf_token)]) -> HTMLResponse:
        return templates.TemplateResponse(
            request, "sign_in.html", {"console": console_path(request), "csrf_token": token}
        )

    return router
