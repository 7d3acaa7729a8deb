"""The console's start, sign-in, sign-out and home pages, as routes of one router
(mounted under ``/console``).

- ``GET /``: the start page: what the service is, who uses it, a start button.
- ``GET /sign-in``: the sign-in form: username, password and the code from an
  authenticator app, with a token in a hidden field that matches a short-lived cookie
  (``broker.identity.csrf.SignInCsrf``): no other site can post a sign-in.
- ``POST /sign-in``: checks the token, rations failed attempts per client address and
  per username, authenticates (``UserStore.authenticate``: Argon2id, TOTP, lockout),
  starts a session and sets its cookie, then sends the browser home (303). A refusal
  re-renders the form with a GOV.UK error summary that never says which part was wrong.
- ``POST /sign-out``: ends the session (CSRF-checked) and clears its cookie.
- ``GET /home``: the signed-in user's start: their agency, role and pages.

Every page is rendered on the server and works without JavaScript. No route takes
personal data in its path or query.
"""

# No ``from __future__ import annotations``: FastAPI reads each route's ``Annotated``
# dependency when the route is declared, and those name locals.

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.templating import Jinja2Templates

from broker.api.limits import TooManyFailures
from broker.console import administration, agency, coordination, governance
from broker.console.context import BackendSource, PageContext
from broker.console.signing_in import (
    IdentitySource,
    SignedIn,
    checked_form_with,
    console_path,
    read_form,
    signed_in_with,
    text_field,
)
from broker.identity.cookies import clear_cookie_header, set_cookie_header
from broker.identity.csrf import (
    SIGN_IN_COOKIE_NAME,
    clear_sign_in_cookie_header,
    sign_in_cookie_header,
)
from broker.identity.errors import CsrfRefused, SignInRefused
from broker.identity.roles import Role

GROUP_NAVIGATION = (
    agency.NAVIGATION,
    coordination.NAVIGATION,
    governance.NAVIGATION,
    administration.NAVIGATION,
)
# What each role is called on the page.
ROLE_NAMES = {
    Role.AGENCY_USER.value: "an agency user",
    Role.AGENCY_ADMIN.value: "an agency administrator",
    Role.COORDINATOR.value: "a MAPPA co-ordinator",
    Role.IG_OFFICER.value: "an information-governance officer",
}
# The service navigation of each role: (text, path under the console), from each group.
NAVIGATION: dict[Role, list[tuple[str, str]]] = {
    role: [item for group in GROUP_NAVIGATION for item in group.get(role, [])] for role in Role
}
# Said for every refused sign-in, whichever part was wrong (a username that exists, a
# password, a code): a guesser learns nothing from it.
SIGN_IN_FAILED = "Enter a correct username, password and security code"
SIGN_IN_LOCKED = (
    "This account is locked after too many failed attempts. Ask your agency's "
    "administrator to reset it"
)
SIGN_IN_EXPIRED = "The sign-in page had expired. Sign in again"
SIGN_IN_RATIONED = "Too many failed attempts. Wait a minute, then sign in again"
# Bounds on what a sign-in form may hold before anything is hashed.
MAX_USERNAME_CHARS = 100
MAX_PASSWORD_CHARS = 256
MAX_CODE_CHARS = 16


def navigation_for(request: Request, who: SignedIn) -> list[dict[str, Any]]:
    """The service navigation's items for ``who``'s role, the current one marked."""
    base = console_path(request)
    here = request.url.path
    return [
        {"text": text, "href": base + path, "active": here.endswith(path)}
        for text, path in [("Home", "/home"), *NAVIGATION[who.role]]
    ]


def render(
    templates: Jinja2Templates,
    request: Request,
    name: str,
    who: SignedIn | None = None,
    *,
    status_code: int = 200,
    **context: Any,
) -> HTMLResponse:
    """``name`` rendered with the console's path, and for a signed-in user their
    session and navigation."""
    base: dict[str, Any] = {"console": console_path(request), "role_names": ROLE_NAMES}
    if who is not None:
        base |= {"who": who, "navigation": navigation_for(request, who)}
    return templates.TemplateResponse(request, name, base | context, status_code=status_code)


def page_context(
    templates: Jinja2Templates, *, identity: IdentitySource, backend: BackendSource
) -> PageContext:
    """The parts every group of pages is built with (``broker.console.context``)."""
    signed_in = signed_in_with(identity)

    def rendered(
        request: Request, name: str, who: SignedIn | None = None, **context: Any
    ) -> HTMLResponse:
        return render(templates, request, name, who, **context)

    return PageContext(
        templates=templates,
        identity=identity,
        backend=backend,
        signed_in=signed_in,
        checked_form=checked_form_with(signed_in),
        render=rendered,
    )


def sign_in_page(
    ctx: PageContext,
    request: Request,
    *,
    status_code: int = 200,
    error: str | None = None,
    username: str = "",
) -> HTMLResponse:
    """The sign-in page with a new form token (also set as its cookie), ``error`` shown
    if given, and a way to sign in with the organisation's account where the force has
    an identity provider (``oidc_sign_in.py``)."""
    parts = ctx.identity()
    token = parts.sign_in_csrf.issue(now=parts.clock())
    page = render(
        ctx.templates,
        request,
        "sign_in.html",
        status_code=status_code,
        csrf_token=token,
        error=error,
        username=username,
        oidc=parts.oidc is not None,
    )
    page.headers.append("Set-Cookie", sign_in_cookie_header(token))
    return page


def console_router(ctx: PageContext) -> APIRouter:
    """The start, sign-in, sign-out and home pages over ``ctx``. Returns the router; its
    routes raise ``HTTPException`` (a GOV.UK error page) and nothing else of their own."""
    router = APIRouter(include_in_schema=False, default_response_class=HTMLResponse)
    templates, identity = ctx.templates, ctx.identity
    signed_in, checked_form = ctx.signed_in, ctx.checked_form

    @router.get("/")
    async def start(request: Request) -> HTMLResponse:
        return render(templates, request, "start.html")

    @router.get("/sign-in")
    def sign_in_form(request: Request) -> HTMLResponse:
        return sign_in_page(ctx, request)

    @router.post("/sign-in")
    async def sign_in(request: Request) -> Response:
        form = await read_form(request)
        return await _sign_in(request, form)

    async def _sign_in(request: Request, form: FormData) -> Response:
        parts = identity()
        now = parts.clock()
        username = text_field(form, "username").strip()[:MAX_USERNAME_CHARS]
        try:
            parts.sign_in_csrf.check(
                request.cookies.get(SIGN_IN_COOKIE_NAME), text_field(form, "csrf_token"), now=now
            )
        except CsrfRefused:
            return sign_in_page(
                ctx, request, status_code=403, error=SIGN_IN_EXPIRED, username=username
            )
        keys = (f"address:{request.client.host if request.client else '?'}", f"user:{username}")
        try:
            parts.failures.check(*keys)
        except TooManyFailures as refused:
            page = sign_in_page(
                ctx, request, status_code=429, error=SIGN_IN_RATIONED, username=username
            )
            page.headers["Retry-After"] = str(refused.retry_after)
            return page
        password = text_field(form, "password")
        code = text_field(form, "totp").strip()
        try:
            if len(password) > MAX_PASSWORD_CHARS or len(code) > MAX_CODE_CHARS:
                raise SignInRefused("too long")  # noqa: TRY301 - refused as any failure
            # Argon2id takes a tenth of a second and 64 MiB on purpose: off the event loop.
            user = await run_in_threadpool(
                parts.users.authenticate, username, password, code or None, now=now
            )
            started = parts.sessions.start(user, now=now)
        except SignInRefused as refused:
            parts.failures.failed(*keys)
            error = SIGN_IN_LOCKED if refused.code == "auth.locked" else SIGN_IN_FAILED
            return sign_in_page(ctx, request, status_code=401, error=error, username=username)
        home = RedirectResponse(f"{console_path(request)}/home", status_code=303)
        home.headers.append("Set-Cookie", set_cookie_header(parts.cookies.sign(started.session_id)))
        home.headers.append("Set-Cookie", clear_sign_in_cookie_header())
        return home

    @router.post("/sign-out")
    def sign_out(
        request: Request, checked: Annotated[tuple[SignedIn, FormData], Depends(checked_form)]
    ) -> Response:
        who, _form = checked
        identity().sessions.end(who.session_id)
        start = RedirectResponse(f"{console_path(request)}/", status_code=303)
        start.headers.append("Set-Cookie", clear_cookie_header())
        return start

    @router.get("/home")
    def home(request: Request, who: Annotated[SignedIn, Depends(signed_in)]) -> HTMLResponse:
        return render(templates, request, "home.html", who)

    return router
