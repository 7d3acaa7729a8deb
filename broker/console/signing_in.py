"""Who is signed in to the console, and the checks every page and form goes through.

- ``ConsoleIdentity``: the identity parts one running server uses (``broker.identity``):
  the users, their sessions, the session cookie's signer, the sign-in form's token, a
  limiter of failed sign-ins per client address and per username, and, where the force
  signs in with its own identity provider, the OpenID Connect client (``OidcSignIn``).
- ``signed_in``: the dependency of every page behind sign-in. No valid session cookie,
  or a session that has ended (idle, absolute, signed out, account locked or disabled):
  the browser is sent to the sign-in page (303), never shown the page.
- ``SignedIn.require``: a page for some roles only answers 403 to the others; what an
  agency's page shows is the signed-in user's agency's, whatever the URL says.
- ``checked_form``: every form a signed-in user posts carries the session's CSRF token;
  a form without it, or with another, is refused (403) before anything is done.
"""

# No ``from __future__ import annotations``: FastAPI reads the dependencies' annotations.

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request
from starlette.datastructures import FormData
from starlette.formparsers import MultiPartException

from broker.api.limits import FailureLimiter
from broker.errors import MappaError
from broker.identity.cookies import COOKIE_NAME, CookieSigner
from broker.identity.csrf import SignInCsrf, check_csrf
from broker.identity.database import IdentityDatabase, identity_path
from broker.identity.oidc import OidcClient, OidcConfig
from broker.identity.oidc_state import OidcStateSigner
from broker.identity.roles import Role
from broker.identity.sessions import Session, SessionStore
from broker.identity.users import UserStore

# A form's fields, bounded: a sign-in or a justification is short; a record posted as a
# form is the largest thing a person sends (the API's own body limit is 1 MiB).
MAX_FORM_FIELDS = 64
MAX_FORM_FIELD_BYTES = 1024 * 1024


@dataclass(frozen=True)
class OidcSignIn:
    """Signing in with the force's identity provider: its client, and the signer of
    the cookie that carries a sign-in there and back (``broker.identity.oidc_state``)."""

    client: OidcClient
    state: OidcStateSigner


@dataclass
class ConsoleIdentity:
    """The identity parts of one running server, over one data directory."""

    database: IdentityDatabase
    users: UserStore
    sessions: SessionStore
    cookies: CookieSigner
    sign_in_csrf: SignInCsrf
    clock: Callable[[], datetime]
    # Failed sign-ins per client address and per username: guessing is slowed down long
    # before an account's own lockout (five in a row) is reached by someone else.
    failures: FailureLimiter = field(default_factory=FailureLimiter)
    # None: local accounts only (the embedded default).
    oidc: OidcSignIn | None = None

    def close(self) -> None:
        self.database.close()


@contextlib.contextmanager
def console_identity(
    data_dir: Path, clock: Callable[[], datetime], *, oidc: OidcConfig | None = None
) -> Iterator[ConsoleIdentity]:
    """The identity parts over ``data_dir`` (``users.sqlite``, ``session-cookie.key``),
    with sign-in at ``oidc``'s provider where given, closed when the block ends. Raises
    ``StoreUnavailable`` or ``KeyUnavailable`` if they cannot be opened."""
    database = IdentityDatabase(identity_path(data_dir))
    try:
        yield ConsoleIdentity(
            database=database,
            users=UserStore(database),
            sessions=SessionStore(database),
            cookies=CookieSigner.for_data_dir(data_dir),
            sign_in_csrf=SignInCsrf.for_data_dir(data_dir),
            clock=clock,
            oidc=None
            if oidc is None
            else OidcSignIn(OidcClient(oidc), OidcStateSigner.for_data_dir(data_dir)),
        )
    finally:
        database.close()


IdentitySource = Callable[[], ConsoleIdentity]


@dataclass(frozen=True)
class SignedIn:
    """The person behind a request: their session (username, agency, role, the CSRF
    token their forms carry) and its cookie's value, for signing out."""

    session: Session
    session_id: str = field(repr=False)

    @property
    def username(self) -> str:
        return self.session.username

    @property
    def agency(self) -> str:
        return self.session.agency

    @property
    def role(self) -> Role:
        return self.session.role

    @property
    def csrf_token(self) -> str:
        return self.session.csrf_token

    def require(self, *roles: Role) -> None:
        """Raises a 403 unless the user has one of ``roles``."""
        if self.role not in roles:
            raise HTTPException(403, "this page is not for your role")


def console_path(request: Request) -> str:
    """Where the console is mounted, as seen by the browser (with any proxy's prefix):
    the base of every link and form action on its pages."""
    root: str = request.scope.get("root_path", "")
    return root.rstrip("/")


def sign_in_redirect(request: Request) -> HTTPException:
    """A 303 to the sign-in page (the console's own, under any proxy prefix)."""
    location = f"{console_path(request)}/sign-in"
    return HTTPException(303, "sign in first", headers={"Location": location})


def signed_in_with(identity: IdentitySource) -> Callable[..., SignedIn]:
    """The ``signed_in`` dependency over ``identity``."""

    def signed_in(request: Request) -> SignedIn:
        parts = identity()
        try:
            session_id = parts.cookies.unsign(request.cookies.get(COOKIE_NAME))
            session = parts.sessions.resume(session_id, now=parts.clock())
        except MappaError:
            # No cookie, a forged one, an ended session: sign in (again).
            raise sign_in_redirect(request) from None
        return SignedIn(session, session_id)

    return signed_in


async def read_form(request: Request) -> FormData:
    """The request's form, bounded (``MAX_FORM_FIELDS`` fields, ``MAX_FORM_FIELD_BYTES``
    each); a form past them is a 413."""
    try:
        return await request.form(
            max_files=0, max_fields=MAX_FORM_FIELDS, max_part_size=MAX_FORM_FIELD_BYTES
        )
    except HTTPException:
        raise
    except MultiPartException:
        raise HTTPException(400, "the form could not be read") from None


def checked_form_with(
    signed_in: Callable[..., SignedIn],
) -> Callable[..., Any]:
    """The dependency that reads a signed-in user's posted form and checks its CSRF token
    against their session's; returns (who, form)."""

    async def checked_form(
        request: Request, who: Annotated[SignedIn, Depends(signed_in)]
    ) -> tuple[SignedIn, FormData]:
        form = await read_form(request)
        token = form.get("csrf_token")
        try:
            check_csrf(who.session, token if isinstance(token, str) else None)
        except MappaError:
            raise HTTPException(403, "the form's security token is missing or wrong") from None
        return who, form

    return checked_form


def text_field(form: FormData, name: str) -> str:
    """A form field's text ("" when absent or a file)."""
    value = form.get(name)
    return value if isinstance(value, str) else ""
