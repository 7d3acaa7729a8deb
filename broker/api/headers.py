"""``SecurityHeaders``: the response headers every answer of the app carries, API and
console alike.

- ``Content-Security-Policy``: only this origin's own files; no inline script or style
  (no ``'unsafe-inline'``, no ``'unsafe-eval'``), no plugins, no ``<base>``, forms post
  only here, and no page may frame ours (``frame-ancestors 'none'``).
- ``X-Content-Type-Options: nosniff``: a browser takes each answer as the type it says.
- ``Referrer-Policy: no-referrer``: a link followed from the console tells the next site
  nothing of where it came from.
- ``Strict-Transport-Security``, only on an answer sent over TLS. ``mappa serve`` does
  not terminate TLS itself (docs/api.md: a TLS-terminating proxy goes in front); the ASGI
  scope's ``scheme`` is ``https`` when uvicorn runs TLS or when a proxy it trusts
  (``--forwarded-allow-ips``, loopback by default) says so with ``X-Forwarded-Proto``.
  RFC 6797 section 7.2: a host must not send it over plain HTTP, where a browser
  ignores it anyway.

A header a route set itself is left as it is.
"""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Everything from this origin and nothing else. ``default-src`` covers scripts, styles,
# fonts, images, fetches and the web manifest; the rest are the directives it does not.
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)
# A year, the value browsers' preload lists ask for; subdomains of the service's host too.
STRICT_TRANSPORT_SECURITY = "max-age=31536000; includeSubDomains"

ALWAYS = {
    "content-security-policy": CONTENT_SECURITY_POLICY,
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
}


class SecurityHeaders:
    """ASGI middleware adding the module's headers to every HTTP response of ``app``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        over_tls = scope.get("scheme") == "https"

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in ALWAYS.items():
                    headers.setdefault(name, value)
                if over_tls:
                    headers.setdefault("strict-transport-security", STRICT_TRANSPORT_SECURITY)
            await send(message)

        await self.app(scope, receive, send_with_headers)
