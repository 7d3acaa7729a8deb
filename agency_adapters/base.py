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
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import date
from typing import Any, ClassVar, overload

from pydantic import ValidationError

from broker.errors import SchemaError, invalid
from broker.files.spreadsheet import neutral_cell, write_csv
from broker.gateway import AgencyGateway
from broker.gateway.publish import PublishResult
from schemas.common import MAX_YEAR, MIN_YEAR, Role, ViewKind, from_data
from schemas.messages import CATALOGUE, MessageBody

# One record type of an agency's export: the message type it becomes and how.
RecordMapping = tuple[str, Callable[[Mapping[str, Any]], dict[str, Any]]]

# A CSV export larger than this is not one agency's batch; refuse before parsing.
MAX_CSV_BYTES = 4 * 1024 * 1024
# Fields in a CSV cell that hold a list separate items with this character.
LIST_SEPARATOR = ";"
# An agency code ("VERY_HIGH", "MAPPA_REFERRAL") is short; a longer one is not a code.
MAX_CODE_CHARS = 64
# A refusal of a record says where and which rule in this many characters at most.
MAX_RECORD_REASON = 500
# dd/mm/yyyy in ASCII digits: int() and \d would take any script's digits ("٢" is 2).
_UK_DATE = re.compile(r"([0-9]{1,2})/([0-9]{1,2})/([0-9]{4})")
_DIGITS = re.compile(r"[0-9]{1,3}")


class FieldRule(SchemaError):
    """A value in a record that breaks ``rule`` (fixed text, never the value).
    ``AgencyAdapter.to_canonical`` names the field: ``field`` if given, else the record
    field read last."""

    code = "adapter.record-invalid"

    def __init__(self, rule: str, *, field: str | None = None, code: str | None = None) -> None:
        super().__init__(rule, code=code)
        self.rule = rule
        self.field = field


def uk_date(text: str) -> str:
    """dd/mm/yyyy, as most agency systems export dates, to ISO 8601. Raises ``FieldRule``
    (``schema.invalid``) unless ``text`` is a real calendar date in the years the
    broker carries, written in ASCII digits."""
    match = _UK_DATE.fullmatch(text) if isinstance(text, str) else None
    if match is None:
        raise FieldRule("expected a date as dd/mm/yyyy", code="schema.invalid")
    day, month, year = (int(g) for g in match.groups())
    try:
        when = date(year, month, day)
    except ValueError:
        raise FieldRule(
            "expected a real calendar date as dd/mm/yyyy", code="schema.invalid"
        ) from None
    if not MIN_YEAR <= when.year <= MAX_YEAR:
        raise FieldRule(
            f"expected a date in the years {MIN_YEAR} to {MAX_YEAR}", code="schema.invalid"
        )
    return when.isoformat()


def optional_uk_date(text: str | None) -> str | None:
    """As ``uk_date``, but a blank or absent date is no date (None)."""
    return None if text is None or text == "" else uk_date(text)


def iso_day(text: str) -> str:
    """The date part of an ISO date or date-time ("2026-11-02T10:00:00Z"); the message
    model checks that it is a real date."""
    if not isinstance(text, str) or len(text) < 10 or len(text) > 40:
        raise FieldRule("expected an ISO 8601 date or date-time")
    return text[:10]


def whole_number(value: Any) -> int:
    """A MAPPA category or level as an export writes it: a JSON whole number, or ASCII
    digits in a CSV cell. Raises ``FieldRule`` for anything else: true/false (which
    Python counts as 1 and 0), 2.9 or 2.0, Infinity, another script's digits ("٢")."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 999:
        return value
    if isinstance(value, str) and _DIGITS.fullmatch(value):
        return int(value)
    raise FieldRule("expected a whole number written in the digits 0-9")


def name_part(value: Any) -> str:
    """One part of a name (a forename, a surname) as text. Raises ``FieldRule`` for
    null, a number or anything else that would be written out as "None" or "42"."""
    if not isinstance(value, str) or not value.strip():
        raise FieldRule("expected a name as text")
    return value


def items(cell: str | None) -> list[str]:
    """A CSV cell holding a list: items separated by ';', blanks dropped."""
    if cell is not None and not isinstance(cell, str):
        raise FieldRule("expected a list as text separated by ';'")
    return [part.strip() for part in (cell or "").split(LIST_SEPARATOR) if part.strip()]


def optional_text(cell: str | None) -> str | None:
    """A CSV cell's text, or None for a blank one: a row cannot leave a cell out."""
    return cell or None


def yes(cell: str | bool | None) -> bool:
    """A CSV flag: Y/N, yes/no, true/false, 1/0."""
    if isinstance(cell, bool):
        return cell
    value = (cell or "").strip().lower() if isinstance(cell, str) or cell is None else None
    if value in {"y", "yes", "true", "1"}:
        return True
    if value in {"n", "no", "false", "0", ""}:
        return False
    raise FieldRule("expected a Y/N flag")


def enum_code(text: str) -> str:
    """An agency's upper-case code ("VERY_HIGH", "Known Adult") as our value ("very-high")."""
    if not isinstance(text, str) or len(text) > MAX_CODE_CHARS:
        raise FieldRule("expected an agency code")
    return text.strip().lower().replace("_", "-").replace(" ", "-")


def parse_csv(text: str) -> list[dict[str, str]]:
    """Rows of a CSV export with a header line; every cell a string."""
    if len(text.encode()) > MAX_CSV_BYTES:
        raise SchemaError(f"CSV export larger than {MAX_CSV_BYTES} bytes")
    try:
        rows = list(csv.DictReader(io.StringIO(text), strict=True))
    except csv.Error:
        raise SchemaError("CSV export unreadable: not well-formed CSV") from None
    for number, row in enumerate(rows, start=2):
        if None in row or any(v is None for v in row.values()):
            raise SchemaError(f"CSV line {number} has a different number of cells than the header")
    return rows


def to_csv(rows: list[dict[str, str]]) -> str:
    """Rows with the same keys as one CSV document (header first), every cell neutralised
    against formulas and quoted (``broker.files.spreadsheet``)."""
    if not rows:
        return ""
    header = list(rows[0])
    return write_csv(header, ([row.get(k, "") for k in header] for row in rows))


def import_row(row: Mapping[str, Any]) -> dict[str, str]:
    """A row of an agency's CSV import: every value a string that a spreadsheet shows as
    text (``neutral_cell``), whatever names or text the message carried."""
    return {k: neutral_cell(v) for k, v in row.items()}


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


# -- reading a record so that a failure names its field ----------------------------------------


class _Trail:
    """The field of a record read last, and whether it was missing: what a failure of a
    mapping names, since the exception itself may quote the value."""

    __slots__ = ("missing", "path")

    def __init__(self) -> None:
        self.path = ""
        self.missing = False

    def at(self, path: str) -> None:
        self.path = path
        self.missing = False


def _step(where: str, key: object) -> str:
    return f"{where}.{key}" if where else str(key)


def _traced(value: Any, where: str, trail: _Trail) -> Any:
    if isinstance(value, Mapping):
        return TracedRecord(value, where, trail)
    if isinstance(value, list):
        return _TracedList(value, where, trail)
    return value


class TracedRecord(Mapping[str, Any]):
    """A record, or an object within one, that notes each field read in its ``_Trail``."""

    def __init__(self, data: Mapping[str, Any], where: str, trail: _Trail) -> None:
        self._data = data
        self._where = where
        self._trail = trail

    def __getitem__(self, key: str) -> Any:
        where = _step(self._where, key)
        self._trail.at(where)
        try:
            value = self._data[key]
        except KeyError:
            self._trail.missing = True
            raise
        return _traced(value, where, self._trail)

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)


class _TracedList(Sequence[Any]):
    def __init__(self, data: list[Any], where: str, trail: _Trail) -> None:
        self._data = data
        self._where = where
        self._trail = trail

    @overload
    def __getitem__(self, index: int) -> Any: ...
    @overload
    def __getitem__(self, index: slice) -> list[Any]: ...
    def __getitem__(self, index: int | slice) -> Any:
        if isinstance(index, slice):
            return [self[i] for i in range(len(self._data))[index]]
        where = _step(self._where, index)
        self._trail.at(where)
        return _traced(self._data[index], where, self._trail)

    def __iter__(self) -> Iterator[Any]:
        for i in range(len(self._data)):
            yield self[i]

    def __len__(self) -> int:
        return len(self._data)


def plain(value: Any) -> Any:
    """``value`` with every traced record or list inside it back as plain JSON data."""
    if isinstance(value, TracedRecord):
        return {k: plain(value._data[k]) for k in value}
    if isinstance(value, _TracedList):
        return [plain(v) for v in value._data]
    if isinstance(value, Mapping):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


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
        """Map one record of the agency's system to a canonical message. Raises
        ``SchemaError`` naming the field and the rule it breaks, never the value: a
        refusal's reason is audited and answered, and a value in the wrong field is
        personal data (a PNC id, a date of birth) as often as not."""
        if not isinstance(record, Mapping):
            raise SchemaError(
                f"{self.system} record must be an object, not {type(record).__name__}",
                code="adapter.record-invalid",
            )
        trail = _Trail()
        try:
            return self._to_canonical(TracedRecord(record, "", trail))
        except FieldRule as exc:
            raise self._refusal(exc.field or trail.path, exc.rule, exc.code) from None
        except ValidationError as exc:
            raise invalid(
                exc, f"{self.system} record's message", code="adapter.record-invalid"
            ) from None
        except SchemaError:
            raise
        except KeyError:
            rule = "required field missing" if trail.missing else "not a value this export uses"
            raise self._refusal(trail.path, rule) from None
        except (TypeError, AttributeError, IndexError):
            raise self._refusal(trail.path, "of the wrong type") from None
        # ValueError, OverflowError (int(Infinity)), RecursionError: whatever a mapping
        # trips over, the record is what is wrong, and its message may quote the value.
        except (ValueError, ArithmeticError, RecursionError):
            raise self._refusal(trail.path, "not a value this field can hold") from None

    def _refusal(self, field: str, rule: str, code: str = "adapter.record-invalid") -> SchemaError:
        where = field or "the top level"
        reason = f"{self.system} record invalid at {where}: {rule}"
        return SchemaError(reason[:MAX_RECORD_REASON], code=code)

    def record_type_of(self, record: Mapping[str, Any]) -> str:
        code = record.get(self.record_type_field, self.default_record_type)
        if code is None:
            raise SchemaError(
                f"{self.system} record has no {self.record_type_field!r}",
                code="adapter.record-invalid",
            )
        if not isinstance(code, str):
            raise SchemaError(
                f"{self.system} record's {self.record_type_field!r} is not text",
                code="adapter.record-invalid",
            )
        return code

    def _to_canonical(self, record: Mapping[str, Any]) -> MessageBody:
        if not self.record_types:
            raise SchemaError(
                f"{self.system} records are not published by this adapter",
                code="adapter.publish-not-supported",
            )
        code = self.record_type_of(record)
        if code not in self.record_types:
            raise SchemaError(
                f"{self.system} record's {self.record_type_field!r} is not a record type "
                f"this adapter maps; it maps {', '.join(sorted(self.record_types))}",
                code="adapter.record-type-unknown",
            )
        message_type, build = self.record_types[code]
        return from_data(CATALOGUE[message_type], plain(build(record)))

    @abstractmethod
    def from_canonical(self, body: MessageBody, view: ViewKind) -> dict[str, Any]:
        """Map a received message, in the view delivered, to the agency's format."""

    async def submit(
        self, record: Mapping[str, Any], *, purpose: str, user: str | None = None
    ) -> PublishResult:
        return await self.gateway.publish(self.to_canonical(record), purpose=purpose, user=user)

    async def open(
        self, message_id: str, *, user: str, justification: str, sender: str | None = None
    ) -> dict[str, Any]:
        """The held message ``message_id`` (from ``sender``, which must be given when two
        agencies used that id), opened as a consultation and in this agency's format."""
        opened = await self.gateway.consult(
            message_id, user=user, justification=justification, sender=sender
        )
        return self.from_canonical(opened.body, opened.view)
