"""The witnesses served by this gateway over HTTP (C2SP tlog-witness,
https://c2sp.org/tlog-witness): ``POST /witness/{agency_id}/add-checkpoint``, one witness
per served agency that holds a witness key (``ApiBackend.witnesses``), so the ledger run
elsewhere (``mappa ledger serve``) reaches each at ``<server>/witness/<agency id>``.

No bearer token: the spec asks for none, and none is needed, since the checkpoint is
signed by the log and the witness checks everything it is sent
(``broker.witness.witness``). The API's own bounds still apply (``broker.api.limits``:
1 MiB and 30 s a body), and this route's tighter one: a body over
``protocol.MAX_REQUEST_BYTES`` is refused 413 before it is read. The answers are the
protocol's plain text (``broker.witness.protocol.handle``), not the API's JSON error
body: 200 with the cosignature line; 409 ``text/x.tlog.size`` with the witness's size;
400, 403, 404, 409, 413 or 422 with one line ``<code>: <reason>``. The route is outside
the OpenAPI document, which describes the JSON API (docs/api.md describes it).
"""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request, Response

from broker.api.auth import BackendDep
from broker.witness.protocol import MAX_REQUEST_BYTES, handle

PLAIN = "text/plain; charset=utf-8"


def _line(status: int, code: str, reason: str) -> Response:
    return Response(
        f"{code}: {reason}\n".encode(), status_code=status, headers={"Content-Type": PLAIN}
    )


async def _bounded_body(request: Request) -> bytes | None:
    """The request's body, or None once it is over ``MAX_REQUEST_BYTES`` (declared or
    received): the rest is never read."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_REQUEST_BYTES:
        return None
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_REQUEST_BYTES:
            return None
    return bytes(body)


def witness_router() -> APIRouter:
    """``POST /witness/{agency_id}/add-checkpoint`` (module docstring). Returns the
    router; raises nothing of its own (``ServiceStarting`` through ``BackendDep``)."""
    router = APIRouter(prefix="/witness", include_in_schema=False)

    @router.post("/{agency_id}/add-checkpoint")
    async def add_checkpoint(agency_id: str, request: Request, backend: BackendDep) -> Response:
        witness = backend.witnesses.get(agency_id)
        if witness is None:
            return _line(404, "witness.unknown", "no witness of that agency is served here")
        body = await _bounded_body(request)
        if body is None:
            return _line(
                413, "witness.too-large", f"a request is at most {MAX_REQUEST_BYTES} bytes"
            )
        # Off the event loop: the witness checks a proof and writes to its database.
        status, content_type, answer = await asyncio.to_thread(handle, witness, body)
        if content_type == "text/plain":
            content_type = PLAIN
        return Response(answer, status_code=status, headers={"Content-Type": content_type})

    return router
