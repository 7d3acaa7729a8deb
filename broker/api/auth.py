"""Who is calling: FastAPI dependencies over the credential store.

``require_agency`` gives the agency named in the path, only to that agency's own
credential; any other credential gets the same 403 whether or not the agency exists,
and a refused attempt on an agency served here is audited in that agency's log.
``require_officer`` gives the information-governance officer principal, for the
governance routers.
"""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import Depends, Path, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from broker.api.backend import ApiBackend, ServedAgency, flush
from broker.api.credentials import AccessDenied, AuthenticationFailed, CredentialKind, Principal
from broker.api.limits import FailureLimiter
from broker.errors import MappaError
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
    if limiter is None:
        return backend.credentials.authenticate(credentials.credentials)
    keys = _failure_keys(request, credentials.credentials)
    limiter.check(*keys)
    try:
        return backend.credentials.authenticate(credentials.credentials)
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


async def _audit_refused(served: ServedAgency, principal: Principal) -> None:
    """Someone else's credential tried this agency's inbox: a security event for its
    information-governance officer, recorded in its own signed log."""
    ctx = served.gateway.ctx
    with ctx.store.transaction():
        ctx.audit.emit(
            AuditAct.REFUSAL,
            Operation.CONSULT,
            Outcome.REFUSED,
            user=f"api-credential:{principal.credential_id}",
            reason_code=AccessDenied.code,
            reason=f"{principal.kind.value} credential for {principal.name} refused",
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
