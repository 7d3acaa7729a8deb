"""The pages of an agency's users: inbox, a message opened with a reason, sent
messages and their delivery, submitting a record."""

# No ``from __future__ import annotations``: FastAPI reads the routes' annotations.

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from broker.console.context import PageContext
from broker.identity.roles import Role

# This group's items in the service navigation, per role: (text, path under /console).
NAVIGATION: dict[Role, list[tuple[str, str]]] = {}


def agency_pages(ctx: PageContext) -> APIRouter:
    """The agency pages over ``ctx`` (none yet)."""
    router = APIRouter(include_in_schema=False, default_response_class=HTMLResponse)
    return router
