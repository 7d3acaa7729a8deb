"""The pages of MAPPA co-ordinators: case teams and transfers between areas."""

# No ``from __future__ import annotations``: FastAPI reads the routes' annotations.

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from broker.console.context import PageContext
from broker.identity.roles import Role

# This group's items in the service navigation, per role: (text, path under /console).
NAVIGATION: dict[Role, list[tuple[str, str]]] = {}


def coordination_pages(ctx: PageContext) -> APIRouter:
    """The co-ordination pages over ``ctx`` (none yet)."""
    router = APIRouter(include_in_schema=False, default_response_class=HTMLResponse)
    return router
