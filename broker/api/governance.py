"""Governance endpoints for information-governance officers: the ledger over HTTP.

A router *factory*: the application supplies the ledger reader (or a callable that
returns one per request) and its own ``require_officer`` dependency, which must
reject anyone who is not an officer; every route here depends on it. Routes hold
no logic of their own: they call ``LedgerReader`` and map its errors to 4xx.

    GET /governance/query        filters as query parameters, paged (next_after)
    POST /governance/query       the same filters in a JSON body: a PNC id (``subject``)
                                 is personal data, and belongs in no URL
    GET /governance/proof/{seq}  inclusion proof in a signed checkpoint (?size=)
    GET /governance/consistency  ?size1=&size2= between two signed checkpoints
    GET /governance/checkpoint   the latest signed checkpoint (?size=)
    GET /governance/export       ?format=csv|json, every matching entry
    POST /governance/export      the same, filters and format in a JSON body
    GET /governance/verify       recompute the log; 200 with intact true/false
                                 (?all=true: every problem, at most ?max_problems=)
    GET /governance/rejected     audit records the ledger refused, and why
    GET /governance/alarms       what the ledger's own watch and scheduled verify found
"""

# No "from __future__ import annotations": FastAPI reads the route signatures at definition
# time, and they name the router-local Reader dependency.

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from fastapi.responses import PlainTextResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from broker.api.errors import documented
from broker.errors import MappaError, SchemaError
from broker.ledger.integrity_all import DEFAULT_MAX_PROBLEMS, MAX_PROBLEMS
from broker.ledger.reader import LedgerReader

# A reader, or a FastAPI dependency that yields one (it may take the Request).
ReaderSource = LedgerReader | Callable[..., LedgerReader]

# Sizes and sequence numbers are SQLite INTEGERs: larger is no entry, and must not crash.
MAX_INDEX = 2**63 - 1

_FILTER_PARAMS = (
    "subject",
    "subject_ref",
    "agency",
    "user",
    "act",
    "agreement",
    "outcome",
    "since",
    "until",
    "after",
    "limit",
    "proofs",
)


@contextmanager
def _refusals_as_http() -> Iterator[None]:
    """The reader's refusals as ``HTTPException`` with their code (see
    ``governance_router``); a retriable error (the ledger's database away) is left to
    the error table, which answers it with a 503 to retry."""
    try:
        yield
    except MappaError as exc:
        if exc.retriable:
            raise
        status = 400 if isinstance(exc, SchemaError) else 409
        raise HTTPException(
            status_code=status, detail={"code": exc.code, "reason": exc.reason}
        ) from None


def _params(request: Request, allowed: tuple[str, ...]) -> dict[str, Any]:
    """Query parameters as given; unknown ones reach ``parse_query`` and are refused by name."""
    return {k: v for k, v in request.query_params.items() if k not in ("format",)} | {
        k: None for k in allowed if k not in request.query_params
    }


class GovernanceFilters(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # Each filter as the query parameter of the same name; a subject (PNC id) here
    # stays out of URLs, access logs and browser history.
    subject: str | None = Field(default=None, max_length=64)
    subject_ref: str | None = Field(default=None, max_length=128)
    agency: str | None = Field(default=None, max_length=128)
    user: str | None = Field(default=None, max_length=128)
    act: str | None = Field(default=None, max_length=32)
    agreement: str | None = Field(default=None, max_length=128)
    outcome: str | None = Field(default=None, max_length=32)
    since: str | None = Field(default=None, max_length=64)
    until: str | None = Field(default=None, max_length=64)
    after: str | None = Field(default=None, max_length=32)
    limit: str | None = Field(default=None, max_length=16)
    proofs: str | None = Field(default=None, max_length=8)
    format: Literal["csv", "json"] = "json"

    def params(self) -> dict[str, Any]:
        """As ``_params`` gives them: every filter named, None where not given."""
        return self.model_dump(exclude={"format"})


def governance_router(ledger: ReaderSource, require_officer: Callable[..., Any]) -> APIRouter:
    """The governance routes (module docstring) over ``ledger``, every one behind
    ``require_officer``. Returns the router; raises nothing of its own.

    The query, proof, consistency, checkpoint and export routes answer the reader's
    ``SchemaError`` (``audit.no-checkpoint``, ``audit.query-invalid``) as a 400, which
    the app's error table sends as 422, and any other ``MappaError``
    (``ledger.checkpoint-invalid``) as 409, keeping its code; a retriable one
    (``store.unavailable``: the ledger's database away) is the error table's 503. The
    route functions carry comments, not docstrings: FastAPI would put a docstring in
    docs/openapi.json."""
    router = APIRouter(
        prefix="/governance",
        tags=["governance"],
        dependencies=[Depends(require_officer)],
        responses=documented(401, 403, 404, 422, 503),
    )

    def fixed() -> LedgerReader:
        assert isinstance(ledger, LedgerReader)  # noqa: S101 - narrowed by the caller
        return ledger

    source = fixed if isinstance(ledger, LedgerReader) else ledger
    Reader = Annotated[LedgerReader, Depends(source)]

    # One page of entries matching the filters, oldest first (``LedgerReader.query``).
    @router.get("/query")
    def query(request: Request, r: Reader) -> dict[str, Any]:
        with _refusals_as_http():
            return r.query(_params(request, _FILTER_PARAMS))

    # The same, with the filters in the body: a PNC id belongs in no URL.
    @router.post("/query")
    def query_posted(filters: GovernanceFilters, r: Reader) -> dict[str, Any]:
        with _refusals_as_http():
            return r.query(filters.params())

    # Entry ``seq``'s inclusion proof in a signed checkpoint (``LedgerReader.proof``).
    @router.get("/proof/{seq}")
    def proof(
        seq: Annotated[int, Path(ge=0, le=MAX_INDEX)],
        r: Reader,
        size: Annotated[int | None, Query(ge=0, le=MAX_INDEX)] = None,
    ) -> Any:
        with _refusals_as_http():
            return r.proof(seq, size=size)

    # The consistency proof between two signed checkpoints (``LedgerReader.consistency``).
    @router.get("/consistency")
    def consistency(
        r: Reader,
        size1: Annotated[int, Query(ge=0, le=MAX_INDEX)],
        size2: Annotated[int | None, Query(ge=0, le=MAX_INDEX)] = None,
    ) -> Any:
        with _refusals_as_http():
            return r.consistency(size1, size2)

    # The latest signed checkpoint, or the one of ``size`` (``LedgerReader.checkpoint_json``).
    @router.get("/checkpoint")
    def checkpoint(r: Reader, size: Annotated[int | None, Query(ge=0, le=MAX_INDEX)] = None) -> Any:
        with _refusals_as_http():
            return r.checkpoint_json(size)

    # Every matching entry, as a CSV attachment or one JSON document; ``after`` and
    # ``limit`` are dropped, since an export is never paged (``LedgerReader.export``).
    export_responses: dict[int | str, dict[str, Any]] = {
        200: {
            "description": "Every matching entry: CSV (format=csv) or one JSON document",
            "content": {
                "application/json": {"schema": {"type": "object"}},
                "text/csv": {"schema": {"type": "string"}},
            },
        }
    }

    @router.get("/export", response_class=Response, responses=export_responses)
    def export(request: Request, r: Reader, format: Literal["csv", "json"] = "json") -> Response:
        return exported(r, _params(request, _FILTER_PARAMS), format)

    # The same, with the filters and the format in the body: a PNC id belongs in no URL.
    @router.post("/export", response_class=Response, responses=export_responses)
    def export_posted(filters: GovernanceFilters, r: Reader) -> Response:
        return exported(r, filters.params(), filters.format)

    def exported(
        r: LedgerReader, params: dict[str, Any], format: Literal["csv", "json"]
    ) -> Response:
        params.pop("after", None)
        params.pop("limit", None)
        with _refusals_as_http():
            text = r.export(params, format)
        if format == "csv":
            return PlainTextResponse(
                text,
                media_type="text/csv",
                headers={"Content-Disposition": 'attachment; filename="audit-export.csv"'},
            )
        return Response(text, media_type="application/json")

    # The whole log recomputed; a broken log is a 200 with ``intact`` false, not an error.
    # ``VerifyIncomplete`` is not caught here: the app's error table answers it.
    # With ``all``, every problem in one pass, at most ``max_problems`` (``verify_all``).
    @router.get("/verify")
    def verify(
        r: Reader,
        all: bool = False,
        max_problems: Annotated[int, Query(ge=1, le=MAX_PROBLEMS)] = DEFAULT_MAX_PROBLEMS,
    ) -> dict[str, Any]:
        if all:
            return r.verify_all(max_problems=max_problems).to_json()
        return r.verify().to_json()

    # The alarms the ledger raised about itself, oldest first (``LedgerReader.alarms``).
    @router.get("/alarms")
    def alarms(r: Reader) -> list[dict[str, Any]]:
        return r.alarms()

    # The audit records the ledger refused, and why (``LedgerReader.rejected``).
    @router.get("/rejected")
    def rejected(r: Reader) -> list[dict[str, Any]]:
        return r.rejected()

    return router
