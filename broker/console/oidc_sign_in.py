"""Signing in to the console with the organisation's account: the force's own identity
provider, by OpenID Connect (``broker.identity.oidc``). Both routes answer 404 where no
provider is configured (``MAPPA_OIDC_ISSUER`` unset: local accounts only).

- ``GET /sign-in/oidc``: a new pending sign-in (state, nonce, PKCE verifier) in a
  short-lived signed cookie (``broker.identity.oidc_state``), and a 303 to the
  provider's authorization endpoint.
- ``GET /sign-in/oidc/callback``: where the provider sends the browser back. Checks the
  state against the cookie, exchanges the code, checks the ID token, and admits the
  local user it names (``UserStore.admit``: their agency and role are the session's);
  starts a session as a password sign-in does, and sends the browser home. Any refusal
  shows the sign-in page with one message that never says which check failed.

The callback's address, which the provider must have registered, is
``MAPPA_OIDC_REDIRECT_URL`` where set, else this request's scheme and host with the
console's path: behind a proxy, that is right only if the proxy passes the public
ones on (uvicorn's ``--proxy-headers``).
"""

# No ``from __future__ import annotations``: FastAPI reads the routes' annotations.

import logging

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from broker.console.context import PageContext
from broker.console.pages import render, sign_in_page
from broker.console.signing_in import OidcSignIn, console_path
from broker.identity.cookies import set_cookie_header
from broker.identity.csrf import clear_sign_in_cookie_header
from broker.identity.errors import OidcRefused, SignInRefused
from broker.identity.oidc import OIDC_ACTOR
from broker.identity.oidc_state import (
    OIDC_COOKIE_NAME,
    clear_oidc_cookie_header,
    oidc_cookie_header,
)

log = logging.getLogger(__name__)

CALLBACK_PATH = "/sign-in/oidc/callback"
# Said for every refused sign-in with the organisation's account, whatever went wrong.
OIDC_SIGN_IN_FAILED = (
    "You could not be signed in with your organisation's account. Try again, or ask "
    "your agency's administrator whether you have an account on this service"
)
# A code or state longer than this is no provider's.
MAX_PARAMETER_CHARS = 2048


def oidc_router(ctx: PageContext) -> APIRouter:
    """The OpenID Connect sign-in routes over ``ctx``. Returns the router; its routes
    raise ``HTTPException`` (404 without a provider) and nothing else of their own."""
    router = APIRouter(include_in_schema=False, default_response_class=HTMLResponse)

    def configured() -> OidcSignIn:
        oidc = ctx.identity().oidc
        if oidc is None:
            raise HTTPException(404, "this service signs in with local accounts only")
        return oidc

    def callback_url(request: Request, oidc: OidcSignIn) -> str:
        fixed = oidc.client.config.redirect_url
        if fixed is not None:
            return fixed
        path = f"{console_path(request)}{CALLBACK_PATH}"
        return str(request.url.replace(path=path, query=None, fragment=None))

    def refused(request: Request, exc: OidcRefused | SignInRefused) -> HTMLResponse:
        # The code says which check failed; the person is not told, the log is.
        log.info("a sign-in with the organisation's account was refused: %s", exc.code)
        page = sign_in_page(ctx, request, status_code=401, error=OIDC_SIGN_IN_FAILED)
        page.headers.append("Set-Cookie", clear_oidc_cookie_header())
        return page

    @router.get("/sign-in/oidc")
    async def oidc_start(request: Request) -> Response:
        oidc = configured()
        parts = ctx.identity()
        pending = oidc.state.issue(now=parts.clock())
        try:
            url = await oidc.client.authorization_url(
                pending, redirect_uri=callback_url(request, oidc)
            )
        except OidcRefused as exc:
            return refused(request, exc)
        away = RedirectResponse(url, status_code=303)
        away.headers.append("Set-Cookie", oidc_cookie_header(oidc.state.cookie_value(pending)))
        away.headers["Cache-Control"] = "no-store"
        return away

    @router.get(CALLBACK_PATH)
    async def oidc_callback(request: Request) -> Response:
        oidc = configured()
        parts = ctx.identity()
        now = parts.clock()
        query = request.query_params
        state, code = query.get("state"), query.get("code")
        try:
            pending = oidc.state.check(request.cookies.get(OIDC_COOKIE_NAME), state, now=now)
            if "error" in query or not code or len(code) > MAX_PARAMETER_CHARS:
                # The provider said no (the person cancelled, or is not allowed there).
                raise OidcRefused("no code came back", code="oidc.provider")  # noqa: TRY301
            username = await oidc.client.username(
                code, pending, redirect_uri=callback_url(request, oidc), now=now
            )
            user = parts.users.admit(username, actor=OIDC_ACTOR, now=now)
        except (OidcRefused, SignInRefused) as exc:
            return refused(request, exc)
        started = parts.sessions.start(user, now=now)
        home = render(
            ctx.templates, request, "signed_in.html", home=f"{console_path(request)}/home"
        )
        home.headers.append("Set-Cookie", set_cookie_header(parts.cookies.sign(started.session_id)))
        home.headers.append("Set-Cookie", clear_oidc_cookie_header())
        home.headers.append("Set-Cookie", clear_sign_in_cookie_header())
        home.headers["Cache-Control"] = "no-store"
        return home

    return router
