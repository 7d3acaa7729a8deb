"""The API as deployed: the one place its routers are put together, so what `mappa serve`
runs is what `mappa api openapi` documents.

- agency routes (``routes.py``), each guarded by ``require_agency``;
- governance routes (``governance.py``, the ledger over HTTP), guarded by
  ``require_officer``, reading the ledger of the running backend.
- transfer routes (``transfers.py``), on the calling agency's own transfer desk,
  guarded by ``require_agency``.
- the witnesses served here (``witness_routes.py``): tlog-witness ``add-checkpoint``,
  without a token (the note is signed by the log), outside the OpenAPI document.
- the web console (``broker.console``), mounted at ``/console``: GOV.UK pages, outside
  the OpenAPI document.
- ``GET /metrics`` (``broker.api.metrics``): Prometheus metrics, without a token as
  ``/healthz`` and ``/readyz``; outside the OpenAPI document.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager

from fastapi import FastAPI
from starlette.types import ASGIApp

from broker.api.app import create_app
from broker.api.auth import NotFound, ServiceStarting, require_officer
from broker.api.backend import ApiBackend, BackendFactory
from broker.api.governance import governance_router
from broker.api.metrics import install_metrics
from broker.api.transfers import transfers_router
from broker.api.witness_routes import witness_router
from broker.console import CONSOLE_PATH, ConsoleIdentity, console_app, console_identity
from broker.identity.users import UserStore
from broker.ledger.reader import LedgerReader


class _Running:
    """The backend the app is running with, for routers built before it starts."""

    def __init__(self, backend: BackendFactory) -> None:
        self._factory = backend
        self.backend: ApiBackend | None = None
        self.identity_parts: ConsoleIdentity | None = None

    @asynccontextmanager
    async def __call__(self) -> AsyncIterator[ApiBackend]:
        async with self._factory() as backend, AsyncExitStack() as stack:
            if backend.data_dir is not None:
                self.identity_parts = stack.enter_context(
                    console_identity(backend.data_dir, backend.clock, oidc=backend.oidc)
                )
            self.backend = backend
            try:
                yield backend
            finally:
                self.backend = None
                self.identity_parts = None

    def running_backend(self) -> ApiBackend:
        if self.backend is None:
            raise ServiceStarting("the service is not running yet")
        return self.backend

    def users(self) -> UserStore:
        """The named users of the running server (``auth.acting`` checks a service
        account's on-behalf-of against them). Raises as ``identity`` does."""
        return self.identity().users

    def identity(self) -> ConsoleIdentity:
        if self.backend is None:
            raise ServiceStarting("the service is not running yet")
        if self.identity_parts is None:
            raise NotFound("this server has no console sign-in")
        return self.identity_parts

    def ledger(self) -> LedgerReader:
        if self.backend is None:
            raise ServiceStarting("the service is not running yet")
        if self.backend.ledger is None:
            raise NotFound(
                "this server runs no audit ledger (started with --no-ledger, or the "
                "ledger's key is not held here: `mappa ledger serve` runs it)"
            )
        return self.backend.ledger


# What builds a served app over its backend: ``application``, ``ledger_application``.
AppBuilder = Callable[[BackendFactory], ASGIApp]


def application(backend: BackendFactory) -> FastAPI:
    """The app as deployed over ``backend``: agency, governance and transfer routes, and
    the console at ``/console``. Returns the app; raises nothing of its own. Its
    governance routes answer ``ServiceStarting`` (``api.unavailable``) until the backend
    runs, and ``NotFound`` (``api.not-found``) if it runs no ledger."""
    running = _Running(backend)
    app = create_app(
        running,
        routers=[
            governance_router(running.ledger, require_officer),
            transfers_router(),
            witness_router(),
        ],
    )
    # For ``auth.acting``: whom an agency's service account may act for.
    app.state.users = running.users
    app.mount(
        CONSOLE_PATH,
        console_app(identity=running.identity, backend=running.running_backend),
        name="console",
    )
    # GET /metrics, and every request timed for it (``broker.api.metrics``).
    install_metrics(app)
    return app
