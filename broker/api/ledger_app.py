"""The audit ledger service's own HTTP app (``mappa ledger serve``): the governance API
for information-governance officers, and liveness and readiness, over a backend that
serves no agency (``runtime.ledger_backend``).

- governance routes (``governance.py``), guarded by ``require_officer`` (an officer
  credential issued in the ledger's own data directory), reading the running ledger;
  ``503 api.unavailable`` until it runs;
- ``/healthz`` and ``/readyz`` (``health.py``): ready when the broker answers and the
  ledger's database answers within its lag bound.

No agency route, transfer route or console: an agency's gateway serves those. The same
error table, body limits, failure limiter and security headers as the agency API
(``app.py``), so an officer's client sees one API wherever the ledger runs.
"""

from __future__ import annotations

from fastapi import FastAPI

from broker.api.app import create_app
from broker.api.auth import BackendDep, NotFound, require_officer
from broker.api.backend import BackendFactory
from broker.api.governance import governance_router
from broker.api.metrics import install_metrics
from broker.ledger.reader import LedgerReader

TITLE = "mappa-broker audit ledger"
DESCRIPTION = """The MAPPA broker's audit ledger, for information-governance officers.

Every request to `/governance/...` carries an officer's bearer token (`mappa api token
issue --officer` in the ledger's data directory). Every error is `{"error": code,
"detail": text}`. `/healthz` and `/readyz` (liveness and readiness) need no token.
"""


def running_ledger(backend: BackendDep) -> LedgerReader:
    """Dependency: the running ledger's reader. Raises ``ServiceStarting``
    (``api.unavailable``) outside the app's lifespan, through ``BackendDep``, and
    ``NotFound`` (``api.not-found``) for a backend without a ledger."""
    if backend.ledger is None:
        raise NotFound("this server runs no audit ledger")
    return backend.ledger


def ledger_application(backend: BackendFactory) -> FastAPI:
    """The ledger service's app over ``backend``, entered for the app's lifespan: the
    governance routes, liveness, readiness and metrics, with the agency API's error
    table, limits and headers (``create_app``). Returns the app; raises nothing of its
    own."""
    app = create_app(
        backend,
        routers=[governance_router(running_ledger, require_officer)],
        title=TITLE,
        description=DESCRIPTION,
        agency_routes=False,
    )
    # The ledger's own figures (size, append rate, checkpoint age, its reader's lag).
    install_metrics(app)
    return app
