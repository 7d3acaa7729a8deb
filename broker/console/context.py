"""What every group of console pages is built with (``PageContext``), so that each group
(agency, co-ordination, governance) is a router of its own over the same parts."""

# No ``from __future__ import annotations``: FastAPI reads the dependencies' annotations.

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from starlette.templating import Jinja2Templates

from broker.api.backend import ApiBackend
from broker.console.signing_in import IdentitySource, SignedIn

# The running server's backend (its agencies' gateways, transfer desks and ledger);
# raises ``ServiceStarting`` until it runs.
BackendSource = Callable[[], ApiBackend]


@dataclass(frozen=True)
class PageContext:
    """The parts a group of pages works with.

    - ``templates``: the console's Jinja2 environment (``templating.py``).
    - ``identity``: users and sessions; ``backend``: the server's agencies, desks, ledger.
    - ``signed_in``: the dependency giving the signed-in user (a 303 to sign-in without).
    - ``checked_form``: the dependency giving ``(who, form)`` for a posted form whose
      CSRF token matches the session's (a 403 otherwise).
    - ``render``: ``render(request, template, who, status_code=200, **context)``.
    """

    templates: Jinja2Templates
    identity: IdentitySource
    backend: BackendSource
    signed_in: Callable[..., SignedIn]
    checked_form: Callable[..., Any]
    render: Callable[..., HTMLResponse]

    def page(
        self, request: Request, name: str, who: SignedIn, *, status_code: int = 200, **context: Any
    ) -> HTMLResponse:
        return self.render(request, name, who, status_code=status_code, **context)
