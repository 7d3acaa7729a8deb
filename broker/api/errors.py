"""Every error the API returns, in one shape, and the one place that maps our error
kinds to HTTP status codes.

The body is always ``{"error": code, "detail": text}``: the code is the product's
stable reason code (the one in audit events and dead letters), the detail says what
to fix. Bad input is never a 5xx; a 5xx means the service itself cannot act.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict
from starlette.exceptions import HTTPException as StarletteHTTPException

from broker.api.credentials import AccessDenied, AuthenticationFailed
from broker.errors import (
    ConfigurationError,
    DecryptionError,
    KeyUnavailable,
    MappaError,
    NotAddressed,
    PolicyDenied,
    ReplayError,
    SchemaError,
    StoreUnavailable,
    VerificationError,
)
from broker.kafka.transport import TransportError

log = logging.getLogger(__name__)
# Sent with every 503 (``Retry-After``): a store's busy timeout is 5 s, and a broker
# reconnects within seconds; a client that waits this long before retrying is not
# adding to the load that may be the cause.
RETRY_AFTER_SECONDS = 5


# The one error body. No docstring: pydantic would publish it in docs/openapi.json.
class ApiError(BaseModel):
    model_config = ConfigDict(extra="forbid")

    error: str
    detail: str


# Codes whose meaning is more specific than their error kind's.
BY_CODE: dict[str, int] = {
    "consult.not-found": 404,
    "api.not-found": 404,
    # A message id that several senders' held messages share, with no sender named.
    "inbox.ambiguous": 409,
    "api.unavailable": 503,
    "consult.justification-missing": 422,
    "consult.justification-invalid": 422,
    # Failed authentication rationed (broker/api/limits.py): wait, then retry.
    "auth.rate-limited": 429,
    # The agency's signing key was revoked and not replaced: no retry helps, a rotation
    # does (a KeyUnavailable, but not the 503 of a key that may yet be provided).
    "key.revoked": 403,
    # A malformed Idempotency-Key header: the draft's 400 (its reuse is a 422 by kind).
    "request.idempotency-key-invalid": 400,
    # Transfers (broker/transfer/rules.py): not there, not now, or not well formed.
    "transfer.unknown": 404,
    "transfer.invalid-transition": 409,
    "transfer.already-open": 409,
    "transfer.duplicate-id": 409,
    "transfer.not-owner": 409,
    "transfer.mismatch": 409,
    "transfer.before-move-date": 409,
    "transfer.unknown-area": 422,
    "transfer.bad-lead": 422,
    "transfer.bad-team": 422,
    # The case changed again and again while the record was being published: retry.
    "publish.changed-meanwhile": 409,
}
# First match wins, so subclasses come before their bases.
BY_KIND: tuple[tuple[type[MappaError], int], ...] = (
    (AuthenticationFailed, 401),
    (AccessDenied, 403),
    (PolicyDenied, 403),
    (NotAddressed, 404),
    (SchemaError, 422),
    # A stored message that no longer passes its checks (revoked key, altered database):
    # the request was fine, the record cannot be opened.
    (VerificationError, 409),
    (DecryptionError, 409),
    (ReplayError, 409),
    (KeyUnavailable, 503),
    (TransportError, 503),
    (StoreUnavailable, 503),
    (ConfigurationError, 500),
)


def status_for(exc: MappaError) -> int:
    """The HTTP status for ``exc``: by its code if ``BY_CODE`` names it, else by the first
    kind in ``BY_KIND`` it is an instance of, else 400. Raises nothing."""
    if exc.code in BY_CODE:
        return BY_CODE[exc.code]
    for kind, status in BY_KIND:
        if isinstance(exc, kind):
            return status
    return 400


# Headers that go with a status, whatever the error: how to authenticate, when to retry.
HEADERS = {
    401: {"WWW-Authenticate": "Bearer"},
    # Answered with the rest of the body unread: the connection cannot be reused.
    408: {"Connection": "close"},
    413: {"Connection": "close"},
    503: {"Retry-After": str(RETRY_AFTER_SECONDS)},
}


def error_response(status: int, code: str, detail: str) -> JSONResponse:
    """A response with our error body and ``status``; a 401 also asks for a bearer token
    (``WWW-Authenticate: Bearer``), a 503 says when to retry (``Retry-After``)."""
    headers = HEADERS.get(status)
    return JSONResponse(
        ApiError(error=code, detail=detail).model_dump(), status_code=status, headers=headers
    )


async def _mappa_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, MappaError)  # noqa: S101 - registered for MappaError only
    status = status_for(exc)
    if status >= 500:
        log.error("request failed: %s: %s", exc.code, exc)
    response = error_response(status, exc.code, exc.reason)
    # An error that knows when to retry (a rate limit) says so, over the status's default.
    retry_after = getattr(exc, "retry_after", None)
    if isinstance(retry_after, int):
        response.headers["Retry-After"] = str(retry_after)
    return response


async def _value_error(_: Request, exc: Exception) -> JSONResponse:
    # A value no check before it caught (a date past the calendar, a number too large
    # for a database): the input was wrong, so a 4xx; logged with its traceback, since a
    # check belongs where it was raised.
    log.warning("request refused on an unchecked value: %r", exc, exc_info=exc)
    return error_response(422, "request.invalid", "a value in the request is out of range")


def _where(error: dict[str, Any]) -> str:
    return ".".join(str(p) for p in error.get("loc", ()))


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)  # noqa: S101
    errors = list(exc.errors())
    first = errors[0] if errors else {}
    detail = f"{_where(first)}: {first.get('msg', 'invalid')}"
    if len(errors) > 1:
        detail += f" (and {len(errors) - 1} more)"
    return error_response(422, "request.invalid", detail)


async def _http_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)  # noqa: S101
    match exc.detail:
        case {"code": str(code), "reason": str(reason)}:
            # A router that speaks our codes (governance): keep its code; bad input is a
            # 422 here as everywhere else.
            status = 422 if exc.status_code == 400 else exc.status_code
            return error_response(status, code, reason)
    if exc.status_code == 400:
        # FastAPI's answer to a body it cannot decode at all (not UTF-8, say): the same
        # kind of problem as a body that does not validate, so the same answer.
        return error_response(422, "request.invalid", f"body: {exc.detail}")
    return error_response(exc.status_code, f"http.{exc.status_code}", str(exc.detail))


def install_error_handlers(app: FastAPI) -> None:
    """Answer every ``MappaError``, invalid request and HTTP exception raised in ``app``
    with our one error body, at the status ``status_for`` (or the handler) gives it."""
    app.add_exception_handler(MappaError, _mappa_error)
    # OverflowError is an ArithmeticError, not a ValueError: both are bad input here.
    app.add_exception_handler(ValueError, _value_error)
    app.add_exception_handler(OverflowError, _value_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)


def documented(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The ``responses=`` of a route: each error status it may return, with our body (and
    a 503's ``Retry-After``)."""
    return {
        s: {"model": ApiError, "description": DESCRIPTIONS[s]} | DOCUMENTED_HEADERS.get(s, {})
        for s in statuses
    }


DOCUMENTED_HEADERS: dict[int, dict[str, Any]] = {
    503: {
        "headers": {
            "Retry-After": {
                "description": "seconds to wait before retrying",
                "schema": {"type": "integer"},
            }
        }
    }
}
DESCRIPTIONS = {
    400: "The Idempotency-Key header is malformed, or sent more than once",
    408: "The request body did not arrive in time",
    413: "The request body is larger than 1 MiB",
    429: "Too many failed authentications from this address or for this credential; "
    "retry after Retry-After seconds",
    401: "No credential, or an invalid or revoked one",
    403: "The credential does not cover this agency, or an agreement forbids the act",
    404: "No such message in this agency's inbox, or no such transfer known to it",
    409: "The stored message no longer passes its checks and cannot be opened; messages "
    "from several senders share the id and none was given (inbox.ambiguous); or the "
    "transfer is not in a state that allows the step",
    422: "The request or the record is malformed, or maps to an invalid message",
    503: "The broker, a database or a key is unavailable; retry later",
}
