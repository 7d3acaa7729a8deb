"""The API as deployed: the one place its routers are put together, so what `mappa serve`
runs is what `mappa api openapi` documents. Governance and transfer routers are added
here, each guarded by ``require_officer`` or ``require_agency``."""

from __future__ import annotations

from fastapi import FastAPI

from broker.api.app import create_app
from broker.api.backend import BackendFactory


def application(backend: BackendFactory) -> FastAPI:
    return create_app(backend)
