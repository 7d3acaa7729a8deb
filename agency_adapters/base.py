"""What every agency adapter does; each kind supplies its own record mapping.

An adapter reads one record of its agency's system (a JSON object, or one row of
a CSV export as ``csv.DictReader`` yields it), names the canonical message it
maps to by the record's type code, and builds that message; received messages go
the other way, into whatever the agency's system imports. The gateway does the
security; an adapter only translates. Where exports differ only in names, formats
and codes, the mapping is a table (``agency_adapters.tables``).
"""

from __future__ import annotations

import csv
import io
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from pydantic import ValidationError

from broker.errors import SchemaError, invalid
from broker.gateway import AgencyGateway
from broker.gateway.publish import PublishResult
from schemas.common import Role, ViewKind, from_data
from schemas.messages import CATALOGUE, MessageBody

# One record type of an agency's export: the message type it becomes and how.
RecordMapping = tuple[str, Callable[[Mapping[str, Any]], dict[str, Any]]]

# A CSV export larger than this is not one agency's batch; refuse before parsing.
MAX_CSV_BYTES = 4 * 1024 * 1024
# Fields in a CSV cell that hold a list separate items with this character.
LIST_SEPARATOR = ";"


def uk_date(text: str) -> str:
    """dd/mm/yyyy, as most agency systems export dates, to ISO 8601."""
    try:
        day, month, year = text.split("/")
        return f"{int(year):04d}-{int(month):02d}-{int(day):02d}"
    except ValueError:
        raise SchemaError(f"expected a date as dd/mm/yyyy, got {text!r}") from None


def optional_uk_date(text: str | None) -> str | None:
    """As ``uk_date``, but a blank or absent date is no date (None)."""
    return uk_date(text) if text else None


def iso_day(text: str) -> str:
    """The date part of an ISO date or date-time ("2026-11-02T10:00:00Z")."""
    if not isinstance(text, str) or len(text) < 10:
        raise SchemaError(f"expected an ISO 8601 date, got {text!r}")
    return text[:10]


def items(cell: str | None) -> list[str]:
    """A CSV cell holding a list: items separated by ';', blanks dropped."""
    return [part.strip() for part in (cell or "").split(LIST_SEPARATOR) if part.strip()]


def optional_text(cell: str | None) -> str | None:
    """A CSV cell's text, or None for a blank one: a row cannot leave a cell out."""
    return cell or None


def yes(cell: str | bool | None) -> bool:
    """A CSV flag: Y/N, yes/no, true/false, 1/0."""
    if isinstance(cell, bool):
        return cell
    value = (cell or "").strip().lower()
    if value in {"y", "yes", "true", "1"}:
        return True
    if value in {"n", "no", "false", "0", ""}:
        return False
    raise SchemaError(f"expected a Y/N flag, got {cell!r}")


def enum_code(text: str) -> str:
    """An agency's upper-case code ("VERY_HIGH", "Known Adult") as our value ("very-high")."""
    return text.strip().lower().replace("_", "-").replace(" ", "-")


def parse_csv(text: str) -> list[dict[str, str]]:
    """Rows of a CSV export with a header line; every cell a string."""
    if len(text.encode()) > MAX_CSV_BYTES:
        raise SchemaError(f"CSV export larger than {MAX_CSV_BYTES} bytes")
    try:
        rows = list(csv.DictReader(io.StringIO(text), strict=True))
    except csv.Error as exc:
        raise SchemaError(f"CSV export unreadable: {exc}") from None
    for number, row in enumerate(rows, start=2):
        if None in row or any(v is None for v in row.values()):
            raise SchemaError(f"CSV line {number} has a different number of cells than the header")
    return rows


def to_csv(rows: list[dict[str, str]]) -> str:
    """Rows with the same keys as one CSV document (header first)."""
    if not rows:
        return ""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def detail(body: MessageBody) -> dict[str, Any]:
    """What a message says beyond whom it is about, as JSON data."""
    return body.model_dump(
        mode="json", exclude={"subject", "area", "category", "level", "message_type"}
    )


def flat_text(value: Any) -> str:
    """One CSV cell for any JSON value: lists joined with ';', objects as key=value."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "Y" if value else "N"
    if isinstance(value, list):
        return LIST_SEPARATOR.join(flat_text(v) for v in value)
    if isinstance(value, dict):
        return ", ".join(f"{k}={flat_text(v)}" for k, v in value.items() if v is not None)
    return str(value)


class AgencyAdapter(ABC):
    role: ClassVar[Role]
    # The adapter kind's name in the registry, and the agency id prefix that selects it.
    kind: ClassVar[str]
    # The name of the agency system whose export format this adapter reads.
    system: ClassVar[str]
    # The record field naming the record's type, and the types this adapter publishes.
    record_type_field: ClassVar[str] = "recordType"
    record_types: ClassVar[Mapping[str, RecordMapping]] = {}
    # For exports that predate a record type field: the type a record without one has.
    default_record_type: ClassVar[str | None] = None

    def __init__(self, gateway: AgencyGateway) -> None:
        if gateway.ctx.entry.role is not self.role:
            raise SchemaError(
                f"{type(self).__name__} is for {self.role.value} agencies, "
                f"not {gateway.ctx.entry.role.value}"
            )
        self.gateway = gateway

    @property
    def agency_id(self) -> str:
        return self.gateway.agency_id

    @classmethod
    def publishes(cls) -> dict[str, str]:
        """Record type code to canonical message type, for every type this adapter maps."""
        return {code: message_type for code, (message_type, _) in cls.record_types.items()}

    def to_canonical(self, record: Mapping[str, Any]) -> MessageBody:
        """Map one record of the agency's system to a canonical message."""
        if not isinstance(record, Mapping):
            raise SchemaError(
                f"{self.system} record must be an object, not {type(record).__name__}",
                code="adapter.record-invalid",
            )
        try:
            return self._to_canonical(record)
        except (KeyError, TypeError, AttributeError) as exc:
            raise SchemaError(
                f"{self.system} record is missing or mistypes field {exc}",
                code="adapter.record-invalid",
            ) from None
        except ValidationError as exc:
            raise invalid(
                exc, f"{self.system} record's message", code="adapter.record-invalid"
            ) from None
        except ValueError as exc:
            raise SchemaError(
                f"{self.system} record holds an invalid value: {exc}",
                code="adapter.record-invalid",
            ) from None

    def record_type_of(self, record: Mapping[str, Any]) -> str:
        code = record.get(self.record_type_field, self.default_record_type)
        if code is None:
            raise SchemaError(
                f"{self.system} record has no {self.record_type_field!r}",
                code="adapter.record-invalid",
            )
        return str(code)

    def _to_canonical(self, record: Mapping[str, Any]) -> MessageBody:
        if not self.record_types:
            raise SchemaError(
                f"{self.system} records are not published by this adapter",
                code="adapter.publish-not-supported",
            )
        code = self.record_type_of(record)
        if code not in self.record_types:
            raise SchemaError(
                f"{self.system} record type {code!r} is not one this adapter maps; "
                f"it maps {', '.join(sorted(self.record_types))}",
                code="adapter.record-type-unknown",
            )
        message_type, build = self.record_types[code]
        return from_data(CATALOGUE[message_type], build(record))

    @abstractmethod
    def from_canonical(self, body: MessageBody, view: ViewKind) -> dict[str, Any]:
        """Map a received message, in the view delivered, to the agency's format."""

    async def submit(
        self, record: Mapping[str, Any], *, purpose: str, user: str | None = None
    ) -> PublishResult:
        return await self.gateway.publish(self.to_canonical(record), purpose=purpose, user=user)

    async def open(self, message_id: str, *, user: str, justification: str) -> dict[str, Any]:
        opened = await self.gateway.consult(message_id, user=user, justification=justification)
        return self.from_canonical(opened.body, opened.view)
