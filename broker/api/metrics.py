"""``GET /metrics``: the server's Prometheus metrics (``broker.observe.metrics``), and the
middleware that times every HTTP request for them.

``install_metrics(app, parts)`` mounts both on an app; ``backend_parts(app)`` is the
``parts`` of an app built by ``create_app`` (its running backend's gateways, ledger and
broker connection). A standalone service (the ledger's) passes a ``parts`` of its own:
``ObservedParts(ledger=..., ledger_topic=..., transport=...)``, with no gateways.

No token, as for ``/healthz`` and ``/readyz``: the metrics name agency ids, topics,
counts, reason codes and route templates, never a person, a message or a raw path, which
is no more than readiness says. They are for the operator's network: a deployment keeps
the API's port, with its health and metrics, off the public internet (deploy/README.md).

Requests are timed by the route that answered them, as its template
(``/v1/agencies/{agency}/inbox/{message_id}``, never the path with its ids); a request
no route matched is ``unmatched``; a page of a mounted app (the console) is the mount's
path followed by its own route's template.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from fastapi import FastAPI, Request
from fastapi.responses import Response
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from broker.api.backend import ApiBackend
from broker.observe.metrics import Metrics, ObservedGateway, ObservedParts, PartsSource

# The exposition format ``prometheus_client.generate_latest`` writes.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
METRICS_PATH = "/metrics"


def parts_of(backend: ApiBackend | None) -> ObservedParts | None:
    """What the metrics read of a running ``backend``; None when it is not running."""
    if backend is None:
        return None
    return ObservedParts(
        gateways=[ObservedGateway.of(s.gateway) for s in backend.agencies.values()],
        ledger=backend.ledger,
        ledger_topic=backend.audit_topic,
        transport=backend.transport,
        clock=backend.clock,
    )


def backend_parts(app: FastAPI) -> PartsSource:
    """The parts of ``app``'s running backend (``create_app`` keeps it in its state)."""
    return lambda: parts_of(getattr(app.state, "backend", None))


def route_template(scope: Scope) -> str | None:
    """The template of the route that answered ``scope`` (with the path of the app it
    is mounted in, if any); None if no route matched."""
    route = scope.get("route")
    if not isinstance(route, BaseRoute):
        return None
    # A mounted app's root path is its mount's path (after the server's own root path).
    mounted = str(scope.get("root_path", ""))[len(str(scope.get("app_root_path", ""))) :]
    return mounted + str(getattr(route, "path", ""))


class RequestTimer:
    """ASGI middleware: each HTTP request's route template, method, status class and
    duration, to ``observe`` (``Metrics.observe_request``). A request that fails without
    answering counts as a 500."""

    def __init__(self, app: ASGIApp, observe: Callable[[str | None, str, int, float], None]):
        self.app = app
        self._observe = observe

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            # The router wrote the matched route into the same scope on its way down.
            self._observe(
                route_template(scope), str(scope["method"]), status, time.perf_counter() - started
            )


def install_metrics(app: FastAPI, parts: PartsSource | None = None) -> Metrics:
    """Serve ``GET /metrics`` on ``app`` and time its requests (outermost middleware:
    every answer is timed, the limits' refusals too). ``parts``: what to read at scrape
    time (default: ``backend_parts(app)``). Returns the app's ``Metrics``; raises nothing
    of its own. Call before the app starts."""
    metrics = Metrics(parts or backend_parts(app))

    # The metrics in Prometheus's text format (module docstring); no token.
    @app.get(METRICS_PATH, include_in_schema=False)
    async def scrape(request: Request) -> Response:
        return Response(await metrics.scrape(), media_type=CONTENT_TYPE)

    app.add_middleware(RequestTimer, observe=metrics.observe_request)
    app.state.metrics = metrics
    return metrics
