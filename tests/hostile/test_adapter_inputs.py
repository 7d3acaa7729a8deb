"""Careless and hostile values in every adapter's records, and in every message schema.

Each adapter kind keeps a name, a date, MAPPA numbers and agency codes somewhere in
its records; each is sent the values a careless export or a hostile caller produces
(null, numbers where text belongs, booleans and fractions where whole numbers belong,
Infinity and NaN, another script's digits, impossible dates, 5,000 characters,
control characters). Every one is a ``SchemaError`` naming the field, never a
crash and never a message built from a guess ("Alex None", level 2 from 2.9).
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError

from agency_adapters.base import uk_date, whole_number
from broker.errors import MAX_REASON_CHARS, SchemaError, invalid
from broker.gateway import AgencyGateway
from schemas.audit import AuditEvent
from schemas.common import LongText, from_data
from schemas.messages import CATALOGUE
from schemas.messages.examples import example_data
from tests.agency_records import RECORDS
from tests.support import POLICE
from tests.test_adapter_formats import adapter, gateways
from tests.test_api import Api, arms_record, module_api

__all__ = ["gateways", "module_api"]  # fixtures this module's tests take


Path = tuple[str | int, ...]

# Per adapter kind: the record type used, and where its record keeps a field of each
# kind, with the canonical field a refusal may name instead of the record's own.
NAME, DATE, CATEGORY, LEVEL, ENUM = "name", "date", "category", "level", "enum"
FIELDS: dict[str, tuple[str, dict[str, tuple[Path, str]]]] = {
    "police": (
        "ARMS",
        {
            NAME: (("surname",), "subject.name"),
            DATE: (("dob",), "subject.date_of_birth"),
            CATEGORY: (("mappaCategory",), "category"),
            LEVEL: (("mappaLevel",), "level"),
            ENUM: (("arms", "rosh"), "risk_of_serious_harm"),
        },
    ),
    "probation": (
        "REFERRAL",
        {
            NAME: (("surname",), "subject.name"),
            DATE: (("dateOfBirth",), "subject.date_of_birth"),
            CATEGORY: (("mappa", "category"), "category"),
            LEVEL: (("referral", "levelRequested"), "requested_level"),
            ENUM: (("referral", "rosh"), "risk_of_serious_harm"),
        },
    ),
    "prison": (
        "REFERRAL",
        {
            NAME: (("lastName",), "subject.name"),
            DATE: (("dateOfBirth",), "subject.date_of_birth"),
            CATEGORY: (("mappa", "category"), "category"),
            LEVEL: (("referral", "levelRequested"), "requested_level"),
            ENUM: (("referral", "rosh"), "risk_of_serious_harm"),
        },
    ),
    "coordinator": (
        "LEVEL",
        {
            NAME: (("name",), "subject.name"),
            DATE: (("dob",), "subject.date_of_birth"),
            CATEGORY: (("category",), "category"),
            LEVEL: (("level",), "level"),
            ENUM: (("recordType",), "recordType"),
        },
    ),
    "youth-offending": (
        "REFERRAL",
        {
            NAME: (("familyName",), "subject.name"),
            DATE: (("dob",), "subject.date_of_birth"),
            CATEGORY: (("mappa", "category"), "category"),
            LEVEL: (("referral", "levelRequested"), "requested_level"),
            ENUM: (("referral", "rosh"), "risk_of_serious_harm"),
        },
    ),
    "childrens-social-care": (
        "MAPPA_REFERRAL",
        {
            NAME: (("fullName",), "subject.name"),
            DATE: (("dateOfBirth",), "subject.date_of_birth"),
            CATEGORY: (("mappa", "category"), "category"),
            LEVEL: (("form", "levelRequested"), "requested_level"),
            ENUM: (("form", "riskLevel"), "risk_of_serious_harm"),
        },
    ),
    "adult-social-care": (
        "MAPPA_REFERRAL",
        {
            NAME: (("Surname",), "subject.name"),
            DATE: (("DOB",), "subject.date_of_birth"),
            CATEGORY: (("MappaCategory",), "category"),
            LEVEL: (("LevelRequested",), "requested_level"),
            ENUM: (("RoSH",), "risk_of_serious_harm"),
        },
    ),
    "health": (
        "MAPPA_REFERRAL",
        {
            NAME: (("patientName",), "subject.name"),
            DATE: (("dateOfBirth",), "subject.date_of_birth"),
            CATEGORY: (("mappa", "category"), "category"),
            LEVEL: (("referral", "levelRequested"), "requested_level"),
            ENUM: (("referral", "riskLevel"), "risk_of_serious_harm"),
        },
    ),
    "housing": (
        "MAPPA_REFERRAL",
        {
            NAME: (("applicantName",), "subject.name"),
            DATE: (("dateOfBirth",), "subject.date_of_birth"),
            CATEGORY: (("mappaCategory",), "category"),
            LEVEL: (("mappaLevel",), "level"),
            ENUM: (("referral", "risk"), "risk_of_serious_harm"),
        },
    ),
    "social-landlord": (
        "MAPPA A",
        {
            NAME: (("Tenant Name",), "subject.name"),
            DATE: (("DOB",), "subject.date_of_birth"),
            CATEGORY: (("Category",), "category"),
            LEVEL: (("Level",), "level"),
            ENUM: (("Risk",), "risk_of_serious_harm"),
        },
    ),
    "jobcentre": (
        "MAPPAREF",
        {
            NAME: (("ClaimantName",), "subject.name"),
            DATE: (("DOB",), "subject.date_of_birth"),
            CATEGORY: (("Category",), "category"),
            LEVEL: (("RequestedLevel",), "requested_level"),
            ENUM: (("RiskLevel",), "risk_of_serious_harm"),
        },
    ),
    "education": (
        "MAPPA_REFERRAL",
        {
            NAME: (("Name",), "subject.name"),
            DATE: (("DateOfBirth",), "subject.date_of_birth"),
            CATEGORY: (("MappaCategory",), "category"),
            LEVEL: (("MappaLevel",), "level"),
            ENUM: (("RiskLevel",), "risk_of_serious_harm"),
        },
    ),
    "electronic-monitoring": (
        "ESCALATION",
        {
            NAME: (("SubjectName",), "subject.name"),
            DATE: (("SubjectDOB",), "subject.date_of_birth"),
            CATEGORY: (("Category",), "category"),
            LEVEL: (("Level",), "level"),
            ENUM: (("RoSH",), "risk_of_serious_harm"),
        },
    ),
    "immigration": (
        "MAPPA_REFERRAL",
        {
            NAME: (("familyName",), "subject.name"),
            DATE: (("dateOfBirth",), "subject.date_of_birth"),
            CATEGORY: (("mappa", "category"), "category"),
            LEVEL: (("referral", "levelRequested"), "requested_level"),
            ENUM: (("referral", "risk"), "risk_of_serious_harm"),
        },
    ),
}
# Exports whose dates are dd/mm/yyyy; the others write ISO dates.
UK_DATES = frozenset(
    {
        "police",
        "coordinator",
        "youth-offending",
        "adult-social-care",
        "housing",
        "social-landlord",
        "jobcentre",
        "education",
        "electronic-monitoring",
    }
)
# nDelius writes MAPPA numbers as register codes: "M1", "L2".
CODE_PREFIX = {"probation": {CATEGORY: "M", LEVEL: "L"}}

LONG = "x" * 5000
# Hostile for every kind of field.
ANY_FIELD: list[Any] = [None, [], {}, LONG, "\x00\x1b[2J", float("inf"), float("nan")]
HOSTILE: dict[str, list[Any]] = {
    NAME: [*ANY_FIELD, 42, 1.5, True, "", "   ", "Alex\x00Sample", "Sam\u202eple", "\u200b\u2060"],
    DATE: [*ANY_FIELD, 19800314, True, "", "2001/0123456A"],
    CATEGORY: [
        *ANY_FIELD,
        True,
        False,
        1.0,
        2.9,
        "1e400",
        "\u0661",
        "\uff11",
        "01x",
        "-1",
        10**400,
    ],
    LEVEL: [*ANY_FIELD, True, 2.9, 2.0, "1e400", "\u0662", "\uff12", "2.9", " 2", 10**400],
    ENUM: [*ANY_FIELD, 42, True, "HIGH\x00"],
}
UK_BAD_DATES = [
    "31/02/1980",
    "00/00/0000",
    "32/13/2026",
    "29/02/1981",
    "14/03/1800",
    "14/03/9999",
    "\u0661\u0664/03/1980",
    "\uff11\uff14/03/1980",
    "14/03/1980 ",
    "1980-03-14",
    "14/3/80",
]
ISO_BAD_DATES = [
    "1980-02-31",
    "0000-00-00",
    "2026-13-32",
    "1981-02-29",
    "1800-03-14",
    "9999-12-31",
    "\u0661\u0669\u0668\u0660-03-14",
    "14/03/1980",
    "1980-3-14",
]


def record_with(kind: str, path: Path, value: Any) -> dict[str, Any]:
    code, _ = FIELDS[kind]
    record = copy.deepcopy(RECORDS[(kind, code)])
    target: Any = record
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return record


def in_format(kind: str, field: str, value: Any) -> Any:
    """A number as ``kind`` writes it: nDelius prefixes its register codes."""
    prefix = CODE_PREFIX.get(kind, {}).get(field)
    return f"{prefix}{value}" if prefix and isinstance(value, str) and value else value


def cases() -> list[Any]:
    out = []
    for kind, (_, fields) in FIELDS.items():
        for field in fields:
            values = list(HOSTILE[field])
            if field == DATE:
                values += UK_BAD_DATES if kind in UK_DATES else ISO_BAD_DATES
            for i, value in enumerate(values):
                out.append(pytest.param(kind, field, value, id=f"{kind}-{field}-{i}"))
    return out


def refused(gateways: dict[str, AgencyGateway], kind: str, field: str, value: Any) -> SchemaError:
    path, canonical = FIELDS[kind][1][field]
    record = record_with(kind, path, in_format(kind, field, value))
    with pytest.raises(SchemaError) as caught:
        adapter(gateways, kind).to_canonical(record)
    exc = caught.value
    assert exc.code.startswith(("adapter.", "schema.")), exc.code
    reason = exc.reason
    # The field is named, in the record's terms or the message's.
    assert str(path[-1]) in reason or canonical in reason, reason
    assert len(reason) <= MAX_REASON_CHARS
    return exc


@pytest.mark.parametrize(("kind", "field", "value"), cases())
def test_every_adapter_refuses_hostile_values_in_every_kind_of_field(
    gateways: dict[str, AgencyGateway], kind: str, field: str, value: Any
) -> None:
    exc = refused(gateways, kind, field, value)
    if isinstance(value, str) and len(value) > 3:
        assert value not in exc.reason


@pytest.mark.parametrize("kind", sorted(FIELDS))
def test_a_null_or_numeric_surname_is_not_written_as_text(
    gateways: dict[str, AgencyGateway], kind: str
) -> None:
    # The finding: a null surname became "Alex None", a numeric one "Alex 42".
    for value in (None, 42):
        exc = refused(gateways, kind, NAME, value)
        assert "None" not in exc.reason


@pytest.mark.parametrize("kind", sorted(FIELDS))
def test_whole_numbers_as_each_export_writes_them_still_map(
    gateways: dict[str, AgencyGateway], kind: str
) -> None:
    # The strict reading refuses the careless forms only: a JSON number, or ASCII digits
    # in a CSV cell (nDelius: its register code), is still a MAPPA number.
    path, _ = FIELDS[kind][1][LEVEL]
    original = RECORDS[(kind, FIELDS[kind][0])]
    target: Any = original
    for key in path:
        target = target[key]
    for value in (target, *([str(target)] if isinstance(target, int) else [])):
        body = adapter(gateways, kind).to_canonical(record_with(kind, path, value))
        assert body.model_dump(mode="json")


def test_uk_dates_are_real_calendar_dates() -> None:
    assert uk_date("2/11/2026") == "2026-11-02"
    assert uk_date("29/02/2024") == "2024-02-29"
    for text in UK_BAD_DATES:
        with pytest.raises(SchemaError) as caught:
            uk_date(text)
        assert text not in caught.value.reason


def test_whole_numbers_are_ascii_digits_or_json_integers() -> None:
    assert whole_number(2) == 2
    assert whole_number("3") == 3
    for value in (True, False, 2.0, 2.9, float("inf"), float("nan"), "\u0662", "\uff13", "2.9"):
        with pytest.raises(SchemaError):
            whole_number(value)
    with pytest.raises(SchemaError):
        whole_number("9" * 5000)


# -- every message schema, whoever sends it -------------------------------------------------


def date_fields(data: dict[str, Any], prefix: str = "") -> list[str]:
    """Dotted paths of the ISO dates an example message holds."""
    out = []
    for key, value in data.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict):
            out += date_fields(value, f"{path}.")
        elif isinstance(value, str) and len(value) == 10 and value[4] == "-" and value[7] == "-":
            out.append(path)
    return out


def with_value(data: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    changed = copy.deepcopy(data)
    *steps, last = path.split(".")
    target = changed
    for step in steps:
        target = target[step]
    target[last] = value
    return changed


def schema_cases() -> list[Any]:
    out = []
    for message_type in sorted(CATALOGUE):
        data = example_data(message_type)
        numbers: tuple[Any, ...] = (True, 1.0, 2.9, "1", "\u0661")
        for path in ("category", "level", "schema_version"):
            for value in numbers:
                out.append(pytest.param(message_type, path, value, id=f"{message_type}-{path}"))
        for path in date_fields(data):
            for value in ISO_BAD_DATES:
                out.append(pytest.param(message_type, path, value, id=f"{message_type}-{path}"))
        names: tuple[Any, ...] = (None, 42, "", " ", "Alex\x00Sample", "Sam\u202eple", LONG)
        names += ("\u200b\u2060", "Alex\u200bSample", True)
        for value in names:
            out.append(pytest.param(message_type, "subject.name", value, id=message_type))
    return out


@pytest.mark.parametrize(("message_type", "path", "value"), schema_cases())
def test_every_message_schema_refuses_careless_values(
    message_type: str, path: str, value: Any
) -> None:
    data = with_value(example_data(message_type), path, value)
    with pytest.raises(SchemaError) as caught:
        from_message(message_type, data)
    assert path.rsplit(".", maxsplit=1)[-1] in caught.value.reason


def from_message(message_type: str, data: dict[str, Any]) -> None:
    try:
        from_data(CATALOGUE[message_type], data)
    except ValidationError as exc:
        raise invalid(exc, f"{message_type} body") from None


def test_every_example_message_still_validates() -> None:
    for message_type in CATALOGUE:
        from_data(CATALOGUE[message_type], json.loads(json.dumps(example_data(message_type))))


def test_a_bounded_reason_fits_the_audit_event() -> None:
    # The refusal's reason is the audit event's ``reason``: it must always fit there.
    field: TypeAdapter[str | None] = TypeAdapter(LongText | None)
    assert AuditEvent.model_fields["reason"].annotation == LongText | None
    field.validate_python("x" * MAX_REASON_CHARS)
    with pytest.raises(ValidationError):
        field.validate_python("x" * (MAX_REASON_CHARS * 100))
    assert len(SchemaError("y" * 50_000).reason) <= MAX_REASON_CHARS


# -- through the API: a clear 4xx, answered and audited, never a 5xx -----------------------


@pytest.mark.parametrize(
    ("field", "literal"),
    [
        ("mappaCategory", "Infinity"),
        ("mappaCategory", "-Infinity"),
        ("mappaCategory", "NaN"),
        ("mappaCategory", "1e400"),
        ("mappaLevel", "2.9"),
        ("mappaLevel", "true"),
        ("mappaLevel", '"\\u0662"'),
        ("mappaLevel", '"\\uff13"'),
        ("surname", "null"),
        ("surname", "42"),
        ("dob", '"31/02/1980"'),
        ("dob", '"00/00/0000"'),
        ("dob", '"32/13/2026"'),
        ("dob", json.dumps(LONG)),
        ("recordType", json.dumps(LONG)),
    ],
)
async def test_the_api_refuses_careless_numbers_names_and_dates_with_a_4xx(
    module_api: Api, field: str, literal: str
) -> None:
    api = module_api
    record = arms_record()
    record[field] = "@@VALUE@@"
    body = json.dumps({"record": record, "purpose": "risk management"})
    raw = body.replace('"@@VALUE@@"', literal)
    await api.world.sync_ledger()
    refusals_before = len(api.world.ledger.store.entries(agency=POLICE, act="refusal"))
    answer = await api.client.post(
        f"/v1/agencies/{POLICE}/records",
        content=raw.encode(),
        headers={**api.auth(POLICE), "Content-Type": "application/json"},
    )
    assert answer.status_code == 422, answer.text
    assert field in answer.json()["detail"] or "subject" in answer.json()["detail"]
    # Refused and audited: the refusal fits the audit event whatever the value's size.
    await api.world.sync_ledger()
    refusals = api.world.ledger.store.entries(agency=POLICE, act="refusal")
    [refusal] = refusals[refusals_before:]
    assert refusal["reason_code"] == answer.json()["error"]
    assert LONG[:50] not in json.dumps(refusal, default=str)
