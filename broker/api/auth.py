"""Who is calling: FastAPI dependencies over the credential store.

``require_agency`` gives the agency named in the path, only to that agency's own
credential; any other credential gets the same 403 whether or not the agency exists,
and a refused attempt on an agency served here is audited in that agency's log.
``require_officer`` gives the information-governance officer principal, for the
governance routers. ``acting`` says whom the audit names for an act: the agency's
service account, and the named user it acts for when the request says so in
``X-Mappa-On-Behalf-Of`` and the agency's agreement lets its service accounts do that.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Header, Path, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from broker.api.backend import ApiBackend, ServedAgency, flush
from broker.api.credentials import AccessDenied, AuthenticationFailed, CredentialKind, Principal
from broker.api.limits import FailureLimiter
from broker.errors import MappaError, PolicyDenied
from broker.identity.users import User, UserState, UserStore
from schemas.audit import AuditAct, Operation, Outcome
from schemas.common import AGENCY_ID_PATTERN

bearer = HTTPBearer(
    auto_error=False,
    scheme_name="mappaToken",
    description="A token from `mappa api token issue`, as `Authorization: Bearer <token>`",
)


class NotFound(MappaError):
    """Nothing here answers to what the request names (404)."""

    code = "api.not-found"


class ServiceStarting(MappaError):
    """The backend is not running, not yet or no longer (503; retry later)."""

    code = "api.unavailable"
    retriable = True


def get_backend(request: Request) -> ApiBackend:
    """Dependency: the running backend. Raises ``ServiceStarting`` (``api.unavailable``)
    outside the app's lifespan."""
    backend = getattr(request.app.state, "backend", None)
    if not isinstance(backend, ApiBackend):
        raise ServiceStarting("the service is not running yet")
    return backend


BackendDep = Annotated[ApiBackend, Depends(get_backend)]


def _failure_keys(request: Request, token: str) -> tuple[str, ...]:
    """Whom a failed authentication is charged to: the client's address, and the
    credential id the token names if it names one (a guess at one credential's secret
    from many addresses)."""
    client = request.client.host if request.client else "unknown"
    credential = _CREDENTIAL_ID.match(token)
    return (f"addr:{client}",) + ((f"cred:{credential.group(1)}",) if credential else ())


# The credential id at the start of a token (``broker.api.credentials``), however the
# rest of it looks.
_CREDENTIAL_ID = re.compile(r"mappa_([0-9a-f]{16})_")


def authenticate(
    request: Request,
    backend: BackendDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Principal:
    """Dependency: the principal of the request's bearer token. Raises
    ``AuthenticationFailed`` (``auth.invalid-credential``) when there is no bearer
    token, or it is malformed, unknown or revoked; ``TooManyFailures``
    (``auth.rate-limited``) before looking at the token when its address or its
    credential id has failed too often (``broker.api.limits``); ``ServiceStarting``
    through ``get_backend``."""
    if credentials is None:
        raise AuthenticationFailed("an `Authorization: Bearer <token>` header is required")
    limiter: FailureLimiter | None = getattr(request.app.state, "auth_failures", None)
    now = backend.clock()
    if limiter is None:
        return backend.credentials.authenticate(credentials.credentials, now=now)
    keys = _failure_keys(request, credentials.credentials)
    limiter.check(*keys)
    try:
        return backend.credentials.authenticate(credentials.credentials, now=now)
    except AuthenticationFailed:
        limiter.failed(*keys)
        raise


PrincipalDep = Annotated[Principal, Depends(authenticate)]


async def require_agency(
    agency_id: Annotated[str, Path(pattern=AGENCY_ID_PATTERN, max_length=96)],
    principal: PrincipalDep,
    backend: BackendDep,
) -> ServedAgency:
    """Dependency: the served agency named in the path, for that agency's own credential
    only. Raises ``AccessDenied`` (``auth.forbidden``) for any other credential whether or
    not the agency exists (audited in the agency's log if it is served here), and
    ``NotFound`` (``api.not-found``) when the agency's own credential names an agency not
    served here; ``AuthenticationFailed`` and ``ServiceStarting`` through its
    dependencies."""
    served = backend.agencies.get(agency_id)
    if principal.kind is not CredentialKind.AGENCY or principal.name != agency_id:
        if served is not None:
            await _audit_refused(served, principal)
        raise AccessDenied(f"this credential does not give access to agency {agency_id}")
    if served is None:
        raise NotFound(f"agency {agency_id} is not served by this broker")
    return served


async def _audit_refused(
    served: ServedAgency, principal: Principal, *, code: str = AccessDenied.code,
    reason: str | None = None,
) -> None:  # fmt: skip
    """Someone else's credential tried this agency's inbox (or this agency's own tried to
    act for someone it may not): a security event for its information-governance
    officer, recorded in its own signed log."""
    ctx = served.gateway.ctx
    with ctx.store.transaction():
        ctx.audit.emit(
            AuditAct.REFUSAL,
            Operation.CONSULT,
            Outcome.REFUSED,
            user=principal.audit_name,
            reason_code=code,
            reason=reason or f"{principal.kind.value} credential for {principal.name} refused",
        )
    await flush(served.gateway)


AgencyDep = Annotated[ServedAgency, Depends(require_agency)]


def require_officer(principal: PrincipalDep) -> Principal:
    """For governance routes: an information-governance officer's credential only;
    returns its principal. Raises ``AccessDenied`` (``auth.forbidden``) for any other
    credential; ``AuthenticationFailed`` and ``ServiceStarting`` through its
    dependencies."""
    if principal.kind is not CredentialKind.OFFICER:
        raise AccessDenied("an information-governance officer credential is required")
    return principal


OfficerDep = Annotated[Principal, Depends(require_officer)]


class OnBehalfRefused(AccessDenied):
    """A service account named a user it may not act for (403): no such user of its
    agency, one disabled or locked, one whose role never sees message content, or an
    agreement that does not let the agency's service accounts act for its users."""

    code = "auth.on-behalf-refused"


@dataclass(frozen=True)
class Actor:
    """Whom the audit names for an act through the API."""

    principal: Principal
    # The named user of the agency the service account acts for, if any (checked).
    on_behalf_of: str | None = None

    @property
    def audit_name(self) -> str:
        """``service:<credential id>``, or ``<user> via service:<credential id>``: both
        the person and the account they acted through, in the record's ``user``."""
        service = self.principal.audit_name
        return service if self.on_behalf_of is None else f"{self.on_behalf_of} via {service}"


# At most a username's length (``broker.identity.users``).
MAX_ON_BEHALF_CHARS = 100
OnBehalfOf = Annotated[
    str | None,
    Header(
        alias="X-Mappa-On-Behalf-Of",
        max_length=MAX_ON_BEHALF_CHARS,
        description="the named user of the calling agency this request acts for "
        "(`mappa users`); allowed only where the agency's agreement says "
        "`service_accounts_act_for_users: true`. The audit records both.",
    ),
]
UserSource = Callable[[], UserStore]


async def acting(
    request: Request, served: AgencyDep, principal: PrincipalDep, on_behalf_of: OnBehalfOf = None
) -> Actor:
    """Dependency: whom the audit names for this agency request. Without
    ``X-Mappa-On-Behalf-Of``, the service account alone. With it, the named user too,
    once checked: an active user of this agency whose role sees message content, on a
    server with named users, under an agreement that lets this agency's service
    accounts act for them. Raises ``OnBehalfRefused`` (``auth.on-behalf-refused``,
    audited in the agency's log) for any of those failing, all with one message; and as
    ``require_agency`` does."""
    if on_behalf_of is None:
        return Actor(principal)
    users: UserSource | None = getattr(request.app.state, "users", None)
    user = _find(users, on_behalf_of)
    allowed = (
        user is not None
        and user.state is UserState.ACTIVE
        and user.agency == served.agency_id
        and user.role.sees_message_content
        and _agreement_lets_act_for_users(served)
    )
    if not allowed:
        reason = "this credential may not act for the user named"
        await _audit_refused(served, principal, code=OnBehalfRefused.code, reason=reason)
        raise OnBehalfRefused(reason)
    return Actor(principal, on_behalf_of)


def _agreement_lets_act_for_users(served: ServedAgency) -> bool:
    try:
        party = served.gateway.ctx.policy.party(served.agency_id)
    except PolicyDenied:  # not a party to the agreement in force: nothing is allowed
        return False
    return party.service_accounts_act_for_users


def _find(users: UserSource | None, username: str) -> User | None:
    if users is None:
        return None
    try:
        return users().find(username)
    except MappaError:  # no console on this server: no named users to act for
        return None


ActorDep = Annotated[Actor, Depends(acting)]
