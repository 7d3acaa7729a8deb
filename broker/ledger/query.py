"""Officer queries over the ledger: filters, paging, and the CSV / JSON exports.

Parameters arrive from a command line or a URL as text; ``parse_query`` turns them
into an ``AuditQuery`` or raises ``QueryError`` naming the bad parameter. Subjects
are searched by the plain PNC id: the keyed hash is computed for the officer and
the plain id never reaches the ledger's database.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from broker.errors import SchemaError
from broker.files.spreadsheet import write_csv
from broker.ledger.store import COLUMNS
from schemas.audit import AuditAct, Outcome
from schemas.common import format_timestamp

MAX_PAGE = 1000
DEFAULT_PAGE = 100
# Every field of an audit event, in ledger order, the event id last.
EXPORT_COLUMNS = ("seq", *(c for c in COLUMNS if c != "event_id"), "event_id")


class QueryError(SchemaError):
    """An officer's query or request the ledger cannot answer as asked (a bad parameter,
    an entry a checkpoint does not cover, too many rows): ``audit.query-invalid``."""

    code = "audit.query-invalid"


def _moment(value: str) -> str:
    """A date (midnight UTC) or an ISO 8601 time with a zone, as a ledger timestamp."""
    try:
        if len(value) == 10:
            day = date.fromisoformat(value)
            return format_timestamp(datetime(day.year, day.month, day.day, tzinfo=UTC))
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(
            "expected YYYY-MM-DD or an ISO 8601 time such as 2026-11-23T10:00:00Z"
        ) from None
    if moment.tzinfo is None:
        raise ValueError("a time needs a zone (for example a trailing Z for UTC)")
    return format_timestamp(moment.astimezone(UTC))


class AuditQuery(BaseModel):
    """An officer's query, validated: filters, time range, paging and whether to add
    proofs (see the module). Made by ``parse_query``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    subject: str | None = Field(default=None, min_length=1, max_length=40)
    subject_ref: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    agency: str | None = Field(default=None, min_length=1, max_length=100)
    user: str | None = Field(default=None, min_length=1, max_length=200)
    act: AuditAct | None = None
    agreement: str | None = Field(default=None, min_length=1, max_length=200)
    outcome: Outcome | None = None
    since: str | None = None
    until: str | None = None
    after: int = Field(default=-1, ge=-1)
    limit: int = Field(default=DEFAULT_PAGE, ge=1, le=MAX_PAGE)
    proofs: bool = False

    @field_validator("since", "until")
    @classmethod
    def _time(cls, value: str | None) -> str | None:
        return None if value is None else _moment(value)

    def filters(self, subject_ref: str | None) -> dict[str, str]:
        """The equality filters given, by ledger field (``LedgerStore.select``), with
        ``subject_ref`` as the subject's (the caller hashes a plain PNC id)."""
        pairs = {
            "subject_ref": subject_ref,
            "agency": self.agency,
            "user": self.user,
            "act": None if self.act is None else self.act.value,
            "isa_id": self.agreement,
            "outcome": None if self.outcome is None else self.outcome.value,
        }
        return {k: v for k, v in pairs.items() if v is not None}


def parse_query(params: Mapping[str, Any]) -> AuditQuery:
    """Validate officer-supplied parameters (None and "" count as absent); returns the
    query. Raises ``QueryError`` (``audit.query-invalid``) naming the first bad one."""
    cleaned = {k: v for k, v in params.items() if v is not None and v != ""}
    try:
        query = AuditQuery.model_validate(cleaned)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "query"
        if err["type"] == "extra_forbidden":
            raise QueryError(
                f"unknown query parameter {where!r}; use one of {sorted(AuditQuery.model_fields)}"
            ) from None
        raise QueryError(f"bad query parameter {where!r}: {err['msg']}") from None
    if query.subject and query.subject_ref:
        raise QueryError("give either subject (a PNC id) or subject_ref, not both")
    if query.since and query.until and query.since >= query.until:
        raise QueryError("'since' must be earlier than 'until'")
    return query


def to_csv(rows: Sequence[Mapping[str, Any]]) -> str:
    """Entries as CSV: a header, then a line per row in ``EXPORT_COLUMNS`` order, with
    each row's proof in three more columns if any row has one. Written by
    ``broker.files.spreadsheet``: a cell a spreadsheet would run as a formula is quoted with ``'``
    and every cell is quoted, so a CR or LF inside one cannot start a row."""
    extra = ("leaf_hash", "tree_size", "inclusion_proof")
    has_proofs = any("proof" in r for r in rows)
    lines = []
    for r in rows:
        line = [r.get(c) for c in EXPORT_COLUMNS]
        if has_proofs:
            p = r.get("proof") or {}
            line += [p.get("leaf_hash", ""), p.get("tree_size", ""), " ".join(p.get("hashes", []))]
        lines.append(line)
    return write_csv([*EXPORT_COLUMNS, *(extra if has_proofs else ())], lines)


def to_json(document: Mapping[str, Any]) -> str:
    """``document`` as indented JSON, keys in the order given."""
    return json.dumps(document, indent=1, sort_keys=False)
