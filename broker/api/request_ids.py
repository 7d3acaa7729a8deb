"""The request id of every HTTP request (``broker.observe.logs`` logs it): the ASGI
middleware that gives each request one, here because only ``broker.api`` speaks ASGI."""

from __future__ import annotations

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from broker.observe.logs import REQUEST_ID_HEADER, accepted_request_id, request_context


class RequestIds:
    """ASGI middleware: each HTTP request runs with a request id (``accepted_request_id``
    of its ``X-Request-Id``) in ``current_request_id()``, and its response carries it in
    ``X-Request-Id``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = accepted_request_id(Headers(scope=scope).get(REQUEST_ID_HEADER))

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message)[REQUEST_ID_HEADER] = request_id
            await send(message)

        with request_context(request_id):
            await self.app(scope, receive, send_with_id)
